// ApiService: the vendor API (branches/employees/sales) and admin endpoints of cascade-sim over a
// Company. Thread-safe: reads share a lock, /admin/advance takes it exclusively.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "sim/auth.h"
#include "sim/company.h"
#include "sim/http_server.h"
#include "sim/paging.h"

namespace cascade::sim {

// Fills a response with the true answer to a vendor request.
using ApiHandler = std::function<void(HttpResponse&)>;

// The one place every vendor API response passes through, so faults (429 quotas, 5xx, stalls,
// resets, truncated or malformed bodies, wrong shapes) can be added without touching handlers.
// Admin endpoints and /healthz bypass it. Implementations must be thread-safe.
class FaultPlan {
 public:
  virtual ~FaultPlan() = default;
  // Answers one vendor request. `handler` fills res with the true answer; a plan may skip it (a
  // 429), alter what it wrote (a truncated body) or ask the server to misbehave (delay, reset).
  virtual void serve(const HttpRequest& req, HttpResponse& res, const ApiHandler& handler) {
    (void)req;
    handler(res);
  }
  // Answers /admin/faults; false if this plan cannot be inspected or changed (then 404).
  virtual bool admin(const HttpRequest& req, HttpResponse& res) {
    (void)req;
    (void)res;
    return false;
  }
  // A JSON object counting what was injected, shown under "faults" in /admin/stats.
  virtual std::string stats_json() const { return "{}"; }
};

class ApiService {
 public:
  // Throws std::invalid_argument if the config is invalid. A null plan means an empty Faults plan
  // (on the system clock) that /admin/faults can still change.
  // `paging` splits the listings into pages; the default serves each listing whole.
  explicit ApiService(SimConfig cfg, std::shared_ptr<FaultPlan> faults = nullptr,
                      PagingConfig paging = {});

  // Answers one request (any path); never throws for bad input, which becomes a 4xx JSON error.
  // Vendor paths: GET /branches?branch=, /employees?branch_id=, /sales?employee_id=, and
  // POST /sales/search with a JSON body {"employee_id": N} (N a JSON integer), which answers as
  // /sales does. With auth set, each needs the credential (401 otherwise) and POST /oauth/token
  // issues tokens.
  void handle(const HttpRequest& req, HttpResponse& res);

  // The credential vendor requests must carry; set before serving. Null: none.
  void set_auth(std::shared_ptr<SimAuth> auth) { auth_ = std::move(auth); }

  // Runs fn with shared (read) access to the company.
  template <class F>
  auto read(F&& fn) const {
    std::shared_lock lock(mu_);
    return fn(company_);
  }
  AdvanceSummary advance(int64_t ticks);

  // {"requests":{"/sales":{"200":N,...},...},"total":N,"faults":{...}} (see Faults::stats_json)
  std::string stats_json() const;

 private:
  void serve_api(const HttpRequest& req, HttpResponse& res);
  void serve_true(const HttpRequest& req, HttpResponse& res);
  void serve_paged(const HttpRequest& req, HttpResponse& res);
  void count(const std::string& path, int status);

  mutable std::shared_mutex mu_;
  Company company_;
  std::shared_ptr<FaultPlan> faults_;
  PagingConfig paging_;
  std::shared_ptr<SimAuth> auth_;
  mutable std::mutex stats_mu_;
  std::map<std::string, std::map<int, uint64_t>> stats_;
};

std::string summary_json(const AdvanceSummary& s, int64_t tick);

}  // namespace cascade::sim
