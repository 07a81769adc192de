// Coordination: what the processes working on one shared store (several `cascade sync` / `cascade
// run` on one PostgreSQL database, on one host or many) must agree on, kept by the backend:
//   - the request budget: a schedule of send slots every worker draws from, so the vendor sees
//     the configured rate and its own limit held by all of them together, and the vendor limit
//     one worker learnt reaches the others;
//   - one leader among the daemons (the one that fires scheduled ticks and evaluates alarms),
//     handed over when it dies;
//   - monotonic markers (the last tick fired), so a tick fires once even across a change of leader.
// A store one process owns (SQLite: one process per file) has none: Store::coordination() is null
// and every process-local mechanism works alone, as before.
//
// Times on this interface are milliseconds of the backend's clock (the one clock all hosts
// share); each grant carries the backend's "now" so a caller maps them onto its own clock.
// Every call may do I/O and block briefly (never behind the store's unit of work: the backend
// uses a connection of its own, in autocommit, so a grant is never rolled back nor held behind
// a long transaction). A failure of the backend throws StorageError; the caller retries later.
// Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cascade {

class Coordination {
 public:
  virtual ~Coordination() = default;

  // --- the shared request budget ("rate" named `budget`, e.g. the pipeline's name) ---

  struct RateAsk {
    int want = 1;             // slots wanted (at least 1)
    double interval_ms = 0;   // spacing between two consecutive slots (> 0)
    double tolerance_ms = 0;  // how far before now the schedule may restart after idling
                              // (the burst: (burst - 1) * interval); 0 = evenly spaced
    double horizon_ms = 200;  // no slot is granted further ahead of now than this
  };
  struct RateGrant {
    double first_ms = 0;     // the first granted slot (backend clock)
    double interval_ms = 0;  // slot i is at first_ms + i * interval_ms
    int count = 0;           // 0: none within the horizon; the next free slot is first_ms
    int64_t now_ms = 0;      // the backend's clock when it granted
    // The vendor limit some worker learnt and published (0 / 0 when none).
    double vendor_limit = 0;
    int64_t vendor_window_ms = 0;
  };
  // Takes up to ask.want consecutive slots from the shared schedule: slots never closer than
  // their interval to the previous one granted to anybody, never before a published pause, and
  // at most `horizon_ms` ahead of now (a worker that dies wastes no more than that).
  virtual RateGrant lease_rate(std::string_view budget, const RateAsk& ask) = 0;
  // Makes the vendor's limit (`limit` requests per `window_ms`) known to every worker; a later
  // publication replaces it.
  virtual void publish_vendor_limit(std::string_view budget, double limit, int64_t window_ms) = 0;
  // No slot of the shared schedule is granted before `until_ms` (the vendor asked for a pause:
  // a 429 with Retry-After). An earlier pause than the current one changes nothing.
  virtual void pause_rate(std::string_view budget, int64_t until_ms) = 0;

  // Takes up to `want` requests from the count all workers share of the quota window of `per_ms`
  // that starts at `start_ms` (windows aligned to the epoch; at most `requests` in one) and
  // returns how many it took: 0 when that window is spent. A later window replaces an earlier.
  virtual int64_t take_quota(std::string_view budget, int64_t per_ms, int64_t start_ms,
                             int64_t requests, int64_t want) = 0;

  // --- the leader ---

  // Tries to become, or checks that this process still is, the leader of `role` (e.g.
  // "daemon:PIPELINE"). True while it leads. Leadership lasts as long as this process's
  // connection to the backend: a leader that dies or loses it hands over to the next caller.
  // A process that just lost leadership does not contest it again for a moment, so another
  // takes over. Call it periodically (every second or so): that is how loss is noticed.
  virtual bool lead(std::string_view role) = 0;
  // The result of the last lead(role), without I/O.
  virtual bool leading(std::string_view role) const = 0;

  // --- monotonic markers ---

  // Sets `key` to `value` when it is unset or lower, atomically across processes: true when this
  // call raised it (the caller won), false when it already was `value` or more.
  virtual bool advance(std::string_view key, int64_t value) = 0;
  // The marker's value, if set.
  virtual std::optional<int64_t> marker(std::string_view key) = 0;

  // A human description (no secrets).
  virtual std::string describe() const = 0;
};

}  // namespace cascade
