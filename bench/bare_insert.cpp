// bench_bare_insert: the SQLite peers of the end-to-end benchmark. Both replay rows one stage of
// a cascade sync wrote, read back from that database, into a fresh database through a
// connection opened and set up exactly as the store opens its own (sqlite::Db and
// sqlite_store_pragmas(), the store's definitions, not copies), so only the engine differs.
//
//   store mode (default): the warehouse rows (which carry staging, history and change log) and
//     each message's listing record, on cascade's own DDL, with bare prepared INSERTs, one
//     transaction per original message: the ceiling cascade's writer can approach with the same
//     rows, tables and commits and none of the engine's work.
//   --plain: only the warehouse rows, into that one table (cascade's DDL for it), through one
//     prepared INSERT in one transaction: the plain physical limit of SQLite on this disk.
//
//   bench_bare_insert [--plain] SOURCE.db DEST.db [STAGE=sales] [WAREHOUSE_TABLE=STAGE]
//
// Prints one JSON line: {"mode":"store"|"plain","tables":N,"rows":N,"transactions":T,
// "seconds":S,"cpu_seconds":C,"rows_per_s":R}. Only the inserts and commits are timed.
// Exit status 1 with a message on stderr when the source lacks the stage or a statement fails.
#include <sqlite3.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/names.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/sqlite_store.h"

namespace {

using cascade::sqlite::Db;

void check(const Db& db, int rc) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(sqlite3_errmsg(db.get()));
}

// Owns a prepared statement.
struct Stmt {
  sqlite3_stmt* st = nullptr;
  Stmt(const Db& db, const std::string& sql) {
    check(db, sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &st, nullptr));
  }
  ~Stmt() { sqlite3_finalize(st); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
};

// Rows of one table held compactly (a cell per column, text in one arena), so a chunk of a
// million-row run fits in little memory and binding replays the exact stored types.
struct Rows {
  struct Cell {
    int type = SQLITE_NULL;
    int64_t i = 0;
    double d = 0;
    size_t off = 0, len = 0;
  };
  int width = 0;
  std::vector<Cell> cells;
  std::string arena;

  size_t size() const { return width ? cells.size() / static_cast<size_t>(width) : 0; }
  void clear() { cells.clear(), arena.clear(); }
  // Appends columns [first, first + n) of the statement's current row.
  void add(sqlite3_stmt* st, int first, int n) {
    width = n;
    for (int c = first; c < first + n; ++c) {
      Cell x;
      x.type = sqlite3_column_type(st, c);
      if (x.type == SQLITE_INTEGER) {
        x.i = sqlite3_column_int64(st, c);
      } else if (x.type == SQLITE_FLOAT) {
        x.d = sqlite3_column_double(st, c);
      } else if (x.type == SQLITE_TEXT || x.type == SQLITE_BLOB) {
        const void* p =
            x.type == SQLITE_TEXT ? sqlite3_column_text(st, c) : sqlite3_column_blob(st, c);
        x.len = static_cast<size_t>(sqlite3_column_bytes(st, c));
        x.off = arena.size();
        arena.append(static_cast<const char*>(p), x.len);
      }
      cells.push_back(x);
    }
  }
  void bind(sqlite3_stmt* st, size_t row) const {
    const Cell* x = &cells[row * static_cast<size_t>(width)];
    for (int c = 0; c < width; ++c, ++x) {
      const char* p = arena.data() + x->off;
      const int n = static_cast<int>(x->len);
      switch (x->type) {
        case SQLITE_INTEGER:
          sqlite3_bind_int64(st, c + 1, x->i);
          break;
        case SQLITE_FLOAT:
          sqlite3_bind_double(st, c + 1, x->d);
          break;
        case SQLITE_TEXT:
          sqlite3_bind_text(st, c + 1, p, n, SQLITE_STATIC);
          break;
        case SQLITE_BLOB:
          sqlite3_bind_blob(st, c + 1, p, n, SQLITE_STATIC);
          break;
        default:
          sqlite3_bind_null(st, c + 1);
      }
    }
  }
};

