// RuntimeApiServer: a local server speaking the Lambda Runtime API (2018-06-01) to the real
// `cascade lambda` / packaged `bootstrap`, for tests. Events queued with push() are handed out
// by GET /runtime/invocation/next, one per call, with a request id "req-N"; when none is queued
// the call hangs (as Lambda's long poll does) until the client goes away or the server stops.
// Responses, errors and init errors are recorded. Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "support/cascade.h"

namespace cascade::testing {

class RuntimeApiServer {
 public:
  struct Answer {
    std::string request_id;  // empty for an init error
    std::string kind;        // "response", "error" or "init_error"
    std::string body;
    std::string error_type;  // the Lambda-Runtime-Function-Error-Type header
  };

  RuntimeApiServer();
  // host:port, the value of AWS_LAMBDA_RUNTIME_API.
  std::string endpoint() const;
  // Queues an event; returns its request id.
  std::string push(std::string event_json);
  // The answer to `request_id`, waiting up to `timeout`; nullopt if none came.
  std::optional<Answer> wait_answer(const std::string& request_id,
                                    std::chrono::milliseconds timeout);
  // Every answer so far, in arrival order.
  std::vector<Answer> answers();
  // How many GET next calls arrived.
  int next_calls();

 private:
  void handle(const sim::HttpRequest& req, sim::HttpResponse& res);
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::string>> queue_;  // (id, event)
  std::vector<Answer> answers_;
  int issued_ = 0;
  int next_calls_ = 0;
  CannedServer server_;
};

}  // namespace cascade::testing
