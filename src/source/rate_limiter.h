// RateLimiter: a token bucket shared by every stage and worker of a process, so the API sees one
// paced client however many stages run. Once the vendor's own limit is known (learnt from its
// RateLimit headers, or restored from an earlier run) the bucket paces just under it, evenly and
// without bursts, so neither a fixed nor a sliding window ever sees more than the vendor allows.
// Thread-safe (one mutex; no call blocks or sleeps).
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "source/shared_rate.h"

namespace cascade {

class RateLimiter {
 public:
  // `per_second` tokens are added each second up to `burst` (at least 1); the bucket starts full.
  // per_second <= 0 means unlimited (pause_until still applies).
  RateLimiter(double per_second, double burst, Clock& clock);

  // Takes a token if one is available now and returns nullopt. Otherwise takes nothing and
  // returns the earliest time at which one may be (callers retry then; another may win it).
  // Under a vendor limit a token is also refused while `limit` grants already lie within the
  // last window (plus kWindowMargin of it): a burst sent before the limit was known is not
  // followed by a full window's worth of paced requests.
  std::optional<TimePoint> try_acquire();

  // The server throttled us (a 429 with Retry-After): no token is granted before `until`, and the
  // bucket restarts nearly empty then (no burst accrues during the pause). Earlier pauses than the
  // current one are ignored.
  void pause_until(TimePoint until);

  // Adaptive pacing (AIMD): a 429 halves the current rate (down to 1/20 of the ceiling), so a
  // quota the pipeline file overestimated stops causing throttles within seconds; once the
  // vendor's limit is known a 429 only trims it by a tenth (the limit is right, the timing was
  // unlucky). Throttle-free time raises it again by a tenth of the ceiling per second, back to
  // the ceiling: the configured rate, or kVendorShare of the vendor's when that is lower.
  void on_throttled();
  void on_success();

  // The vendor allows `limit` requests per `window` (both positive; otherwise ignored). From then
  // on no more than `limit` grants fall within any window (see try_acquire), and for a window of
  // at most kEvenPacingWindow the ceiling is min(configured rate, kVendorShare * limit / window)
  // (the vendor's alone when the configured rate is unlimited) and the bucket holds at most
  // 1 + kVendorSlack tokens, so requests are spread evenly. A longer window (5000 per hour) is
  // not spread out: a run that fits in it goes at the configured rate. A new limit replaces the
  // old one (vendors change them).
  void set_vendor_limit(double limit, Duration window);
  struct VendorLimit {
    double limit = 0;
    Duration window{};
  };
  std::optional<VendorLimit> vendor_limit() const;
  // "LIMIT WINDOW_MS" of the vendor's limit, or "" when none is known; restore_vendor() takes it
  // back (ignoring malformed or non-positive text, and ignored when a limit is already known:
  // what this process learnt is fresher), so a limit learnt by one run paces the next one from
  // its first request.
  std::string serialize_vendor() const;
  void restore_vendor(std::string_view saved);

  // Share of the vendor's rate paced at: the slack absorbs timer and network jitter so that a
  // sliding window never counts one request too many (see bench/README.md, "Pacing").
  static constexpr double kVendorShare = 0.98;
  // Tokens beyond one the bucket may hold under a vendor limit: a late wake-up is caught up on,
  // but never by more than this fraction of a request interval.
  static constexpr double kVendorSlack = 0.3;
  // Windows up to this long are paced evenly (see set_vendor_limit).
  static constexpr Duration kEvenPacingWindow = std::chrono::seconds(10);
  // Added to the vendor's window when counting our own grants in it (at most 1 s): arrival
  // jitter must not let the vendor see the window one request early.
  static constexpr double kWindowMargin = 0.02;

  // From now on every token comes from `shared`, a budget several processes draw from (the
  // vendor sees them as one client): the configured rate, the adapted rate and the vendor's limit
  // set the spacing of the slots leased from it (see SharedPacer), a learnt vendor limit and a
  // pause are published to it, and a vendor limit another process published is taken up here.
  // nullptr returns to this process's own bucket. Call while no request flows.
  void share(std::shared_ptr<SharedRate> shared);

  double per_second() const { return per_second_; }  // as configured
  double current_rate() const;                       // after adaptation
  double ceiling() const;                            // the rate adaptation returns to

 private:
  void refill(TimePoint now);  // caller holds mu_
  double ceiling_locked() const;
  double capacity_locked() const;
  bool even_locked() const;  // the vendor's window is short enough to pace evenly
  bool paced_locked() const { return per_second_ > 0 || vendor_rate_ > 0; }
  bool bucket_locked() const { return per_second_ > 0 || even_locked(); }
  SharedPacer::Ask shared_ask_locked() const;

  const double per_second_;
  const double burst_;
  Clock& clock_;
  mutable std::mutex mu_;
  double tokens_;
  TimePoint last_;          // time up to which tokens_ is accounted for
  TimePoint paused_until_;  // no token before this
  double rate_;             // current (adapted) rate
  TimePoint last_adjust_;
  double vendor_limit_ = 0;  // 0 = unknown
  Duration vendor_window_{};
  double vendor_rate_ = 0;              // vendor_limit_ per second; 0 = unknown
  std::deque<TimePoint> grants_;        // recent grants, oldest first (see try_acquire)
  std::unique_ptr<SharedPacer> pacer_;  // set while shared
};

}  // namespace cascade
