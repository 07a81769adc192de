#include "observe/alarms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/duration.h"
#include "core/json.h"
#include "core/value.h"

namespace cascade {

namespace {

std::string number_text(double v) {
  std::string out;
  append_canonical_number(v, out);
  return out;
}

std::string_view comparison_words(Comparison c) {
  switch (c) {
    case Comparison::GreaterThanOrEqualToThreshold:
      return "greater than or equal to";
    case Comparison::GreaterThanThreshold:
      return "greater than";
    case Comparison::LessThanOrEqualToThreshold:
      return "less than or equal to";
    case Comparison::LessThanThreshold:
      return "less than";
  }
  return "";
}

std::string plural(size_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

}  // namespace

std::string_view alarm_state_name(AlarmState s) {
  switch (s) {
    case AlarmState::Ok:
      return "OK";
    case AlarmState::Alarm:
      return "ALARM";
    case AlarmState::InsufficientData:
      return "INSUFFICIENT_DATA";
  }
  return "";
}

std::optional<AlarmState> parse_alarm_state(std::string_view name) {
  for (AlarmState s : {AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData})
    if (name == alarm_state_name(s)) return s;
  return std::nullopt;
}

std::optional<double> compute_statistic(const StatisticSpec& statistic,
                                        std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  using Kind = StatisticSpec::Kind;
  switch (statistic.kind) {
    case Kind::Sum:
      return std::accumulate(values.begin(), values.end(), 0.0);
    case Kind::Maximum:
      return *std::max_element(values.begin(), values.end());
    case Kind::Minimum:
      return *std::min_element(values.begin(), values.end());
    case Kind::Average:
      return std::accumulate(values.begin(), values.end(), 0.0) /
             static_cast<double>(values.size());
    case Kind::SampleCount:
      return static_cast<double>(values.size());
    case Kind::Percentile:
      break;
  }
  if (std::any_of(values.begin(), values.end(), [](double v) { return v < 0; }))
    return std::nullopt;
  // Nearest rank. The epsilon keeps p99.9 of 1000 samples at rank 999: 99.9 is not exact in
  // binary and would otherwise round the rank up to 1000.
  const double n = static_cast<double>(values.size());
  double rank = std::ceil(statistic.percentile * n / 100.0 - 1e-9);
  size_t index = static_cast<size_t>(std::clamp(rank, 1.0, n)) - 1;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return values[index];
}

int evaluation_range_periods(const AlarmSpec& alarm) {
  return alarm.evaluation_periods + 2;
}

// ---- MetricSeries ----

MetricSeries::MetricSeries(Duration retention) : retention_(retention) {}

Duration MetricSeries::retention_for(const std::vector<AlarmSpec>& alarms) {
  Duration longest = std::chrono::minutes(1);
  for (const AlarmSpec& a : alarms)
    longest = std::max(longest, a.period * (evaluation_range_periods(a) + 1));
  return longest;
}

void MetricSeries::prune_series(std::deque<Sample>& samples, TimePoint cutoff) {
  while (!samples.empty() && samples.front().at < cutoff) samples.pop_front();
}

void MetricSeries::record(std::string_view metric, std::string_view stage, double value,
                          TimePoint at) {
  std::lock_guard lock(mu_);
  newest_ = std::max(newest_, at);
  std::deque<Sample>& samples = series_[Key(metric, stage)];
  // Samples come in time order but for races between recording threads: insert in place so
  // the deque stays sorted and pruning from the front stays exact.
  auto pos = samples.end();
  while (pos != samples.begin() && std::prev(pos)->at > at) --pos;
  samples.insert(pos, Sample{at, value});
  prune_series(samples, newest_ - retention_);
}

std::optional<double> MetricSeries::datapoint(std::string_view metric, std::string_view stage,
                                              const StatisticSpec& statistic,
                                              TimePoint period_start, Duration period) const {
  const TimePoint end = period_start + period;
  std::vector<double> values;
  auto collect = [&](const std::deque<Sample>& samples) {
    auto first = std::lower_bound(samples.begin(), samples.end(), period_start,
                                  [](const Sample& s, TimePoint t) { return s.at < t; });
    for (auto it = first; it != samples.end() && it->at < end; ++it) values.push_back(it->value);
  };
  {
    std::lock_guard lock(mu_);
    if (stage.empty()) {
      for (auto it = series_.lower_bound(Key(metric, ""));
           it != series_.end() && it->first.first == metric; ++it)
        collect(it->second);
    } else if (auto it = series_.find(Key(metric, stage)); it != series_.end()) {
      collect(it->second);
    }
  }
  return compute_statistic(statistic, std::move(values));
}

void MetricSeries::prune(TimePoint now) {
  std::lock_guard lock(mu_);
  for (auto it = series_.begin(); it != series_.end();) {
    prune_series(it->second, now - retention_);
    it = it->second.empty() ? series_.erase(it) : std::next(it);
  }
}

size_t MetricSeries::sample_count() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [key, samples] : series_) n += samples.size();
  return n;
}

