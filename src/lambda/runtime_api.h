// RuntimeApi: the client side of the Lambda Runtime API (2018-06-01) over libcurl, what a custom
// runtime (`provided.al2023`) speaks to the Lambda service at $AWS_LAMBDA_RUNTIME_API:
//   GET  /2018-06-01/runtime/invocation/next              the next event (long poll)
//   POST /2018-06-01/runtime/invocation/ID/response       its result
//   POST /2018-06-01/runtime/invocation/ID/error          its failure
//   POST /2018-06-01/runtime/init/error                   a failure before the first event
// One per process; not thread-safe.
#pragma once

#include <atomic>
#include <optional>
#include <string>

namespace cascade::lambda {

struct Invocation {
  std::string request_id;   // Lambda-Runtime-Aws-Request-Id
  std::string deadline_ms;  // Lambda-Runtime-Deadline-Ms (epoch milliseconds), may be empty
  std::string trace_id;     // Lambda-Runtime-Trace-Id, may be empty
  std::string event;        // the event JSON, as sent
};

class RuntimeApi {
 public:
  // `endpoint` is host:port as in AWS_LAMBDA_RUNTIME_API. `stop` (may be null) ends a long
  // poll within a second once set.
  RuntimeApi(std::string endpoint, const std::atomic<bool>* stop);
  ~RuntimeApi();
  RuntimeApi(const RuntimeApi&) = delete;
  RuntimeApi& operator=(const RuntimeApi&) = delete;

  // Waits for the next event. nullopt once `stop` is set. Throws std::runtime_error when the
  // API cannot be reached or answers other than 200 (the runtime then exits: Lambda restarts it).
  std::optional<Invocation> next();
  // Posts the result (JSON) of an invocation. Throws std::runtime_error unless 202.
  void respond(const std::string& request_id, const std::string& json);
  // Posts an invocation's failure: {"errorMessage": message, "errorType": type}.
  void fail(const std::string& request_id, const std::string& type, const std::string& message);
  // Posts a failure of the initialization (before next() was called).
  void init_error(const std::string& type, const std::string& message);

 private:
  long post(const std::string& path, const std::string& body, const std::string& error_type);
  std::string base_;
  const std::atomic<bool>* stop_;
  void* curl_ = nullptr;  // CURL*, reused for keep-alive
};

}  // namespace cascade::lambda
