// Alarms: CloudWatch's documented evaluation, its statistics, the metric store and the saved
// state.
#include <gtest/gtest.h>

#include <stdexcept>

#include "core/json.h"
#include "observe/alarms.h"

using namespace cascade;

namespace {

using std::chrono::minutes;
using std::chrono::seconds;

// Datapoints as the user guide writes them: 0 not breaching, X breaching, - missing. With a
// threshold of ">= 1", 0 is 0 and X is 5.
std::vector<std::optional<double>> points(std::string_view text) {
  std::vector<std::optional<double>> out;
  for (char c : text) {
    if (c == '0') out.emplace_back(0.0);
    if (c == 'X') out.emplace_back(5.0);
    if (c == '-') out.emplace_back(std::nullopt);
  }
  return out;
}

AlarmSpec alarm(int n, int m, MissingData missing) {
  AlarmSpec a;
  a.name = "errors";
  a.metric = "errors";
  a.evaluation_periods = n;
  a.datapoints_to_alarm = m;
  a.threshold = 1;
  a.comparison = Comparison::GreaterThanOrEqualToThreshold;
  a.treat_missing_data = missing;
  return a;
}

// An evaluator already in `state`, reached the way the daemon reaches it: by evaluation.
AlarmEvaluator in_state(AlarmSpec spec, AlarmState state) {
  AlarmEvaluator ev(std::move(spec));
  const int n = ev.spec().evaluation_periods;
  if (state == AlarmState::Ok) ev.evaluate(std::vector<std::optional<double>>(n, 0.0), {});
  if (state == AlarmState::Alarm) ev.evaluate(std::vector<std::optional<double>>(n, 5.0), {});
  EXPECT_EQ(ev.state(), state);
  return ev;
}

// One row of a table of "How alarm state is evaluated when data is missing" in the CloudWatch
// user guide (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
// AlarmThatSendsEmail.html#alarms-and-missing-data). "retain" = "Retain current state".
struct GuideRow {
  const char* datapoints;  // the 5 most recent, oldest first
  int missing;             // the guide's "# of missing data points" column
  const char* missing_col;
  const char* ignore_col;
  const char* breaching_col;
  const char* not_breaching_col;
};

// "Datapoints to Alarm and Evaluation Periods are both 3."
const GuideRow kThreeOfThree[] = {
    {"0 - X - X", 2, "OK", "OK", "OK", "OK"},
    {"0 - - - -", 4, "OK", "OK", "OK", "OK"},
    {"- - - - -", 5, "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {"0 X X - X", 1, "ALARM", "ALARM", "ALARM", "ALARM"},
    {"- - - - X", 4, "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {"X - - - -", 4, "ALARM", "retain", "ALARM", "OK"},
};

// "Datapoints to Alarm is only 2 while Evaluation Periods is 3."
const GuideRow kTwoOfThree[] = {
    {"0 - X - X", 2, "ALARM", "ALARM", "ALARM", "ALARM"},
    {"0 0 X 0 X", 0, "ALARM", "ALARM", "ALARM", "ALARM"},
    {"0 - X - -", 3, "OK", "OK", "ALARM", "OK"},
    {"- - - - 0", 4, "OK", "OK", "ALARM", "OK"},
    {"- - - - X", 4, "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
};

void check_table(const GuideRow* rows, size_t count, int n, int m) {
  const std::pair<MissingData, const char * GuideRow::*> columns[] = {
      {MissingData::Missing, &GuideRow::missing_col},
      {MissingData::Ignore, &GuideRow::ignore_col},
      {MissingData::Breaching, &GuideRow::breaching_col},
      {MissingData::NotBreaching, &GuideRow::not_breaching_col},
  };
  for (size_t r = 0; r < count; ++r) {
    const GuideRow& row = rows[r];
    std::vector<std::optional<double>> range = points(row.datapoints);
    ASSERT_EQ(range.size(), 5u);
    EXPECT_EQ(std::count(range.begin(), range.end(), std::nullopt), row.missing) << row.datapoints;
    for (const auto& [treat, column] : columns) {
      const std::string expected = row.*column;
      // Whatever the state before, the result is the table's; "retain" keeps each one.
      for (AlarmState before : {AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData}) {
        SCOPED_TRACE(std::to_string(m) + " of " + std::to_string(n) + ", row " +
                     std::to_string(r + 1) + " '" + row.datapoints + "', treat_missing_data " +
                     std::string(missing_data_name(treat)) + ", before " +
                     std::string(alarm_state_name(before)));
        AlarmEvaluator ev = in_state(alarm(n, m, treat), before);
        AlarmEvaluator::Assessment a = ev.assess(range);
        EXPECT_EQ(alarm_state_name(a.state),
                  expected == "retain" ? alarm_state_name(before) : expected)
            << a.reason;
        EXPECT_FALSE(a.reason.empty());
      }
    }
  }
}

}  // namespace

TEST(Alarms, CloudWatchMissingDataTableThreeOfThree) {
  check_table(kThreeOfThree, std::size(kThreeOfThree), 3, 3);
}

TEST(Alarms, CloudWatchMissingDataTableTwoOfThree) {
  check_table(kTwoOfThree, std::size(kTwoOfThree), 3, 2);
}

TEST(Alarms, MostRecentRealDatapointsDecideAndReasonSaysHow) {
  AlarmEvaluator ev(alarm(3, 2, MissingData::Missing));
  // Five real datapoints: only the last three count (X 0 X after the first two).
  AlarmEvaluator::Assessment a = ev.assess({0.0, 0.0, 3.0, 0.0, 2.0});
  EXPECT_EQ(a.state, AlarmState::Alarm);
  EXPECT_EQ(a.reason,
            "Threshold Crossed: 2 out of the last 3 datapoints [3, 0, 2] were greater than or "
            "equal to the threshold (1) (minimum 2 datapoints for ALARM)");
  a = ev.assess({5.0, 5.0, 5.0, 0.0, 0.0});
  EXPECT_EQ(a.state, AlarmState::Ok);
  EXPECT_EQ(a.reason,
            "Threshold Crossed: 1 out of the last 3 datapoints [5, 0, 0] was greater than or "
            "equal to the threshold (1) (minimum 2 datapoints for ALARM)");
  EXPECT_EQ(ev.assess(points("- - - - -")).reason, "Insufficient Data: 5 datapoints were unknown");
  EXPECT_THROW(ev.assess({1.0, 2.0}), std::invalid_argument);
}

TEST(Alarms, ComparisonsAtTheThreshold) {
  struct Case {
    Comparison c;
    double value;
    bool breaching;
  } cases[] = {
      {Comparison::GreaterThanOrEqualToThreshold, 10, true},
      {Comparison::GreaterThanOrEqualToThreshold, 9.99, false},
      {Comparison::GreaterThanThreshold, 10, false},
      {Comparison::GreaterThanThreshold, 10.01, true},
      {Comparison::LessThanOrEqualToThreshold, 10, true},
      {Comparison::LessThanOrEqualToThreshold, 10.01, false},
      {Comparison::LessThanThreshold, 10, false},
      {Comparison::LessThanThreshold, 9.99, true},
  };
  for (const Case& k : cases) {
    AlarmSpec spec = alarm(1, 1, MissingData::Missing);
    spec.comparison = k.c;
    spec.threshold = 10;
    AlarmEvaluator ev(spec);
    EXPECT_EQ(ev.assess({k.value}).state, k.breaching ? AlarmState::Alarm : AlarmState::Ok)
        << comparison_name(k.c) << " " << k.value;
  }
}

TEST(Alarms, StatisticsByCloudWatchDefinitions) {
  using Kind = StatisticSpec::Kind;
  auto stat = [](Kind k, std::vector<double> v, double p = 0) {
    return compute_statistic(StatisticSpec{k, p}, std::move(v));
  };
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_EQ(stat(Kind::Sum, v), 10.0);
  EXPECT_EQ(stat(Kind::Maximum, v), 4.0);
  EXPECT_EQ(stat(Kind::Minimum, v), 1.0);
  EXPECT_EQ(stat(Kind::Average, v), 2.5);  // Sum / SampleCount
  EXPECT_EQ(stat(Kind::SampleCount, v), 4.0);
  // No samples: a missing datapoint, for every statistic (SampleCount too, not 0).
  for (Kind k : {Kind::Sum, Kind::Maximum, Kind::Minimum, Kind::Average, Kind::SampleCount,
                 Kind::Percentile})
    EXPECT_EQ(stat(k, {}, 95), std::nullopt);

  // p95: 95 percent of the data at or below it (nearest rank).
  std::vector<double> hundred, twenty, thousand;
  for (int i = 100; i >= 1; --i) hundred.push_back(i);  // unsorted on purpose
  for (int i = 1; i <= 20; ++i) twenty.push_back(i);
  for (int i = 1; i <= 1000; ++i) thousand.push_back(i);
  EXPECT_EQ(stat(Kind::Percentile, hundred, 95), 95.0);
  EXPECT_EQ(stat(Kind::Percentile, hundred, 99), 99.0);
  EXPECT_EQ(stat(Kind::Percentile, hundred, 50), 50.0);
  EXPECT_EQ(stat(Kind::Percentile, twenty, 95), 19.0);
  EXPECT_EQ(stat(Kind::Percentile, twenty, 96), 20.0);
  EXPECT_EQ(stat(Kind::Percentile, thousand, 99.9), 999.0);
  EXPECT_EQ(stat(Kind::Percentile, thousand, 99.95), 1000.0);
  EXPECT_EQ(stat(Kind::Percentile, {7}, 95), 7.0);
  EXPECT_EQ(stat(Kind::Percentile, v, 0), 1.0);
  EXPECT_EQ(stat(Kind::Percentile, v, 100), 4.0);
  EXPECT_EQ(stat(Kind::Percentile, v, 50), 2.0);
  // CloudWatch has no percentiles of data with negative values.
  EXPECT_EQ(stat(Kind::Percentile, {1, -1, 3}, 50), std::nullopt);
  EXPECT_EQ(stat(Kind::Sum, {1, -1, 3}), 3.0);
}

TEST(Alarms, MetricSeriesDatapointsPerPeriodAndStage) {
  const TimePoint t0 = from_millis(1'700'000'040'000);  // a multiple of one minute
  MetricSeries series(minutes(10));
  series.record("errors", "sales", 1, t0);                    // first instant: in
  series.record("errors", "sales", 2, t0 + seconds(59));      // in
  series.record("errors", "sales", 4, t0 + seconds(60));      // next period
  series.record("errors", "branches", 8, t0 + seconds(30));   // another stage
  series.record("errors", "", 16, t0 + seconds(10));          // the pipeline itself
  series.record("throttles", "sales", 32, t0 + seconds(10));  // another metric
  const StatisticSpec sum{};
  EXPECT_EQ(series.datapoint("errors", "sales", sum, t0, minutes(1)), 3.0);
  EXPECT_EQ(series.datapoint("errors", "sales", sum, t0 + minutes(1), minutes(1)), 4.0);
  EXPECT_EQ(series.datapoint("errors", "branches", sum, t0, minutes(1)), 8.0);
  // The pipeline as a whole: every stage and the pipeline's own samples.
  EXPECT_EQ(series.datapoint("errors", "", sum, t0, minutes(1)), 27.0);
  EXPECT_EQ(series.datapoint("errors", "", sum, t0, minutes(2)), 31.0);
  EXPECT_EQ(series.datapoint("errors", "nobody", sum, t0, minutes(1)), std::nullopt);
  EXPECT_EQ(series.datapoint("errors", "sales", sum, t0 - minutes(1), minutes(1)), std::nullopt);
  EXPECT_EQ(series.datapoint("errors", "sales", StatisticSpec{StatisticSpec::Kind::SampleCount, 0},
                             t0, minutes(1)),
            2.0);
  EXPECT_EQ(series.datapoint("throttles", "", sum, t0, minutes(1)), 32.0);
  // Out of order is fine.
  series.record("errors", "sales", 64, t0 + seconds(5));
  EXPECT_EQ(series.datapoint("errors", "sales", sum, t0, minutes(1)), 67.0);
}

TEST(Alarms, MetricSeriesRetentionDropsOldSamples) {
  const TimePoint t0 = from_millis(1'700'000'040'000);
  MetricSeries series(minutes(5));
  for (int i = 0; i < 10; ++i) series.record("duration", "sales", i, t0 + minutes(i));
  // Recording at t0+9m keeps what is at most 5 minutes older: t0+4m .. t0+9m.
  EXPECT_EQ(series.sample_count(), 6u);
  const StatisticSpec count{StatisticSpec::Kind::SampleCount, 0};
  EXPECT_EQ(series.datapoint("duration", "sales", count, t0, minutes(4)), std::nullopt);
  EXPECT_EQ(series.datapoint("duration", "sales", count, t0, minutes(10)), 6.0);
  series.record("queue_depth", "sales", 1, t0 + minutes(9));
  series.prune(t0 + minutes(14));  // only the samples at t0+9m remain
  EXPECT_EQ(series.sample_count(), 2u);
  series.prune(t0 + minutes(15));
  EXPECT_EQ(series.sample_count(), 0u);

  AlarmSpec a = alarm(3, 2, MissingData::Missing);
  a.period = minutes(5);
  AlarmSpec b = alarm(1, 1, MissingData::Missing);
  b.period = minutes(30);
  // The evaluation range (N + 2 periods) and the period in progress, of the longest alarm.
  EXPECT_EQ(MetricSeries::retention_for({a}), minutes(30));
  EXPECT_EQ(MetricSeries::retention_for({a, b}), minutes(120));
  EXPECT_EQ(evaluation_range_periods(a), 5);
}

TEST(Alarms, EvaluatesCompletePeriodsFromTheSeries) {
  AlarmSpec spec = alarm(1, 1, MissingData::NotBreaching);
  spec.stage = "sales";
  spec.period = minutes(1);
  AlarmEvaluator ev(spec);
  const TimePoint t0 = from_millis(1'700'000'040'000);  // 22:14:00 UTC, a period boundary
  MetricSeries series(MetricSeries::retention_for({spec}));
  series.record("errors", "sales", 1, t0 + seconds(10));
  // During the period the error happened in, it is not complete: nothing is decided from it.
  std::optional<AlarmChange> c = ev.evaluate(series, t0 + seconds(30));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, AlarmState::Ok);
  EXPECT_EQ(ev.datapoints(series, t0 + seconds(30)).size(), 3u);
  c = ev.evaluate(series, t0 + minutes(1));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->from, AlarmState::Ok);
  EXPECT_EQ(c->to, AlarmState::Alarm);
  EXPECT_EQ(c->alarm, "errors");
  EXPECT_EQ(c->stage, "sales");
  EXPECT_EQ(c->time, t0 + minutes(1));
  EXPECT_EQ(c->condition, "Sum of errors (stage sales) >= 1 for 1 of 1 periods of 1m");
  EXPECT_EQ(c->reason,
            "Threshold Crossed: 1 out of the last 1 datapoint [1] was greater than or equal to "
            "the threshold (1) (minimum 1 datapoint for ALARM)");
  // Same state: no change to report.
  EXPECT_FALSE(ev.evaluate(series, t0 + minutes(1) + seconds(59)));
  // Another stage's errors do not count. The periods after are missing, and as documented the
  // alarm goes on evaluating the most recent real datapoint while it is in the evaluation range
  // (N + 2 periods): then missing data is treated as not breaching.
  series.record("errors", "branches", 1, t0 + minutes(1) + seconds(1));
  EXPECT_FALSE(ev.evaluate(series, t0 + minutes(2)));
  EXPECT_FALSE(ev.evaluate(series, t0 + minutes(3)));
  c = ev.evaluate(series, t0 + minutes(4));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, AlarmState::Ok);
  EXPECT_NE(c->reason.find("1 missing datapoint treated as not breaching"), std::string::npos)
      << c->reason;
  ASSERT_EQ(ev.history().size(), 3u);
  EXPECT_EQ(ev.history()[0].from, AlarmState::InsufficientData);
  EXPECT_EQ(ev.history()[1].to, AlarmState::Alarm);
  EXPECT_EQ(ev.history()[2].time, t0 + minutes(4));
}

