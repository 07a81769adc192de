#include "config/schedule.h"

#include <array>
#include <cctype>
#include <chrono>
#include <limits>
#include <optional>
#include <vector>

namespace cascade {
namespace {

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

// One cron field as EventBridge defines it.
struct Field {
  const char* name;
  int min, max;
  const std::string_view* names;  // names[i] is value min + i; null when the field has none
  size_t name_count;
  bool increments;  // accepts `/`
  int max_step;
};

constexpr Field kMinutes{"minutes", 0, 59, nullptr, 0, true, 59};
constexpr Field kHours{"hours", 0, 23, nullptr, 0, true, 23};
constexpr Field kDayOfMonth{"day-of-month", 1, 31, nullptr, 0, true, 31};
constexpr Field kMonth{"month", 1, 12, kMonthNames.data(), kMonthNames.size(), true, 12};
constexpr Field kDayOfWeek{"day-of-week", 1, 7, kDayNames.data(), kDayNames.size(), false, 0};
constexpr Field kYear{"year",
                      CronSchedule::kFirstYear,
                      CronSchedule::kLastYear,
                      nullptr,
                      0,
                      true,
                      CronSchedule::kLastYear - CronSchedule::kFirstYear};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool upper_is(char c, char want) {
  return std::toupper(static_cast<unsigned char>(c)) == want;
}

// Digits only (no sign, no blanks); values too long for any field come back as max().
std::optional<int64_t> digits(std::string_view s) {
  if (s.empty() || s.size() > 18) {
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos)
      return std::numeric_limits<int64_t>::max();
    return std::nullopt;
  }
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  while (!(s = trim(s)).empty()) {
    size_t end = 0;
    while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end]))) ++end;
    out.push_back(s.substr(0, end));
    s.remove_prefix(end);
  }
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Schedule parse() {
    Schedule out;
    out.text = std::string(text_);
    if (auto body = inner("rate(")) {
      out.when = rate(*body);
    } else if (auto body = inner("cron(")) {
      out.when = cron(*body);
    } else {
      fail(
          "expected rate(VALUE UNIT) or cron(MINUTES HOURS DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR), "
          "as in rate(1 hour) or cron(0 12 * * ? *)");
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw ScheduleError("invalid schedule '" + std::string(text_) + "': " + why);
  }

  std::optional<std::string_view> inner(std::string_view prefix) const {
    if (!text_.starts_with(prefix) || !text_.ends_with(')')) return std::nullopt;
    return text_.substr(prefix.size(), text_.size() - prefix.size() - 1);
  }

  RateSchedule rate(std::string_view body) const {
    auto w = words(body);
    if (w.size() != 2)
      fail(
          "expected rate(VALUE UNIT) with a positive integer VALUE and a UNIT of minute(s), "
          "hour(s) or day(s)");
    RateSchedule r;
    auto v = digits(w[0]);
    if (!v || *v <= 0)
      fail("rate value must be a positive integer, found '" + std::string(w[0]) + "'");
    r.value = *v;
    std::string_view unit = w[1];
    bool plural = unit.ends_with('s');
    std::string_view singular = plural ? unit.substr(0, unit.size() - 1) : unit;
    Duration one;
    if (singular == "minute") {
      r.unit = RateSchedule::Unit::Minute, one = std::chrono::minutes(1);
    } else if (singular == "hour") {
      r.unit = RateSchedule::Unit::Hour, one = std::chrono::hours(1);
    } else if (singular == "day") {
      r.unit = RateSchedule::Unit::Day, one = std::chrono::hours(24);
    } else {
      fail("rate unit must be minute, minutes, hour, hours, day or days, found '" +
           std::string(unit) + "'");
    }
    // EventBridge's own rule: rate(1 hours) and rate(5 hour) are both refused.
    if (r.value == 1 && plural)
      fail("a rate of 1 takes the singular unit: rate(1 " + std::string(singular) + ")");
    if (r.value != 1 && !plural)
      fail("a rate of " + std::to_string(r.value) + " takes the plural unit: rate(" +
           std::to_string(r.value) + " " + std::string(unit) + "s)");
    if (r.value > std::numeric_limits<int64_t>::max() / one.count())
      fail("rate value " + std::string(w[0]) + " is too large");
    r.period = one * r.value;
    return r;
  }

  CronSchedule cron(std::string_view body) const {
    auto f = words(body);
    if (f.size() != 6)
      fail("cron takes 6 fields (minutes hours day-of-month month day-of-week year), found " +
           std::to_string(f.size()));
    CronSchedule c;
    for (size_t i = 0; i < f.size(); ++i)
      if (f[i] == "?" && i != 2 && i != 4)
        fail(std::string(
                 std::array{kMinutes, kHours, kDayOfMonth, kMonth, kDayOfWeek, kYear}[i].name) +
             " cannot be '?' (only day-of-month or day-of-week can)");
    set(kMinutes, f[0], c.minutes);
    set(kHours, f[1], c.hours);
    set(kMonth, f[3], c.months);
    set(kYear, f[5], c.years, CronSchedule::kFirstYear);
    bool dom_any = f[2] == "?", dow_any = f[4] == "?";
    if (dom_any && dow_any)
      fail("day-of-month and day-of-week cannot both be '?' (make one of them '*' or a value)");
    if (!dom_any && !dow_any)
      fail(
          "one of day-of-month and day-of-week must be '?' (EventBridge cannot use both), found '" +
          std::string(f[2]) + "' and '" + std::string(f[4]) + "'");
    if (dow_any)
      day_of_month(f[2], c);
    else
      day_of_week(f[4], c);
    return c;
  }

  static std::string expected(const Field& f) {
    std::string out = std::to_string(f.min) + "-" + std::to_string(f.max);
    if (f.names)
      out += " or " + std::string(f.names[0]) + "-" + std::string(f.names[f.name_count - 1]);
    return out;
  }

  // One value of a field: a number in range, or a name.
  int value(const Field& f, std::string_view tok) const {
    if (auto v = digits(tok)) {
      if (*v < f.min || *v > f.max)
        fail(std::string(f.name) + " must be " + expected(f) + ", found '" + std::string(tok) +
             "'");
      return static_cast<int>(*v);
    }
    for (size_t i = 0; i < f.name_count; ++i)
      if (iequals(tok, f.names[i])) return f.min + static_cast<int>(i);
    fail(std::string(f.name) + " must be " + expected(f) + ", found '" + std::string(tok) + "'");
  }

  // A field of `*`, lists, ranges and increments; bit v - offset is set for each value v.
  template <size_t N>
  void set(const Field& f, std::string_view text, std::bitset<N>& bits, int offset = 0) const {
    for (std::string_view item : split(text, ',')) {
      if (item.empty())
        fail(std::string(f.name) + " has an empty item in '" + std::string(text) + "'");
      auto parts = split(item, '/');
      if (parts.size() > 2)
        fail(std::string(f.name) + " has more than one '/' in '" + std::string(item) + "'");
      int step = 1;
      if (parts.size() == 2) {
        if (!f.increments)
          fail(std::string(f.name) + " does not take increments ('/'), found '" +
               std::string(item) + "'");
        auto s = digits(parts[1]);
        if (!s || *s < 1 || *s > f.max_step)
          fail(std::string(f.name) + " increment must be 1-" + std::to_string(f.max_step) +
               ", found '" + std::string(parts[1]) + "'");
        step = static_cast<int>(*s);
      }
      std::string_view base = parts[0];
      int lo = f.min, hi = f.max;
      if (base != "*") {
        auto ends = split(base, '-');
        if (ends.size() > 2)
          fail(std::string(f.name) + " has more than one '-' in '" + std::string(item) + "'");
        for (std::string_view end : ends)
          if (end.empty())
            fail(std::string(f.name) + " has an incomplete range '" + std::string(item) + "'");
        lo = value(f, ends[0]);
        if (ends.size() == 2) {
          hi = value(f, ends[1]);
          if (lo > hi)
            fail(std::string(f.name) + " range '" + std::string(base) +
                 "' runs backwards (its start must not be after its end)");
        } else if (parts.size() == 1) {
          hi = lo;
        }
      }
      for (int v = lo; v <= hi; v += step) bits.set(static_cast<size_t>(v - offset));
    }
  }

  void day_of_month(std::string_view text, CronSchedule& c) const {
    const std::string alone =
        "(L, LW and nW stand alone in day-of-month, not in a list, range or increment)";
    if (iequals(text, "L")) {
      c.days = CronSchedule::Days::LastOfMonth;
      return;
    }
    if (iequals(text, "LW")) {
      c.days = CronSchedule::Days::LastWeekdayOfMonth;
      return;
    }
    bool special = false;
    for (char ch : text) special |= upper_is(ch, 'L') || upper_is(ch, 'W');
    if (!special) {
      c.days = CronSchedule::Days::OfMonth;
      set(kDayOfMonth, text, c.days_of_month);
      return;
    }
    std::string_view day = text.substr(0, text.size() - 1);
    if (!upper_is(text.back(), 'W') || !digits(day))
      fail("day-of-month must be 1-31, L, LW or nW (n 1-31), found '" + std::string(text) + "' " +
           alone);
    c.days = CronSchedule::Days::WeekdayNearest;
    c.day = value(kDayOfMonth, day);
  }

  void day_of_week(std::string_view text, CronSchedule& c) const {
    const std::string forms = "day-of-week must be 1-7 or SUN-SAT, L, nL or n#k (k 1-5)";
    if (iequals(text, "L")) {  // the last day of the week
      c.days = CronSchedule::Days::OfWeek;
      c.days_of_week.set(7);
      return;
    }
    if (size_t hash = text.find('#'); hash != std::string_view::npos) {
      std::string_view day = text.substr(0, hash), nth = text.substr(hash + 1);
      if (day.find_first_of(",-/*") != std::string_view::npos)
        fail(forms + ", found '" + std::string(text) + "' (n#k stands alone, not in a list)");
      c.days = CronSchedule::Days::NthInMonth;
      c.weekday = value(kDayOfWeek, day);
      auto k = digits(nth);
      if (!k || *k < 1 || *k > 5)
        fail("day-of-week '" + std::string(text) +
             "': the occurrence after '#' must be 1-5 (n#k is the k-th weekday n of the "
             "month), found '" +
             std::string(nth) + "'");
      c.nth = static_cast<int>(*k);
      return;
    }
    if (text.size() > 1 && upper_is(text.back(), 'L')) {
      std::string_view day = text.substr(0, text.size() - 1);
      bool is_day = digits(day).has_value();
      for (auto name : kDayNames) is_day |= iequals(day, name);
      if (day.find_first_of(",-/*") != std::string_view::npos)
        fail(forms + ", found '" + std::string(text) + "' (nL stands alone, not in a list)");
      if (is_day) {
        c.days = CronSchedule::Days::LastInMonth;
        c.weekday = value(kDayOfWeek, day);
        return;
      }
    }
    c.days = CronSchedule::Days::OfWeek;
    set(kDayOfWeek, text, c.days_of_week);
  }

  std::string_view text_;
};

}  // namespace

