// Thin RAII layer over the SQLite C API used by the sqlite backend: a connection, cached prepared
// statements, identifier quoting and implicit transactions. Not thread-safe: one owner thread.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cascade::sqlite {

// Whether a result code means the database itself failed (full, I/O, locked, corrupt, read-only)
// rather than a statement being refused (a constraint, a bad name, too many columns).
bool is_storage_failure(int rc);
// Throws StorageError for a storage failure, std::runtime_error otherwise, with `msg`.
[[noreturn]] void throw_error(int rc, const std::string& msg);
// Throws "sqlite: <what>: <SQLite's message>" as throw_error does.
[[noreturn]] void fail(sqlite3* db, std::string_view what);

// `name` as a double-quoted SQL identifier ("" doubled), safe for any text.
std::string quote_ident(std::string_view name);

// A prepared statement. Bind indexes are 1-based as in SQLite. Every method throws
// std::runtime_error with SQLite's message on error (never with bound values).
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, std::string_view sql);
  Stmt(Stmt&& o) noexcept : db_(o.db_), st_(o.st_) { o.st_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  explicit operator bool() const { return st_ != nullptr; }
  sqlite3_stmt* get() const { return st_; }

  void bind(int i, int64_t v) { check(sqlite3_bind_int64(st_, i, v)); }
  void bind(int i, double v) { check(sqlite3_bind_double(st_, i, v)); }
  // Text is bound without a copy: it must outlive the step() that uses it.
  void bind(int i, std::string_view v) {
    check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  // Text that SQLite copies, for temporaries.
  void bind_copy(int i, std::string_view v) {
    check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind_null(int i) { check(sqlite3_bind_null(st_, i)); }
  // Bytes bound without a copy, as a BLOB (which no column affinity converts).
  void bind_blob(int i, std::string_view v) {
    check(sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }

  // True when a row is available, false when done.
  bool step();
  // Runs a statement that returns no rows (or ignores them) and resets it.
  void exec();
  void reset() { sqlite3_reset(st_); }

  int64_t col_int(int i) const { return sqlite3_column_int64(st_, i); }
  double col_double(int i) const { return sqlite3_column_double(st_, i); }
  std::string_view col_text(int i) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, i));
    return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(st_, i)))
             : std::string_view();
  }
  bool col_null(int i) const { return sqlite3_column_type(st_, i) == SQLITE_NULL; }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, "bind");
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
};

// Resets a statement when leaving scope, so a read never keeps its snapshot open and a failed
// step never leaves a statement half-run.
class Use {
 public:
  explicit Use(Stmt& s) : s_(s) {}
  ~Use() { s_.reset(); }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

 private:
  Stmt& s_;
};

// Owns the connection.
class Db {
 public:
  // Opens `path` (created unless read_only). Throws std::runtime_error on failure.
  Db(const std::string& path, bool read_only);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }
  // Runs one or more statements without results. Throws on error.
  void exec(std::string_view sql);
  // True when no transaction is open on the connection.
  bool autocommit() const { return sqlite3_get_autocommit(db_) != 0; }
  int64_t changes() const { return sqlite3_changes64(db_); }
  int64_t last_rowid() const { return sqlite3_last_insert_rowid(db_); }

  // BEGIN IMMEDIATE: a writer takes the lock up front instead of failing to upgrade later.
  void begin() { begin_.exec(); }
  // A deferred BEGIN, for a batch of reads that should see one snapshot.
  void begin_read() { begin_read_.exec(); }
  void commit() { commit_.exec(); }
  // Never throws: used on error paths.
  void rollback() noexcept;

 private:
  sqlite3* db_ = nullptr;
  Stmt begin_, begin_read_, commit_, rollback_;
  friend class Implicit;
};

// Opens a transaction for a multi-statement operation when the caller has none, so the
// operation is atomic (and batched into one commit) either way. Rolls back unless done().
class Implicit {
 public:
  explicit Implicit(Db& db) : db_(db), own_(db.autocommit()) {
    if (own_) db_.begin();
  }
  void done() {
    if (own_) db_.commit();
    own_ = false;
  }
  ~Implicit() {
    if (own_) db_.rollback();
  }
  Implicit(const Implicit&) = delete;
  Implicit& operator=(const Implicit&) = delete;

 private:
  Db& db_;
  bool own_;
};

}  // namespace cascade::sqlite