TEST(Alarms, StateAndHistoryRoundTripThroughJson) {
  AlarmSpec spec = alarm(3, 2, MissingData::Missing);
  AlarmEvaluator ev(spec);
  ev.evaluate(points("0 0 0 0 0"), from_millis(1000));
  ev.evaluate(points("0 0 0 X X"), from_millis(2000));
  ev.evaluate(points("- - - - -"), from_millis(3000));
  ASSERT_EQ(ev.history().size(), 3u);
  const std::string text = ev.to_json();
  Value v = parse_json(text);
  EXPECT_EQ(v.find("state")->as_string(), "INSUFFICIENT_DATA");
  EXPECT_EQ(v.find("alarm")->as_string(), "errors");

  AlarmEvaluator back = AlarmEvaluator::from_json(spec, text);
  EXPECT_EQ(back.state(), ev.state());
  EXPECT_EQ(back.reason(), ev.reason());
  ASSERT_EQ(back.history().size(), ev.history().size());
  for (size_t i = 0; i < ev.history().size(); ++i) {
    EXPECT_EQ(back.history()[i].time, ev.history()[i].time);
    EXPECT_EQ(back.history()[i].from, ev.history()[i].from);
    EXPECT_EQ(back.history()[i].to, ev.history()[i].to);
    EXPECT_EQ(back.history()[i].reason, ev.history()[i].reason);
  }
  EXPECT_EQ(back.to_json(), text);
  // The restored alarm goes on from its state: ALARM is a change from INSUFFICIENT_DATA.
  std::optional<AlarmChange> c = back.evaluate(points("X X X X X"), from_millis(4000));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->from, AlarmState::InsufficientData);

  AlarmSpec other = spec;
  other.name = "throttles";
  EXPECT_THROW(AlarmEvaluator::from_json(other, text), std::invalid_argument);
  EXPECT_THROW(AlarmEvaluator::from_json(spec, "{"), std::invalid_argument);
  EXPECT_THROW(AlarmEvaluator::from_json(spec, "[]"), std::invalid_argument);
  std::string bad_state = text;
  bad_state.replace(bad_state.find("INSUFFICIENT_DATA"), 17, "ON_FIRE");
  try {
    AlarmEvaluator::from_json(spec, bad_state);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown state 'ON_FIRE'"), std::string::npos) << e.what();
  }
}

