// Alarms with CloudWatch's semantics, as parts the daemon drives: MetricSeries holds the samples
// it records, AlarmEvaluator turns one AlarmSpec's datapoints into OK / ALARM / INSUFFICIENT_DATA
// with a reason and a history that survives restarts as JSON. No I/O, no clock of its own: the
// caller passes every time.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/alarm.h"
#include "core/clock.h"

namespace cascade {

enum class AlarmState { Ok, Alarm, InsufficientData };

// CloudWatch's spelling: "OK", "ALARM", "INSUFFICIENT_DATA".
std::string_view alarm_state_name(AlarmState s);
std::optional<AlarmState> parse_alarm_state(std::string_view name);

// The statistic of one period's samples, by CloudWatch's definitions
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html).
// nullopt when there are no samples (a missing datapoint, SampleCount included) and, for a
// percentile, when any sample is negative (CloudWatch offers no percentiles then). A percentile
// is the nearest rank: the smallest sample with at least p% of the samples at or below it. Pure.
std::optional<double> compute_statistic(const StatisticSpec& statistic, std::vector<double> values);

// How many periods an alarm looks at. As CloudWatch does, it retrieves more datapoints than its
// evaluation_periods (the "evaluation range"): evaluation_periods + 2, the 5-for-3 of the user
// guide's examples.
int evaluation_range_periods(const AlarmSpec& alarm);

// Timestamped samples of the daemon's metrics, per (metric, stage), kept in memory for a bounded
// time. Memory is about 16 bytes per sample held. Thread-safe: any thread may record while
// another reads datapoints.
class MetricSeries {
 public:
  // Keeps samples no older than `retention` before the newest sample recorded (or the `now` of
  // prune()).
  explicit MetricSeries(Duration retention);

  // The retention that serves every alarm in `alarms`: its evaluation range plus the period in
  // progress, for the longest of them (one period when there are no alarms).
  static Duration retention_for(const std::vector<AlarmSpec>& alarms);

  // Adds one sample: a count of events (errors, requests, ...), a duration in seconds, or a
  // gauge's current value. `stage` is empty for a sample of the pipeline as a whole. Samples
  // older than the retention are dropped from this series as a side effect.
  void record(std::string_view metric, std::string_view stage, double value, TimePoint at);

  // The statistic of the samples with period_start <= time < period_start + period; nullopt when
  // there are none (missing data). An empty `stage` takes the samples of every stage and of the
  // pipeline as a whole.
  std::optional<double> datapoint(std::string_view metric, std::string_view stage,
                                  const StatisticSpec& statistic, TimePoint period_start,
                                  Duration period) const;

  // Drops every sample older than now - retention, and series left empty.
  void prune(TimePoint now);

  size_t sample_count() const;
  Duration retention() const { return retention_; }

 private:
  struct Sample {
    TimePoint at;
    double value;
  };
  using Key = std::pair<std::string, std::string>;  // (metric, stage)

  static void prune_series(std::deque<Sample>& samples, TimePoint cutoff);

  const Duration retention_;
  mutable std::mutex mu_;
  std::map<Key, std::deque<Sample>> series_;  // each deque ordered by time
  TimePoint newest_{};
};

// One state change of one alarm, as kept in its history.
struct AlarmTransition {
  TimePoint time;
  AlarmState from = AlarmState::InsufficientData;
  AlarmState to = AlarmState::InsufficientData;
  std::string reason;
};

// One state change with what a person needs to act on it: what a Notifier sends.
struct AlarmChange {
  std::string alarm;      // the alarm's name
  std::string metric;     // e.g. "errors"
  std::string stage;      // empty = the pipeline as a whole
  std::string condition;  // e.g. "Maximum of duration >= 750 for 1 of 1 periods of 1m"
  AlarmState from = AlarmState::InsufficientData;
  AlarmState to = AlarmState::InsufficientData;
  std::string reason;
  TimePoint time;

  // {"alarm", "metric", "stage" (null for the pipeline), "condition", "from", "to", "reason",
  // "time" (ISO-8601 UTC), "timestamp_ms"}.
  std::string to_json() const;
};

// The state machine of one alarm. It starts in INSUFFICIENT_DATA, as a new CloudWatch alarm
// does, and changes state only through evaluate(). Not thread-safe: one owner drives it.
class AlarmEvaluator {
 public:
  // Transitions kept in history(); older ones are forgotten (CloudWatch keeps two weeks).
  static constexpr size_t kHistoryLimit = 100;

  struct Assessment {
    AlarmState state;
    std::string reason;
  };

  explicit AlarmEvaluator(AlarmSpec spec);

  const AlarmSpec& spec() const { return spec_; }
  AlarmState state() const { return state_; }
  // Why the alarm is in its state: the reason of the last change.
  const std::string& reason() const { return reason_; }
  // Oldest first, at most kHistoryLimit.
  const std::vector<AlarmTransition>& history() const { return history_; }
  // The alarm as a condition, e.g. "Sum of errors >= 1 for 1 of 1 periods of 5m".
  std::string condition() const;

  // The datapoints of the evaluation range ending with the last complete period before `now`
  // (periods are aligned to multiples of the period since the epoch), oldest first: what
  // assess() takes. evaluation_range_periods() of them.
  std::vector<std::optional<double>> datapoints(const MetricSeries& series, TimePoint now) const;

  // The state the datapoints call for, without changing anything. `range` is oldest first,
  // nullopt = missing, and holds at least evaluation_periods datapoints (std::invalid_argument
  // otherwise); datapoints() gives the evaluation range CloudWatch would use. Missing data is
  // treated as documented in "Configuring how CloudWatch alarms treat missing data"; the
  // definition in alarms.cpp cites the tables it reproduces.
  Assessment assess(const std::vector<std::optional<double>>& range) const;

  // assess(), then moves to the new state: returns the change (for a Notifier) when the state
  // changed, nullopt when it stayed (the reason of a kept state is not updated).
  std::optional<AlarmChange> evaluate(const std::vector<std::optional<double>>& range,
                                      TimePoint now);
  // The same over datapoints(series, now).
  std::optional<AlarmChange> evaluate(const MetricSeries& series, TimePoint now);

  // The state, its reason and the history as JSON text, for the daemon to persist:
  // {"version": 1, "alarm": NAME, "state": "OK", "reason": "...", "history": [{"time_ms",
  // "from", "to", "reason"}, ...]}.
  std::string to_json() const;
  // An evaluator for `spec` in the state saved by to_json(). Throws std::invalid_argument,
  // saying what is wrong, on text that is not such JSON or that was saved for another alarm
  // name (the definition may otherwise have changed: the new one applies from the next
  // evaluation).
  static AlarmEvaluator from_json(AlarmSpec spec, std::string_view text);

 private:
  AlarmSpec spec_;
  AlarmState state_ = AlarmState::InsufficientData;
  std::string reason_ = "Unchecked: initial alarm creation";
  std::vector<AlarmTransition> history_;
};

}  // namespace cascade
