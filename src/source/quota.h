// QuotaLedger: the vendor's hard budgets — N requests per fixed window (aligned to the epoch, from
// a second to a day), one or several windows at once (10/s and 100000/day) — shared by every stage,
// with optional reserved shares so that a busy parent cannot starve its children. Its state can be
// saved and restored so the budget survives restarts. Thread-safe (one mutex; nothing blocks).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "source/shared_rate.h"

namespace cascade {

class QuotaLedger {
 public:
  // `reserve[c]` is the share (0..1) of each window kept for requests of class c; classes beyond
  // the vector reserve nothing. Throws std::invalid_argument if requests < 1, per <= 0 or the
  // shares add up to 1 or more.
  QuotaLedger(int64_t requests, Duration per, Clock& clock, std::vector<double> reserve = {});
  ~QuotaLedger();

  // Adds another window that must also allow each request (same reserved shares). Throws
  // std::invalid_argument like the constructor. Not to be called once requests flow.
  void add_window(int64_t requests, Duration per);

  // nullopt when a request of class `cls` may be sent now; it is then counted. Otherwise
  // nothing is counted and the result is when the window reopens.
  std::optional<TimePoint> try_take(size_t cls);
  // Like try_take without counting.
  std::optional<TimePoint> check(size_t cls) const;

  // Each window as it stands now, in the order they were given.
  struct WindowState {
    int64_t requests = 0;
    Duration per{};
    int64_t used = 0;
    TimePoint ends;
  };
  std::vector<WindowState> windows() const;

  int64_t used() const;  // in the current first window
  int64_t limit() const;
  TimePoint window_end() const;  // of the first window

  // Per window "window_start_ms used_total used_class0 used_class1 ...", windows separated by
  // ';' — restore() accepts what serialize() wrote; a saved window that has ended restores as a
  // fresh window. Malformed text is ignored (fresh windows).
  std::string serialize() const;
  void restore(std::string_view saved);

  // From now on a request is also counted in `shared`, the count of every process drawing on
  // this budget (the vendor's quota holds across all of them): a thread leases a few requests of
  // each window at a time, and while a window's lease is being fetched check() and try_take()
  // say "a moment" (never block); a window the keeper says is spent waits for its end. Reserved
  // shares stay this process's. nullptr returns to counting alone. Call while no request flows.
  void share(std::shared_ptr<SharedQuota> shared);

 private:
  struct Window {
    int64_t requests = 0;
    int64_t per_ms = 0;
    std::vector<int64_t> reserved;  // requests reserved per class
    int64_t start_ms = 0;
    int64_t used = 0;
    std::vector<int64_t> used_by_class;
    // Shared: requests of this window leased from the keeper and not yet used; the keeper said
    // the window is spent; a lease is asked for.
    int64_t leased = 0;
    bool spent = false;
    bool pending = false;
    void roll(TimePoint now);
    std::optional<TimePoint> check(size_t cls, TimePoint now);
  };

  // With a keeper: nullopt when every window has a leased request; otherwise when to look
  // again (asking for leases). mu_ held.
  std::optional<TimePoint> shared_check_locked(TimePoint now) const;

  struct Link;  // the keeper and the thread that leases from it
  Clock& clock_;
  std::vector<double> shares_;
  mutable std::mutex mu_;
  mutable std::vector<Window> windows_;
  std::unique_ptr<Link> link_;
};

}  // namespace cascade