// ---- AlarmChange ----

std::string AlarmChange::to_json() const {
  Object o;
  o.emplace_back("alarm", alarm);
  o.emplace_back("metric", metric);
  o.emplace_back("stage", stage.empty() ? Value() : Value(stage));
  o.emplace_back("condition", condition);
  o.emplace_back("from", std::string(alarm_state_name(from)));
  o.emplace_back("to", std::string(alarm_state_name(to)));
  o.emplace_back("reason", reason);
  o.emplace_back("time", format_time(time));
  o.emplace_back("timestamp_ms", to_millis(time));
  return cascade::to_json(Value(std::move(o)));
}

// ---- AlarmEvaluator ----

AlarmEvaluator::AlarmEvaluator(AlarmSpec spec) : spec_(std::move(spec)) {}

std::string AlarmEvaluator::condition() const {
  return spec_.statistic.name() + " of " + spec_.metric +
         (spec_.stage.empty() ? "" : " (stage " + spec_.stage + ")") + " " +
         std::string(comparison_symbol(spec_.comparison)) + " " + number_text(spec_.threshold) +
         " for " + std::to_string(spec_.datapoints_to_alarm) + " of " +
         std::to_string(spec_.evaluation_periods) + " periods of " + format_duration(spec_.period);
}

std::vector<std::optional<double>> AlarmEvaluator::datapoints(const MetricSeries& series,
                                                              TimePoint now) const {
  const int64_t p = spec_.period.count();
  const int64_t ms = to_millis(now);
  // The end of the last complete period: floor division, also before the epoch.
  const int64_t end = (ms >= 0 ? ms / p : (ms - p + 1) / p) * p;
  const int range = evaluation_range_periods(spec_);
  std::vector<std::optional<double>> out;
  out.reserve(static_cast<size_t>(range));
  for (int i = range; i >= 1; --i)
    out.push_back(series.datapoint(spec_.metric, spec_.stage, spec_.statistic,
                                   from_millis(end - i * p), spec_.period));
  return out;
}

