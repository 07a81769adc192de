// SharedBudget: for the length of a run on a store that several processes share (one whose
// Store::coordination() is set), the source's RateLimiter draws every request from the budget
// kept by the store's Coordination instead of its own bucket, so the vendor sees the configured
// rate and its own limit held by all workers together. On a store one process owns it does
// nothing, and the limiter stays exactly as it is. Not thread-safe: the engine's thread.
#pragma once

#include <memory>
#include <string>

#include "source/quota.h"
#include "source/rate_limiter.h"
#include "store/store.h"

namespace cascade {

class SharedBudget {
 public:
  // Shares `limiter` and `quota` (either may be null) through `store`'s coordination under the
  // budget named `budget` (the pipeline's name: every worker of a pipeline draws from the same
  // one). Null when there is nothing to share.
  static std::unique_ptr<SharedBudget> attach(Store& store, RateLimiter* limiter,
                                              QuotaLedger* quota, const std::string& budget);
  ~SharedBudget();  // the limiter and the ledger count alone again
  SharedBudget(const SharedBudget&) = delete;
  SharedBudget& operator=(const SharedBudget&) = delete;

 private:
  SharedBudget(RateLimiter* limiter, QuotaLedger* quota) : limiter_(limiter), quota_(quota) {}
  RateLimiter* limiter_;
  QuotaLedger* quota_;
};

}  // namespace cascade
