#include "store/postgres/pg_coord.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "store/postgres/pg_conn.h"

namespace cascade::pg {
namespace {

constexpr const char* kSchema[] = {
    "CREATE TABLE IF NOT EXISTS cascade_coord_rate(budget text PRIMARY KEY, "
    "next_ms double precision NOT NULL DEFAULT 0, paused_ms double precision NOT NULL DEFAULT 0, "
    "granted integer NOT NULL DEFAULT 0, vendor_limit double precision NOT NULL DEFAULT 0, "
    "vendor_window_ms bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS cascade_coord_marker(key text PRIMARY KEY, value bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cascade_coord_quota(budget text NOT NULL, per_ms bigint NOT NULL, "
    "start_ms bigint NOT NULL, used bigint NOT NULL, granted bigint NOT NULL DEFAULT 0, "
    "PRIMARY KEY (budget, per_ms))",
};

// One statement: the slots start at the later of the next free slot, the pause and now minus
// the tolerance; as many as asked fit before now + horizon. The row lock orders concurrent
// leases; every expression reads the row as the lock found it.
constexpr const char* kLease =
    "WITH c AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms) "
    "UPDATE cascade_coord_rate r SET "
    "granted = GREATEST(0, LEAST($2::int, floor((c.now_ms + $5::float8 - GREATEST(r.next_ms, "
    "r.paused_ms, c.now_ms - $4::float8)) / $3::float8)::int + 1)), "
    "next_ms = GREATEST(r.next_ms, r.paused_ms, c.now_ms - $4::float8) + $3::float8 * "
    "GREATEST(0, LEAST($2::int, floor((c.now_ms + $5::float8 - GREATEST(r.next_ms, r.paused_ms, "
    "c.now_ms - $4::float8)) / $3::float8)::int + 1)) "
    "FROM c WHERE r.budget = $1 "
    "RETURNING r.next_ms, r.granted, c.now_ms::bigint, r.vendor_limit, r.vendor_window_ms";

double to_double(std::string_view t) {
  double v = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (r.ec != std::errc()) throw std::runtime_error("postgres: not a number in a coordination row");
  return v;
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

PgCoordination::PgCoordination(std::string conninfo) : conninfo_(std::move(conninfo)) {}

PgCoordination::~PgCoordination() = default;

Conn& PgCoordination::conn_locked() {
  if (conn_ && !conn_->broken()) return *conn_;
  lost_locked();
  auto c = std::make_unique<Conn>(conninfo_);
  {
    Tx tx(*c);
    // Its own lock, not the store's schema lock: coordination never queues behind (nor joins a
    // deadlock among) units of work that declare tables.
    c->query("SELECT pg_advisory_xact_lock(hashtext('cascade_coord_schema'))");
    for (const char* ddl : kSchema) c->query(ddl);
    tx.commit();
  }
  conn_ = std::move(c);
  return *conn_;
}

void PgCoordination::lost_locked() {
  if (!leading_.empty()) {
    spdlog::warn("coordination: connection lost; no longer the leader");
    no_contest_until_ = std::chrono::steady_clock::now() + kLeaderBackoff;
  }
  leading_.clear();
  budgets_.clear();
  conn_.reset();
}

template <class F>
auto PgCoordination::with_conn(F&& f) {
  try {
    return f(conn_locked());
  } catch (const StorageError&) {
    lost_locked();
    throw;
  }
}

void PgCoordination::ensure_budget_locked(std::string_view budget) {
  if (budgets_.find(budget) != budgets_.end()) return;
  conn_->query("INSERT INTO cascade_coord_rate(budget) VALUES ($1) ON CONFLICT DO NOTHING", budget);
  budgets_.emplace(budget);
}

Coordination::RateGrant PgCoordination::lease_rate(std::string_view budget, const RateAsk& ask) {
  std::lock_guard lock(mu_);
  return with_conn([&](Conn& c) {
    ensure_budget_locked(budget);
    int want = std::max(1, ask.want);
    double interval = std::max(ask.interval_ms, 0.001);
    Result r = c.query(kLease, budget, want, num(interval), num(std::max(0.0, ask.tolerance_ms)),
                       num(std::max(0.0, ask.horizon_ms)));
    if (r.rows() != 1) throw StorageError("postgres: coordination budget row missing");
    RateGrant g;
    g.count = static_cast<int>(r.integer(0, 1));
    g.interval_ms = interval;
    g.first_ms = to_double(r.text(0, 0)) - g.count * interval;
    g.now_ms = r.integer(0, 2);
    g.vendor_limit = to_double(r.text(0, 3));
    g.vendor_window_ms = r.integer(0, 4);
    return g;
  });
}

void PgCoordination::publish_vendor_limit(std::string_view budget, double limit,
                                          int64_t window_ms) {
  std::lock_guard lock(mu_);
  with_conn([&](Conn& c) {
    c.query(
        "INSERT INTO cascade_coord_rate(budget, vendor_limit, vendor_window_ms) VALUES ($1, "
        "$2::float8, $3) ON CONFLICT (budget) DO UPDATE SET vendor_limit = EXCLUDED.vendor_limit, "
        "vendor_window_ms = EXCLUDED.vendor_window_ms",
        budget, num(limit), window_ms);
    return 0;
  });
}

void PgCoordination::pause_rate(std::string_view budget, int64_t until_ms) {
  std::lock_guard lock(mu_);
  with_conn([&](Conn& c) {
    c.query(
        "INSERT INTO cascade_coord_rate(budget, paused_ms) VALUES ($1, $2::float8) ON CONFLICT "
        "(budget) DO UPDATE SET paused_ms = GREATEST(cascade_coord_rate.paused_ms, "
        "EXCLUDED.paused_ms)",
        budget, until_ms);
    return 0;
  });
}

int64_t PgCoordination::take_quota(std::string_view budget, int64_t per_ms, int64_t start_ms,
                                   int64_t requests, int64_t want) {
  std::lock_guard lock(mu_);
  return with_conn([&](Conn& c) {
    // A newer window starts over; the current one grants what is left of it; an older one (this
    // host's clock behind) grants nothing.
    Result r = c.query(
        "INSERT INTO cascade_coord_quota AS q (budget, per_ms, start_ms, used, granted) VALUES "
        "($1, $2, $3, LEAST($5::bigint, $4::bigint), LEAST($5::bigint, $4::bigint)) "
        "ON CONFLICT (budget, per_ms) DO UPDATE SET "
        "granted = CASE WHEN q.start_ms < EXCLUDED.start_ms THEN EXCLUDED.used "
        "WHEN q.start_ms = EXCLUDED.start_ms THEN GREATEST(0, LEAST($5::bigint, $4::bigint - "
        "q.used)) ELSE 0 END, "
        "used = CASE WHEN q.start_ms < EXCLUDED.start_ms THEN EXCLUDED.used "
        "WHEN q.start_ms = EXCLUDED.start_ms THEN q.used + GREATEST(0, LEAST($5::bigint, "
        "$4::bigint - q.used)) ELSE q.used END, "
        "start_ms = GREATEST(q.start_ms, EXCLUDED.start_ms) "
        "RETURNING granted",
        budget, per_ms, start_ms, requests, std::max<int64_t>(1, want));
    return r.integer(0, 0);
  });
}

bool PgCoordination::lead(std::string_view role) {
  std::lock_guard lock(mu_);
  try {
    if (leading_.find(role) != leading_.end()) {
      // The lock lives as long as the session: a live connection still holds it.
      conn_->query("SELECT 1");
      return true;
    }
    if (std::chrono::steady_clock::now() < no_contest_until_) return false;
    Conn& c = conn_locked();
    Result r = c.query("SELECT pg_try_advisory_lock(1667330915, hashtext($1))", role);
    if (r.text(0, 0) != "t") return false;
    leading_.emplace(role);
    spdlog::info("coordination: this process now leads {}", role);
    return true;
  } catch (const StorageError& e) {
    lost_locked();
    spdlog::warn("coordination: cannot check leadership of {}: {}", role, e.what());
    return false;
  }
}

bool PgCoordination::leading(std::string_view role) const {
  std::lock_guard lock(mu_);
  return leading_.find(role) != leading_.end();
}

bool PgCoordination::advance(std::string_view key, int64_t value) {
  std::lock_guard lock(mu_);
  return with_conn([&](Conn& c) {
    Result r = c.query(
        "INSERT INTO cascade_coord_marker(key, value) VALUES ($1, $2) ON CONFLICT (key) DO "
        "UPDATE SET value = EXCLUDED.value WHERE cascade_coord_marker.value < EXCLUDED.value "
        "RETURNING value",
        key, value);
    return r.rows() == 1;
  });
}

std::optional<int64_t> PgCoordination::marker(std::string_view key) {
  std::lock_guard lock(mu_);
  return with_conn([&](Conn& c) -> std::optional<int64_t> {
    Result r = c.query("SELECT value FROM cascade_coord_marker WHERE key = $1", key);
    if (r.rows() == 0) return std::nullopt;
    return r.integer(0, 0);
  });
}

std::string PgCoordination::describe() const {
  return "postgres coordination";
}

int PgCoordination::backend_pid() const {
  std::lock_guard lock(mu_);
  return conn_ && !conn_->broken() ? conn_->backend_pid() : 0;
}

}  // namespace cascade::pg
