#include "store/postgres/pg_conn.h"

#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <cstdlib>

namespace cascade::pg {
namespace {

void append_quoted(std::string& out, std::string_view v) {
  out += '"';
  for (char ch : v) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// libpq's parse errors quote pieces of the connection string, which may be the password.
std::string redact_quoted(std::string_view msg) {
  std::string out;
  bool in = false;
  for (char ch : msg) {
    if (ch == '"') {
      out += in ? "...\"" : "\"";
      in = !in;
    } else if (!in) {
      out += ch;
    }
  }
  return trim(out);
}

// The password as written in a URL (user:PASSWORD@host), before percent-decoding.
std::string raw_url_password(std::string_view s) {
  auto scheme = s.find("://");
  if (scheme == std::string_view::npos) return "";
  s.remove_prefix(scheme + 3);
  auto at = s.find('@');
  if (at == std::string_view::npos) return "";
  s = s.substr(0, at);
  auto colon = s.find(':');
  return colon == std::string_view::npos ? "" : std::string(s.substr(colon + 1));
}

// 57014: a statement cancelled (by a stop request, see Conn::cancel_after, or an administrator).
bool is_storage_state(std::string_view st) {
  return st.starts_with("08") || st.starts_with("53") || st.starts_with("57P") ||
         st.starts_with("58") || st.starts_with("XX") || st == "57014";
}

// The server failed the statement to settle a conflict with another session: a deadlock it broke,
// a serialization failure. (A lock_timeout the caller set, 55P03, stays a QueryError: it asked.)
bool is_contention_state(std::string_view st) {
  return st == "40P01" || st == "40001";
}

}  // namespace

std::string text_array(std::span<const std::string> values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    append_quoted(out, values[i]);
  }
  out += '}';
  return out;
}

std::string int_array(std::span<const int64_t> values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(values[i]);
  }
  out += '}';
  return out;
}

Result& Result::operator=(Result&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

Result::~Result() {
  if (r_) PQclear(r_);
}

int Result::rows() const {
  return r_ ? PQntuples(r_) : 0;
}

bool Result::null(int row, int col) const {
  return PQgetisnull(r_, row, col) != 0;
}

std::string_view Result::text(int row, int col) const {
  return std::string_view(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}

int64_t Result::integer(int row, int col) const {
  std::string_view t = text(row, col);
  int64_t v = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (null(row, col) || r.ec != std::errc() || r.ptr != t.data() + t.size())
    throw std::runtime_error("postgres: column " + std::to_string(col) + " is not an integer");
  return v;
}

int64_t Result::affected() const {
  if (!r_) return 0;
  const char* n = PQcmdTuples(r_);
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

Conn::Conn(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string msg = err ? redact_quoted(err) : "out of memory";
    if (err) PQfreemem(err);
    throw StorageError("postgres: invalid connection string: " + msg);
  }
  for (PQconninfoOption* o = opts; o->keyword; ++o)
    if (std::string_view(o->keyword) == "password" && o->val && *o->val)
      secrets_.emplace_back(o->val);
  PQconninfoFree(opts);
  if (std::string raw = raw_url_password(conninfo); !raw.empty()) secrets_.push_back(raw);
  if (const char* env = std::getenv("PGPASSWORD"); env && *env) secrets_.emplace_back(env);

  c_ = PQconnectdb(conninfo.c_str());
  if (!c_) throw StorageError("postgres: out of memory while connecting");
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string msg = scrub(trim(PQerrorMessage(c_)));
    PQfinish(c_);
    c_ = nullptr;
    throw StorageError("postgres: cannot connect: " + msg);
  }
  // NOTICEs (e.g. "relation already exists, skipping") are no failures; libpq would print them.
  PQsetNoticeProcessor(
      c_, [](void*, const char*) {}, nullptr);
  cancel_ = PQgetCancel(c_);
  // A password from ~/.pgpass is as secret as one written in the string.
  if (const char* pw = PQpass(c_); pw && *pw) secrets_.emplace_back(pw);
}

Conn::~Conn() {
  if (cancel_) PQfreeCancel(cancel_);
  if (c_) PQfinish(c_);
}

void Conn::reset() {
  if (!c_) throw ConnectionLost("postgres: not connected");
  PQreset(c_);
  std::lock_guard lock(cancel_mu_);
  if (cancel_) PQfreeCancel(cancel_);
  cancel_ = nullptr;
  if (PQstatus(c_) != CONNECTION_OK)
    throw ConnectionLost("postgres: cannot reconnect: " + scrub(trim(PQerrorMessage(c_))));
  cancel_ = PQgetCancel(c_);
}

bool Conn::cancel_after(std::chrono::steady_clock::duration running) {
  int64_t since = running_since_.load();
  std::lock_guard lock(cancel_mu_);
  if (since == 0 || !cancel_) return false;
  auto started = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(since));
  if (std::chrono::steady_clock::now() - started < running) return false;
  char err[256];
  return PQcancel(cancel_, err, sizeof err) == 1;
}

