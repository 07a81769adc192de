// Schedule expressions checked as EventBridge checks them: what AWS accepts parses into the
// fields a scheduler needs, what AWS refuses is refused with the field and the expected range.
#include <gtest/gtest.h>

#include "config/loader.h"
#include "config/schedule.h"

using namespace cascade;

namespace {

CronSchedule cron(std::string_view expr) {
  Schedule s = parse_schedule(expr);
  EXPECT_TRUE(std::holds_alternative<CronSchedule>(s.when)) << expr;
  return std::get<CronSchedule>(s.when);
}

RateSchedule rate(std::string_view expr) {
  Schedule s = parse_schedule(expr);
  EXPECT_TRUE(std::holds_alternative<RateSchedule>(s.when)) << expr;
  return std::get<RateSchedule>(s.when);
}

// The values set in a bitset, offset by `base`, as "a,b,c".
template <size_t N>
std::string values(const std::bitset<N>& b, int base = 0) {
  std::string out;
  for (size_t i = 0; i < N; ++i)
    if (b.test(i)) out += (out.empty() ? "" : ",") + std::to_string(static_cast<int>(i) + base);
  return out;
}

// The message of the ScheduleError `expr` raises (empty when it parses).
std::string error_of(std::string_view expr) {
  try {
    parse_schedule(expr);
    return {};
  } catch (const ScheduleError& e) {
    return e.what();
  }
}

}  // namespace

TEST(Schedule, AwsDocumentationSamplesAreAccepted) {
  for (const char* expr : {
           "cron(0 10 * * ? *)",
           "cron(15 12 * * ? *)",
           "cron(0 18 ? * MON-FRI *)",
           "cron(0 8 1 * ? *)",
           "cron(0/15 * * * ? *)",
           "cron(0/10 * ? * MON-FRI *)",
           "cron(0/5 8-17 ? * MON-FRI *)",
           "cron(0 9 ? * 2#1 *)",
           "cron(0 0 L * ? *)",
           "cron(0 0 ? * 6L *)",
           "cron(0 0 LW * ? *)",
           "cron(0 0 15W * ? *)",
           "cron(0 12 * * ? 2026-2030)",
           "cron(*/5 * * JAN,MAR,DEC ? 1970,2199)",
           "cron(0 0 ? * L *)",
           "cron(0 0 ? * SUN,SAT *)",
           "cron(0 0 1-31/2 * ? *)",
           "cron(0 0 ? * mon-fri *)",
           "cron(0 0 ? jan-jun/2 * 2026/2)",
           "rate(1 minute)",
           "rate(5 minutes)",
           "rate(1 hour)",
           "rate(12 hours)",
           "rate(1 day)",
           "rate(7 days)",
       })
    EXPECT_EQ(check_schedule(expr), "") << expr;
}

TEST(Schedule, CronFieldsParseIntoTheValuesTheyAllow) {
  CronSchedule c = cron("cron(0/15 8-17 ? * MON-FRI *)");
  EXPECT_EQ(values(c.minutes), "0,15,30,45");
  EXPECT_EQ(values(c.hours), "8,9,10,11,12,13,14,15,16,17");
  EXPECT_EQ(values(c.months), "1,2,3,4,5,6,7,8,9,10,11,12");
  EXPECT_EQ(c.years.count(), 230u);
  EXPECT_EQ(c.days, CronSchedule::Days::OfWeek);
  EXPECT_EQ(values(c.days_of_week), "2,3,4,5,6");

  c = cron("cron(*/20 0,12 1-10/3 JAN,jul/3 ? 2026-2028,2199)");
  EXPECT_EQ(values(c.minutes), "0,20,40");
  EXPECT_EQ(values(c.hours), "0,12");
  EXPECT_EQ(c.days, CronSchedule::Days::OfMonth);
  EXPECT_EQ(values(c.days_of_month), "1,4,7,10");
  EXPECT_EQ(values(c.months), "1,7,10");
  EXPECT_EQ(values(c.years, CronSchedule::kFirstYear), "2026,2027,2028,2199");

  c = cron("cron(0 10 * * ? *)");
  EXPECT_EQ(c.days, CronSchedule::Days::OfMonth);
  EXPECT_EQ(c.days_of_month.count(), 31u);
  EXPECT_FALSE(c.days_of_month.test(0));
}

