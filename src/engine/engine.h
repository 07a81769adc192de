// Engine: runs a compiled pipeline against one Store — receives messages from each stage's
// queue, fetches them through the shared HttpClient, processes responses on a worker pool and
// commits every message's effects (staging, change log, warehouse, child messages, ack) in
// group-committed transactions on the calling thread, the store's single writer.
// One Engine per Store; sync()/invoke() run on the caller's thread; request_stop() is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
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
  Duration stop_grace = std::chrono::seconds(2);  // after request_stop(), before cancelling HTTP
};

class Engine {
 public:
  Engine(const Plan& plan, Store& store, HttpClient& http, Clock& clock,
         EngineOptions options = {});

  // Declares every stage's queue and staging (idempotent).
  void prepare();

  // One run: enqueues each root stage's messages (from its inputs, or from `event` when given),
  // then processes until every queue is drained or request_stop() is called.
  RunSummary sync(const Value* event = nullptr, bool seed_roots = true);

  // Processes the messages an event describes for one stage directly (like a local Lambda
  // invoke); child messages go to the children's queues and are not processed.
  RunSummary invoke(const CompiledStage& stage, const Value& event);

  void request_stop() { stop_.store(true); }

 private:
  struct Impl;
  const Plan& plan_;
  Store& store_;
  HttpClient& http_;
  Clock& clock_;
  EngineOptions options_;
  std::atomic<bool> stop_{false};
};

// Messages an event describes for a non-root stage: one message object, a list of them, or an
// SQS-style {"Records":[{"body":"..."}]}. Throws DataError when it is none of these.
std::vector<Value> event_messages(const Value& event);

}  // namespace cascade
