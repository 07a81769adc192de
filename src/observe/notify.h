// Notifier: delivers alarm state changes to the pipeline's `notify:` sinks (log, webhook,
// command) from one background thread, so that an evaluation loop never waits on a slow
// receiver. A webhook URL is a bearer secret: it reaches no log line and no error, which name at
// most its scheme://host.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/alarm.h"
#include "core/clock.h"
#include "observe/alarms.h"

namespace cascade {

struct NotifierOptions {
  std::string pipeline;          // named in messages when set
  size_t queue_capacity = 1000;  // changes waiting; past it the oldest is dropped
  Duration webhook_timeout = std::chrono::seconds(5);         // one attempt, connect included
  int webhook_attempts = 5;                                   // tries per change, first included
  Duration backoff_initial = std::chrono::milliseconds(500);  // doubles per retry
  Duration backoff_max = std::chrono::seconds(8);
  Duration command_timeout = std::chrono::seconds(10);  // then the command is killed
  Duration stop_grace = std::chrono::seconds(2);        // stop() delivers what it can for this long
};

// Counters since construction. `dropped` counts changes pushed out of a full queue or still
// queued when stop() gave up; `failed` counts (change, sink) deliveries given up after retries.
struct NotifierStats {
  uint64_t queued = 0;
  uint64_t delivered = 0;  // (change, sink) pairs
  uint64_t failed = 0;
  uint64_t dropped = 0;
};

// The scheme://host[:port] of a URL, without credentials, path or query: the most of a secret
// URL that may be shown. "(invalid URL)" when it has no scheme.
std::string redact_url(std::string_view url);

// The webhook body for a change: Slack-compatible `text` and `blocks` (one section in mrkdwn
// with the alarm, its stage, old → new state, reason and time; &, < and > escaped), plus the change
// itself under `alarm` for receivers that are not Slack.
std::string webhook_payload(const AlarmChange& change, std::string_view pipeline);

class Notifier {
 public:
  // Starts the delivery thread. Webhook sinks with an empty url are disabled (an unset
  // ${VAR:-}); `sinks` may be empty, and then changes are counted and dropped.
  explicit Notifier(std::vector<NotifySpec> sinks, NotifierOptions options = {});
  // stop().
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Queues `change` for every sink and returns at once, never waiting on delivery. When the
  // queue is full the oldest queued change is dropped, counted and logged as a warning. After
  // stop() changes are dropped and counted. Thread-safe.
  void notify(const AlarmChange& change);

  // Delivers what is queued for at most options.stop_grace, then aborts any transfer or command
  // still running (a hung webhook included) and joins the thread: returns within stop_grace
  // plus a fraction of a second. Idempotent; thread-safe.
  void stop();

  // Waits until every change queued so far has been delivered or given up, or `timeout` has
  // passed; returns whether the queue is idle. For callers that must know before going on.
  bool wait_idle(Duration timeout);

  NotifierStats stats() const;

 private:
  struct Sink {
    NotifySpec spec;
  };
  enum class Outcome { Delivered, Failed, Aborted };

  void run();
  Outcome deliver(const Sink& sink, const AlarmChange& change);
  Outcome deliver_webhook(const Sink& sink, const AlarmChange& change);
  Outcome deliver_command(const Sink& sink, const AlarmChange& change);
  // Sleeps for `d` unless the notifier is aborting; returns false when aborting.
  bool pause(Duration d);

  const std::vector<Sink> sinks_;
  const NotifierOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // queue changes, stop, abort, idle
  std::deque<AlarmChange> queue_;
  bool stopping_ = false;              // no new changes; drain until the grace ends
  std::atomic<bool> aborting_{false};  // give up now: read by transfers in progress
  bool busy_ = false;                  // a change is being delivered
  NotifierStats stats_;
  std::thread thread_;
  std::once_flag stop_once_;
};

}  // namespace cascade
