#include "source/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace cascade {

RateLimiter::RateLimiter(double per_second, double burst, Clock& clock)
    : per_second_(per_second),
      burst_(std::max(1.0, burst)),
      clock_(clock),
      tokens_(std::max(1.0, burst)),
      last_(clock.now()),
      paused_until_(TimePoint::min()),
      rate_(per_second),
      last_adjust_(clock.now()) {}

void RateLimiter::on_throttled() {
  std::lock_guard lock(mu_);
  if (per_second_ <= 0) return;
  TimePoint now = clock_.now();
  refill(now);
  rate_ = std::max(per_second_ / 20.0, rate_ / 2.0);
  tokens_ = std::min(tokens_, 1.0);
  last_adjust_ = now;
}

void RateLimiter::on_success() {
  std::lock_guard lock(mu_);
  if (per_second_ <= 0 || rate_ >= per_second_) return;
  TimePoint now = clock_.now();
  if (now <= last_adjust_) return;
  refill(now);
  double secs = static_cast<double>((now - last_adjust_).count()) / 1000.0;
  rate_ = std::min(per_second_, rate_ + per_second_ * 0.1 * secs);
  last_adjust_ = now;
}

double RateLimiter::current_rate() const {
  std::lock_guard lock(mu_);
  return rate_;
}

void RateLimiter::refill(TimePoint now) {
  if (now <= last_) return;  // clocks may step back; never mint tokens for it
  double elapsed_s = static_cast<double>((now - last_).count()) / 1000.0;
  tokens_ = std::min(burst_, tokens_ + elapsed_s * rate_);
  last_ = now;
}

std::optional<TimePoint> RateLimiter::try_acquire() {
  std::lock_guard lock(mu_);
  TimePoint now = clock_.now();
  if (now < paused_until_) return paused_until_;
  if (per_second_ <= 0) return std::nullopt;
  refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return std::nullopt;
  }
  // Round up so the caller never comes back a moment too early and spins.
  double wait_ms = std::ceil((1.0 - tokens_) * 1000.0 / rate_);
  return std::max(now, last_) + Duration(std::max<int64_t>(1, static_cast<int64_t>(wait_ms)));
}

void RateLimiter::pause_until(TimePoint until) {
  std::lock_guard lock(mu_);
  if (until <= paused_until_) return;
  paused_until_ = until;
  if (per_second_ <= 0) return;
  refill(clock_.now());
  // After a 429 the server wants us slower, not a burst the moment the pause ends: at most one
  // token is ready then, and none accrue during the pause.
  tokens_ = std::min(tokens_, 1.0);
  if (until > last_) last_ = until;
}

}  // namespace cascade