std::string quote(const std::string& ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// The DDL cascade used for a table and its indexes, so the peer writes the same b-trees.
std::vector<std::string> schema_of(const Db& src, const std::string& table) {
  Stmt st(src,
          "SELECT sql FROM sqlite_master WHERE tbl_name=?1 AND sql IS NOT NULL "
          "ORDER BY type='index'");
  sqlite3_bind_text(st.st, 1, table.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::string> out;
  while (sqlite3_step(st.st) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st.st, 0)));
  if (out.empty()) throw std::runtime_error("source has no table " + table);
  return out;
}

std::vector<std::string> columns_of(const Db& src, const std::string& table) {
  Stmt st(src, "SELECT name FROM pragma_table_info(?1) ORDER BY cid");
  sqlite3_bind_text(st.st, 1, table.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::string> out;
  while (sqlite3_step(st.st) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st.st, 0)));
  return out;
}

std::string insert_sql(const std::string& table, const std::vector<std::string>& cols) {
  std::string names, params;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) names += ',', params += ',';
    names += quote(cols[i]);
    params += '?';
    params += std::to_string(i + 1);
  }
  return "INSERT INTO " + quote(table) + "(" + names + ") VALUES(" + params + ")";
}

void insert_all(const Db& db, const Stmt& st, const Rows& rows, size_t begin, size_t end) {
  for (size_t r = begin; r < end; ++r) {
    rows.bind(st.st, r);
    check(db, sqlite3_step(st.st));
    sqlite3_reset(st.st);
  }
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Rows are read in chunks of whole messages (untimed), then inserted (timed): memory stays at
// one chunk whatever the run's size, and reading the source never counts as writing.
constexpr size_t kChunkRows = 200'000;

struct Totals {
  size_t rows = 0, txs = 0;
  double secs = 0, cpu = 0;

  // Times `insert` (wall and CPU) and counts what it wrote.
  template <class F>
  void timed(size_t rows_written, size_t txs_written, F&& insert) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    insert();
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu += cpu_seconds() - c0;
    rows += rows_written;
    txs += txs_written;
  }
};

// Removes the database at `path` and its WAL files: each peer run starts from nothing.
void fresh(const std::string& path) {
  for (const char* sfx : {"", "-wal", "-shm"}) std::filesystem::remove(path + sfx);
}

// Store mode: per original message, its warehouse rows (metadata, hash and listing columns
// included) and its listing's record in one transaction, as cascade's apply() writes them.
Totals replay_store(const Db& src, Db& dst, const std::string& stage, const std::string& wh_table) {
  for (const auto& t : {std::string("cascade_listings"), wh_table})
    for (const auto& sql : schema_of(src, t)) dst.exec(sql);
  const auto wh_cols = columns_of(src, wh_table);
  Stmt ins_l(dst, insert_sql("cascade_listings", {"stage", "scope", "rows"}));
  Stmt ins_w(dst, insert_sql(wh_table, wh_cols));
  // A message is a run of rows of one scope, in the order cascade numbered its changes.
  Stmt rd_w(src, "SELECT * FROM " + quote(wh_table) + " ORDER BY _seq");
  Stmt rd_l(src, "SELECT stage, scope, rows FROM cascade_listings WHERE stage=?1 AND scope=?2");
  sqlite3_bind_text(rd_l.st, 1, stage.c_str(), -1, SQLITE_TRANSIENT);
  int scope_col = -1;
  for (size_t i = 0; i < wh_cols.size(); ++i)
    if (wh_cols[i] == "_scope") scope_col = static_cast<int>(i);
  if (scope_col < 0) throw std::runtime_error("source table " + wh_table + " has no _scope");

  Rows wh, listings;
  std::vector<size_t> tx_end, listing_of_tx;
  Totals tot;
  bool more = sqlite3_step(rd_w.st) == SQLITE_ROW;
  while (more) {
    // Read whole messages until the chunk holds kChunkRows rows or the source ends.
    wh.clear(), listings.clear(), tx_end.clear();
    while (more && wh.size() < kChunkRows) {
      const int64_t scope = sqlite3_column_int64(rd_w.st, scope_col);
      do {
        wh.add(rd_w.st, 0, sqlite3_column_count(rd_w.st));
        more = sqlite3_step(rd_w.st) == SQLITE_ROW;
      } while (more && sqlite3_column_int64(rd_w.st, scope_col) == scope);
      sqlite3_bind_int64(rd_l.st, 2, scope);
      if (sqlite3_step(rd_l.st) != SQLITE_ROW)
        throw std::runtime_error("source has no listing record for a scope of " + stage);
      listings.add(rd_l.st, 0, 3);
      sqlite3_reset(rd_l.st);
      tx_end.push_back(wh.size());
    }
    tot.timed(wh.size(), tx_end.size(), [&] {
      size_t begin = 0;
      for (size_t m = 0; m < tx_end.size(); ++m) {
        dst.exec("BEGIN IMMEDIATE");
        insert_all(dst, ins_w, wh, begin, tx_end[m]);
        insert_all(dst, ins_l, listings, m, m + 1);
        dst.exec("COMMIT");
        begin = tx_end[m];
      }
    });
  }
  if (tot.rows == 0) throw std::runtime_error("source has no rows for stage " + stage);
  return tot;
}

