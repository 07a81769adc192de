#include "engine/source_clients.h"

namespace cascade {

SourceClients make_source_clients(const SourceSpec& src, std::vector<double> quota_reserve,
                                  Clock& clock) {
  SourceClients c;
  c.limiter = std::make_unique<RateLimiter>(src.rate_limit.per_second, src.rate_limit.burst, clock);
  HttpClientOptions ho;
  ho.max_connections = src.max_connections;
  ho.timeout = src.timeout;
  ho.retry = RetryPolicy{src.retry.attempts, src.retry.backoff_min, src.retry.backoff_max};
  ho.limiter = c.limiter.get();
  if (src.auth.kind != AuthSpec::Kind::None) ho.auth = &src.auth;
  if (src.quota.requests > 0) {
    c.quota = std::make_unique<QuotaLedger>(src.quota.requests, src.quota.per, clock,
                                            std::move(quota_reserve));
    for (const auto& [requests, per] : src.quota.more_windows) c.quota->add_window(requests, per);
    ho.quota = c.quota.get();
  }
  c.http = std::make_unique<HttpClient>(ho);
  return c;
}

}  // namespace cascade
