// Daemon: the long-running mode behind `cascade run`. Fires each scheduled root stage when its
// EventBridge schedule says so, lets the engine cascade the run to the leaves, and keeps
// working the queues between ticks (retries coming due, redriven dead letters).
//
// Ticks follow EventBridge's rules where cascade offers the same idea, with two decisions of
// its own that a single-process service needs:
//   - A tick that comes while the previous run still cascades is coalesced: counted (per root
//     stage, persisted), never started twice.
//   - Ticks missed while the daemon was down fire once at start, not once per missed tick.
// A spent quota (the pipeline's or the vendor's) pauses the daemon until the window reopens;
// it never exits for it. The schedule state (anchor, last fire, next fire, counts) lives in the
// store's meta table, so a restart resumes the same next fire times.
//
// On a store several daemons share (Store::coordination() set), one of them leads (the
// coordination's leader of daemon_leader_role()): only the leader fires ticks; every daemon
// works the queues. Before it fires a tick the leader raises the marker "tick:ROLE:STAGE" to the
// tick's time, so a tick fires once even when leadership changes hands around it; a leader that
// finds the marker already there takes the tick as fired and moves on. Leadership is checked
// every idle_poll; a new leader reloads the schedule state first.
//
// run() runs on the caller's thread and is the only user of the Engine meanwhile;
// request_stop() and the snapshot accessors are thread-safe (request_stop() only stores
// atomics, so a signal handler may call it).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/schedule.h"
#include "core/clock.h"
#include "core/timezone.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "store/store.h"

namespace cascade {

// The coordination role the daemons of one pipeline contest (also the monitor's: only the leader
// evaluates and notifies alarms).
inline std::string daemon_leader_role(const std::string& pipeline) {
  return "daemon:" + pipeline;
}

// One scheduled root stage as the daemon sees it.
struct RootSchedule {
  std::string stage;
  std::string expression;              // as written, e.g. "rate(1 hour)"
  std::string timezone;                // IANA name; "UTC" when none was given
  std::optional<TimePoint> next_fire;  // nullopt: the schedule never fires again
  std::optional<TimePoint> last_fire;
  uint64_t fired = 0;      // runs this schedule started, over the store's life
  uint64_t coalesced = 0;  // ticks that came while a run still cascaded
  uint64_t missed = 0;     // ticks that passed while the daemon was down (fired once instead)
};

// One run the daemon started or resumed.
struct DaemonRun {
  int64_t run_id = 0;
  std::vector<std::string> roots;  // the scheduled roots it seeded; empty: queued work only
  TimePoint started{};
  double seconds = 0;
  // "completed", "paused" (quota spent), "stopped" (stop request)
  std::string outcome;
  uint64_t records = 0;
  uint64_t new_rows = 0, changed = 0, gone = 0, dead_lettered = 0;
};

struct DaemonOptions {
  // How often queues are looked at between ticks, when no stage sets `poll:`.
  Duration idle_poll = std::chrono::seconds(1);
  size_t runs_kept = 100;  // in recent_runs()
  // Called on the daemon's thread after every run (keep it short).
  std::function<void(const DaemonRun&, const RunSummary&)> on_run;
  // Called on the daemon's thread, outside any transaction, after every run and at least every
  // `idle_poll` while idle: where gauges are sampled and alarms evaluated.
  std::function<void()> on_idle;
};

class Daemon {
 public:
  // Parses every root stage's schedule and loads its zone; throws ScheduleError /
  // std::runtime_error on a schedule or zone the loader would have refused.
  Daemon(const Plan& plan, Engine& engine, Store& store, Clock& clock, DaemonOptions options = {});

  // Runs until request_stop(). Throws what the engine throws (StorageError and the like).
  void run();

  // Called once by run() when the schedule state is loaded, before the first tick.
  void on_started(std::function<void(const std::vector<RootSchedule>&)> fn) {
    on_started_ = std::move(fn);
  }

  // Ends run() within the engine's stop grace; safe from a signal handler.
  void request_stop();
  bool stopping() const { return stop_.load(); }

  // Snapshots for /status and metrics; thread-safe.
  std::vector<RootSchedule> schedules() const;
  std::vector<DaemonRun> recent_runs() const;
  // While a spent quota pauses the daemon: when it reopens.
  std::optional<TimePoint> paused_until() const;
  // When the last run that started from a root stage drained every queue.
  std::optional<TimePoint> last_complete_run(const std::string& root) const;

 private:
  struct Root {
    RootSchedule view;
    Schedule schedule;
    TimeZone zone;
    TimePoint anchor{};
  };

  void load_state();
  void save_state(const Root& r);
  std::optional<TimePoint> next_after(const Root& r, TimePoint after) const;
  bool work_queued();
  void execute(const std::vector<std::string>& roots);
  void wait_until(TimePoint until);
  // With coordination: whether this daemon leads (re-checked every idle_poll).
  bool leads();
  // With coordination: claims each due tick; those another leader fired already are taken as
  // fired (their state saved) and dropped from `due`.
  void claim_ticks(std::vector<std::string>& due);

  const Plan& plan_;
  Engine& engine_;
  Store& store_;
  Clock& clock_;
  DaemonOptions options_;
  std::atomic<bool> stop_{false};
  std::function<void(const std::vector<RootSchedule>&)> on_started_;

  mutable std::mutex mu_;  // guards what the snapshots read
  std::vector<Root> roots_;
  bool leader_ = false;  // with coordination: this daemon led at the last check
  std::chrono::steady_clock::time_point last_lead_check_{};  // real time, whatever clock_ says
  std::deque<DaemonRun> runs_;
  std::optional<TimePoint> paused_until_;
  std::vector<std::pair<std::string, TimePoint>> last_complete_;
  std::vector<std::string> pending_;  // roots whose run has not drained yet
};

}  // namespace cascade
