// AlarmSpec and NotifySpec: the `alarms:` and `notify:` sections of a pipeline file after
// validation, with CloudWatch's names and defaults (PutMetricAlarm). Header-only and free of any
// store or engine type, so that observe/ (below the engine) can evaluate alarms from it.
// Everything here is plain data and pure functions: thread-safe for const use.
#pragma once

#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"

namespace cascade {

// The metrics the daemon records, per stage. An alarm without `stage:` watches the samples of
// every stage together (and those recorded for the pipeline as a whole).
//   errors                            messages dead-lettered or failed (count per event)
//   throttles                         429 responses
//   duration                          seconds to process one message
//   requests                          HTTP requests sent
//   records_new / _changed / _deleted records written to the change log, by kind
//   dlq_depth, queue_depth            messages in the dead-letter queue / the queue (gauges)
//   oldest_message_age_seconds        age of the oldest queued message (gauge)
//   seconds_since_last_complete_run   since the last run that drained every queue (gauge)
inline constexpr std::array<std::string_view, 11> kAlarmMetrics = {
    "errors",
    "throttles",
    "duration",
    "requests",
    "records_new",
    "records_changed",
    "records_deleted",
    "dlq_depth",
    "queue_depth",
    "oldest_message_age_seconds",
    "seconds_since_last_complete_run"};

// How the samples of one period become one datapoint (CloudWatch's statistics).
struct StatisticSpec {
  enum class Kind { Sum, Maximum, Minimum, Average, SampleCount, Percentile };
  Kind kind = Kind::Sum;
  double percentile = 0;  // 0..100 when kind == Percentile (p99.9 -> 99.9)

  // CloudWatch's spelling: "Sum", "Maximum", ..., "p99.9".
  std::string name() const {
    switch (kind) {
      case Kind::Sum:
        return "Sum";
      case Kind::Maximum:
        return "Maximum";
      case Kind::Minimum:
        return "Minimum";
      case Kind::Average:
        return "Average";
      case Kind::SampleCount:
        return "SampleCount";
      case Kind::Percentile:
        break;
    }
    std::string num = std::to_string(percentile);  // fixed, 6 decimals: trim the zeros
    num.erase(num.find_last_not_of('0') + 1);
    if (num.back() == '.') num.pop_back();
    return "p" + num;
  }

  // Parses CloudWatch's spelling; percentiles take up to two decimals (p95, p99.9, p99.99) as
  // CloudWatch does. nullopt when `text` is none of them.
  static std::optional<StatisticSpec> parse(std::string_view text) {
    static constexpr std::array<std::pair<std::string_view, Kind>, 5> kNames = {
        {{"Sum", Kind::Sum},
         {"Maximum", Kind::Maximum},
         {"Minimum", Kind::Minimum},
         {"Average", Kind::Average},
         {"SampleCount", Kind::SampleCount}}};
    for (const auto& [name, kind] : kNames)
      if (text == name) return StatisticSpec{kind, 0};
    if (text.size() < 2 || text[0] != 'p') return std::nullopt;
    std::string_view num = text.substr(1);
    size_t dot = num.find('.');
    std::string_view whole = num.substr(0, dot);
    std::string_view frac = dot == std::string_view::npos ? "" : num.substr(dot + 1);
    if (whole.empty() || whole.size() > 3 || (dot != std::string_view::npos && frac.empty()) ||
        frac.size() > 2)
      return std::nullopt;
    double v = 0;
    for (char c : whole) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    double scale = 0.1;
    for (char c : frac) {
      if (c < '0' || c > '9') return std::nullopt;
      v += (c - '0') * scale;
      scale /= 10;
    }
    if (v > 100) return std::nullopt;
    return StatisticSpec{Kind::Percentile, std::round(v * 100) / 100};
  }