TEST(Alarms, HistoryIsBounded) {
  AlarmEvaluator ev(alarm(1, 1, MissingData::Missing));
  for (int i = 0; i < 250; ++i) ev.evaluate({i % 2 ? 5.0 : 0.0}, from_millis(i));
  ASSERT_EQ(ev.history().size(), AlarmEvaluator::kHistoryLimit);
  EXPECT_EQ(ev.history().back().time, from_millis(249));
  EXPECT_EQ(ev.history().front().time, from_millis(150));
}

TEST(Alarms, ChangeAsJson) {
  AlarmChange c{"slow",
                "duration",
                "",
                "Maximum of duration >= 750 for 1 of 1 periods of 1m",
                AlarmState::Ok,
                AlarmState::Alarm,
                "Threshold Crossed: \"quoted\"",
                from_millis(1'700'000'000'123)};
  Value v = parse_json(c.to_json());
  EXPECT_EQ(v.find("alarm")->as_string(), "slow");
  EXPECT_EQ(v.find("metric")->as_string(), "duration");
  EXPECT_TRUE(v.find("stage")->is_null());
  EXPECT_EQ(v.find("from")->as_string(), "OK");
  EXPECT_EQ(v.find("to")->as_string(), "ALARM");
  EXPECT_EQ(v.find("reason")->as_string(), "Threshold Crossed: \"quoted\"");
  EXPECT_EQ(v.find("time")->as_string(), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(v.find("timestamp_ms")->as_int(), 1'700'000'000'123);
}
