// A thin RAII layer over libpq: one connection, statements with text-format parameters, and
// transactions. The connection string is anything libpq takes (postgresql:// URL or key=value
// conninfo); PG* environment variables fill what it leaves out, as for psql.
//
// Errors: a statement the server refuses throws pg::QueryError (a std::runtime_error carrying
// the SQLSTATE and the server's message). A connection that cannot be opened or is lost, and
// server-side resource or system failures (SQLSTATE classes 08, 53, 57P, 58, XX), throw
// cascade::StorageError: nothing the caller sent is to blame; so does a statement cancelled
// (57014). Contention the server settled by failing the statement (deadlock 40P01, serialization
// failure 40001) throws ContendedQueryError, a QueryError that is also a cascade::Contention:
// retrying later is the remedy. A lost connection (libpq sees it bad, or SQLSTATE class 08 or
// 57P01-57P03: the server shut the session) throws ConnectionLost, a StorageError; reset()
// reconnects. No message ever
// contains the password of the connection string or of PGPASSWORD.
//
// Not thread-safe: one owner thread per Conn (libpq connections must not be shared), except
// cancel_after(), which any thread may call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

struct pg_conn;
struct pg_result;
struct pg_cancel;

namespace cascade::pg {

// A statement the server refused (syntax, constraint, serialization failure...).
class QueryError : public std::runtime_error {
 public:
  QueryError(const std::string& what, std::string sqlstate)
      : std::runtime_error(what), sqlstate_(std::move(sqlstate)) {}
  // Five-character SQLSTATE, e.g. "23505" for a unique violation; empty if unknown.
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// A statement the server failed to settle a conflict with another session (40P01, 40001).
class ContendedQueryError final : public QueryError, public Contention {
 public:
  using QueryError::QueryError;
  const char* what() const noexcept override { return QueryError::what(); }
};

// One parameter in text format; nullopt is SQL NULL.
using Param = std::optional<std::string>;
inline Param param(std::string_view s) {
  return std::string(s);
}
inline Param param(const std::string& s) {
  return s;
}
inline Param param(const char* s) {
  return std::string(s);
}
inline Param param(int64_t v) {
  return std::to_string(v);
}
inline Param param(int v) {
  return std::to_string(v);
}
inline Param param(size_t v) {
  return std::to_string(v);
}
inline Param param(std::nullopt_t) {
  return std::nullopt;
}
inline Param param(const Param& p) {
  return p;
}

// A PostgreSQL array literal ("{...}") of text values, for `= ANY($1::text[])` or unnest().
std::string text_array(std::span<const std::string> values);
// The same for integers (ids).
std::string int_array(std::span<const int64_t> values);

// The result of one statement. Move-only.
class Result {
 public:
  explicit Result(pg_result* r = nullptr) : r_(r) {}
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result& operator=(Result&& o) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const;
  bool null(int row, int col) const;
  std::string_view text(int row, int col) const;
  // The value as an integer; throws std::runtime_error if it is not one (or NULL).
  int64_t integer(int row, int col) const;
  // Rows affected by INSERT/UPDATE/DELETE (0 for other statements).
  int64_t affected() const;

 private:
  pg_result* r_;
};

class Conn {
 public:
  // Connects; throws StorageError (without the password) when the string is malformed, the
  // server cannot be reached, or it refuses the login.
  explicit Conn(const std::string& conninfo);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Runs one statement with parameters ($1, $2, ... in text format) and returns its result.
  Result exec(std::string_view sql, std::span<const Param> params = {});
  template <class... A>
  Result query(std::string_view sql, const A&... args) {
    const Param ps[] = {param(args)...};
    return exec(sql, std::span<const Param>(ps, sizeof...(A)));
  }
  Result query(std::string_view sql) { return exec(sql); }

  // True while a transaction is open (BEGIN without COMMIT/ROLLBACK, or failed in one).
  bool in_transaction() const;
  // The server process serving this connection (pg_backend_pid()).
  int backend_pid() const;
  // True once libpq has seen the connection break.
  bool broken() const;
  pg_conn* raw() const { return c_; }
  // Reconnects with the same parameters (PQreset): session settings are the server's defaults
  // again and any transaction is gone. Throws ConnectionLost when the server cannot be reached.
  void reset();

  // Asks the server to cancel the statement under way when it has been running for at least
  // `running` (the statement then fails with StorageError). Returns true when a cancel was sent.
  // Thread-safe: for a watcher while the owner thread waits in exec().
  bool cancel_after(std::chrono::steady_clock::duration running);

 private:
  [[noreturn]] void fail(pg_result* r, std::string_view sql);
  std::string scrub(std::string msg) const;

  pg_conn* c_ = nullptr;
  pg_cancel* cancel_ = nullptr;
  // Guards cancel_ between reset() and cancel_after() on the watcher's thread.
  mutable std::mutex cancel_mu_;
  // steady_clock ticks when the statement under way began; 0 when none is.
  std::atomic<int64_t> running_since_{0};
  std::vector<std::string> secrets_;
};

// BEGIN now, ROLLBACK in the destructor unless commit() ran. When the connection is already in
// a transaction (the caller's unit of work), it joins it and neither begins nor ends anything.
class Tx {
 public:
  explicit Tx(Conn& c);
  ~Tx();
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  void commit();

 private:
  Conn& c_;
  bool own_ = false;
  bool done_ = false;
};

}  // namespace cascade::pg
