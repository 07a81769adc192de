// PgCoordination: Coordination (store/coordination.h) kept in a PostgreSQL database shared by
// every worker. It uses a connection of its own, in autocommit, opened on first use and reopened
// after a loss, never the store's: a grant is committed the moment it is made and never waits
// behind a unit of work. Its tables (created on first use):
//   cascade_coord_rate(budget, next_ms, paused_ms, granted, vendor_limit, vendor_window_ms):
//     one row per budget; a lease is one UPDATE of that row (the row lock orders concurrent
//     workers), computed on the server's clock_timestamp(), the one clock all hosts share.
//   cascade_coord_quota(budget, per_ms, start_ms, used, granted): one row per quota window length,
//     the current window's count, raised by one INSERT .. ON CONFLICT per lease;
//   cascade_coord_marker(key, value): monotonic markers, raised with INSERT .. ON CONFLICT ..
//     WHERE value < new.
// Leadership is a session advisory lock (pg_try_advisory_lock on this connection), so it ends
// with the connection: a leader killed with -9, or whose backend is terminated, hands over.
// Under PgBouncer's transaction pooling a session lock would not hold: point the connection
// string at PostgreSQL itself. Thread-safe (one mutex around the connection).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "store/coordination.h"

namespace cascade::pg {

class Conn;

class PgCoordination : public Coordination {
 public:
  // Connects lazily: constructing never fails. `conninfo` as for pg::Conn.
  explicit PgCoordination(std::string conninfo);
  ~PgCoordination() override;

  RateGrant lease_rate(std::string_view budget, const RateAsk& ask) override;
  void publish_vendor_limit(std::string_view budget, double limit, int64_t window_ms) override;
  void pause_rate(std::string_view budget, int64_t until_ms) override;
  int64_t take_quota(std::string_view budget, int64_t per_ms, int64_t start_ms, int64_t requests,
                     int64_t want) override;
  bool lead(std::string_view role) override;
  bool leading(std::string_view role) const override;
  bool advance(std::string_view key, int64_t value) override;
  std::optional<int64_t> marker(std::string_view key) override;
  std::string describe() const override;

  // The backend process of the coordination connection (0 when not connected): what a test
  // terminates to take leadership away.
  int backend_pid() const;

  // How long a process that lost leadership waits before contesting it again.
  static constexpr std::chrono::milliseconds kLeaderBackoff{2000};

 private:
  Conn& conn_locked();  // connects and creates the tables if needed; mu_ held
  void ensure_budget_locked(std::string_view budget);
  void lost_locked();  // the connection broke: drop it and every leadership
  template <class F>
  auto with_conn(F&& f);  // runs f(conn); a StorageError drops the connection and is rethrown

  const std::string conninfo_;
  mutable std::mutex mu_;
  std::unique_ptr<Conn> conn_;
  std::set<std::string, std::less<>> budgets_;  // rows known to exist
  std::set<std::string, std::less<>> leading_;  // roles whose lock this connection holds
  std::chrono::steady_clock::time_point no_contest_until_{};
};

}  // namespace cascade::pg
