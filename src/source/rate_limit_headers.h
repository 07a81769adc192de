// What a vendor's rate-limit headers say: the IETF draft's RateLimit-Limit / -Remaining / -Reset
// (and RateLimit-Policy "N;w=SECONDS"), or the older X-RateLimit-Limit / -Remaining / -Reset
// that GitHub and most vendors send. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace cascade {

struct RateLimitInfo {
  std::optional<double> limit;      // requests per window
  std::optional<double> remaining;  // left in the current window
  // When the current window ends, as a wait from `now`: RateLimit-Reset is delta-seconds,
  // X-RateLimit-Reset usually a Unix time; a value above 1e9 is taken as a Unix time in either.
  std::optional<Duration> reset;
  // The reset came in whole seconds (rounded up by the vendor): the window may end up to a
  // second earlier than `reset` says.
  bool reset_whole_seconds = false;
  // The window's length when the vendor states it (RateLimit-Policy "20;w=1", or a "w=" in
  // RateLimit-Limit as early drafts had it).
  std::optional<Duration> window;
};

// Reads the headers of one response (names lower-cased, as HttpResponse has them). The IETF
// names win over the X- ones, member by member. Unreadable values count as absent; never throws.
RateLimitInfo parse_rate_limit_headers(
    const std::vector<std::pair<std::string, std::string>>& headers, TimePoint now);

// Keeps the best estimate of the vendor's window from successive responses: the stated window
// when there is one, else the longest reset seen (a window is at least as long as any reset in
// it; whole-second resets of a Unix time are floored to stay within the window), at least 1 s.
// Not thread-safe (one per client loop).
class VendorWindowEstimate {
 public:
  // The window after taking `info` into account; nullopt when nothing is known yet.
  std::optional<Duration> observe(const RateLimitInfo& info);
  // Starts from a window known before (an earlier run's).
  void seed(Duration window) { longest_ = std::max(longest_, window); }

 private:
  Duration longest_{0};
};

}  // namespace cascade
