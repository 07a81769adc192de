#include "engine/shared_budget.h"

namespace cascade {
namespace {

// The source part's view of the store's Coordination (neither knows the other).
class CoordinatedRate : public SharedRate {
 public:
  CoordinatedRate(Coordination& c, std::string budget) : c_(c), budget_(std::move(budget)) {}
  Grant lease(int want, double interval_ms, double tolerance_ms, double horizon_ms) override {
    Coordination::RateAsk ask;
    ask.want = want;
    ask.interval_ms = interval_ms;
    ask.tolerance_ms = tolerance_ms;
    ask.horizon_ms = horizon_ms;
    Coordination::RateGrant g = c_.lease_rate(budget_, ask);
    return Grant{g.first_ms, g.interval_ms, g.count, g.now_ms, g.vendor_limit, g.vendor_window_ms};
  }
  void publish_vendor_limit(double limit, int64_t window_ms) override {
    c_.publish_vendor_limit(budget_, limit, window_ms);
  }
  void pause(int64_t until_ms) override { c_.pause_rate(budget_, until_ms); }

 private:
  Coordination& c_;
  const std::string budget_;
};

class CoordinatedQuota : public SharedQuota {
 public:
  CoordinatedQuota(Coordination& c, std::string budget) : c_(c), budget_(std::move(budget)) {}
  int64_t take(int64_t per_ms, int64_t start_ms, int64_t requests, int64_t want) override {
    return c_.take_quota(budget_, per_ms, start_ms, requests, want);
  }

 private:
  Coordination& c_;
  const std::string budget_;
};

}  // namespace

std::unique_ptr<SharedBudget> SharedBudget::attach(Store& store, RateLimiter* limiter,
                                                   QuotaLedger* quota, const std::string& budget) {
  Coordination* c = store.coordination();
  if (!c || (!limiter && !quota)) return nullptr;
  if (limiter) limiter->share(std::make_shared<CoordinatedRate>(*c, "rate:" + budget));
  if (quota) quota->share(std::make_shared<CoordinatedQuota>(*c, "quota:" + budget));
  return std::unique_ptr<SharedBudget>(new SharedBudget(limiter, quota));
}

SharedBudget::~SharedBudget() {
  if (limiter_) limiter_->share(nullptr);
  if (quota_) quota_->share(nullptr);
}

}  // namespace cascade
