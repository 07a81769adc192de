#include "source/retry.h"

#include <algorithm>
#include <random>

namespace cascade {

Duration backoff_delay(const RetryPolicy& policy, int attempt) {
  int64_t lo = std::max<int64_t>(1, policy.min.count());
  int64_t hi = std::max<int64_t>(1, policy.max.count());
  // 2^40 ms is years: clamping the exponent avoids overflow without changing the result.
  int shift = std::clamp(attempt - 1, 0, 40);
  int64_t cap = lo > (hi >> shift) ? hi : std::min(hi, lo << shift);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> dist(0, cap);
  return Duration(std::max<int64_t>(1, dist(rng)));
}

bool is_retryable_status(int status) {
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

}  // namespace cascade