// Plain mode: the warehouse rows into their one table, one prepared INSERT, one transaction.
Totals replay_plain(const Db& src, Db& dst, const std::string& wh_table) {
  for (const auto& sql : schema_of(src, wh_table)) dst.exec(sql);
  Stmt ins(dst, insert_sql(wh_table, columns_of(src, wh_table)));
  Stmt rd(src, "SELECT * FROM " + quote(wh_table) + " ORDER BY _seq");
  Rows wh;
  Totals tot;
  tot.timed(0, 1, [&] { dst.exec("BEGIN IMMEDIATE"); });
  bool more = sqlite3_step(rd.st) == SQLITE_ROW;
  while (more) {
    wh.clear();
    while (more && wh.size() < kChunkRows) {
      wh.add(rd.st, 0, sqlite3_column_count(rd.st));
      more = sqlite3_step(rd.st) == SQLITE_ROW;
    }
    tot.timed(wh.size(), 0, [&] { insert_all(dst, ins, wh, 0, wh.size()); });
  }
  tot.timed(0, 0, [&] { dst.exec("COMMIT"); });
  if (tot.rows == 0) throw std::runtime_error("source table " + wh_table + " is empty");
  return tot;
}

int run(bool plain, const std::string& src_path, const std::string& dst_path,
        const std::string& stage, const std::string& wh_table) {
  Db src(src_path, /*read_only=*/true);
  fresh(dst_path);
  Db dst(dst_path, /*read_only=*/false);
  dst.exec(cascade::sqlite_store_pragmas(/*read_only=*/false));
  Totals t = plain ? replay_plain(src, dst, wh_table) : replay_store(src, dst, stage, wh_table);
  std::printf(
      "{\"mode\":\"%s\",\"tables\":%d,\"rows\":%zu,\"transactions\":%zu,\"seconds\":%.3f,"
      "\"cpu_seconds\":%.3f,\"rows_per_s\":%.0f}\n",
      plain ? "plain" : "store", plain ? 1 : 2, t.rows, t.txs, t.secs, t.cpu,
      static_cast<double>(t.rows) / t.secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool plain = !args.empty() && args[0] == "--plain";
  if (plain) args.erase(args.begin());
  if (args.size() < 2 || args.size() > 4) {
    std::fprintf(stderr,
                 "usage: %s [--plain] SOURCE.db DEST.db [STAGE=sales] [WAREHOUSE_TABLE=STAGE]\n",
                 argv[0]);
    return 2;
  }
  const std::string stage = args.size() > 2 ? args[2] : "sales";
  try {
    return run(plain, args[0], args[1], stage, args.size() > 3 ? args[3] : stage);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_bare_insert: %s\n", e.what());
    return 1;
  }
}
