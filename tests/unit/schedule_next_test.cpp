// When schedules fire, and the zones they fire in. Expected instants were worked out by hand
// from calendars and the zones' published rules, and cross-checked with GNU date (glibc's own
// TZif reader), never with the code under test.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/schedule.h"
#include "core/timezone.h"

using namespace cascade;

namespace {

// "YYYY-MM-DDTHH:MM[:SS[.mmm]]Z" as a TimePoint, computed with std::chrono's calendar.
TimePoint utc(const std::string& iso) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  int n = std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &y, &mo, &d, &h, &mi, &s, &ms);
  EXPECT_GE(n, 5) << iso;
  using namespace std::chrono;
  auto day = sys_days(year(y) / month(static_cast<unsigned>(mo)) /
                      std::chrono::day(static_cast<unsigned>(d)));
  return TimePoint(duration_cast<Duration>(day.time_since_epoch()) + hours(h) + minutes(mi) +
                   seconds(s) + milliseconds(ms));
}

LocalSeconds local(const std::string& iso) {
  return LocalSeconds(
      std::chrono::duration_cast<std::chrono::seconds>(utc(iso).time_since_epoch()));
}

std::string show(std::optional<TimePoint> t) {
  return t ? format_time(*t) : "never";
}

const TimeZone& zone(const std::string& name) {
  static std::map<std::string, TimeZone> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end()) it = loaded.emplace(name, TimeZone::load(name)).first;
  return it->second;
}

// The next `count` fire times of `expr` after `after`, each search starting at the one before.
std::vector<std::string> fires(std::string_view expr, const std::string& after, int count,
                               const TimeZone& tz = TimeZone::utc()) {
  Schedule s = parse_schedule(expr);
  std::vector<std::string> out;
  std::optional<TimePoint> t = utc(after);
  for (int i = 0; i < count && t; ++i) {
    t = next_fire(s, *t, tz, utc("2026-01-01T00:00Z"));
    out.push_back(show(t));
  }
  return out;
}

std::string next(std::string_view expr, const std::string& after,
                 const TimeZone& tz = TimeZone::utc()) {
  return fires(expr, after, 1, tz).at(0);
}

using V = std::vector<std::string>;

std::string error_of(std::string_view name) {
  try {
    TimeZone::load(name);
    return {};
  } catch (const TimeZoneError& e) {
    return e.what();
  }
}

