#include "source/quota.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace cascade {

QuotaLedger::QuotaLedger(int64_t requests, Duration per, Clock& clock, std::vector<double> reserve)
    : requests_(requests), per_(per), clock_(clock) {
  if (requests < 1) throw std::invalid_argument("quota: requests must be at least 1");
  if (per.count() <= 0) throw std::invalid_argument("quota: the window must be positive");
  double total = 0;
  for (double r : reserve) {
    if (r < 0 || r >= 1) throw std::invalid_argument("quota: a reserved share must be in [0, 1)");
    total += r;
    reserved_.push_back(static_cast<int64_t>(std::floor(r * static_cast<double>(requests))));
  }
  if (total >= 1) throw std::invalid_argument("quota: reserved shares must add up to less than 1");
  used_by_class_.assign(reserved_.size(), 0);
  roll(clock_.now());
}

void QuotaLedger::roll(TimePoint now) const {
  int64_t ms = to_millis(now);
  int64_t start = ms - (ms % per_.count());
  if (start != window_start_ms_) {
    window_start_ms_ = start;
    used_ = 0;
    std::fill(used_by_class_.begin(), used_by_class_.end(), 0);
  }
}

std::optional<TimePoint> QuotaLedger::check_locked(size_t cls, TimePoint now) const {
  roll(now);
  // Requests still owed to other classes' reserves are not ours to spend.
  int64_t held_for_others = 0;
  for (size_t c = 0; c < reserved_.size(); ++c)
    if (c != cls) held_for_others += std::max<int64_t>(0, reserved_[c] - used_by_class_[c]);
  if (used_ + 1 + held_for_others <= requests_) return std::nullopt;
  return from_millis(window_start_ms_ + per_.count());
}

std::optional<TimePoint> QuotaLedger::check(size_t cls) const {
  std::lock_guard lock(mu_);
  return check_locked(cls, clock_.now());
}

std::optional<TimePoint> QuotaLedger::try_take(size_t cls) {
  std::lock_guard lock(mu_);
  auto blocked = check_locked(cls, clock_.now());
  if (blocked) return blocked;
  ++used_;
  if (cls < used_by_class_.size()) ++used_by_class_[cls];
  return std::nullopt;
}

int64_t QuotaLedger::used() const {
  std::lock_guard lock(mu_);
  roll(clock_.now());
  return used_;
}

TimePoint QuotaLedger::window_end() const {
  std::lock_guard lock(mu_);
  roll(clock_.now());
  return from_millis(window_start_ms_ + per_.count());
}

std::string QuotaLedger::serialize() const {
  std::lock_guard lock(mu_);
  roll(clock_.now());
  std::ostringstream out;
  out << window_start_ms_ << ' ' << used_;
  for (int64_t u : used_by_class_) out << ' ' << u;
  return out.str();
}

void QuotaLedger::restore(std::string_view saved) {
  std::lock_guard lock(mu_);
  std::istringstream in{std::string(saved)};
  int64_t start = 0, used = 0;
  if (!(in >> start >> used) || used < 0) return;
  std::vector<int64_t> by_class(used_by_class_.size(), 0);
  for (auto& u : by_class)
    if (!(in >> u)) u = 0;
  roll(clock_.now());
  if (start != window_start_ms_) return;  // that window is over
  used_ = used;
  used_by_class_ = std::move(by_class);
}

}  // namespace cascade