std::string Conn::scrub(std::string msg) const {
  for (const auto& s : secrets_) {
    if (s.empty()) continue;
    for (size_t pos = msg.find(s); pos != std::string::npos; pos = msg.find(s, pos + 3))
      msg.replace(pos, s.size(), "***");
  }
  return msg;
}

void Conn::fail(pg_result* r, std::string_view sql) {
  std::string state, msg;
  if (r) {
    const char* st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    state = st ? st : "";
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    msg = primary ? primary : trim(PQresultErrorMessage(r));
    if (detail) msg += std::string(" (") + detail + ")";
    PQclear(r);
  }
  if (msg.empty()) msg = trim(PQerrorMessage(c_));
  msg = scrub(msg);
  // The statement's first words say which operation failed without quoting data.
  std::string what(sql.substr(0, std::min<size_t>(sql.find_first_of("(\n"), 40)));
  if (PQstatus(c_) == CONNECTION_BAD || state.starts_with("08") || state == "57P01" ||
      state == "57P02" || state == "57P03")
    throw ConnectionLost("postgres: connection lost: " + msg);
  if (is_storage_state(state)) throw StorageError("postgres: " + msg + " [" + state + "]");
  if (is_contention_state(state))
    throw ContendedQueryError("postgres: " + msg + " [" + state + "] in: " + trim(what), state);
  throw QueryError("postgres: " + msg + " [" + state + "] in: " + trim(what), state);
}

Result Conn::exec(std::string_view sql, std::span<const Param> params) {
  if (!c_) throw StorageError("postgres: not connected");
  std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  running_since_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  pg_result* r = PQexecParams(c_, text.c_str(), static_cast<int>(params.size()), nullptr,
                              values.data(), nullptr, nullptr, 0);
  running_since_.store(0);
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, sql);
  return Result(r);
}

bool Conn::in_transaction() const {
  auto s = PQtransactionStatus(c_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

int Conn::backend_pid() const {
  return PQbackendPID(c_);
}

bool Conn::broken() const {
  return !c_ || PQstatus(c_) == CONNECTION_BAD;
}

Tx::Tx(Conn& c) : c_(c) {
  if (!c_.in_transaction()) {
    c_.query("BEGIN");
    own_ = true;
  }
}

Tx::~Tx() {
  if (own_ && !done_ && !c_.broken()) {
    try {
      c_.query("ROLLBACK");
    } catch (...) {
      // Rolling back on an error path: the first error is the one to report.
    }
  }
}

void Tx::commit() {
  // COMMIT of a failed transaction "succeeds" as a rollback: refuse it instead.
  if (own_ && !done_ && PQtransactionStatus(c_.raw()) == PQTRANS_INERROR)
    throw QueryError("postgres: commit of a failed transaction", "25P02");
  if (own_ && !done_) c_.query("COMMIT");
  done_ = true;
}

}  // namespace cascade::pg
