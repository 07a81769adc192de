// ApiService: the vendor API (branches/employees/sales) and admin endpoints of cascade-sim over a
// Company. Thread-safe: reads share a lock, /admin/advance takes it exclusively.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "sim/company.h"
#include "sim/http_server.h"

namespace cascade::sim {

// The one place every vendor API response passes through, so faults (429 quotas, 5xx, stalls,
// resets, truncated or malformed bodies, wrong shapes) can be added without touching handlers.
// Admin endpoints bypass it. Implementations must be thread-safe.
class FaultPlan {
 public:
  virtual ~FaultPlan() = default;
  // Called before the handler. Returning true means `res` is the answer and the handler is skipped.
  virtual bool before(const HttpRequest& req, HttpResponse& res) {
    (void)req;
    (void)res;
    return false;
  }
  // Called after the handler with its response, which it may alter.
  virtual void after(const HttpRequest& req, HttpResponse& res) {
    (void)req;
    (void)res;
  }
};

class ApiService {
 public:
  // Throws std::invalid_argument if the config is invalid. A null plan means no faults.
  explicit ApiService(SimConfig cfg, std::shared_ptr<FaultPlan> faults = nullptr);

  // Answers one request (any path); never throws for bad input, which becomes a 4xx JSON error.
  void handle(const HttpRequest& req, HttpResponse& res);

  // Runs fn with shared (read) access to the company.
  template <class F>
  auto read(F&& fn) const {
    std::shared_lock lock(mu_);
    return fn(company_);
  }
  AdvanceSummary advance(int64_t ticks);

  // {"requests":{"/sales":{"200":N,...},...},"total":N}
  std::string stats_json() const;

 private:
  void serve_api(const HttpRequest& req, HttpResponse& res);
  void count(const std::string& path, int status);

  mutable std::shared_mutex mu_;
  Company company_;
  std::shared_ptr<FaultPlan> faults_;
  mutable std::mutex stats_mu_;
  std::map<std::string, std::map<int, uint64_t>> stats_;
};

std::string summary_json(const AdvanceSummary& s, int64_t tick);

}  // namespace cascade::sim
