// Monitor: the alarms of `cascade run`. Turns what the daemon sees (each run's counters, the
// queues' gauges) into metric samples, evaluates every alarm of the pipeline with CloudWatch's
// semantics, persists each alarm's state and history in the store (meta "alarm:NAME") so a
// restart resumes them, and hands every state change to the notifier's sinks.
//
// Samples: event metrics (errors = messages dead-lettered or retried, throttles, requests,
// records_new/changed/deleted) are recorded per stage at the end of each run; `duration` is each
// message's request time in its stage and each run's time in its root stages; gauges (queue_depth,
// dlq_depth, oldest_message_age_seconds per stage, seconds_since_last_complete_run per scheduled
// root) are sampled by sample(). An alarm without `stage:` sees every stage's samples.
//
// On a store several daemons share (Store::coordination() set) only the leader of
// daemon_leader_role() evaluates, saves and notifies: one notification per transition. Gauges are
// the shared queues', so the leader sees every worker's; event metrics are the leader's own runs'.
// A daemon that becomes leader first reloads the saved states, so it neither repeats a transition
// the last leader notified nor misses one from there.
//
// on_run() and sample() run on the daemon's thread, the store's only user; alarms() is
// thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/pipeline.h"
#include "core/clock.h"
#include "engine/daemon.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "observe/alarms.h"
#include "observe/notify.h"
#include "store/store.h"

namespace cascade {

struct AlarmView {
  std::string name;
  std::string stage;
  std::string condition;
  AlarmState state = AlarmState::InsufficientData;
  std::string reason;
  std::vector<AlarmTransition> history;  // oldest first
};

class Monitor {
 public:
  // Restores each alarm's saved state (a definition that changed keeps its state under the new
  // condition). Opens a transaction of its own: call outside one.
  Monitor(const Plan& plan, Store& store, Clock& clock, NotifierOptions notify = {});
  ~Monitor();

  // Records how long one message's request took (`duration` of its stage).
  void on_message(const std::string& stage, double seconds);
  // Records the samples of one finished run.
  void on_run(const DaemonRun& run, const RunSummary& summary);
  // Samples the gauges, evaluates every alarm, saves and notifies the changes. `last_complete`
  // gives a scheduled root's last complete run (nullopt: none yet, counted from `started`).
  void sample(const std::vector<RootSchedule>& roots,
              const std::function<std::optional<TimePoint>(const std::string&)>& last_complete);

  std::vector<AlarmView> alarms() const;
  // Stops the notifier, delivering what it can within its grace.
  void stop();

 private:
  void evaluate(TimePoint now);

  const Plan& plan_;
  Store& store_;
  Clock& clock_;
  TimePoint started_;
  MetricSeries series_;
  std::vector<AlarmEvaluator> evaluators_;  // one per AlarmSpec, in file order
  std::unique_ptr<Notifier> notifier_;
  mutable std::mutex mu_;   // guards evaluators_ against alarms()
  bool following_ = false;  // with coordination: another daemon led at the last evaluation
};

// An alarm as JSON: {"name", "stage", "condition", "state", "reason", "history": [{"time",
// "from", "to", "reason"}]} with the last `history` changes, oldest first.
Value alarm_value(const AlarmView& alarm, size_t history = AlarmEvaluator::kHistoryLimit);

// The alarms saved in `store` for the pipeline: what `cascade alarms` shows while a daemon runs
// or after it stopped. Alarms never evaluated are INSUFFICIENT_DATA.
std::vector<AlarmView> saved_alarms(const PipelineSpec& spec, Store& store);

}  // namespace cascade
