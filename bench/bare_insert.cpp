// bench_bare_insert: the SQLite peer of the end-to-end benchmark. Replays the rows one stage of
// a cascade sync wrote (staging + change log + warehouse table, read back from that database)
// into a fresh database with bare prepared INSERTs, one transaction per original message, on
// the same schema and pragmas as cascade's store. The rate is the ceiling cascade's writer can
// approach: same rows, same tables, same commits, none of the engine's work.
//
//   bench_bare_insert SOURCE.db DEST.db [STAGE=sales] [WAREHOUSE_TABLE=STAGE]
//
// Prints one JSON line: {"rows":N,"transactions":T,"seconds":S,"cpu_seconds":C,"rows_per_s":R}.
// Exit status 1 with a message on stderr when the source lacks the stage or a statement fails.
#include <sqlite3.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Db {
  sqlite3* db = nullptr;
  Db(const std::string& path, int flags) {
    if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw std::runtime_error("open " + path + ": " + msg);
    }
  }
  ~Db() { sqlite3_close(db); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void check(int rc) const {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
      throw std::runtime_error(sqlite3_errmsg(db));
  }
  void exec(const std::string& sql) const {
    check(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr));
  }
};

// Owns a prepared statement.
struct Stmt {
  sqlite3_stmt* st = nullptr;
  Stmt(const Db& db, const std::string& sql) {
    db.check(sqlite3_prepare_v2(db.db, sql.c_str(), -1, &st, nullptr));
  }
  ~Stmt() { sqlite3_finalize(st); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
};

// A row held as protected sqlite3_value copies, so binding replays the exact stored types.
struct Row {
  std::vector<sqlite3_value*> v;
  Row() = default;
  Row(Row&& o) noexcept : v(std::move(o.v)) {}
  Row(const Row&) = delete;
  ~Row() {
    for (auto* x : v) sqlite3_value_free(x);
  }
};

Row copy_row(sqlite3_stmt* st) {
  Row r;
  int n = sqlite3_column_count(st);
  r.v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    sqlite3_value* x = sqlite3_value_dup(sqlite3_column_value(st, i));
    if (!x) throw std::bad_alloc();
    r.v.push_back(x);
  }
  return r;
}

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

void step_row(const Db& db, const Stmt& st, const Row& r) {
  for (size_t i = 0; i < r.v.size(); ++i)
    sqlite3_bind_value(st.st, static_cast<int>(i + 1), r.v[i]);
  db.check(sqlite3_step(st.st));
  sqlite3_reset(st.st);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Reads one message's rows at a time (untimed), then inserts them (timed): memory stays at one
// message whatever the run's size, and reading the source never counts as writing.
int run(const std::string& src_path, const std::string& dst_path, const std::string& stage,
        const std::string& wh_table) {
  const std::string staging = "cascade_staging_" + stage;
  Db src(src_path, SQLITE_OPEN_READONLY);

  for (const char* sfx : {"", "-wal", "-shm"}) std::filesystem::remove(dst_path + sfx);
  Db dst(dst_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  // cascade's store pragmas (src/store/sqlite/sqlite_store.cpp), so only the engine differs.
  dst.exec(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=8192;"
      "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY");
  for (const auto& t : {staging, std::string("cascade_changes"), wh_table})
    for (const auto& sql : schema_of(src, t)) dst.exec(sql);
  const auto wh_cols = columns_of(src, wh_table);
  Stmt ins_s(dst, insert_sql(staging, {"key", "hash", "scope", "gone"}));
  Stmt ins_c(dst, insert_sql("cascade_changes", {"stage", "kind", "key", "image", "run_id", "at"}));
  Stmt ins_w(dst, insert_sql(wh_table, wh_cols));

  // Change i, its staging row and warehouse row i belong together: the loader upserted images
  // in change order, so warehouse rowids follow change seqs. A message is a run of one scope.
  Stmt rd_c(src,
            "SELECT s.key, s.hash, s.scope, s.gone, c.stage, c.kind, c.key, c.image, c.run_id, "
            "c.at FROM cascade_changes c JOIN " +
                quote(staging) + " s ON s.key = c.key WHERE c.stage = ?1 ORDER BY c.seq");
  sqlite3_bind_text(rd_c.st, 1, stage.c_str(), -1, SQLITE_TRANSIENT);
  Stmt rd_w(src, "SELECT * FROM " + quote(wh_table) + " ORDER BY rowid");

  std::vector<Row> staged, changes, wh;
  size_t rows = 0, txs = 0;
  double secs = 0, cpu = 0;
  bool more = sqlite3_step(rd_c.st) == SQLITE_ROW;
  while (more) {
    staged.clear(), changes.clear(), wh.clear();
    const int64_t scope = sqlite3_column_int64(rd_c.st, 2);
    do {
      Row r = copy_row(rd_c.st);
      Row st, ch;
      st.v.assign(r.v.begin(), r.v.begin() + 4);
      ch.v.assign(r.v.begin() + 4, r.v.end());
      r.v.clear();
      staged.push_back(std::move(st));
      changes.push_back(std::move(ch));
      if (sqlite3_step(rd_w.st) != SQLITE_ROW)
        throw std::runtime_error("source warehouse table " + wh_table + " has fewer rows than " +
                                 stage + " has changes");
      wh.push_back(copy_row(rd_w.st));
      more = sqlite3_step(rd_c.st) == SQLITE_ROW;
    } while (more && sqlite3_column_int64(rd_c.st, 2) == scope);

    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    dst.exec("BEGIN IMMEDIATE");
    // Table by table within the message, as cascade's apply() does.
    for (const auto& r : staged) step_row(dst, ins_s, r);
    for (const auto& r : changes) step_row(dst, ins_c, r);
    for (const auto& r : wh) step_row(dst, ins_w, r);
    dst.exec("COMMIT");
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu += cpu_seconds() - c0;
    rows += staged.size();
    ++txs;
  }
  if (rows == 0) throw std::runtime_error("source has no changes for stage " + stage);
  std::printf(
      "{\"rows\":%zu,\"transactions\":%zu,\"seconds\":%.3f,\"cpu_seconds\":%.3f,"
      "\"rows_per_s\":%.0f}\n",
      rows, txs, secs, cpu, static_cast<double>(rows) / secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SOURCE.db DEST.db [STAGE=sales] [WAREHOUSE_TABLE=STAGE]\n",
                 argv[0]);
    return 2;
  }
  const std::string stage = argc > 3 ? argv[3] : "sales";
  try {
    return run(argv[1], argv[2], stage, argc > 4 ? argv[4] : stage);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_bare_insert: %s\n", e.what());
    return 1;
  }
}
