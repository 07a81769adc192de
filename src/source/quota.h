// QuotaLedger: the vendor's hard budget — N requests per fixed window (aligned to the epoch, from
// a second to a day) — shared by every stage, with optional reserved shares so that a busy parent
// cannot starve its children. Its state can be saved and restored so the budget survives
// restarts. Thread-safe (one mutex; nothing blocks).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace cascade {

class QuotaLedger {
 public:
  // `reserve[c]` is the share (0..1) of each window kept for requests of class c; classes beyond
  // the vector reserve nothing. Throws std::invalid_argument if requests < 1, per <= 0 or the
  // shares add up to 1 or more.
  QuotaLedger(int64_t requests, Duration per, Clock& clock, std::vector<double> reserve = {});

  // nullopt when a request of class `cls` may be sent now; it is then counted. Otherwise
  // nothing is counted and the result is when the window reopens.
  std::optional<TimePoint> try_take(size_t cls);
  // Like try_take without counting.
  std::optional<TimePoint> check(size_t cls) const;

  int64_t used() const;  // in the current window
  int64_t limit() const { return requests_; }
  TimePoint window_end() const;

  // "window_start_ms used_total used_class0 used_class1 ..." — restore() accepts what
  // serialize() wrote; a saved window that has ended restores as a fresh window. Malformed
  // text is ignored (a fresh window).
  std::string serialize() const;
  void restore(std::string_view saved);

 private:
  void roll(TimePoint now) const;  // caller holds mu_
  std::optional<TimePoint> check_locked(size_t cls, TimePoint now) const;

  const int64_t requests_;
  const Duration per_;
  Clock& clock_;
  std::vector<int64_t> reserved_;  // requests reserved per class
  mutable std::mutex mu_;
  mutable int64_t window_start_ms_ = 0;
  mutable int64_t used_ = 0;
  mutable std::vector<int64_t> used_by_class_;
};

}  // namespace cascade
