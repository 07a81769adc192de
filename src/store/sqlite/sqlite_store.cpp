#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "store/sqlite/sqlite_parts.h"

namespace cascade {
namespace {

using sqlite::Db;
using sqlite::Stmt;
using sqlite::Use;

// 2: versions and their change-log entries live in the warehouse rows (see SqliteWarehouse).
constexpr int kSchemaVersion = 2;

// Internal tables. Queue names are interned into cascade_queues so the hot tables and their
// indexes carry a small integer. AUTOINCREMENT keeps message ids unique for ever, even after
// the newest message was deleted or dead-lettered, so a dead letter's id (kept on redrive) is
// never taken by a later send. Change-log seqs come from a counter in cascade_meta (change_seq),
// saved in the unit of work that uses them, so a seq is never reused behind a reader's cursor.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS cascade_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cascade_queues(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  visibility_ms INTEGER NOT NULL, max_receive_count INTEGER NOT NULL, retention_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cascade_messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT, queue INTEGER NOT NULL, body TEXT NOT NULL,
  sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL,
  receipt INTEGER, last_error TEXT);
CREATE INDEX IF NOT EXISTS cascade_messages_visible ON cascade_messages(queue, visible_at);
CREATE INDEX IF NOT EXISTS cascade_messages_sent ON cascade_messages(queue, sent_at);
CREATE UNIQUE INDEX IF NOT EXISTS cascade_messages_pending ON cascade_messages(queue, body)
  WHERE receive_count = 0;
CREATE TABLE IF NOT EXISTS cascade_dead_letters(
  id INTEGER PRIMARY KEY, queue INTEGER NOT NULL, body TEXT NOT NULL,
  receive_count INTEGER NOT NULL, reason TEXT NOT NULL, sent_at INTEGER NOT NULL,
  dead_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS cascade_dead_letters_queue ON cascade_dead_letters(queue, dead_at);
CREATE TABLE IF NOT EXISTS cascade_deletions(
  seq INTEGER PRIMARY KEY, table_name TEXT NOT NULL, key TEXT NOT NULL, image TEXT NOT NULL,
  run_id INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cascade_listings(
  stage TEXT NOT NULL, scope INTEGER NOT NULL, rows BLOB NOT NULL,
  PRIMARY KEY(stage, scope)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cascade_columns(
  table_name TEXT NOT NULL, field TEXT NOT NULL, field_json TEXT NOT NULL,
  column_name TEXT NOT NULL, type TEXT NOT NULL, position INTEGER NOT NULL,
  added_at TEXT NOT NULL, PRIMARY KEY(table_name, field_json)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cascade_tables(
  table_name TEXT PRIMARY KEY, parent_table TEXT, field TEXT, field_json TEXT,
  position INTEGER NOT NULL, added_at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cascade_type_conflicts(
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, field TEXT NOT NULL,
  expected_type TEXT NOT NULL, seen_type TEXT NOT NULL, first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY(table_name, column_name, seen_type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cascade_held_deletions(
  stage TEXT NOT NULL, scope INTEGER NOT NULL, listing INTEGER NOT NULL, run_id INTEGER NOT NULL,
  PRIMARY KEY(stage, scope)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cascade_cursors(
  stage TEXT NOT NULL, scope INTEGER NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY(stage, scope)) WITHOUT ROWID;
)sql";

// An flock on PATH.lock: the kernel drops it when the process dies, however it dies, so a
// kill -9 never leaves a stale claim behind. Returns the locked descriptor.
// Catalogs made before nested fields were keyed by the field's text, which a top-level field
// named `a.b` and the nested field a.b share: they are keyed by field_json now.
static void upgrade_catalog_of(sqlite::Db& db) {
  {
    sqlite::Stmt st(db.get(),
                    "SELECT pk FROM pragma_table_info('cascade_columns') WHERE name='field_json'");
    if (!st.step() || st.col_int(0) > 0) return;
  }
  db.exec(R"sql(
CREATE TABLE cascade_columns_new(
  table_name TEXT NOT NULL, field TEXT NOT NULL, field_json TEXT NOT NULL,
  column_name TEXT NOT NULL, type TEXT NOT NULL, position INTEGER NOT NULL,
  added_at TEXT NOT NULL, PRIMARY KEY(table_name, field_json)) WITHOUT ROWID;
INSERT INTO cascade_columns_new SELECT table_name, field, field_json, column_name, type, position,
  added_at FROM cascade_columns;
DROP TABLE cascade_columns;
ALTER TABLE cascade_columns_new RENAME TO cascade_columns;
)sql");
}

static int take_claim(const std::string& path_) {
  std::string lock_path = path_ + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open '" + lock_path + "': " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw std::runtime_error("another cascade process (pid " + holder +
                             ") is running on sqlite:" + path_ +
                             "; wait for it to finish or stop it (SIGTERM stops it cleanly)");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The claim holds without the pid; the pid only makes the refusal message friendlier.
  }
  return fd;
}

}  // namespace

std::string sqlite_store_pragmas(bool read_only) {
  // busy_timeout first: even reading the schema may meet a writer's lock. A 16 MiB page cache
  // holds the hot pages of a large run (one b-tree per table, written mostly in key order)
  // within the memory budget.
  std::string pragmas =
      "PRAGMA busy_timeout=10000; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;";
  if (read_only) return pragmas;
  // No mmap: mapped pages count as the process's memory and grow with the file, and the page
  // cache already holds what a run touches. Checkpoints copy WAL pages back into the database;
  // at 32768 pages (128 MiB) a hot index page is copied far less often (measured: 1M-record
  // initial sync, 10.4-12.8 s -> 8.0 s of CPU against 8192 pages).
  return pragmas +
         " PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=32768;";
}

namespace {

class SqliteStore final : public Store {
 public:
  SqliteStore(const std::string& path, Clock& clock, StoreOptions options)
      : path_(path),
        // The claim comes before the database is even opened, so a second process is refused
        // with a clear message instead of meeting the first one's schema creation.
        lock_fd_(options.claim_consumer ? take_claim(path) : -1),
        db_(path, options.read_only),
        read_only_(options.read_only) {
    db_.exec(sqlite_store_pragmas(options.read_only));
    // Replaces the pragma's busy timeout with the same 10 s that a stop request cuts short.
    sqlite3_busy_handler(db_.get(), &SqliteStore::on_busy, this);
    if (options.read_only) {
      check_version();
    } else {
      sqlite::Implicit tx(db_);
      db_.exec(kSchema);
      upgrade_catalog_of(db_);
      check_version();
      db_.exec("INSERT INTO cascade_meta(key, value) VALUES('schema_version', '" +
               std::to_string(kSchemaVersion) +
               "') ON CONFLICT(key) DO UPDATE SET value=excluded.value");
      tx.done();
    }
    get_meta_ = Stmt(db_.get(), "SELECT value FROM cascade_meta WHERE key=?1");
    savepoint_ = Stmt(db_.get(), "SAVEPOINT cascade_message");
    release_ = Stmt(db_.get(), "RELEASE cascade_message");
    rollback_to_ = Stmt(db_.get(), "ROLLBACK TO cascade_message");
    set_meta_ = Stmt(db_.get(),
                     "INSERT INTO cascade_meta(key, value) VALUES(?1, ?2) "
                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value");
    queue_ = std::make_unique<sqlite::SqliteQueue>(db_, clock);
    staging_ = std::make_unique<sqlite::SqliteStaging>(db_);
    warehouse_ = std::make_unique<sqlite::SqliteWarehouse>(db_);
    changes_ = std::make_unique<sqlite::SqliteChangeLog>(db_, *warehouse_);
    if (!options.read_only) {
      Stmt view(db_.get(), "SELECT 1 FROM sqlite_schema WHERE name='cascade_change_log'");
      if (!view.step()) changes_->define_view();
    }
  }

  Queue& queue() override { return *queue_; }
  Staging& staging() override { return *staging_; }
  ChangeLog& change_log() override { return *changes_; }
  Warehouse& warehouse() override { return *warehouse_; }

  void begin() override {
    if (in_tx_) throw std::logic_error("sqlite store: begin() inside a unit of work");
    db_.begin();
    in_tx_ = true;
  }
  void commit() override {
    if (!in_tx_) throw std::logic_error("sqlite store: commit() without begin()");
    try {
      db_.commit();
    } catch (...) {
      // A failed COMMIT (e.g. disk full) may leave the transaction open: end it so the unit
      // of work is all-or-nothing, and the store usable.
      rollback_state();
      throw;
    }
    in_tx_ = false;
  }
  void rollback() override {
    if (!in_tx_) return;
    rollback_state();
  }
  bool in_transaction() const override { return in_tx_; }

  void set_stop_flag(const std::atomic<bool>* flag) override { stop_flag_ = flag; }

  void savepoint() override {
    if (!in_tx_) throw std::logic_error("sqlite store: savepoint() outside a unit of work");
    savepoint_.exec();
  }
  void release_savepoint() override { release_.exec(); }
  void rollback_to_savepoint() override {
    // Some errors (a full disk, an I/O error) make SQLite roll the whole transaction back: the
    // savepoint is gone with it and the unit of work cannot go on.
    if (db_.autocommit())
      throw StorageError("sqlite: the transaction was rolled back by the database after an error");
    rollback_to_.exec();
    release_.exec();
    // Declarations made since the savepoint are undone.
    queue_->forget();
    staging_->forget();
    warehouse_->forget();
  }

  std::optional<std::string> get_meta(std::string_view key) override {
    Use u(get_meta_);
    get_meta_.bind(1, key);
    if (!get_meta_.step()) return std::nullopt;
    return std::string(get_meta_.col_text(0));
  }
  void set_meta(std::string_view key, std::string_view value) override {
    set_meta_.bind(1, key);
    set_meta_.bind(2, value);
    set_meta_.exec();
  }

  std::string describe() const override { return "sqlite:" + path_; }

  bool compact() override {
    if (read_only_ || !db_.autocommit()) return false;
    return sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                     nullptr) == SQLITE_OK;
  }

  // An flock on PATH.lock: the kernel drops it when the process dies, however it dies, so a
  // kill -9 never leaves a stale claim behind.
  bool claim_consumer() override {
    if (lock_fd_ < 0) lock_fd_ = take_claim(path_);
    return true;
  }

  ~SqliteStore() override {
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

 private:
  // Another process holds the lock: wait in short naps, up to 10 s, unless a stop is requested.
  static int on_busy(void* self, int tries) {
    auto* store = static_cast<SqliteStore*>(self);
    if (store->stop_flag_ && store->stop_flag_->load()) return 0;
    if (tries >= 1000) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return 1;
  }

  void rollback_state() {
    db_.rollback();
    in_tx_ = false;
    // Declarations made inside the unit of work are gone with it.
    queue_->forget();
    staging_->forget();
    warehouse_->forget();
  }

  void check_version() {
    Stmt st;
    try {
      st = Stmt(db_.get(), "SELECT value FROM cascade_meta WHERE key='schema_version'");
    } catch (const std::runtime_error&) {
      throw std::runtime_error("sqlite: '" + path_ + "' is not a cascade database");
    }
    Use u(st);
    if (st.step() && std::stoi(std::string(st.col_text(0))) > kSchemaVersion)
      throw std::runtime_error("sqlite: '" + path_ +
                               "' was written by a newer cascade (schema version " +
                               std::string(st.col_text(0)) + ")");
  }

  std::string path_;
  int lock_fd_ = -1;
  Db db_;
  bool read_only_ = false;
  bool in_tx_ = false;
  const std::atomic<bool>* stop_flag_ = nullptr;
  Stmt get_meta_, set_meta_, savepoint_, release_, rollback_to_;
  std::unique_ptr<sqlite::SqliteQueue> queue_;
  std::unique_ptr<sqlite::SqliteStaging> staging_;
  std::unique_ptr<sqlite::SqliteChangeLog> changes_;
  std::unique_ptr<sqlite::SqliteWarehouse> warehouse_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path, Clock& clock,
                                         StoreOptions options) {
  return std::make_unique<SqliteStore>(path, clock, options);
}

}  // namespace cascade