// A TZif v2 file with no transitions, one local time type (`offset`) and footer `tz`.
std::string footer_only_tzif(int32_t offset, const std::string& tz) {
  std::string header = std::string("TZif2") + std::string(15, '\0');
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  header += be32(0) + be32(0) + be32(0) + be32(0) + be32(1) + be32(4);
  std::string block = be32(static_cast<uint32_t>(offset)) + std::string{'\0', '\0'} +
                      std::string("ZZZ") + std::string(1, '\0');
  return header + block + header + block + "\n" + tz + "\n";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// ---- TimeZone ------------------------------------------------------------------------------

TEST(ScheduleTimeZone, UtcIsZeroEverywhere) {
  TimeZone z = TimeZone::utc();
  EXPECT_EQ(z.name(), "UTC");
  EXPECT_EQ(z.offset_at(utc("1900-01-01T00:00Z")), 0);
  EXPECT_EQ(z.offset_at(utc("2026-07-01T12:00Z")), 0);
  LocalTimeInfo i = z.from_local(local("2026-03-29T02:30Z"));
  EXPECT_EQ(i.kind, LocalTimeInfo::Kind::Unique);
  EXPECT_EQ(i.first, utc("2026-03-29T02:30Z"));
}

TEST(ScheduleTimeZone, BerlinSwitchesAtOneUtcOnTheLastSundays) {
  const TimeZone& z = zone("Europe/Berlin");
  EXPECT_EQ(z.name(), "Europe/Berlin");
  EXPECT_EQ(z.offset_at(utc("2026-01-15T12:00Z")), 3600);
  EXPECT_EQ(z.offset_at(utc("2026-07-15T12:00Z")), 7200);
  EXPECT_EQ(z.offset_at(utc("2026-03-29T00:59:59.999Z")), 3600);
  EXPECT_EQ(z.offset_at(utc("2026-03-29T01:00Z")), 7200);
  EXPECT_EQ(z.offset_at(utc("2026-10-25T00:59:59Z")), 7200);
  EXPECT_EQ(z.offset_at(utc("2026-10-25T01:00Z")), 3600);
  EXPECT_EQ(z.to_local(utc("2026-07-15T12:00:30.900Z")), local("2026-07-15T14:00:30Z"));
}

TEST(ScheduleTimeZone, LocalTimesInTheGapAndTheFoldAreReported) {
  const TimeZone& berlin = zone("Europe/Berlin");
  LocalTimeInfo gap = berlin.from_local(local("2026-03-29T02:30Z"));
  EXPECT_EQ(gap.kind, LocalTimeInfo::Kind::Gap);
  EXPECT_EQ(gap.first, utc("2026-03-29T01:00Z"));  // where 02:00 CET jumps to 03:00 CEST
  LocalTimeInfo after_gap = berlin.from_local(local("2026-03-29T03:00Z"));
  EXPECT_EQ(after_gap.kind, LocalTimeInfo::Kind::Unique);
  EXPECT_EQ(after_gap.first, utc("2026-03-29T01:00Z"));
  LocalTimeInfo fold = berlin.from_local(local("2026-10-25T02:30Z"));
  EXPECT_EQ(fold.kind, LocalTimeInfo::Kind::Fold);
  EXPECT_EQ(fold.first, utc("2026-10-25T00:30Z"));   // CEST
  EXPECT_EQ(fold.second, utc("2026-10-25T01:30Z"));  // CET
  LocalTimeInfo before_fold = berlin.from_local(local("2026-10-25T01:59Z"));
  EXPECT_EQ(before_fold.kind, LocalTimeInfo::Kind::Unique);
  EXPECT_EQ(before_fold.first, utc("2026-10-24T23:59Z"));

  const TimeZone& ny = zone("America/New_York");
  LocalTimeInfo ny_gap = ny.from_local(local("2026-03-08T02:30Z"));
  EXPECT_EQ(ny_gap.kind, LocalTimeInfo::Kind::Gap);
  EXPECT_EQ(ny_gap.first, utc("2026-03-08T07:00Z"));
  LocalTimeInfo ny_fold = ny.from_local(local("2026-11-01T01:30Z"));
  EXPECT_EQ(ny_fold.kind, LocalTimeInfo::Kind::Fold);
  EXPECT_EQ(ny_fold.first, utc("2026-11-01T05:30Z"));
  EXPECT_EQ(ny_fold.second, utc("2026-11-01T06:30Z"));
}

TEST(ScheduleTimeZone, SydneyHasSummerInJanuary) {
  const TimeZone& z = zone("Australia/Sydney");
  EXPECT_EQ(z.offset_at(utc("2026-01-15T00:00Z")), 11 * 3600);
  EXPECT_EQ(z.offset_at(utc("2026-07-15T00:00Z")), 10 * 3600);
  // Back on the first Sunday of April at 03:00 AEDT, forward on the first Sunday of October.
  EXPECT_EQ(z.offset_at(utc("2026-04-04T15:59:59Z")), 11 * 3600);
  EXPECT_EQ(z.offset_at(utc("2026-04-04T16:00Z")), 10 * 3600);
  EXPECT_EQ(z.offset_at(utc("2026-10-03T15:59:59Z")), 10 * 3600);
  EXPECT_EQ(z.offset_at(utc("2026-10-03T16:00Z")), 11 * 3600);
  LocalTimeInfo fold = z.from_local(local("2026-04-05T02:30Z"));
  EXPECT_EQ(fold.kind, LocalTimeInfo::Kind::Fold);
  EXPECT_EQ(fold.first, utc("2026-04-04T15:30Z"));
  EXPECT_EQ(fold.second, utc("2026-04-04T16:30Z"));
  EXPECT_EQ(z.from_local(local("2026-10-04T02:30Z")).kind, LocalTimeInfo::Kind::Gap);
}

TEST(ScheduleTimeZone, InstantsAfterTheLastTransitionFollowTheFooterRule) {
  // The file's table ends in 2037 (or 2007 in slim builds); these come from
  // "EST5EDT,M3.2.0,M11.1.0": second Sunday of March, first Sunday of November.
  const TimeZone& ny = zone("America/New_York");
  EXPECT_EQ(ny.offset_at(utc("2040-03-11T06:59:59Z")), -5 * 3600);
  EXPECT_EQ(ny.offset_at(utc("2040-03-11T07:00Z")), -4 * 3600);
  EXPECT_EQ(ny.offset_at(utc("2040-11-04T05:59:59Z")), -4 * 3600);
  EXPECT_EQ(ny.offset_at(utc("2040-11-04T06:00Z")), -5 * 3600);
  EXPECT_EQ(ny.offset_at(utc("2150-03-08T06:59:59Z")), -5 * 3600);
  EXPECT_EQ(ny.offset_at(utc("2150-03-08T07:00Z")), -4 * 3600);
  LocalTimeInfo fold = ny.from_local(local("2040-11-04T01:30Z"));
  EXPECT_EQ(fold.kind, LocalTimeInfo::Kind::Fold);
  EXPECT_EQ(fold.first, utc("2040-11-04T05:30Z"));
  EXPECT_EQ(fold.second, utc("2040-11-04T06:30Z"));
  const TimeZone& syd = zone("Australia/Sydney");
  EXPECT_EQ(syd.offset_at(utc("2150-04-04T15:59:59Z")), 11 * 3600);
  EXPECT_EQ(syd.offset_at(utc("2150-04-04T16:00Z")), 10 * 3600);
}

TEST(ScheduleTimeZone, FooterRulesOfEveryPosixForm) {
  // Jn (February 29 never counted) and n (counted), 2 h west, DST one hour ahead by default.
  TimeZone j = TimeZone::from_tzif("Test/Julian", footer_only_tzif(-10800, "AAA3BBB,J60/2,300/2"));
  EXPECT_EQ(j.offset_at(utc("2027-03-01T04:59:59Z")), -10800);
  EXPECT_EQ(j.offset_at(utc("2027-03-01T05:00Z")), -7200);
  EXPECT_EQ(j.offset_at(utc("2027-10-28T03:59:59Z")), -7200);
  EXPECT_EQ(j.offset_at(utc("2027-10-28T04:00Z")), -10800);
  EXPECT_EQ(j.offset_at(utc("2028-02-29T12:00Z")), -10800);  // J60 is March 1 in leap years too
  EXPECT_EQ(j.offset_at(utc("2028-03-01T05:00Z")), -7200);
  EXPECT_EQ(j.offset_at(utc("2028-10-27T03:59:59Z")), -7200);  // day 300 is October 27 in 2028
  EXPECT_EQ(j.offset_at(utc("2028-10-27T04:00Z")), -10800);
  // Quoted names, minutes, and negative transition times (America/Nuuk's rule).
  TimeZone q = TimeZone::from_tzif("Test/Quoted", footer_only_tzif(12600, "<+0330>-3:30"));
  EXPECT_EQ(q.offset_at(utc("2027-01-01T00:00Z")), 12600);
  TimeZone n =
      TimeZone::from_tzif("Test/Nuuk", footer_only_tzif(-7200, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0"));
  EXPECT_EQ(n.offset_at(utc("2027-03-28T00:59:59Z")), -7200);
  EXPECT_EQ(n.offset_at(utc("2027-03-28T01:00Z")), -3600);
  EXPECT_EQ(n.offset_at(utc("2027-10-31T00:59:59Z")), -3600);
  EXPECT_EQ(n.offset_at(utc("2027-10-31T01:00Z")), -7200);
}

TEST(ScheduleTimeZone, UnknownAndUnsafeNamesAreRefused) {
  EXPECT_NE(error_of("Europe/Berln").find("unknown time zone 'Europe/Berln'"), std::string::npos)
      << error_of("Europe/Berln");
  EXPECT_NE(error_of("Europe").find("unknown time zone 'Europe'"), std::string::npos);
  EXPECT_NE(error_of("zone.tab").find("unknown time zone 'zone.tab'"), std::string::npos);
  for (const char* bad :
       {"../../etc/passwd", "Europe/../UTC", "./UTC", "Europe//Berlin", "Europe/Berlin/",
        "/usr/share/zoneinfo/UTC", "", "Europe/Ber lin", "Europe\\Berlin", "UTC\n"})
    EXPECT_NE(error_of(bad).find("invalid time zone name"), std::string::npos)
        << "'" << bad << "': " << error_of(bad);
  EXPECT_NE(error_of("right/UTC").find("leap seconds"), std::string::npos) << error_of("right/UTC");
  EXPECT_EQ(error_of("Etc/GMT+5"), "");
  EXPECT_EQ(TimeZone::load("Etc/GMT+5").offset_at(utc("2026-01-01T00:00Z")), -5 * 3600);
}

TEST(ScheduleTimeZone, MalformedFilesAreRefused) {
  std::string berlin = read_file("/usr/share/zoneinfo/Europe/Berlin");
  ASSERT_GT(berlin.size(), 100u);
  EXPECT_NO_THROW(TimeZone::from_tzif("Europe/Berlin", berlin));
  EXPECT_THROW(TimeZone::from_tzif("Cut", berlin.substr(0, berlin.size() / 2)), TimeZoneError);
  EXPECT_THROW(TimeZone::from_tzif("Cut", berlin.substr(0, 30)), TimeZoneError);
  EXPECT_THROW(TimeZone::from_tzif("Junk", "not a zone at all, just some words"), TimeZoneError);
  EXPECT_THROW(TimeZone::from_tzif("BadRule", footer_only_tzif(0, "AAA0BBB,M13.1.0,M1.1.0")),
               TimeZoneError);
  EXPECT_THROW(TimeZone::from_tzif("BadRule", footer_only_tzif(0, "A0")), TimeZoneError);
}

// ---- cron() fields ---------------------------------------------------------------------------

TEST(ScheduleNext, EveryMinuteFiresAtTheNextWholeMinuteStrictlyAfter) {
  EXPECT_EQ(next("cron(* * * * ? *)", "2026-01-01T10:00:30.500Z"), "2026-01-01T10:01:00.000Z");
  EXPECT_EQ(next("cron(* * * * ? *)", "2026-01-01T10:01Z"), "2026-01-01T10:02:00.000Z");
  EXPECT_EQ(fires("cron(0/20 9-10 * * ? *)", "2026-01-01T09:40Z", 4),
            (V{"2026-01-01T10:00:00.000Z", "2026-01-01T10:20:00.000Z", "2026-01-01T10:40:00.000Z",
               "2026-01-02T09:00:00.000Z"}));
}

TEST(ScheduleNext, The31stSkipsShorterMonths) {
  EXPECT_EQ(fires("cron(0 12 31 * ? *)", "2027-01-31T12:00Z", 4),
            (V{"2027-03-31T12:00:00.000Z", "2027-05-31T12:00:00.000Z", "2027-07-31T12:00:00.000Z",
               "2027-08-31T12:00:00.000Z"}));
  EXPECT_EQ(next("cron(0 0 30 2 ? *)", "2026-01-01T00:00Z"), "never");
}

TEST(ScheduleNext, LastDayOfFebruaryFollowsLeapYears) {
  EXPECT_EQ(fires("cron(0 0 L 2 ? *)", "2027-01-01T00:00Z", 2),
            (V{"2027-02-28T00:00:00.000Z", "2028-02-29T00:00:00.000Z"}));
  // 2100 is divisible by 100 and not by 400: no February 29.
  EXPECT_EQ(fires("cron(0 0 L 2 ? *)", "2099-12-31T00:00Z", 2),
            (V{"2100-02-28T00:00:00.000Z", "2101-02-28T00:00:00.000Z"}));
  EXPECT_EQ(next("cron(0 0 29 2 ? *)", "2096-03-01T00:00Z"), "2104-02-29T00:00:00.000Z");
  EXPECT_EQ(next("cron(0 0 L * ? *)", "2026-04-15T00:00Z"), "2026-04-30T00:00:00.000Z");
}

TEST(ScheduleNext, LastWeekdayOfMonthStepsBackFromWeekends) {
  // 2026: Jan 31 Sat, Feb 28 Sat, Mar 31 Tue, Apr 30 Thu, May 31 Sun.
  EXPECT_EQ(fires("cron(0 9 LW * ? *)", "2026-01-01T00:00Z", 5),
            (V{"2026-01-30T09:00:00.000Z", "2026-02-27T09:00:00.000Z", "2026-03-31T09:00:00.000Z",
               "2026-04-30T09:00:00.000Z", "2026-05-29T09:00:00.000Z"}));
}

TEST(ScheduleNext, NearestWeekdayStaysInTheMonth) {
  // The 15th: 2026-02-15 and 03-15 are Sundays (Monday 16th), 08-15 a Saturday (Friday 14th).
  EXPECT_EQ(
      fires("cron(0 9 15W * ? *)", "2026-01-16T00:00Z", 3),
      (V{"2026-02-16T09:00:00.000Z", "2026-03-16T09:00:00.000Z", "2026-04-15T09:00:00.000Z"}));
  EXPECT_EQ(next("cron(0 9 15W * ? *)", "2026-08-01T00:00Z"), "2026-08-14T09:00:00.000Z");
  // 1W: 2026-08-01 is a Saturday; Friday would be July, so Monday the 3rd. 2026-02-01 is a
  // Sunday: Monday the 2nd.
  EXPECT_EQ(next("cron(0 9 1W * ? *)", "2026-07-02T00:00Z"), "2026-08-03T09:00:00.000Z");
  EXPECT_EQ(next("cron(0 9 1W * ? *)", "2026-01-02T00:00Z"), "2026-02-02T09:00:00.000Z");
  // 31W: Jan 31 Sat -> 30th; Mar 31 Tue; May 31 Sun -> Friday 29th (Monday would be June); Jul 31
  // Fri; Aug 31 Mon; Oct 31 Sat -> 30th; months of 30 days or fewer have no 31st.
  EXPECT_EQ(fires("cron(0 9 31W * ? *)", "2026-01-01T00:00Z", 7),
            (V{"2026-01-30T09:00:00.000Z", "2026-03-31T09:00:00.000Z", "2026-05-29T09:00:00.000Z",
               "2026-07-31T09:00:00.000Z", "2026-08-31T09:00:00.000Z", "2026-10-30T09:00:00.000Z",
               "2026-12-31T09:00:00.000Z"}));
}

TEST(ScheduleNext, NthWeekdaySkipsMonthsWithoutIt) {
  // Fifth Tuesdays of 2026: March 31, June 30, September 29, December 29 only.
  EXPECT_EQ(fires("cron(0 10 ? * 3#5 *)", "2026-01-01T00:00Z", 4),
            (V{"2026-03-31T10:00:00.000Z", "2026-06-30T10:00:00.000Z", "2026-09-29T10:00:00.000Z",
               "2026-12-29T10:00:00.000Z"}));
  // First Monday: 2026-06-01 is one.
  EXPECT_EQ(next("cron(0 10 ? * MON#1 *)", "2026-05-05T00:00Z"), "2026-06-01T10:00:00.000Z");
}

TEST(ScheduleNext, LastFridayOfTheMonth) {
  // Jan 31 Sat -> 30; Feb 28 Sat -> 27; Mar 31 Tue -> 27; Apr 30 Thu -> 24.
  EXPECT_EQ(fires("cron(0 18 ? * 6L *)", "2026-01-01T00:00Z", 4),
            (V{"2026-01-30T18:00:00.000Z", "2026-02-27T18:00:00.000Z", "2026-03-27T18:00:00.000Z",
               "2026-04-24T18:00:00.000Z"}));
}

TEST(ScheduleNext, DayOfWeekListsRangesAndNames) {
  // 2026-01-02 is a Friday.
  EXPECT_EQ(
      fires("cron(0 8 ? * MON,WED,FRI *)", "2026-01-02T08:00Z", 3),
      (V{"2026-01-05T08:00:00.000Z", "2026-01-07T08:00:00.000Z", "2026-01-09T08:00:00.000Z"}));
  EXPECT_EQ(next("cron(0 9 ? * MON-FRI *)", "2026-01-02T09:00Z"), "2026-01-05T09:00:00.000Z");
  EXPECT_EQ(next("cron(0 12 ? * 1 *)", "2026-01-01T00:00Z"), "2026-01-04T12:00:00.000Z");  // SUN
  EXPECT_EQ(next("cron(0 12 ? * L *)", "2026-01-01T00:00Z"), "2026-01-03T12:00:00.000Z");  // SAT
  EXPECT_EQ(next("cron(0 12 ? * * *)", "2026-01-01T12:00Z"), "2026-01-02T12:00:00.000Z");
}

TEST(ScheduleNext, YearsAndSchedulesThatNeverFireAgain) {
  EXPECT_EQ(fires("cron(0 0 1 1 ? 2030,2035)", "2026-05-01T00:00Z", 3),
            (V{"2030-01-01T00:00:00.000Z", "2035-01-01T00:00:00.000Z", "never"}));
  EXPECT_EQ(next("cron(0 0 1 1 ? 2020)", "2026-01-01T00:00Z"), "never");
  EXPECT_EQ(next("cron(0 0 1 1 ? *)", "1960-06-01T00:00Z"), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(next("cron(* * * * ? *)", "2199-12-31T23:58Z"), "2199-12-31T23:59:00.000Z");
  EXPECT_EQ(next("cron(* * * * ? *)", "2199-12-31T23:59Z"), "never");
  EXPECT_EQ(next("cron(* * * * ? *)", "2250-01-01T00:00Z"), "never");
  EXPECT_EQ(next("cron(0 12 ? 2 3#5 *)", "2026-01-01T00:00Z"),
            "2028-02-29T12:00:00.000Z");  // February's only fifth Tuesday up to 2056
}

TEST(ScheduleNext, SearchesSkipWholeYearsAndMonths) {
  // Stepping minute by minute would visit over a hundred million minutes here.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(next("cron(0 0 1 1 ? 2199)", "1970-01-01T00:00Z"), "2199-01-01T00:00:00.000Z");
  EXPECT_EQ(next("cron(0 0 31 2 ? *)", "1970-01-01T00:00Z"), "never");
  EXPECT_EQ(next("cron(0 0 30W 2 ? *)", "1970-01-01T00:00Z", zone("Europe/Berlin")), "never");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// ---- rate() ----------------------------------------------------------------------------------

TEST(ScheduleNext, RatesCountFromTheirAnchor) {
  Schedule five = parse_schedule("rate(5 minutes)");
  TimePoint anchor = utc("2026-01-01T10:02Z");
  auto at = [&](const std::string& after) {
    return show(next_fire(five, utc(after), TimeZone::utc(), anchor));
  };
  EXPECT_EQ(at("2026-01-01T09:00Z"), "2026-01-01T10:02:00.000Z");  // before the anchor
  EXPECT_EQ(at("2026-01-01T10:01:59.999Z"), "2026-01-01T10:02:00.000Z");
  EXPECT_EQ(at("2026-01-01T10:02Z"), "2026-01-01T10:07:00.000Z");  // strictly after
  EXPECT_EQ(at("2026-01-01T10:03:30Z"), "2026-01-01T10:07:00.000Z");
  EXPECT_EQ(at("2026-01-01T10:07Z"), "2026-01-01T10:12:00.000Z");
  EXPECT_EQ(at("2026-01-02T10:02:00.001Z"), "2026-01-02T10:07:00.000Z");
}

TEST(ScheduleNext, RateDaysAre24HoursWhateverTheZone) {
  // Anchored at midnight CET on 2026-03-28: once the clocks have gone forward on the 29th, runs
  // stay 24 h apart, so the next is 01:00 CEST on the 30th, not local midnight.
  Schedule daily = parse_schedule("rate(1 day)");
  EXPECT_EQ(show(next_fire(daily, utc("2026-03-29T00:00Z"), zone("Europe/Berlin"),
                           utc("2026-03-27T23:00Z"))),
            "2026-03-29T23:00:00.000Z");
  Schedule huge = parse_schedule("rate(106751991167 days)");
  EXPECT_EQ(
      show(next_fire(huge, utc("2026-01-01T00:00Z"), TimeZone::utc(), utc("2025-01-01T00:00Z"))),
      "never");
}

// ---- cron() across daylight saving time ------------------------------------------------------

TEST(ScheduleDst, BerlinDailyJobInTheSkippedHourSkipsThatDay) {
  const TimeZone& z = zone("Europe/Berlin");
  // 02:30 CET = 01:30Z; 2026-03-29 has no 02:30; 02:30 CEST = 00:30Z.
  EXPECT_EQ(
      fires("cron(30 2 * * ? *)", "2026-03-27T12:00Z", 3, z),
      (V{"2026-03-28T01:30:00.000Z", "2026-03-30T00:30:00.000Z", "2026-03-31T00:30:00.000Z"}));
}

TEST(ScheduleDst, BerlinDailyJobInTheRepeatedHourRunsOnce) {
  const TimeZone& z = zone("Europe/Berlin");
  // 2026-10-25 02:30 happens at 00:30Z (CEST) and 01:30Z (CET): only the first fires.
  EXPECT_EQ(
      fires("cron(30 2 * * ? *)", "2026-10-23T12:00Z", 3, z),
      (V{"2026-10-24T00:30:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"}));
  // Starting inside the second pass of the repeated hour does not fire its 02:30 again.
  EXPECT_EQ(next("cron(30 2 * * ? *)", "2026-10-25T01:10Z", z), "2026-10-26T01:30:00.000Z");
}

TEST(ScheduleDst, BerlinHourlyJobAcrossBothChanges) {
  const TimeZone& z = zone("Europe/Berlin");
  // Forward: 01:00 CET, (02:00 does not exist), 03:00 CEST.
  EXPECT_EQ(
      fires("cron(0 * * * ? *)", "2026-03-28T23:30Z", 3, z),
      (V{"2026-03-29T00:00:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-29T02:00:00.000Z"}));
  // Back: 01:00 CEST (23:00Z), 02:00 CEST (00:00Z), 02:00 CET is a repeat, 03:00 CET (02:00Z).
  EXPECT_EQ(
      fires("cron(0 * * * ? *)", "2026-10-24T22:30Z", 3, z),
      (V{"2026-10-24T23:00:00.000Z", "2026-10-25T00:00:00.000Z", "2026-10-25T02:00:00.000Z"}));
  EXPECT_EQ(
      fires("cron(30 * * * ? *)", "2026-10-24T23:00Z", 3, z),
      (V{"2026-10-24T23:30:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-25T02:30:00.000Z"}));
}

TEST(ScheduleDst, NewYorkDailyAndHourlyJobs) {
  const TimeZone& z = zone("America/New_York");
  // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
  EXPECT_EQ(fires("cron(30 2 * * ? *)", "2026-03-07T00:00Z", 2, z),
            (V{"2026-03-07T07:30:00.000Z", "2026-03-09T06:30:00.000Z"}));
  EXPECT_EQ(
      fires("cron(0 * * * ? *)", "2026-03-08T05:30Z", 3, z),
      (V{"2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-08T08:00:00.000Z"}));
  // 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:30 fires once, in EDT.
  EXPECT_EQ(
      fires("cron(30 1 * * ? *)", "2026-10-31T00:00Z", 3, z),
      (V{"2026-10-31T05:30:00.000Z", "2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"}));
  EXPECT_EQ(
      fires("cron(0 * * * ? *)", "2026-11-01T04:30Z", 3, z),
      (V{"2026-11-01T05:00:00.000Z", "2026-11-01T07:00:00.000Z", "2026-11-01T08:00:00.000Z"}));
  // A 02:30 job on the fall-back day is unaffected: 02:30 EST exists once.
  EXPECT_EQ(next("cron(30 2 * * ? *)", "2026-11-01T00:00Z", z), "2026-11-01T07:30:00.000Z");
}

TEST(ScheduleDst, SydneyChangesTheOtherWayRound) {
  const TimeZone& z = zone("Australia/Sydney");
  // 2026-04-05 02:30 exists twice (AEDT 15:30Z on the 4th, AEST 16:30Z): fires once.
  EXPECT_EQ(
      fires("cron(30 2 * * ? *)", "2026-04-03T12:00Z", 3, z),
      (V{"2026-04-03T15:30:00.000Z", "2026-04-04T15:30:00.000Z", "2026-04-05T16:30:00.000Z"}));
  // 2026-10-04 02:30 does not exist (02:00 AEST -> 03:00 AEDT).
  EXPECT_EQ(fires("cron(30 2 * * ? *)", "2026-10-02T12:00Z", 2, z),
            (V{"2026-10-02T16:30:00.000Z", "2026-10-04T15:30:00.000Z"}));
}

TEST(ScheduleDst, FarFutureUsesTheFooterRule) {
  const TimeZone& z = zone("America/New_York");
  // 2150-03-08 is the second Sunday of March: 02:30 does not exist; noon is EDT in July.
  EXPECT_EQ(fires("cron(30 2 * * ? 2150)", "2150-03-06T12:00Z", 2, z),
            (V{"2150-03-07T07:30:00.000Z", "2150-03-09T06:30:00.000Z"}));
  EXPECT_EQ(next("cron(0 12 1 7 ? *)", "2150-01-01T00:00Z", z), "2150-07-01T16:00:00.000Z");
  EXPECT_EQ(next("cron(0 12 1 7 ? *)", "2040-01-01T00:00Z", z), "2040-07-01T16:00:00.000Z");
}

// ---- the pipeline file ------------------------------------------------------------------------

TEST(ScheduleConfig, RootStagesTakeATimeZone) {
  auto env = [](std::string_view) { return std::optional<std::string>(); };
  PipelineSpec p = load_pipeline_text(
      "name: p\nsource: { base_url: \"http://h\" }\nstages:\n  a:\n    inputs: { n: [1] }\n"
      "    request: /a?n={n}\n    key: { id: id }\n    schedule: cron(30 2 * * ? *)\n"
      "    timezone: Europe/Berlin\n",
      "p.yaml", env);
  ASSERT_EQ(p.stages.size(), 1u);
  EXPECT_EQ(p.stages[0].timezone, std::optional<std::string>("Europe/Berlin"));
  EXPECT_EQ(p.stages[0].timezone_pos.str(), "p.yaml:9:15");
  PipelineSpec none = load_pipeline_text(
      "name: p\nsource: { base_url: \"http://h\" }\nstages:\n  a:\n    inputs: { n: [1] }\n"
      "    request: /a?n={n}\n    key: { id: id }\n    schedule: rate(1 hour)\n",
      "p.yaml", env);
  EXPECT_FALSE(none.stages[0].timezone.has_value());
}
