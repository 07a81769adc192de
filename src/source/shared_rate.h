// SharedRate and SharedPacer: the request budget of a RateLimiter when several processes share
// one vendor (RateLimiter::share). SharedRate is the budget's keeper (a database row many workers
// lease send slots from; the engine adapts the store's Coordination to it); SharedPacer is this
// process's side: a thread that leases slots ahead of need, so the HTTP loop never waits on the
// keeper, and hands them out at their time.
//
// Why slots rather than tokens: the keeper hands out send times spaced by an interval, whoever
// asks, so requests from all workers together are evenly spread. A slot may be used from its
// time until `stale` after it, never later (it is dropped): a send then lies within `stale` of a
// slot, so any window of W holds the sends of slots within W + stale, which the interval is
// chosen to keep at the vendor's limit (RateLimiter::shared_ask).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/clock.h"

namespace cascade {

class SharedRate {
 public:
  virtual ~SharedRate() = default;
  // Times in milliseconds of the keeper's clock (`now_ms` says where it stood).
  struct Grant {
    double first_ms = 0;
    double interval_ms = 0;
    int count = 0;  // 0: none within the horizon; first_ms is the next free slot
    int64_t now_ms = 0;
    double vendor_limit = 0;  // a vendor limit some worker published; 0 = none
    int64_t vendor_window_ms = 0;
  };
  // Blocking calls, made from the pacer's thread only; they throw on failure.
  virtual Grant lease(int want, double interval_ms, double tolerance_ms, double horizon_ms) = 0;
  virtual void publish_vendor_limit(double limit, int64_t window_ms) = 0;
  virtual void pause(int64_t until_ms) = 0;
};

// The keeper of quota windows several processes count together (QuotaLedger::share).
class SharedQuota {
 public:
  virtual ~SharedQuota() = default;
  // Takes up to `want` requests of the window of `per_ms` that starts at `start_ms` (epoch-aligned,
  // at most `requests` in it) and returns how many it got: 0 when that window is spent. Blocking;
  // throws on failure.
  virtual int64_t take(int64_t per_ms, int64_t start_ms, int64_t requests, int64_t want) = 0;
};

class SharedPacer {
 public:
  struct Ask {
    int want = 1;
    double interval_ms = 0;
    double tolerance_ms = 0;
    double horizon_ms = 0;
    Duration stale{};  // how late after its time a slot may still be used
  };
  // `on_vendor` is called on the pacer's thread (no lock of the pacer held) when the keeper
  // knows a vendor limit this process has not seen from it yet.
  SharedPacer(std::shared_ptr<SharedRate> rate, Clock& clock,
              std::function<void(double limit, Duration window)> on_vendor);
  ~SharedPacer();  // stops the thread; a lease under way is waited for
  SharedPacer(const SharedPacer&) = delete;
  SharedPacer& operator=(const SharedPacer&) = delete;

  // nullopt: a slot is due now and is taken. Otherwise when to ask again (a slot's time, or a
  // short poll while a lease is fetched). Never blocks.
  std::optional<TimePoint> try_take(const Ask& ask);
  // Queued for the thread; never blocks.
  void publish_vendor_limit(double limit, Duration window);
  void pause_until(TimePoint until);

  // How often a keeper that fails is tried again, and how often its failure is logged.
  static constexpr Duration kRetryAfterFailure = std::chrono::seconds(1);
  // How soon the HTTP loop looks again while a lease is being fetched.
  static constexpr Duration kPoll = std::chrono::milliseconds(2);

 private:
  void run();

  std::shared_ptr<SharedRate> rate_;
  Clock& clock_;
  std::function<void(double, Duration)> on_vendor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool fetch_ = false;           // a lease is wanted or under way
  Ask ask_;                      // the latest ask
  std::deque<TimePoint> slots_;  // local clock, ascending
  TimePoint retry_at_{};         // no lease before this (none free within the horizon, failure)
  double offset_ms_ = 0;         // keeper clock minus local clock
  std::optional<std::pair<double, int64_t>> vendor_out_;  // to publish
  std::optional<int64_t> pause_out_;                      // to publish (keeper clock)
  double vendor_seen_ = 0;
  int64_t vendor_window_seen_ = 0;
  TimePoint last_warning_{};
  std::thread thread_;
};

}  // namespace cascade