  friend bool operator==(const StatisticSpec&, const StatisticSpec&) = default;
};

// CloudWatch's ComparisonOperator values for static thresholds.
enum class Comparison {
  GreaterThanOrEqualToThreshold,
  GreaterThanThreshold,
  LessThanOrEqualToThreshold,
  LessThanThreshold,
};

inline std::string_view comparison_name(Comparison c) {
  switch (c) {
    case Comparison::GreaterThanOrEqualToThreshold:
      return "GreaterThanOrEqualToThreshold";
    case Comparison::GreaterThanThreshold:
      return "GreaterThanThreshold";
    case Comparison::LessThanOrEqualToThreshold:
      return "LessThanOrEqualToThreshold";
    case Comparison::LessThanThreshold:
      return "LessThanThreshold";
  }
  return "";
}

// The shorthand operator of the `threshold: ">= 1"` form.
inline std::string_view comparison_symbol(Comparison c) {
  switch (c) {
    case Comparison::GreaterThanOrEqualToThreshold:
      return ">=";
    case Comparison::GreaterThanThreshold:
      return ">";
    case Comparison::LessThanOrEqualToThreshold:
      return "<=";
    case Comparison::LessThanThreshold:
      return "<";
  }
  return "";
}

inline std::optional<Comparison> parse_comparison(std::string_view name) {
  for (Comparison c : {Comparison::GreaterThanOrEqualToThreshold, Comparison::GreaterThanThreshold,
                       Comparison::LessThanOrEqualToThreshold, Comparison::LessThanThreshold})
    if (name == comparison_name(c)) return c;
  return std::nullopt;
}

// Whether `value` breaches `threshold` under `c`.
inline bool breaches(Comparison c, double value, double threshold) {
  switch (c) {
    case Comparison::GreaterThanOrEqualToThreshold:
      return value >= threshold;
    case Comparison::GreaterThanThreshold:
      return value > threshold;
    case Comparison::LessThanOrEqualToThreshold:
      return value <= threshold;
    case Comparison::LessThanThreshold:
      return value < threshold;
  }
  return false;
}

// CloudWatch's TreatMissingData values.
enum class MissingData { Missing, NotBreaching, Breaching, Ignore };

inline std::string_view missing_data_name(MissingData m) {
  switch (m) {
    case MissingData::Missing:
      return "missing";
    case MissingData::NotBreaching:
      return "notBreaching";
    case MissingData::Breaching:
      return "breaching";
    case MissingData::Ignore:
      return "ignore";
  }
  return "";
}

inline std::optional<MissingData> parse_missing_data(std::string_view name) {
  for (MissingData m : {MissingData::Missing, MissingData::NotBreaching, MissingData::Breaching,
                        MissingData::Ignore})
    if (name == missing_data_name(m)) return m;
  return std::nullopt;
}

// One alarm: a metric (of one stage, or of the whole pipeline), a statistic over fixed periods
// aligned to the epoch, and an "M out of N" rule against a static threshold.
struct AlarmSpec {
  std::string name;
  std::string metric;  // one of kAlarmMetrics
  std::string stage;   // empty = the pipeline as a whole
  StatisticSpec statistic;
  Duration period = std::chrono::minutes(5);
  int evaluation_periods = 1;   // N
  int datapoints_to_alarm = 1;  // M, 1..N
  Comparison comparison = Comparison::GreaterThanOrEqualToThreshold;
  double threshold = 0;  // in the metric's unit (seconds for durations)
  MissingData treat_missing_data = MissingData::Missing;
  SourcePos pos;
};

// Where alarm state changes go. `type` is "log" (the process log), "webhook" (POST of
// Slack-compatible JSON to `url`) or "command" (`/bin/sh -c command`, the change as JSON on its
// standard input).
struct NotifySpec {
  std::string type;
  std::string url;      // webhook: a secret, never logged; empty = disabled (an unset ${VAR:-})
  std::string command;  // command: run by /bin/sh -c
  SourcePos pos;
};

}  // namespace cascade
