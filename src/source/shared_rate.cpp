#include "source/shared_rate.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <string>
#include <utility>

namespace cascade {

SharedPacer::SharedPacer(std::shared_ptr<SharedRate> rate, Clock& clock,
                         std::function<void(double limit, Duration window)> on_vendor)
    : rate_(std::move(rate)), clock_(clock), on_vendor_(std::move(on_vendor)) {
  thread_ = std::thread([this] { run(); });
}

SharedPacer::~SharedPacer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::optional<TimePoint> SharedPacer::try_take(const Ask& ask) {
  std::lock_guard lock(mu_);
  ask_ = ask;
  TimePoint now = clock_.now();
  while (!slots_.empty() && slots_.front() + ask.stale < now) slots_.pop_front();
  std::optional<TimePoint> out;
  if (!slots_.empty() && slots_.front() <= now) {
    slots_.pop_front();
  } else if (!slots_.empty()) {
    out = slots_.front();
  } else {
    out = std::max(now + kPoll, retry_at_);
  }
  // Ahead of need: the next lease is fetched while the last slots are still used.
  if (!fetch_ && now >= retry_at_ && slots_.size() * 2 < static_cast<size_t>(ask.want) + 1) {
    fetch_ = true;
    cv_.notify_all();
  }
  return out;
}

void SharedPacer::publish_vendor_limit(double limit, Duration window) {
  std::lock_guard lock(mu_);
  if (limit == vendor_seen_ && window.count() == vendor_window_seen_) return;
  vendor_seen_ = limit;
  vendor_window_seen_ = window.count();
  vendor_out_ = std::make_pair(limit, static_cast<int64_t>(window.count()));
  cv_.notify_all();
}

void SharedPacer::pause_until(TimePoint until) {
  std::lock_guard lock(mu_);
  int64_t keeper = to_millis(until) + static_cast<int64_t>(std::ceil(offset_ms_));
  if (pause_out_ && *pause_out_ >= keeper) return;
  pause_out_ = keeper;
  slots_.clear();  // leased before the vendor objected: not to be used
  cv_.notify_all();
}

void SharedPacer::run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || fetch_ || vendor_out_ || pause_out_; });
    if (stop_) return;
    auto vendor = std::exchange(vendor_out_, std::nullopt);
    auto pause = std::exchange(pause_out_, std::nullopt);
    bool fetch = fetch_;
    Ask ask = ask_;
    lock.unlock();
    std::optional<SharedRate::Grant> grant;
    std::string failure;
    try {
      if (vendor) rate_->publish_vendor_limit(vendor->first, vendor->second);
      if (pause) rate_->pause(*pause);
      if (fetch) grant = rate_->lease(ask.want, ask.interval_ms, ask.tolerance_ms, ask.horizon_ms);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    TimePoint after = clock_.now();
    std::optional<std::pair<double, Duration>> learnt;
    lock.lock();
    if (!failure.empty()) {
      // Nothing is sent on a budget nobody can vouch for: requests wait until the keeper answers.
      retry_at_ = after + kRetryAfterFailure;
      if (after - last_warning_ >= std::chrono::seconds(10)) {
        last_warning_ = after;
        lock.unlock();
        spdlog::warn("shared request budget unavailable, requests wait: {}", failure);
        lock.lock();
      }
    } else if (grant) {
      // The keeper's clock against ours, taken when its answer arrived: a slot is never
      // placed earlier than the keeper meant.
      offset_ms_ = static_cast<double>(grant->now_ms) - static_cast<double>(to_millis(after));
      for (int i = 0; i < grant->count; ++i) {
        double local = grant->first_ms + i * grant->interval_ms - offset_ms_;
        slots_.push_back(TimePoint(Duration(static_cast<int64_t>(std::ceil(local)))));
      }
      if (grant->count == 0) {
        double next_local = grant->first_ms - ask.horizon_ms - offset_ms_;
        retry_at_ = std::max(after + kPoll, TimePoint(Duration(static_cast<int64_t>(next_local))));
      } else {
        retry_at_ = TimePoint{};
      }
      if (grant->vendor_limit > 0 && grant->vendor_window_ms > 0 &&
          (grant->vendor_limit != vendor_seen_ || grant->vendor_window_ms != vendor_window_seen_)) {
        vendor_seen_ = grant->vendor_limit;
        vendor_window_seen_ = grant->vendor_window_ms;
        learnt = std::make_pair(grant->vendor_limit, Duration(grant->vendor_window_ms));
      }
    }
    if (fetch) fetch_ = false;
    if (learnt && on_vendor_) {
      lock.unlock();
      on_vendor_(learnt->first, learnt->second);
      lock.lock();
    }
  }
}

}  // namespace cascade
