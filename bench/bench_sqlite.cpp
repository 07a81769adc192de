// bench_sqlite_store: rows/s of the sqlite store's hot paths, next to bare prepared-statement
// loops on similar tables (the ceiling the store should approach). Usage:
//   bench_sqlite_store [rows=1000000] [dir=/tmp]
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/names.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/sqlite_store.h"

using namespace cascade;

namespace {

constexpr size_t kBatch = 5000;

double cpu_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Wall time, and the CPU time of this process over the same span: on a machine shared with
// other work the CPU figure is the steadier one to compare paths by.
double g_cpu = 0;
struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double c0 = cpu_now();
  double seconds() const {
    g_cpu = cpu_now() - c0;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

void report(const char* what, size_t n, double s) {
  std::printf("%-44s %9zu rows %6.2f s %9.0f rows/s | cpu %6.2f s %9.0f rows/s\n", what, n, s,
              static_cast<double>(n) / s, g_cpu, static_cast<double>(n) / g_cpu);
}

std::string key_of(size_t i) {
  return "[" + std::to_string(i) + "," + std::to_string(i % 97) + "]";
}

void ok(sqlite3* db, int rc) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(sqlite3_errmsg(db));
}

void exec(sqlite3* db, const char* sql) {
  ok(db, sqlite3_exec(db, sql, nullptr, nullptr, nullptr));
}

sqlite3_stmt* prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  ok(db, sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr));
  return st;
}

// The ceiling: one prepared INSERT, stepped in transactions of kBatch rows.
double bare_loop(sqlite3* db, const char* create, const char* insert, size_t n,
                 const std::function<void(sqlite3_stmt*, size_t)>& bind) {
  exec(db, create);
  sqlite3_stmt* st = prepare(db, insert);
  Timer t;
  for (size_t i = 0; i < n; i += kBatch) {
    exec(db, "BEGIN IMMEDIATE");
    for (size_t j = i; j < std::min(n, i + kBatch); ++j) {
      bind(st, j);
      ok(db, sqlite3_step(st));
      sqlite3_reset(st);
    }
    exec(db, "COMMIT");
  }
  sqlite3_finalize(st);
  return t.seconds();
}