TEST(Schedule, SpecialDaysKeepWhatTheyMean) {
  EXPECT_EQ(cron("cron(0 0 L * ? *)").days, CronSchedule::Days::LastOfMonth);
  EXPECT_EQ(cron("cron(0 0 LW * ? *)").days, CronSchedule::Days::LastWeekdayOfMonth);
  CronSchedule c = cron("cron(0 0 15W * ? *)");
  EXPECT_EQ(c.days, CronSchedule::Days::WeekdayNearest);
  EXPECT_EQ(c.day, 15);
  c = cron("cron(0 0 ? * 6L *)");
  EXPECT_EQ(c.days, CronSchedule::Days::LastInMonth);
  EXPECT_EQ(c.weekday, 6);
  c = cron("cron(0 9 ? * 2#1 *)");
  EXPECT_EQ(c.days, CronSchedule::Days::NthInMonth);
  EXPECT_EQ(c.weekday, 2);
  EXPECT_EQ(c.nth, 1);
  c = cron("cron(0 9 ? * FRI#5 *)");
  EXPECT_EQ(c.weekday, 6);
  EXPECT_EQ(c.nth, 5);
  c = cron("cron(0 0 ? * L *)");  // L alone in day-of-week: the last day of the week
  EXPECT_EQ(c.days, CronSchedule::Days::OfWeek);
  EXPECT_EQ(values(c.days_of_week), "7");
}

TEST(Schedule, RatesParseIntoTheirPeriod) {
  RateSchedule r = rate("rate(1 minute)");
  EXPECT_EQ(r.value, 1);
  EXPECT_EQ(r.unit, RateSchedule::Unit::Minute);
  EXPECT_EQ(r.period, std::chrono::minutes(1));
  r = rate("rate(12 hours)");
  EXPECT_EQ(r.unit, RateSchedule::Unit::Hour);
  EXPECT_EQ(r.period, std::chrono::hours(12));
  r = rate("  rate(3 days) ");
  EXPECT_EQ(r.unit, RateSchedule::Unit::Day);
  EXPECT_EQ(r.period, std::chrono::hours(72));
  EXPECT_EQ(parse_schedule("  rate(3 days) ").text, "rate(3 days)");
}

