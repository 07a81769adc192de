// Time for everything that schedules or expires (queues, retries, rate limits), injectable so
// tests can move time by hand. SystemClock and ManualClock are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace cascade {

using Duration = std::chrono::milliseconds;
// Milliseconds since the Unix epoch.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, Duration>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
  // A process-wide instance for code that needs no other clock.
  static SystemClock& instance() {
    static SystemClock c;
    return c;
  }
};

// A clock that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint(Duration(1'700'000'000'000)))
      : ms_(start.time_since_epoch().count()) {}
  TimePoint now() const override { return TimePoint(Duration(ms_.load())); }
  void advance(Duration d) { ms_ += d.count(); }
  void set(TimePoint t) { ms_ = t.time_since_epoch().count(); }

 private:
  std::atomic<int64_t> ms_;
};

inline int64_t to_millis(TimePoint t) {
  return t.time_since_epoch().count();
}
inline TimePoint from_millis(int64_t ms) {
  return TimePoint(Duration(ms));
}
// ISO-8601 UTC with milliseconds, e.g. 2026-11-25T21:28:26.123Z.
std::string format_time(TimePoint t);

}  // namespace cascade
