#include "store/postgres/pg_store.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "store/postgres/pg_conn.h"
#include "store/postgres/pg_coord.h"
#include "store/postgres/pg_queue.h"
#include "store/postgres/pg_staging.h"
#include "store/postgres/pg_warehouse.h"

namespace cascade {
namespace {

using pg::Conn;
using pg::Result;

// 1: the first PostgreSQL layout. A database written by a newer cascade is refused.
constexpr int kSchemaVersion = 1;

// The same DDL as the warehouse's, so whichever part comes first creates it.
constexpr const char* kMetaTable =
    "CREATE TABLE IF NOT EXISTS cascade_meta(key text PRIMARY KEY, value text NOT NULL)";

// How long a statement may go on after a stop was requested before it is cancelled: long enough
// for the quick statements of a clean stop (returning messages), short enough that a wait for
// another worker's lock never holds a stop up.
constexpr auto kStopCancelAfter = std::chrono::seconds(2);

class PgStore final : public Store {
 public:
  PgStore(const std::string& conninfo, Clock& clock, StoreOptions options)
      : conn_(conninfo),
        url_(redact_postgres_url(conninfo)),
        coord_(conninfo),
        read_only_(options.read_only) {
    session_settings();
    // Workers starting together queue on the schema lock behind others' units of work, so one
    // may be chosen to break a deadlock among them: it tries again.
    for (int attempt = 1;; ++attempt) {
      try {
        open_parts(clock, options);
        break;
      } catch (const Contention&) {
        if (attempt == 5) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
      }
    }
    if (read_only_) conn_.query("SET default_transaction_read_only = on");
    watcher_ = std::thread([this] { watch(); });
  }

  ~PgStore() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    watcher_.join();
  }

  Queue& queue() override { return idle_queue_; }
  Staging& staging() override { return *staging_; }
  ChangeLog& change_log() override { return *changes_; }
  Warehouse& warehouse() override { return *warehouse_; }

  void begin() override {
    if (in_tx_) throw std::logic_error("postgres store: begin() inside a unit of work");
    if (conn_.broken()) reconnect();
    try {
      conn_.query("BEGIN");
    } catch (const ConnectionLost&) {
      // Lost while idle (libpq learns it only now): nothing was under way.
      reconnect();
      conn_.query("BEGIN");
    }
    in_tx_ = true;
  }
  void commit() override {
    if (!in_tx_) throw std::logic_error("postgres store: commit() without begin()");
    try {
      // COMMIT of a failed transaction reports success and rolls back: refuse it instead.
      if (!conn_.broken() && PQtransactionStatus(conn_.raw()) == PQTRANS_INERROR)
        throw StorageError("postgres: the unit of work failed earlier and was rolled back");
      conn_.query("COMMIT");
    } catch (...) {
      end_rollback();
      throw;
    }
    in_tx_ = false;
  }
  void rollback() override {
    if (!in_tx_) return;
    end_rollback();
  }
  bool in_transaction() const override { return in_tx_; }

  void savepoint() override {
    if (!in_tx_) throw std::logic_error("postgres store: savepoint() outside a unit of work");
    conn_.query("SAVEPOINT cascade_message");
  }
  void release_savepoint() override { conn_.query("RELEASE SAVEPOINT cascade_message"); }
  void rollback_to_savepoint() override {
    if (conn_.broken()) throw StorageError("postgres: connection lost");
    conn_.query("ROLLBACK TO SAVEPOINT cascade_message");
    conn_.query("RELEASE SAVEPOINT cascade_message");
    // Tables declared since the savepoint are undone.
    warehouse_->forget();
  }

  void set_stop_flag(const std::atomic<bool>* flag) override { stop_flag_.store(flag); }

  // Inside a unit of work, reading a key also takes a transaction lock on it (held to commit),
  // so that a read-modify-write of a counter (the run number) by several workers at once is
  // serialized, even for a key not written yet.
  std::optional<std::string> get_meta(std::string_view key) override {
    if (in_tx_) conn_.query("SELECT pg_advisory_xact_lock(hashtext('cascade_meta:' || $1))", key);
    if (!in_tx_ && conn_.broken()) reconnect();
    auto read = [&] { return conn_.query("SELECT value FROM cascade_meta WHERE key=$1", key); };
    Result r;
    try {
      r = read();
    } catch (const ConnectionLost&) {
      if (in_tx_) throw;
      reconnect();  // lost while idle: a read alone is safe to repeat
      r = read();
    }
    if (r.rows() == 0) return std::nullopt;
    return std::string(r.text(0, 0));
  }
  void set_meta(std::string_view key, std::string_view value) override {
    conn_.query(
        "INSERT INTO cascade_meta(key, value) VALUES($1, $2) ON CONFLICT(key) DO UPDATE SET "
        "value=excluded.value",
        key, value);
  }

