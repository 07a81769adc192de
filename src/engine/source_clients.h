// SourceClients: the vendor's side of a run as the pipeline's `source:` configures it — the rate
// limiter every request draws from, the quota ledger (when the source has a quota) and the HTTP
// client using both. One definition for every process that runs a plan (the CLI's commands, the
// Lambda runtime), so they cannot pace or retry differently. Not thread-safe to build; the
// members are as thread-safe as their own classes say.
#pragma once

#include <memory>
#include <vector>

#include "config/pipeline.h"
#include "core/clock.h"
#include "source/http_client.h"
#include "source/quota.h"
#include "source/rate_limiter.h"

namespace cascade {

struct SourceClients {
  std::unique_ptr<RateLimiter> limiter;
  std::unique_ptr<QuotaLedger> quota;  // null when the source has no quota
  std::unique_ptr<HttpClient> http;    // paced by `limiter`, counted by `quota`
};

// Builds them from `source` (which must outlive them: the client keeps its auth settings);
// `quota_reserve` is Plan::quota_reserve().
SourceClients make_source_clients(const SourceSpec& source, std::vector<double> quota_reserve,
                                  Clock& clock);

}  // namespace cascade