Schedule parse_schedule(std::string_view expr) {
  return Parser(trim(expr)).parse();
}

std::string check_schedule(std::string_view expr) {
  try {
    parse_schedule(expr);
    return {};
  } catch (const ScheduleError& e) {
    return e.what();
  }
}

namespace {

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::optional<TimePoint> next_rate(const RateSchedule& r, TimePoint after, TimePoint anchor) {
  if (after < anchor) return anchor;
  // 128 bits: a period near the int64 limit times k overflows 64.
  __int128 period = r.period.count();
  __int128 k = (static_cast<__int128>(to_millis(after)) - to_millis(anchor)) / period + 1;
  __int128 at = to_millis(anchor) + k * period;
  if (at > std::numeric_limits<int64_t>::max()) return std::nullopt;
  return from_millis(static_cast<int64_t>(at));
}

// The days of month m of year y that the day fields of `c` allow (bit d = day d).
std::bitset<32> days_in(const CronSchedule& c, int y, unsigned m) {
  using namespace std::chrono;
  const year_month ym = year(y) / month(m);
  const int last = static_cast<int>(unsigned((ym / std::chrono::last).day()));
  // Weekday of day d, 1 = SUN as in cron.
  const int first_wd = static_cast<int>(weekday(sys_days(ym / 1)).c_encoding());
  auto wd = [&](int d) { return (first_wd + d - 1) % 7 + 1; };
  auto monday_to_friday = [&](int d) { return wd(d) != 1 && wd(d) != 7; };
  std::bitset<32> out;
  using Days = CronSchedule::Days;
  switch (c.days) {
    case Days::OfMonth:
      for (int d = 1; d <= last; ++d) out[d] = c.days_of_month[d];
      break;
    case Days::LastOfMonth:
      out[last] = true;
      break;
    case Days::LastWeekdayOfMonth: {
      int d = last;
      while (!monday_to_friday(d)) --d;
      out[d] = true;
      break;
    }
    case Days::WeekdayNearest: {
      int d = c.day;
      if (d > last) break;
      if (wd(d) == 7)
        d = d == 1 ? 3 : d - 1;  // Saturday: Friday, or Monday the 3rd
      else if (wd(d) == 1)
        d = d == last ? d - 2 : d + 1;  // Sunday: Monday, or Friday before
      out[d] = true;
      break;
    }
    case Days::OfWeek:
      for (int d = 1; d <= last; ++d) out[d] = c.days_of_week[wd(d)];
      break;
    case Days::LastInMonth: {
      int d = last;
      while (wd(d) != c.weekday) --d;
      out[d] = true;
      break;
    }
    case Days::NthInMonth: {
      int d = 1 + (c.weekday - first_wd - 1 + 7) % 7 + 7 * (c.nth - 1);
      if (d <= last) out[d] = true;
      break;
    }
  }
  return out;
}

std::optional<TimePoint> next_cron(const CronSchedule& c, TimePoint after, const TimeZone& tz) {
  using namespace std::chrono;
  const int64_t local = tz.to_local(after).time_since_epoch().count();
  int64_t start_day = floor_div(local, 86400);
  int start_minute = static_cast<int>((local - start_day * 86400) / 60);
  year_month_day start{sys_days(days(start_day))};
  if (int(start.year()) > CronSchedule::kLastYear) return std::nullopt;
  if (int(start.year()) < CronSchedule::kFirstYear) {
    start = year(CronSchedule::kFirstYear) / January / 1;
    start_day = sys_days(start).time_since_epoch().count();
    start_minute = 0;
  }
  const int y0 = int(start.year());
  const unsigned m0 = unsigned(start.month()), d0 = unsigned(start.day());
  for (int y = y0; y <= CronSchedule::kLastYear; ++y) {
    if (!c.years[static_cast<size_t>(y - CronSchedule::kFirstYear)]) continue;
    for (unsigned m = (y == y0 ? m0 : 1); m <= 12; ++m) {
      if (!c.months[m]) continue;
      const std::bitset<32> allowed = days_in(c, y, m);
      for (unsigned d = (y == y0 && m == m0 ? d0 : 1); d <= 31; ++d) {
        if (!allowed[d]) continue;
        const int64_t n = sys_days(year(y) / month(m) / day(d)).time_since_epoch().count();
        const int from = n == start_day ? start_minute : 0;
        for (int h = from / 60; h < 24; ++h) {
          if (!c.hours[static_cast<size_t>(h)]) continue;
          for (int mi = 0; mi < 60; ++mi) {
            if (!c.minutes[static_cast<size_t>(mi)] || h * 60 + mi < from) continue;
            LocalTimeInfo at = tz.from_local(LocalSeconds(seconds(n * 86400 + h * 3600 + mi * 60)));
            // A gap never fires; a fold fires at its first occurrence only (see the header).
            if (at.kind != LocalTimeInfo::Kind::Gap && at.first > after) return at.first;
          }
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<TimePoint> next_fire(const Schedule& s, TimePoint after, const TimeZone& tz,
                                   TimePoint rate_anchor) {
  if (const auto* r = std::get_if<RateSchedule>(&s.when)) return next_rate(*r, after, rate_anchor);
  return next_cron(std::get<CronSchedule>(s.when), after, tz);
}

}  // namespace cascade
