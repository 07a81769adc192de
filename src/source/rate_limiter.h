// RateLimiter: a token bucket shared by every stage and worker of a process, so the API sees one
// paced client however many stages run. Thread-safe (one mutex; no call blocks or sleeps).
#pragma once

#include <mutex>
#include <optional>

#include "core/clock.h"

namespace cascade {

class RateLimiter {
 public:
  // `per_second` tokens are added each second up to `burst` (at least 1); the bucket starts full.
  // per_second <= 0 means unlimited (pause_until still applies).
  RateLimiter(double per_second, double burst, Clock& clock);

  // Takes a token if one is available now and returns nullopt. Otherwise takes nothing and
  // returns the earliest time at which one may be (callers retry then; another may win it).
  std::optional<TimePoint> try_acquire();

  // The server throttled us (a 429 with Retry-After): no token is granted before `until`, and the
  // bucket restarts nearly empty then (no burst accrues during the pause). Earlier pauses than the
  // current one are ignored.
  void pause_until(TimePoint until);

  // Adaptive pacing (AIMD): a 429 halves the current rate (down to 1/20 of the configured one),
  // so a quota the pipeline file overestimated stops causing throttles within seconds; throttle-
  // free time raises it again by a tenth of the configured rate per second, back to the
  // configured rate.
  void on_throttled();
  void on_success();

  double per_second() const { return per_second_; }  // as configured
  double current_rate() const;                       // after adaptation

 private:
  void refill(TimePoint now);  // caller holds mu_

  const double per_second_;
  const double burst_;
  Clock& clock_;
  mutable std::mutex mu_;
  double tokens_;
  TimePoint last_;          // time up to which tokens_ is accounted for
  TimePoint paused_until_;  // no token before this
  double rate_;             // current (adapted) rate
  TimePoint last_adjust_;
};

}  // namespace cascade
