#include "support/runtime_api.h"

#include <chrono>

namespace cascade::testing {

RuntimeApiServer::RuntimeApiServer()
    : server_([this](const sim::HttpRequest& req, sim::HttpResponse& res) { handle(req, res); }) {}

std::string RuntimeApiServer::endpoint() const {
  std::string url = server_.url();
  return url.substr(std::string("http://").size());
}

std::string RuntimeApiServer::push(std::string event_json) {
  std::lock_guard lock(mu_);
  std::string id = "req-" + std::to_string(++issued_);
  queue_.emplace_back(id, std::move(event_json));
  return id;
}

void RuntimeApiServer::handle(const sim::HttpRequest& req, sim::HttpResponse& res) {
  const std::string prefix = "/2018-06-01/runtime/";
  if (req.path.rfind(prefix, 0) != 0) {
    res.status = 404;
    res.body = R"({"errorMessage":"unknown path"})";
    return;
  }
  std::string rest = req.path.substr(prefix.size());
  std::lock_guard lock(mu_);
  if (req.method == "GET" && rest == "invocation/next") {
    ++next_calls_;
    if (queue_.empty()) {
      res.hang = true;
      return;
    }
    auto [id, event] = std::move(queue_.front());
    queue_.erase(queue_.begin());
    res.headers.emplace_back("Lambda-Runtime-Aws-Request-Id", id);
    auto deadline =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(5))
            .count();
    res.headers.emplace_back("Lambda-Runtime-Deadline-Ms", std::to_string(deadline));
    res.headers.emplace_back("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:123456789012:function:test");
    res.body = std::move(event);
    return;
  }
  if (req.method != "POST") {
    res.status = 405;
    return;
  }
  Answer a;
  const std::string* type = req.header("lambda-runtime-function-error-type");
  if (type) a.error_type = *type;
  a.body = req.body;
  if (rest == "init/error") {
    a.kind = "init_error";
  } else if (rest.rfind("invocation/", 0) == 0) {
    std::string tail = rest.substr(std::string("invocation/").size());
    size_t slash = tail.find('/');
    if (slash == std::string::npos) {
      res.status = 404;
      return;
    }
    a.request_id = tail.substr(0, slash);
    a.kind = tail.substr(slash + 1);
    if (a.kind != "response" && a.kind != "error") {
      res.status = 404;
      return;
    }
  } else {
    res.status = 404;
    return;
  }
  answers_.push_back(std::move(a));
  cv_.notify_all();
  res.status = 202;
  res.body = R"({"status":"OK"})";
}

std::optional<RuntimeApiServer::Answer> RuntimeApiServer::wait_answer(
    const std::string& request_id, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<Answer> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& a : answers_)
      if (a.request_id == request_id) {
        found = a;
        return true;
      }
    return false;
  });
  return found;
}

std::vector<RuntimeApiServer::Answer> RuntimeApiServer::answers() {
  std::lock_guard lock(mu_);
  return answers_;
}

int RuntimeApiServer::next_calls() {
  std::lock_guard lock(mu_);
  return next_calls_;
}

}  // namespace cascade::testing
