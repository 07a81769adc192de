// Engine: runs a compiled pipeline against one Store — receives messages from each stage's
// queue, fetches them through the shared HttpClient, processes responses on a worker pool and
// commits every message's effects (staging, change log, warehouse, child messages, ack) in
// group-committed transactions on the calling thread, the store's single writer.
// One Engine per Store; sync()/invoke() run on the caller's thread; request_stop() is thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/plan.h"
#include "load/loader.h"
#include "source/http_client.h"
#include "store/store.h"

namespace cascade {

struct StageCounters {
  uint64_t messages = 0;  // messages completed (acked)
  uint64_t requests = 0;  // HTTP tries made for this stage
  uint64_t records = 0;   // records selected from responses
  uint64_t filtered = 0;  // records the `where` filter dropped
  uint64_t new_rows = 0;
  uint64_t changed = 0;
  uint64_t unchanged = 0;
  uint64_t gone = 0;
  // Rows whose deletion is held: their listing shrank too much at once, and only a next run that
  // sees the same listing deletes them (StageSpec::deletions).
  uint64_t held = 0;
  uint64_t children = 0;       // child messages created (after coalescing)
  uint64_t retried = 0;        // messages returned to their queue after a transient failure
  uint64_t dead_lettered = 0;  // messages moved to the DLQ during the run
  uint64_t throttled = 0;      // 429 responses
  // Values of fields the table has no column for, dropped by the `discard` contract.
  uint64_t discarded_fields = 0;
  // HTTP tries by what came back: 2xx, 3xx, 4xx, 5xx (and other statuses), transport errors.
  std::array<uint64_t, 5> responses{};
  std::string last_error;
};

struct RunSummary {
  int64_t run_id = 0;
  bool completed = false;  // every queue drained (false when stopped early)
  // Set when the run stopped because the quota is spent: when its window reopens.
  std::optional<TimePoint> quota_exhausted_until;
  // The quota was the vendor's own (its Retry-After or RateLimit-Reset), not the pipeline's.
  bool quota_by_vendor = false;
  double seconds = 0;
  int64_t peak_rss_kb = 0;  // of the whole process, at the end of the run
  std::vector<std::pair<std::string, StageCounters>> stages;
  StageCounters total() const;
};

struct EngineOptions {
  size_t workers = 0;                 // 0 = hardware threads - 1, at least 1
  size_t max_buffered_rows = 20'000;  // processed rows waiting for the writer (backpressure)
  Duration commit_interval = std::chrono::milliseconds(50);  // longest idle wait of the writer
  QuotaLedger* quota = nullptr;  // the source's budget, saved in the store at every commit
  // The source's shared limiter: the vendor limit it learnt is saved in the store at every commit
  // (meta "vendor_rate") and restored when a run begins, so the next run paces to it at once.
  RateLimiter* limiter = nullptr;
  Duration stop_grace = std::chrono::seconds(2);  // after request_stop(), before cancelling HTTP
  // Called on the writer thread for each message applied (acked): its stage index and how long
  // its request took, retries and waits included. Keep it cheap: it is on the hot path.
  std::function<void(size_t stage, Duration elapsed)> on_message;
  // Called on the writer thread, outside any transaction, about every `tick_interval` while a
  // run goes on: the store may be read and written there (gauges, alarm states).
  std::function<void()> on_tick;
  Duration tick_interval = std::chrono::seconds(1);
};

class Engine {
 public:
  Engine(const Plan& plan, Store& store, HttpClient& http, Clock& clock,
         EngineOptions options = {});

  // Declares every stage's queue and staging, the change log's view and the pipeline's views
  // (idempotent).
  void prepare();

  // Forgets the cursors of every incremental stage in one unit of work, so that their next
  // requests list everything again (`sync --full-refresh`); unchanged rows are then rewritten
  // nowhere. Call only while no run is under way. Returns how many cursors were forgotten.
  size_t reset_cursors();

  // One run: enqueues each root stage's messages (from its inputs, or from `event` when given),
  // then processes until every queue is drained or request_stop() is called. With queues other
  // processes share (Store::claim_consumer() false), drained means every queue empty and nothing
  // in flight in any of them, and no orphan sweep runs: this process saw only its share of the
  // crawl's listings.
  RunSummary sync(const Value* event = nullptr, bool seed_roots = true);

  // One run seeded by the named root stages only (their inputs), e.g. the roots whose schedule
  // fired; messages already queued for any stage are processed too. Unknown names are ignored.
  RunSummary sync_roots(const std::vector<std::string>& roots);

  // Processes the messages an event describes for one stage directly (like a local Lambda
  // invoke); child messages go to the children's queues and are not processed.
  RunSummary invoke(const CompiledStage& stage, const Value& event);

  // The same for messages already taken out of an event (the bodies of an SQS batch), whatever
  // the stage: no root inputs are expanded. When `failed` is given, the positions in `messages`
  // of those that failed (not applied: their error is logged and counted as dead-lettered, and
  // the caller decides what becomes of them, e.g. SQS retries them) are appended to it, sorted,
  // once each. Throws what the storage throws: then none of them is known to be applied.
  RunSummary invoke_messages(const CompiledStage& stage, std::vector<Value> messages,
                             std::vector<size_t>* failed = nullptr);

  void request_stop() { stop_.store(true); }

  // Replaces options().on_message / on_tick; call only while no run is under way.
  void set_observer(std::function<void(size_t, Duration)> on_message,
                    std::function<void()> on_tick) {
    options_.on_message = std::move(on_message);
    options_.on_tick = std::move(on_tick);
  }

  // The counters of the run under way, per stage in plan order, as of the last tick; empty
  // between runs (a finished run's counters are in its RunSummary). Thread-safe.
  std::vector<StageCounters> live_counters() const {
    std::lock_guard lock(live_mu_);
    return live_;
  }

 private:
  void define_views();
  struct Impl;
  RunSummary run_once(const Value* event, bool seed_roots,
                      const std::vector<std::string>* only_roots);
  const Plan& plan_;
  Store& store_;
  HttpClient& http_;
  Clock& clock_;
  EngineOptions options_;
  std::atomic<bool> stop_{false};
  mutable std::mutex live_mu_;
  std::vector<StageCounters> live_;
};

// Messages an event describes for a non-root stage: one message object, a list of them, or an
// SQS-style {"Records":[{"body":"..."}]}. Throws DataError when it is none of these.
std::vector<Value> event_messages(const Value& event);

}  // namespace cascade