// Follows "Configuring how CloudWatch alarms treat missing data", section "How alarm state is
// evaluated when data is missing", of the CloudWatch user guide:
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data
// (source: github.com/awsdocs/amazon-cloudwatch-user-guide, doc_source/AlarmThatSendsEmail.md).
//  - With at least N (evaluation_periods) real datapoints in the range, the most recent N decide
//    and treat_missing_data plays no part.
//  - With fewer, every real datapoint of the range is evaluated, and the rest of the N are
//    missing ones, used as few times as possible: breaching counts them as breaching,
//    notBreaching as not.
//  - missing and ignore never invent a value. Enough real breaching datapoints (M,
//    datapoints_to_alarm) mean ALARM, and a real non-breaching one means OK (the guide's rows
//    "0 - - - -" and "0 - X - -"). When all real ones breach but are fewer than M, the guide's
//    rows "- - - - X" and "X - - - -" decide: under missing, ALARM when the oldest evaluated
//    datapoint is a real breaching one ("because the oldest evaluated data point is breaching and
//    there aren't any non-breaching data points"), INSUFFICIENT_DATA otherwise; under ignore,
//    the state stays.
//  - With no real datapoint at all: INSUFFICIENT_DATA (missing), the state stays (ignore), ALARM
//    (breaching), OK (notBreaching).
// The unit tests reproduce the guide's 3-of-3 and 2-of-3 tables row by row.
AlarmEvaluator::Assessment AlarmEvaluator::assess(
    const std::vector<std::optional<double>>& range) const {
  const size_t n = static_cast<size_t>(spec_.evaluation_periods);
  const size_t m = static_cast<size_t>(spec_.datapoints_to_alarm);
  if (range.size() < n)
    throw std::invalid_argument("alarm '" + spec_.name + "' needs at least " + std::to_string(n) +
                                " datapoints, given " + std::to_string(range.size()));
  const std::string threshold = "the threshold (" + number_text(spec_.threshold) + ")";
  const std::string words(comparison_words(spec_.comparison));
  auto is_breaching = [&](double v) { return breaches(spec_.comparison, v, spec_.threshold); };

  std::vector<size_t> real, missing;  // indexes into range
  for (size_t i = 0; i < range.size(); ++i) (range[i] ? real : missing).push_back(i);

  auto listing = [&](const std::vector<size_t>& idx, size_t filled) {
    std::string out = "[";
    for (size_t i : idx) {
      if (out.size() > 1) out += ", ";
      out += number_text(*range[i]);
    }
    for (size_t i = 0; i < filled; ++i) out += std::string(out.size() > 1 ? ", " : "") + "-";
    return out + "]";
  };
  auto decided = [&](const std::vector<size_t>& idx, size_t filled, bool filled_breach) {
    size_t b = static_cast<size_t>(
        std::count_if(idx.begin(), idx.end(), [&](size_t i) { return is_breaching(*range[i]); }));
    if (filled_breach) b += filled;
    AlarmState s = b >= m ? AlarmState::Alarm : AlarmState::Ok;
    std::string reason = "Threshold Crossed: " + std::to_string(b) + " out of the last " +
                         plural(idx.size() + filled, "datapoint") + " " + listing(idx, filled) +
                         (b == 1 ? " was " : " were ") + words + " " + threshold + " (minimum " +
                         plural(m, "datapoint") + " for ALARM)";
    if (filled > 0)
      reason += "; " + plural(filled, "missing datapoint") + " treated as " +
                (filled_breach ? "breaching" : "not breaching");
    return Assessment{s, reason};
  };
  auto kept = [&](std::string why) {
    return Assessment{state_, "Missing data ignored: the state stays " +
                                  std::string(alarm_state_name(state_)) + " (" + why + ")"};
  };

  if (real.size() >= n)
    return decided(std::vector<size_t>(real.end() - static_cast<std::ptrdiff_t>(n), real.end()), 0,
                   false);

  const size_t filled = n - real.size();
  if (real.empty()) {
    switch (spec_.treat_missing_data) {
      case MissingData::Missing:
        return Assessment{AlarmState::InsufficientData,
                          "Insufficient Data: " + plural(range.size(), "datapoint") +
                              (range.size() == 1 ? " was" : " were") + " unknown"};
      case MissingData::Ignore:
        return kept("all " + plural(range.size(), "datapoint") + " missing");
      case MissingData::Breaching:
        return decided(real, filled, true);
      case MissingData::NotBreaching:
        return decided(real, filled, false);
    }
  }
  switch (spec_.treat_missing_data) {
    case MissingData::Breaching:
      return decided(real, filled, true);
    case MissingData::NotBreaching:
      return decided(real, filled, false);
    case MissingData::Missing:
    case MissingData::Ignore:
      break;
  }
  const size_t breaching = static_cast<size_t>(
      std::count_if(real.begin(), real.end(), [&](size_t i) { return is_breaching(*range[i]); }));
  if (breaching >= m || breaching < real.size()) return decided(real, 0, false);
  // Every real datapoint breaches, fewer than M of them.
  if (spec_.treat_missing_data == MissingData::Ignore)
    return kept(plural(real.size(), "real datapoint") + " of " + std::to_string(n) + ", " +
                listing(real, 0) + ", too few to decide");
  // The evaluated missing datapoints are the most recent ones.
  const size_t oldest_missing = missing[missing.size() - filled];
  if (real.front() < oldest_missing)
    return Assessment{AlarmState::Alarm,
                      "Threshold Crossed: the oldest evaluated datapoint and every later real "
                      "one " +
                          listing(real, 0) + " were " + words + " " + threshold + ", " +
                          plural(filled, "datapoint") + " missing"};
  return Assessment{AlarmState::InsufficientData,
                    "Insufficient Data: " + plural(filled, "datapoint") + " of the last " +
                        std::to_string(n) + " were unknown; the real " +
                        plural(real.size(), "one") + " " + listing(real, 0) +
                        " cannot decide alone"};
}

