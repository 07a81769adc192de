// Retry policy for HTTP tries: which failures are worth another try and how long to wait.
// Pure functions, thread-safe (backoff_delay uses a thread-local RNG).
#pragma once

#include <chrono>

#include "core/clock.h"

namespace cascade {

struct RetryPolicy {
  int attempts = 4;  // tries in all, the first included (1 = never retry)
  Duration min = std::chrono::milliseconds(200);
  Duration max = std::chrono::seconds(30);
};

// Full-jitter exponential backoff before try `attempt` + 1 (attempt = tries made so far, >= 1):
// uniform in [0, min(max, min * 2^(attempt-1))], never below 1ms. Out-of-range input is clamped.
Duration backoff_delay(const RetryPolicy& policy, int attempt);

// 408, 429 and 5xx: the server may answer differently next time.
bool is_retryable_status(int status);

}  // namespace cascade