  // Many workers share the queues: none may release what another has received.
  bool claim_consumer() override { return false; }

  // PostgreSQL's autovacuum does the housekeeping; there is nothing to move back.
  bool compact() override { return !in_tx_; }

  std::string describe() const override { return url_; }

  // Request budget, leader and markers on a connection of their own (opened on first use).
  Coordination* coordination() override { return &coord_; }

 private:
  // Statements run in UTC with hex bytea whatever the role's defaults say.
  void session_settings() {
    conn_.query("SET TIME ZONE 'UTC'");
    conn_.query("SET bytea_output = 'hex'");
  }

  // Reconnects a lost connection between units of work: a few tries over about 15 s (a server
  // restarting), ending at once on a stop request. Session settings are set again and cached
  // table layouts forgotten, as the unit that was cut short may have declared tables.
  void reconnect() {
    constexpr int kTries = 5;
    auto wait = std::chrono::milliseconds(500);
    for (int attempt = 1;; ++attempt) {
      try {
        conn_.reset();
        session_settings();
        if (read_only_) conn_.query("SET default_transaction_read_only = on");
        warehouse_->forget();
        spdlog::info("postgres: reconnected to {}", url_);
        return;
      } catch (const ConnectionLost& e) {
        if (attempt == kTries) throw;
        spdlog::warn("postgres: reconnecting to {} (try {} of {}): {}", url_, attempt, kTries,
                     e.what());
      }
      for (auto slept = std::chrono::milliseconds(0); slept < wait;
           slept += std::chrono::milliseconds(50)) {
        const std::atomic<bool>* flag = stop_flag_.load();
        if (flag && flag->load()) throw ConnectionLost("postgres: connection lost while stopping");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      wait *= 2;
    }
  }

  void end_rollback() {
    in_tx_ = false;
    if (conn_.broken()) return;
    try {
      conn_.query("ROLLBACK");
      // Tables declared inside the unit of work are gone with it.
      warehouse_->forget();
    } catch (...) {
      // The first error is the one to report; a broken connection ends the unit anyway.
    }
  }

  void open_parts(Clock& clock, const StoreOptions& options) {
    {
      pg::Tx tx(conn_);
      conn_.query("SELECT pg_advisory_xact_lock(hashtext('cascade_schema'))");
      conn_.query(kMetaTable);
      check_version();
      if (!options.read_only)
        conn_.query(
            "INSERT INTO cascade_meta(key, value) VALUES('schema_version', $1) ON CONFLICT(key) "
            "DO UPDATE SET value=excluded.value",
            std::to_string(kSchemaVersion));
      tx.commit();
    }
    queue_ = std::make_unique<pg::PgQueue>(conn_, clock);
    staging_ = std::make_unique<pg::PgStaging>(conn_);
    warehouse_ = std::make_unique<pg::PgWarehouse>(conn_);
    changes_ = std::make_unique<pg::PgChangeLog>(conn_);
  }

  void check_version() {
    Result r = conn_.query("SELECT value FROM cascade_meta WHERE key='schema_version'");
    if (r.rows() == 0) return;
    int v = 0;
    try {
      v = std::stoi(std::string(r.text(0, 0)));
    } catch (const std::exception&) {
      throw std::runtime_error("postgres: " + url_ +
                               " is not a cascade database (schema_version '" +
                               std::string(r.text(0, 0)) + "')");
    }
    if (v > kSchemaVersion)
      throw std::runtime_error("postgres: " + url_ +
                               " was written by a newer cascade (schema version " +
                               std::to_string(v) + ")");
  }

  // While a stop is requested, a statement running longer than kStopCancelAfter (a wait for
  // another worker's lock) is cancelled, so the stop is never held up by another process.
  void watch() {
    std::unique_lock lock(mu_);
    while (!closing_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      const std::atomic<bool>* flag = stop_flag_.load();
      if (flag && flag->load()) conn_.cancel_after(kStopCancelAfter);
    }
  }

  // The queue as callers see it. Outside a unit of work a call first reconnects a connection
  // known lost, and a read (stats, dead letters) that finds it lost while it idled (libpq learns
  // it only then) reconnects and reads again; a write outside a unit is not repeated, as whether
  // it landed is unknown. Inside a unit every call goes straight through: a lost connection
  // loses the unit, which its caller rolls back.
  class IdleQueue final : public Queue {
   public:
    explicit IdleQueue(PgStore& s) : s_(s) {}

   private:
    template <class F>
    auto read(F&& f) {
      if (s_.in_tx_) return f();
      if (s_.conn_.broken()) s_.reconnect();
      try {
        return f();
      } catch (const ConnectionLost&) {
        s_.reconnect();
        return f();
      }
    }
    template <class F>
    auto write(F&& f) {
      if (!s_.in_tx_ && s_.conn_.broken()) s_.reconnect();
      return f();
    }

   public:
    void create(std::string_view queue, const QueueOptions& options) override {
      write([&] { s_.queue_->create(queue, options); });
    }
    size_t send(std::string_view queue, std::span<const std::string> bodies,
                Duration delay) override {
      return write([&] { return s_.queue_->send(queue, bodies, delay); });
    }
    std::vector<ReceivedMessage> receive(std::string_view queue, size_t max,
                                         std::optional<Duration> visibility) override {
      return write([&] { return s_.queue_->receive(queue, max, visibility); });
    }
    bool remove(std::string_view queue, std::string_view receipt) override {
      return write([&] { return s_.queue_->remove(queue, receipt); });
    }
    bool change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                           std::string_view error) override {
      return write([&] { return s_.queue_->change_visibility(queue, receipt, timeout, error); });
    }
    bool release(std::string_view queue, std::string_view receipt, Duration delay) override {
      return write([&] { return s_.queue_->release(queue, receipt, delay); });
    }
    bool dead_letter(std::string_view queue, std::string_view receipt,
                     std::string_view reason) override {
      return write([&] { return s_.queue_->dead_letter(queue, receipt, reason); });
    }
    QueueStats stats(std::string_view queue) override {
      return read([&] { return s_.queue_->stats(queue); });
    }
    std::vector<DeadLetter> dead_letters(std::string_view queue, size_t limit) override {
      return read([&] { return s_.queue_->dead_letters(queue, limit); });
    }
    size_t redrive(std::string_view queue, std::span<const std::string> ids) override {
      return write([&] { return s_.queue_->redrive(queue, ids); });
    }
    size_t purge_dead_letters(std::string_view queue, std::span<const std::string> ids) override {
      return write([&] { return s_.queue_->purge_dead_letters(queue, ids); });
    }
    size_t release_in_flight(std::string_view queue) override {
      return write([&] { return s_.queue_->release_in_flight(queue); });
    }

    PgStore& s_;
  };