std::optional<AlarmChange> AlarmEvaluator::evaluate(const std::vector<std::optional<double>>& range,
                                                    TimePoint now) {
  Assessment a = assess(range);
  if (a.state == state_) return std::nullopt;
  AlarmChange change{spec_.name, spec_.metric, spec_.stage, condition(),
                     state_,     a.state,      a.reason,    now};
  history_.push_back(AlarmTransition{now, state_, a.state, a.reason});
  if (history_.size() > kHistoryLimit)
    history_.erase(history_.begin(),
                   history_.begin() + static_cast<std::ptrdiff_t>(history_.size() - kHistoryLimit));
  state_ = a.state;
  reason_ = std::move(a.reason);
  return change;
}

std::optional<AlarmChange> AlarmEvaluator::evaluate(const MetricSeries& series, TimePoint now) {
  return evaluate(datapoints(series, now), now);
}

std::string AlarmEvaluator::to_json() const {
  Array hist;
  for (const AlarmTransition& t : history_) {
    Object h;
    h.emplace_back("time_ms", to_millis(t.time));
    h.emplace_back("from", std::string(alarm_state_name(t.from)));
    h.emplace_back("to", std::string(alarm_state_name(t.to)));
    h.emplace_back("reason", t.reason);
    hist.emplace_back(std::move(h));
  }
  Object o;
  o.emplace_back("version", 1);
  o.emplace_back("alarm", spec_.name);
  o.emplace_back("state", std::string(alarm_state_name(state_)));
  o.emplace_back("reason", reason_);
  o.emplace_back("history", std::move(hist));
  return cascade::to_json(Value(std::move(o)));
}

AlarmEvaluator AlarmEvaluator::from_json(AlarmSpec spec, std::string_view text) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("saved state of alarm '" + spec.name + "': " + why);
  };
  Value v;
  try {
    v = parse_json(text);
  } catch (const JsonError& e) {
    throw bad(std::string("not JSON: ") + e.what());
  }
  auto field = [&](const Value& obj, std::string_view name, Value::Type type) -> const Value& {
    const Value* f = obj.is_object() ? obj.find(name) : nullptr;
    if (!f || f->type() != type)
      throw bad("expected '" + std::string(name) + "' of type " + type_name(type));
    return *f;
  };
  auto state = [&](const Value& obj, std::string_view name) {
    const std::string& s = field(obj, name, Value::Type::String).as_string();
    std::optional<AlarmState> st = parse_alarm_state(s);
    if (!st) throw bad("unknown state '" + s + "' in '" + std::string(name) + "'");
    return *st;
  };
  if (field(v, "version", Value::Type::Int).as_int() != 1)
    throw bad("unknown version (expected 1)");
  const std::string& name = field(v, "alarm", Value::Type::String).as_string();
  if (name != spec.name) throw bad("it was saved for alarm '" + name + "'");
  AlarmEvaluator ev(std::move(spec));
  ev.state_ = state(v, "state");
  ev.reason_ = field(v, "reason", Value::Type::String).as_string();
  for (const Value& h : field(v, "history", Value::Type::Array).as_array())
    ev.history_.push_back(AlarmTransition{
        from_millis(field(h, "time_ms", Value::Type::Int).as_int()), state(h, "from"),
        state(h, "to"), field(h, "reason", Value::Type::String).as_string()});
  if (ev.history_.size() > kHistoryLimit)
    ev.history_.erase(ev.history_.begin(),
                      ev.history_.end() - static_cast<std::ptrdiff_t>(kHistoryLimit));
  return ev;
}

}  // namespace cascade
