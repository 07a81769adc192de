// Service: everything `cascade run` is beyond the engine. Owns the Daemon (schedules, runs),
// the Monitor (alarms, notifications), the Prometheus metrics and the read-only status server
// (/metrics, /healthz, /status and the live page at /), and keeps the figures they show:
// per-stage totals since start, the queues' gauges, records per minute over the last hours.
//
// run() blocks on the caller's thread (the store's only user) until request_stop();
// request_stop() is async-signal-safe; everything the server threads call is thread-safe.
#pragma once

#include <array>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "engine/daemon.h"
#include "engine/engine.h"
#include "engine/monitor.h"
#include "engine/plan.h"
#include "observe/metrics.h"
#include "observe/status_server.h"
#include "source/quota.h"
#include "store/store.h"

namespace cascade {

struct ServiceOptions {
  std::string listen_address = "127.0.0.1";
  int listen_port = 9464;  // 0: any free port (see port())
  bool serve = true;       // false: no HTTP endpoints at all
  // Serve a non-loopback address without a bearer token (CASCADE_STATUS_TOKEN) all the same.
  bool allow_unauthenticated = false;
  Duration idle_poll = std::chrono::seconds(1);
  std::string version;
};

class Service {
 public:
  // Parses the schedules (ScheduleError / runtime_error), restores alarm states, and starts the
  // status server (observe::StatusServerError when the address cannot be served).
  Service(const Plan& plan, Engine& engine, Store& store, Clock& clock, QuotaLedger* quota,
          ServiceOptions options);
  ~Service();

  // The status server's port once listening (0 when not serving).
  int port() const;
  Daemon& daemon() { return *daemon_; }

  void run();
  void request_stop();

  // The /status document (schema in README, "Always on").
  std::string status_json() const;

 private:
  void on_message(size_t stage, Duration elapsed);
  void on_run(const DaemonRun& run, const RunSummary& summary);
  void on_tick();

  const Plan& plan_;
  Engine& engine_;
  Store& store_;
  Clock& clock_;
  QuotaLedger* quota_;
  ServiceOptions options_;
  TimePoint started_;

  observe::Registry registry_;
  std::unique_ptr<observe::CascadeMetrics> metrics_;
  std::vector<observe::CascadeMetrics::Stage> stage_metrics_;
  std::unique_ptr<Monitor> monitor_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<observe::StatusServer> server_;

  mutable std::mutex mu_;                                // guards what follows
  std::vector<StageCounters> done_totals_;               // of finished runs, per stage
  std::vector<QueueStats> queues_;                       // as of the last tick
  std::deque<std::pair<int64_t, uint64_t>> per_minute_;  // (minute since epoch, records)
  uint64_t records_seen_ = 0;  // total of done_totals_ + the live run, at the last tick
};

}  // namespace cascade
