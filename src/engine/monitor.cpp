#include "engine/monitor.h"

#include <spdlog/spdlog.h>

namespace cascade {

namespace {

std::string alarm_key(const std::string& name) {
  return "alarm:" + name;
}

std::vector<AlarmEvaluator> load_evaluators(const PipelineSpec& spec, Store& store) {
  std::vector<AlarmEvaluator> out;
  for (const auto& a : spec.alarms) {
    std::optional<std::string> saved = store.get_meta(alarm_key(a.name));
    if (saved) {
      try {
        out.push_back(AlarmEvaluator::from_json(a, *saved));
        continue;
      } catch (const std::invalid_argument& e) {
        spdlog::warn("alarm {}: saved state unusable ({}); starting over", a.name, e.what());
      }
    }
    out.emplace_back(a);
  }
  return out;
}

AlarmView view_of(const AlarmEvaluator& e) {
  AlarmView v;
  v.name = e.spec().name;
  v.stage = e.spec().stage;
  v.condition = e.condition();
  v.state = e.state();
  v.reason = e.reason();
  v.history = e.history();
  return v;
}

}  // namespace

Monitor::Monitor(const Plan& plan, Store& store, Clock& clock, NotifierOptions notify)
    : plan_(plan),
      store_(store),
      clock_(clock),
      started_(clock.now()),
      series_(MetricSeries::retention_for(plan.spec().alarms)) {
  store_.begin();
  try {
    evaluators_ = load_evaluators(plan_.spec(), store_);
    store_.commit();
  } catch (...) {
    store_.rollback();
    throw;
  }
  if (notify.pipeline.empty()) notify.pipeline = plan_.spec().name;
  notifier_ = std::make_unique<Notifier>(plan_.spec().notify, notify);
}

Monitor::~Monitor() {
  stop();
}

void Monitor::stop() {
  if (notifier_) notifier_->stop();
}

void Monitor::on_message(const std::string& stage, double seconds) {
  series_.record("duration", stage, seconds, clock_.now());
}

void Monitor::on_run(const DaemonRun& run, const RunSummary& summary) {
  TimePoint now = clock_.now();
  for (const auto& [stage, c] : summary.stages) {
    series_.record("errors", stage, static_cast<double>(c.dead_lettered + c.retried), now);
    series_.record("throttles", stage, static_cast<double>(c.throttled), now);
    series_.record("requests", stage, static_cast<double>(c.requests), now);
    series_.record("records_new", stage, static_cast<double>(c.new_rows), now);
    series_.record("records_changed", stage, static_cast<double>(c.changed), now);
    series_.record("records_deleted", stage, static_cast<double>(c.gone), now);
  }
  for (const auto& root : run.roots) series_.record("duration", root, run.seconds, now);
  if (run.roots.empty()) series_.record("duration", "", run.seconds, now);
}

void Monitor::sample(
    const std::vector<RootSchedule>& roots,
    const std::function<std::optional<TimePoint>(const std::string&)>& last_complete) {
  TimePoint now = clock_.now();
  for (const auto& st : plan_.stages()) {
    QueueStats qs = store_.queue().stats(st.queue);
    series_.record("queue_depth", st.name, static_cast<double>(qs.depth + qs.in_flight), now);
    series_.record("dlq_depth", st.name, static_cast<double>(qs.dlq_depth), now);
    series_.record("oldest_message_age_seconds", st.name,
                   static_cast<double>(qs.oldest_age_ms) / 1000.0, now);
  }
  for (const auto& r : roots) {
    std::optional<TimePoint> done = last_complete(r.stage);
    TimePoint since = done ? *done : started_;
    series_.record("seconds_since_last_complete_run", r.stage,
                   std::chrono::duration<double>(now - since).count(), now);
  }
  series_.prune(now);
  evaluate(now);
}

void Monitor::evaluate(TimePoint now) {
  if (Coordination* c = store_.coordination()) {
    if (!c->leading(daemon_leader_role(plan_.spec().name))) {
      following_ = true;
      return;
    }
    if (following_) {
      following_ = false;
      store_.begin();
      try {
        auto fresh = load_evaluators(plan_.spec(), store_);
        store_.commit();
        std::lock_guard lock(mu_);
        evaluators_ = std::move(fresh);
      } catch (...) {
        store_.rollback();
        throw;
      }
    }
  }
  std::vector<AlarmChange> changes;
  std::vector<std::pair<std::string, std::string>> saves;
  {
    std::lock_guard lock(mu_);
    for (auto& e : evaluators_) {
      bool fresh = e.history().empty();
      std::optional<AlarmChange> ch = e.evaluate(series_, now);
      if (!ch) continue;
      saves.emplace_back(e.spec().name, e.to_json());
      // A new alarm settling into OK is not news; everything after is.
      if (fresh && ch->from == AlarmState::InsufficientData && ch->to == AlarmState::Ok) continue;
      changes.push_back(std::move(*ch));
    }
  }
  if (!saves.empty()) {
    store_.begin();
    try {
      for (const auto& [name, json] : saves) store_.set_meta(alarm_key(name), json);
      store_.commit();
    } catch (...) {
      store_.rollback();
      throw;
    }
  }
  for (const auto& ch : changes) {
    spdlog::warn("alarm {}: {} -> {}: {}", ch.alarm, alarm_state_name(ch.from),
                 alarm_state_name(ch.to), ch.reason);
    notifier_->notify(ch);
  }
}

std::vector<AlarmView> Monitor::alarms() const {
  std::lock_guard lock(mu_);
  std::vector<AlarmView> out;
  for (const auto& e : evaluators_) out.push_back(view_of(e));
  return out;
}

Value alarm_value(const AlarmView& a, size_t history) {
  Object o;
  o.emplace_back("name", Value(a.name));
  o.emplace_back("stage", Value(a.stage));
  o.emplace_back("condition", Value(a.condition));
  o.emplace_back("state", Value(std::string(alarm_state_name(a.state))));
  o.emplace_back("reason", Value(a.reason));
  Array h;
  size_t from = a.history.size() > history ? a.history.size() - history : 0;
  for (size_t i = from; i < a.history.size(); ++i) {
    Object t;
    t.emplace_back("time", Value(format_time(a.history[i].time)));
    t.emplace_back("from", Value(std::string(alarm_state_name(a.history[i].from))));
    t.emplace_back("to", Value(std::string(alarm_state_name(a.history[i].to))));
    t.emplace_back("reason", Value(a.history[i].reason));
    h.push_back(Value(std::move(t)));
  }
  o.emplace_back("history", Value(std::move(h)));
  return Value(std::move(o));
}

std::vector<AlarmView> saved_alarms(const PipelineSpec& spec, Store& store) {
  std::vector<AlarmView> out;
  for (const auto& e : load_evaluators(spec, store)) out.push_back(view_of(e));
  return out;
}

}  // namespace cascade
