#include "source/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

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

bool RateLimiter::even_locked() const {
  return vendor_rate_ > 0 && vendor_window_ <= kEvenPacingWindow;
}

double RateLimiter::ceiling_locked() const {
  if (!even_locked()) return per_second_;
  double vendor = vendor_rate_ * kVendorShare;
  return per_second_ > 0 ? std::min(per_second_, vendor) : vendor;
}

double RateLimiter::capacity_locked() const {
  return even_locked() ? std::min(burst_, 1.0 + kVendorSlack) : burst_;
}

double RateLimiter::ceiling() const {
  std::lock_guard lock(mu_);
  return ceiling_locked();
}

void RateLimiter::on_throttled() {
  std::lock_guard lock(mu_);
  if (!bucket_locked()) return;
  TimePoint now = clock_.now();
  refill(now);
  double top = ceiling_locked();
  rate_ = std::max(top / 20.0, vendor_rate_ > 0 ? rate_ * 0.9 : rate_ / 2.0);
  tokens_ = std::min(tokens_, 1.0);
  last_adjust_ = now;
}

void RateLimiter::on_success() {
  std::lock_guard lock(mu_);
  double top = ceiling_locked();
  if (!bucket_locked() || rate_ >= top) return;
  TimePoint now = clock_.now();
  if (now <= last_adjust_) return;
  refill(now);
  double secs = static_cast<double>((now - last_adjust_).count()) / 1000.0;
  rate_ = std::min(top, rate_ + top * 0.1 * secs);
  last_adjust_ = now;
}

double RateLimiter::current_rate() const {
  std::lock_guard lock(mu_);
  return rate_;
}

void RateLimiter::set_vendor_limit(double limit, Duration window) {
  if (!(limit > 0) || window.count() <= 0) return;
  std::lock_guard lock(mu_);
  if (limit == vendor_limit_ && window == vendor_window_) return;
  refill(clock_.now());
  double before = ceiling_locked();
  vendor_limit_ = limit;
  vendor_window_ = window;
  vendor_rate_ = limit * 1000.0 / static_cast<double>(window.count());
  double top = ceiling_locked();
  // A lower ceiling applies at once; a higher one (the vendor raised its limit) is climbed to
  // by on_success like any recovery, unless we were running at the old ceiling.
  if (rate_ <= 0 || rate_ > top || rate_ >= before) rate_ = top;
  tokens_ = std::min(tokens_, capacity_locked());
  if (pacer_) pacer_->publish_vendor_limit(limit, window);
}

std::optional<RateLimiter::VendorLimit> RateLimiter::vendor_limit() const {
  std::lock_guard lock(mu_);
  if (vendor_rate_ <= 0) return std::nullopt;
  return VendorLimit{vendor_limit_, vendor_window_};
}

std::string RateLimiter::serialize_vendor() const {
  std::lock_guard lock(mu_);
  if (vendor_rate_ <= 0) return {};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g %lld", vendor_limit_,
                static_cast<long long>(vendor_window_.count()));
  return buf;
}

void RateLimiter::restore_vendor(std::string_view saved) {
  std::string text(saved);
  char* end = nullptr;
  double limit = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return;
  char* end2 = nullptr;
  long long window_ms = std::strtoll(end, &end2, 10);
  if (end2 == end || !std::isfinite(limit)) return;
  // Within reason only: a damaged value must not stall the pipeline for hours.
  if (limit < 1e-6 || window_ms < 1 || window_ms > 7LL * 86'400'000) return;
  {
    std::lock_guard lock(mu_);
    if (vendor_rate_ > 0) return;
  }
  set_vendor_limit(limit, Duration(window_ms));
}

void RateLimiter::share(std::shared_ptr<SharedRate> shared) {
  std::unique_ptr<SharedPacer> old;
  {
    std::lock_guard lock(mu_);
    old = std::move(pacer_);
    if (shared)
      pacer_ = std::make_unique<SharedPacer>(
          std::move(shared), clock_,
          [this](double limit, Duration window) { set_vendor_limit(limit, window); });
    if (pacer_ && vendor_rate_ > 0) pacer_->publish_vendor_limit(vendor_limit_, vendor_window_);
  }
  // Its thread may be calling set_vendor_limit: joined outside the lock.
  old.reset();
}

SharedPacer::Ask RateLimiter::shared_ask_locked() const {
  SharedPacer::Ask a;
  double rate_interval = rate_ > 0 ? 1000.0 / rate_ : 0;
  if (vendor_rate_ > 0) {
    // Sends lie within `stale` of their slot, so a window of W holds the slots of W + stale:
    // spaced so that those are at most the vendor's limit (half a percent to spare for rounding).
    double w = static_cast<double>(vendor_window_.count());
    double stale = std::clamp(w * kWindowMargin, 2.0, 1000.0);
    double limit = std::max(1.0, std::floor(vendor_limit_));
    a.interval_ms = std::max(rate_interval, (w + stale) / limit * 1.005);
    a.stale = Duration(static_cast<int64_t>(stale));
  } else {
    a.interval_ms = rate_interval;
    a.tolerance_ms = (burst_ - 1.0) * rate_interval;
    a.stale = Duration(static_cast<int64_t>(a.tolerance_ms + std::max(rate_interval, 50.0)));
  }
  a.want = static_cast<int>(std::clamp(std::ceil(50.0 / a.interval_ms), 1.0, 64.0));
  a.horizon_ms = std::max(4.0 * a.interval_ms, 100.0);
  return a;
}

void RateLimiter::refill(TimePoint now) {
  if (now <= last_) return;  // clocks may step back; never mint tokens for it
  double elapsed_s = static_cast<double>((now - last_).count()) / 1000.0;
  tokens_ = std::min(capacity_locked(), tokens_ + elapsed_s * rate_);
  last_ = now;
}

namespace {
// Grants remembered before any vendor limit is known, and at most ever: enough for a burst sent
// before the first response to count once the limit is learnt, bounded in memory.
constexpr Duration kUnknownWindowMemory = std::chrono::seconds(10);
constexpr size_t kMaxGrantsRemembered = 200'000;
}  // namespace

std::optional<TimePoint> RateLimiter::try_acquire() {
  std::lock_guard lock(mu_);
  TimePoint now = clock_.now();
  if (now < paused_until_) return paused_until_;
  if (!paced_locked()) return std::nullopt;
  if (pacer_) return pacer_->try_take(shared_ask_locked());
  Duration span = kUnknownWindowMemory;
  size_t allowed = 0;  // grants per span; 0 = not counted
  if (vendor_rate_ > 0) {
    auto margin = std::min<int64_t>(
        1000, static_cast<int64_t>(
                  std::ceil(static_cast<double>(vendor_window_.count()) * kWindowMargin)));
    span = vendor_window_ + Duration(margin);
    allowed = static_cast<size_t>(std::max(1.0, std::floor(vendor_limit_)));
  }
  while (!grants_.empty() &&
         (grants_.front() <= now - span || grants_.size() > kMaxGrantsRemembered))
    grants_.pop_front();
  if (allowed && grants_.size() >= allowed) return grants_[grants_.size() - allowed] + span;
  if (!bucket_locked()) {
    grants_.push_back(now);
    return std::nullopt;
  }
  refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    grants_.push_back(now);
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
  if (pacer_) pacer_->pause_until(until);
  if (!paced_locked()) return;
  refill(clock_.now());
  // After a 429 the server wants us slower, not a burst the moment the pause ends: at most one
  // token is ready then, and none accrue during the pause.
  tokens_ = std::min(tokens_, 1.0);
  if (until > last_) last_ = until;
}

}  // namespace cascade