  Conn conn_;
  std::string url_;
  pg::PgCoordination coord_;
  bool read_only_ = false;
  bool in_tx_ = false;
  std::atomic<const std::atomic<bool>*> stop_flag_{nullptr};
  std::unique_ptr<pg::PgQueue> queue_;
  std::unique_ptr<pg::PgStaging> staging_;
  std::unique_ptr<pg::PgWarehouse> warehouse_;
  std::unique_ptr<pg::PgChangeLog> changes_;
  IdleQueue idle_queue_{*this};
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
  std::thread watcher_;
};

}  // namespace

bool is_postgres_url(std::string_view url) {
  return url.starts_with("postgres://") || url.starts_with("postgresql://");
}

std::string redact_postgres_url(std::string_view url) {
  std::string out(url);
  auto scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  size_t start = scheme + 3;
  // The authority ends at the first '/', '?' or '#'; the password is between ':' and the last
  // '@' of it (a password may itself hold '@' when not percent-encoded).
  size_t end = out.find_first_of("/?#", start);
  if (end == std::string::npos) end = out.size();
  size_t at = out.rfind('@', end);
  if (at != std::string::npos && at >= start) {
    size_t colon = out.find(':', start);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  // A password given as a parameter (?password=...).
  for (size_t pos = out.find("password="); pos != std::string::npos;
       pos = out.find("password=", pos + 1)) {
    size_t v = pos + 9;
    size_t stop = out.find('&', v);
    if (stop == std::string::npos) stop = out.find('#', v);
    if (stop == std::string::npos) stop = out.size();
    out.replace(v, stop - v, "***");
  }
  return out;
}

std::unique_ptr<Store> open_postgres_store(const std::string& conninfo, Clock& clock,
                                           StoreOptions options) {
  return std::make_unique<PgStore>(conninfo, clock, options);
}

}  // namespace cascade