void bind_text(sqlite3_stmt* st, int i, const std::string& s) {
  sqlite3_bind_text(st, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
}

// The bare loops run on a connection opened and set up as the store's own, so the comparison
// is of code paths, not of settings.
void run_bare(const std::string& path, size_t n) {
  sqlite::Db conn(path, /*read_only=*/false);
  conn.exec(sqlite_store_pragmas(/*read_only=*/false));
  sqlite3* db = conn.get();
  report("bare INSERT staging-like (WITHOUT ROWID)", n,
         bare_loop(db,
                   "CREATE TABLE s(key TEXT PRIMARY KEY, hash INTEGER, scope INTEGER, gone INTEGER)"
                   " WITHOUT ROWID; CREATE INDEX s_scope ON s(scope)",
                   "INSERT INTO s VALUES(?1, ?2, ?3, 0)", n, [](sqlite3_stmt* st, size_t i) {
                     bind_text(st, 1, key_of(i));
                     sqlite3_bind_int64(st, 2, static_cast<int64_t>(i * 2654435761u));
                     sqlite3_bind_int64(st, 3, static_cast<int64_t>(i / 50));
                   }));
  std::string image(180, 'x');
  report("bare INSERT change-like (rowid)", n,
         bare_loop(db,
                   "CREATE TABLE c(seq INTEGER PRIMARY KEY, stage TEXT, kind INTEGER, key TEXT,"
                   " image TEXT, run_id INTEGER, at INTEGER)",
                   "INSERT INTO c(stage, kind, key, image, run_id, at) VALUES(?1,?2,?3,?4,?5,?6)",
                   n, [&](sqlite3_stmt* st, size_t i) {
                     sqlite3_bind_text(st, 1, "sales", 5, SQLITE_STATIC);
                     sqlite3_bind_int64(st, 2, 1);
                     bind_text(st, 3, key_of(i));
                     sqlite3_bind_text(st, 4, image.data(), static_cast<int>(image.size()),
                                       SQLITE_STATIC);
                     sqlite3_bind_int64(st, 5, 1);
                     sqlite3_bind_int64(st, 6, 1'700'000'000'000);
                   }));
  report("bare INSERT 9-column sales row", n,
         bare_loop(db,
                   "CREATE TABLE w(sale_id INTEGER, employee_id INTEGER, branch_id INTEGER,"
                   " customer TEXT, product TEXT, quantity INTEGER, unit_price REAL, amount REAL,"
                   " transaction_timestamp TEXT, PRIMARY KEY(sale_id, employee_id))",
                   "INSERT INTO w VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)", n,
                   [](sqlite3_stmt* st, size_t i) {
                     sqlite3_bind_int64(st, 1, static_cast<int64_t>(i));
                     sqlite3_bind_int64(st, 2, static_cast<int64_t>(i % 97));
                     sqlite3_bind_int64(st, 3, static_cast<int64_t>(i % 13));
                     sqlite3_bind_text(st, 4, "Harper Collins", -1, SQLITE_STATIC);
                     sqlite3_bind_text(st, 5, "Paper, 20 lb, letter", -1, SQLITE_STATIC);
                     sqlite3_bind_int64(st, 6, 12);
                     sqlite3_bind_double(st, 7, 4.25);
                     sqlite3_bind_double(st, 8, 51.0);
                     sqlite3_bind_text(st, 9, "2024-05-01T10:00:00Z", -1, SQLITE_STATIC);
                   }));
}

void run_store(const std::string& path, size_t n) {
  ManualClock clock;
  auto store = open_sqlite_store(path, clock);
  Staging& staging = store->staging();
  staging.create_stage("sales");

  // Listing records as the engine writes them: one per message of ~2400 keys.
  constexpr size_t kListing = 2400;
  std::vector<std::string> keys(kListing);
  std::vector<StagedRef> refs(kListing);
  Timer t;
  size_t listings = 0;
  for (size_t i = 0; i < n; i += kListing, ++listings) {
    size_t m = std::min(n - i, kListing);
    for (size_t j = 0; j < m; ++j) {
      keys[j] = key_of(i + j);
      refs[j] = {keys[j], (i + j) * 2654435761u};
    }
    store->begin();
    staging.set_scope_rows("sales", listings, std::span<const StagedRef>(refs.data(), m));
    store->commit();
  }
  report("store staging.set_scope_rows (2400-key listings, per key)", n, t.seconds());
  size_t found = 0;
  t = Timer();
  for (size_t l = 0; l < listings; ++l) {
    std::vector<StagedRow> rows;
    staging.scope_rows("sales", l, rows);
    found += rows.size();
  }
  report("store staging.scope_rows (per key)", found, t.seconds());
  if (found != n) std::fprintf(stderr, "scope_rows found %zu of %zu\n", found, n);

  Warehouse& wh = store->warehouse();
  wh.create_table("sales", std::vector<Column>{{"sale_id", ColumnType::Integer},
                                               {"employee_id", ColumnType::Integer}});
  wh.add_columns("sales", std::vector<Column>{{"branch_id", ColumnType::Integer},
                                              {"customer", ColumnType::Text},
                                              {"product", ColumnType::Text},
                                              {"quantity", ColumnType::Integer},
                                              {"unit_price", ColumnType::Real},
                                              {"amount", ColumnType::Real},
                                              {"transaction_timestamp", ColumnType::Text}});
  std::vector<Value> sales(kBatch);
  std::vector<const Value*> ptrs;
  for (auto& v : sales) {
    v = Object{{"sale_id", 0},
               {"employee_id", 0},
               {"branch_id", 0},
               {"customer", "Harper Collins"},
               {"product", "Paper, 20 lb, letter"},
               {"quantity", 12},
               {"unit_price", 4.25},
               {"amount", 51.0},
               {"transaction_timestamp", "2024-05-01T10:00:00Z"}};
    ptrs.push_back(&v);
  }
  t = Timer();
  for (size_t i = 0; i < n; i += kBatch) {
    size_t m = std::min(n - i, kBatch);
    for (size_t j = 0; j < m; ++j) {
      auto& o = sales[j].as_object();
      o[0].second = int64_t(i + j);
      o[1].second = int64_t((i + j) % 97);
      o[2].second = int64_t((i + j) % 13);
    }
    store->begin();
    wh.upsert("sales", std::span(ptrs.data(), m));
    store->commit();
  }
  report("store warehouse.upsert (9 columns, new rows)", n, t.seconds());
  t = Timer();
  size_t again = std::min<size_t>(n, 200'000);
  for (size_t i = 0; i < again; i += kBatch) {
    size_t m = std::min(again - i, kBatch);
    for (size_t j = 0; j < m; ++j) sales[j].as_object()[0].second = int64_t(i + j);
    store->begin();
    wh.upsert("sales", std::span(ptrs.data(), m));
    store->commit();
  }
  report("store warehouse.upsert (9 columns, updates)", again, t.seconds());

  Queue& q = store->queue();
  q.create("bench", QueueOptions{});
  size_t nq = std::max<size_t>(1, n / 10);
  std::vector<std::string> bodies;
  t = Timer();
  size_t done = 0;
  for (size_t i = 0; i < nq; i += kBatch) {
    bodies.clear();
    for (size_t j = i; j < std::min(nq, i + kBatch); ++j)
      bodies.push_back("{\"employee_id\":" + std::to_string(j) + ",\"branch_id\":3}");
    store->begin();
    q.send("bench", bodies);
    store->commit();
    store->begin();
    for (auto& msg : q.receive("bench", kBatch)) done += q.remove("bench", msg.receipt);
    store->commit();
  }
  report("store queue send+receive+remove", done, t.seconds());
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::stoul(argv[1]) : 1'000'000;
  std::string dir = argc > 2 ? argv[2] : "/tmp";
  std::string base = dir + "/bench_sqlite_" + std::to_string(::getpid());
  try {
    run_bare(base + "_bare.db", n);
    run_store(base + "_store.db", n);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench failed: %s\n", e.what());
    return 1;
  }
  for (const char* sfx :
       {"_bare.db", "_bare.db-wal", "_bare.db-shm", "_store.db", "_store.db-wal", "_store.db-shm"})
    std::filesystem::remove(base + sfx);
  return 0;
}
