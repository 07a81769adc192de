// Schedule expressions of a root stage, with EventBridge's syntax and EventBridge's rules, so a
// schedule that cascade accepts is one AWS would accept too (and the other way round):
//   rate(VALUE UNIT)   VALUE a positive integer; UNIT minute|hour|day for 1, minutes|hours|days
//                      otherwise
//   cron(MIN HOUR DOM MONTH DOW YEAR)
//                      MIN 0-59, HOUR 0-23, DOM 1-31, MONTH 1-12|JAN-DEC, DOW 1-7|SUN-SAT
//                      (1 = SUN), YEAR 1970-2199; `*`, lists `a,b`, ranges `a-b`, increments
//                      `a/n`, `*/n`, `a-b/n` (not in DOW); DOM also `L`, `LW`, `nW`; DOW also
//                      `L`, `nL`, `n#k` (k 1-5); exactly one of DOM and DOW is `?`.
// Parsing and next_fire are pure and thread-safe.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include "core/clock.h"
#include "core/timezone.h"

namespace cascade {

// A schedule that EventBridge would refuse. what() is the whole message, naming the expression,
// the field at fault and what it accepts, e.g. "invalid schedule 'cron(61 * * * ? *)': minutes
// must be 0-59, found '61'".
class ScheduleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// rate(VALUE UNIT): fires every `period`.
struct RateSchedule {
  int64_t value = 0;  // >= 1
  enum class Unit { Minute, Hour, Day } unit = Unit::Hour;
  Duration period;  // value * unit
};

// cron(...): a time fires when every field allows it. Bit i of a set means value i is allowed
// (years: bit i is year 1970 + i); unused low bits (day 0, month 0, weekday 0) stay clear.
struct CronSchedule {
  static constexpr int kFirstYear = 1970, kLastYear = 2199;

  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<13> months;                         // 1-12
  std::bitset<kLastYear - kFirstYear + 1> years;  // 1970-2199

  // Which of the day fields chooses the days (the other one was `?`), and how.
  enum class Days {
    OfMonth,             // days_of_month (DOM was a list, range, increment or `*`)
    LastOfMonth,         // DOM `L`
    LastWeekdayOfMonth,  // DOM `LW`: the last Monday-Friday of the month
    WeekdayNearest,      // DOM `nW`: the Monday-Friday nearest to day `day`, within the month
    OfWeek,              // days_of_week (DOW was a list, range, `*` or `L` = SAT)
    LastInMonth,         // DOW `nL`: the last weekday `weekday` of the month
    NthInMonth,          // DOW `n#k`: the `nth` weekday `weekday` of the month
  } days = Days::OfMonth;
  std::bitset<32> days_of_month;  // 1-31, for Days::OfMonth
  std::bitset<8> days_of_week;    // 1-7 (1 = SUN), for Days::OfWeek
  int day = 0;                    // 1-31, for Days::WeekdayNearest
  int weekday = 0;                // 1-7 (1 = SUN), for Days::LastInMonth and Days::NthInMonth
  int nth = 0;                    // 1-5, for Days::NthInMonth
};

struct Schedule {
  std::string text;  // as written (surrounding blanks removed)
  std::variant<RateSchedule, CronSchedule> when;
};

// Parses `rate(...)` or `cron(...)`. Throws ScheduleError on anything EventBridge refuses.
Schedule parse_schedule(std::string_view expr);

// The same check without the parsed form: an empty string when valid, else the ScheduleError
// message.
std::string check_schedule(std::string_view expr);

// The first time `s` fires strictly after `after`, or nullopt when it never fires again.
//
// rate(): at rate_anchor + k * period for every k >= 0 (the daemon passes the instant the
// schedule was first started, so restarts keep the cadence). The zone plays no part: a day is
// 24 hours even when daylight saving time makes the calendar day 23 or 25, as on EventBridge
// Scheduler. nullopt only past the end of TimePoint's range.
//
// cron(): at each wall-clock minute of `tz` that every field allows, with EventBridge's meaning
// of each field: `L` is the month's last day; `LW` its last Monday-Friday; `nW` the Monday-Friday
// nearest to day n without leaving the month (1W on a Saturday is Monday the 3rd, 31W on a
// Sunday is Friday the 29th), and no day in a month shorter than n days, as plain `31` skips
// them; `nL` the month's last weekday n; `n#k` its k-th weekday n, none in a month without one.
// Years end with 2199, so a search always ends; skipping years, months and days that cannot
// match bounds it to a few thousand month checks.
//
// Daylight saving time follows EventBridge Scheduler ("Daylight savings time on EventBridge
// Scheduler" in https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html, and
// https://repost.aws/knowledge-center/eventbridge-scheduler-adjust-dst): when clocks go forward,
// a wall-clock time that does not exist that day is skipped, not moved (a daily 02:30 job does
// not run on that day in Berlin or New York); when clocks go back, a wall-clock time that exists
// twice fires once. AWS does not say which of the two; cascade takes the first, so a run is
// never an hour late (a 01:30 job runs at 01:30 daylight time, not again an hour later; an hourly
// job fires at 01:00 daylight time and next at 02:00 standard time).
//
// The search walks wall-clock times from the one shown at `after` on: it relies on every earlier
// wall-clock time having first occurred by then, which holds whenever a zone's changes are
// further apart than the hours they shift (months apart for daylight saving time).
std::optional<TimePoint> next_fire(const Schedule& s, TimePoint after, const TimeZone& tz,
                                   TimePoint rate_anchor);

}  // namespace cascade