TEST(Schedule, WhatEventBridgeRefusesIsRefusedNamingTheFieldAndItsRange) {
  struct Bad {
    const char* expr;
    const char* phrase;
  };
  const Bad kBad[] = {
      {"cron(61 * * * ? *)", "minutes must be 0-59, found '61'"},
      {"cron(0 25 * * ? *)", "hours must be 0-23, found '25'"},
      {"cron(0 0 * 13 ? *)", "month must be 1-12 or JAN-DEC, found '13'"},
      {"cron(0 0 * 0 ? *)", "month must be 1-12 or JAN-DEC, found '0'"},
      {"cron(0 0 32 * ? *)", "day-of-month must be 1-31, found '32'"},
      {"cron(0 0 0 * ? *)", "day-of-month must be 1-31, found '0'"},
      {"cron(0 0 * * ? 2200)", "year must be 1970-2199, found '2200'"},
      {"cron(0 0 * * ? 1969)", "year must be 1970-2199, found '1969'"},
      {"cron(0 0 ? * 8 *)", "day-of-week must be 1-7 or SUN-SAT, found '8'"},
      {"cron(0 0 ? * 0 *)", "day-of-week must be 1-7 or SUN-SAT, found '0'"},
      {"cron(0 0 ? * ? *)", "day-of-month and day-of-week cannot both be '?'"},
      {"cron(0 0 * * * *)", "one of day-of-month and day-of-week must be '?'"},
      {"cron(0 0 1 * MON *)", "one of day-of-month and day-of-week must be '?'"},
      {"cron(0 9 ? * 2#6 *)", "the occurrence after '#' must be 1-5"},
      {"cron(0 9 ? * 2#0 *)", "the occurrence after '#' must be 1-5"},
      {"cron(0 9 ? * 9#1 *)", "day-of-week must be 1-7 or SUN-SAT, found '9'"},
      {"cron(0 12 * * ?)",
       "cron takes 6 fields (minutes hours day-of-month month day-of-week "
       "year), found 5"},
      {"cron(0 12 * * ? * *)", "found 7"},
      {"cron()", "found 0"},
      {"cron(0 0 ? * MOM *)", "day-of-week must be 1-7 or SUN-SAT, found 'MOM'"},
      {"cron(0 0 ? * MONDAY *)", "found 'MONDAY'"},
      {"cron(0 0 * JANUARY ? *)", "month must be 1-12 or JAN-DEC, found 'JANUARY'"},
      {"cron(0 0 ? * JAN *)", "day-of-week must be 1-7 or SUN-SAT, found 'JAN'"},
      {"cron(0 0 * MON ? *)", "month must be 1-12 or JAN-DEC, found 'MON'"},
      {"cron(0 0 ? * MON/2 *)", "day-of-week does not take increments"},
      {"cron(0/0 * * * ? *)", "minutes increment must be 1-59, found '0'"},
      {"cron(0/60 * * * ? *)", "minutes increment must be 1-59, found '60'"},
      {"cron(30-10 * * * ? *)", "minutes range '30-10' runs backwards"},
      {"cron(1,,2 * * * ? *)", "minutes has an empty item"},
      {"cron(? * * * ? *)", "minutes cannot be '?'"},
      {"cron(0 0 * * ? ?)", "year cannot be '?'"},
      {"cron(L * * * ? *)", "minutes must be 0-59, found 'L'"},
      {"cron(0 0 L-3 * ? *)", "day-of-month must be 1-31, L, LW or nW"},
      {"cron(0 0 1,L * ? *)", "stand alone in day-of-month"},
      {"cron(0 0 32W * ? *)", "day-of-month must be 1-31, found '32'"},
      {"cron(0 0 ? * 1,5L *)", "nL stands alone"},
      {"cron(0 0 ? * 1-2#3 *)", "n#k stands alone"},
      {"cron(-5 * * * ? *)", "minutes has an incomplete range '-5'"},
      {"cron(0 5- * * ? *)", "hours has an incomplete range '5-'"},
      {"cron(99999999999999999999 * * * ? *)", "minutes must be 0-59"},
      {"rate(1 minutes)", "a rate of 1 takes the singular unit: rate(1 minute)"},
      {"rate(1 hours)", "rate(1 hour)"},
      {"rate(0 hours)", "rate value must be a positive integer, found '0'"},
      {"rate(-1 hours)", "rate value must be a positive integer, found '-1'"},
      {"rate(1.5 hours)", "rate value must be a positive integer, found '1.5'"},
      {"rate(5 minute)", "a rate of 5 takes the plural unit: rate(5 minutes)"},
      {"rate(2 day)", "rate(2 days)"},
      {"rate(1 week)", "rate unit must be minute, minutes, hour, hours, day or days, found 'week'"},
      {"rate(2 Hours)", "found 'Hours'"},
      {"rate(1)", "expected rate(VALUE UNIT)"},
      {"rate(1 hour now)", "expected rate(VALUE UNIT)"},
      {"rate(99999999999999999 days)", "is too large"},
      {"every hour", "expected rate(VALUE UNIT) or cron("},
      {"cron(0 12 * * ? *", "expected rate(VALUE UNIT) or cron("},
      {"", "expected rate(VALUE UNIT) or cron("},
  };
  for (const Bad& b : kBad) {
    std::string msg = error_of(b.expr);
    EXPECT_NE(msg.find(b.phrase), std::string::npos) << b.expr << " -> '" << msg << "'";
    EXPECT_TRUE(msg.starts_with("invalid schedule '")) << msg;
    EXPECT_EQ(check_schedule(b.expr), msg);
  }
}

TEST(Schedule, TheLoaderReportsABadScheduleAtItsValue) {
  const std::string yaml =
      "name: p\nsource: { base_url: \"http://h\" }\nstages:\n  a:\n    inputs: { n: [1] }\n"
      "    request: /a\n    key: { id: id }\n    schedule: cron(0 25 * * ? *)\n";
  try {
    load_pipeline_text(yaml, "p.yaml", [](std::string_view) { return std::nullopt; });
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.pos().str(), "p.yaml:8:15");
    EXPECT_NE(std::string(e.what()).find("hours must be 0-23, found '25'"), std::string::npos)
        << e.what();
  }
}
