#include "store/sqlite/sqlite_db.h"

#include <stdexcept>

#include "core/error.h"

namespace cascade::sqlite {

bool is_storage_failure(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return true;
    default:
      return false;
  }
}

void throw_error(int rc, const std::string& msg) {
  if (is_storage_failure(rc)) throw StorageError(msg);
  throw std::runtime_error(msg);
}

void fail(sqlite3* db, std::string_view what) {
  std::string msg = "sqlite: ";
  msg += what;
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : "out of memory";
  throw_error(db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM, msg);
}

std::string quote_ident(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out += '"';
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  // PERSISTENT: these statements live as long as the connection, which SQLite optimises for.
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &st_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st_);
    st_ = nullptr;
    fail(db, "prepare");
  }
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(st_);
    db_ = o.db_;
    st_ = o.st_;
    o.st_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() {
  sqlite3_finalize(st_);
}

bool Stmt::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // sqlite3_reset returns the error of the failed step; errmsg holds its text until then.
  std::string msg = sqlite3_errmsg(db_);
  sqlite3_reset(st_);
  throw_error(rc, "sqlite: " + msg);
}

void Stmt::exec() {
  Use u(*this);
  while (step()) {
  }
}

Db::Db(const std::string& path, bool read_only) {
  // Memory statistics put a global mutex on every SQLite malloc; nothing here reads them.
  // sqlite3_config only works before SQLite initialises, hence once, before the first open.
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)configured;
  int flags = SQLITE_OPEN_NOMUTEX |
              (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw std::runtime_error("sqlite: cannot open '" + path + "': " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  begin_ = Stmt(db_, "BEGIN IMMEDIATE");
  begin_read_ = Stmt(db_, "BEGIN");
  commit_ = Stmt(db_, "COMMIT");
  rollback_ = Stmt(db_, "ROLLBACK");
}

Db::~Db() {
  if (db_ && !autocommit()) rollback();
  begin_ = Stmt();
  begin_read_ = Stmt();
  commit_ = Stmt();
  rollback_ = Stmt();
  sqlite3_close_v2(db_);
}

void Db::exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  if (int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw_error(rc, "sqlite: " + msg);
  }
}

void Db::rollback() noexcept {
  // An error may already have rolled the transaction back (SQLite does so for some errors).
  if (autocommit()) return;
  sqlite3_step(rollback_.get());
  sqlite3_reset(rollback_.get());
}

}  // namespace cascade::sqlite
