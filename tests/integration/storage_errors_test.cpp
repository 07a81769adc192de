// Errors while applying never hang a run: a message whose rows the database refuses is rolled
// back alone and dead-lettered while the rest of its group commits; a database locked by another
// process stops the run with a clear message and a non-zero exit, and a stop signal ends the wait
// for that lock within seconds. The real cascade binary against a canned vendor.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <string>

#include "core/json.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

// Items 1..3, one request each; the value of each item is set by the test. The first request
// for item `lock_on` takes the database's write lock from this process and keeps it.
class Vendor {
 public:
  explicit Vendor(std::string db)
      : db_(std::move(db)),
        server_([this](const sim::HttpRequest& req, sim::HttpResponse& res) { serve(req, res); }) {}
  ~Vendor() { unlock(); }

  std::string url() const { return server_.url(); }
  void value(int item, const std::string& v) {
    std::lock_guard lock(mu_);
    values_[item] = v;
  }
  void lock_on(int item) {
    std::lock_guard lock(mu_);
    lock_on_ = item;
  }
  // Blocks until the lock was taken (or 30 s passed); true if it was.
  bool wait_locked() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return locker_ != nullptr; });
  }
  void unlock() {
    std::lock_guard lock(mu_);
    lock_on_ = 0;
    if (!locker_) return;
    sqlite3_exec(locker_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(locker_);
    locker_ = nullptr;
  }

 private:
  void serve(const sim::HttpRequest& req, sim::HttpResponse& res) {
    std::lock_guard lock(mu_);
    const std::string* x = req.param("x");
    int item = x ? std::stoi(*x) : 0;
    if (item == lock_on_ && !locker_) {
      sqlite3* db = nullptr;
      // cascade's own short transactions may hold the lock for a moment: wait them out.
      if (sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                          nullptr) == SQLITE_OK &&
          sqlite3_busy_timeout(db, 10000) == SQLITE_OK &&
          sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
        locker_ = db;
        cv_.notify_all();
      } else {
        sqlite3_close(db);
      }
    }
    std::string v = values_.count(item) ? values_[item] : "\"plain\"";
    res.body = R"({"result":[{"id":)" + std::to_string(item) + R"(,"v":)" + v + "}]}";
  }

  std::string db_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::string> values_;
  int lock_on_ = 0;
  sqlite3* locker_ = nullptr;
  CannedServer server_;  // last: stopped before the state its handler reads goes away
};

struct Fixture {
  std::string dir = temp_dir();
  std::string db = dir + "/items.db";
  std::string pipeline = dir + "/items.yaml";
  Vendor vendor{db};

  Fixture() {
    std::ofstream(pipeline) << "name: items\n"
                               "source:\n"
                               "  base_url: "
                            << vendor.url()
                            << "\n"
                               "  retry: { attempts: 1, backoff: 1ms..2ms }\n"
                               "storage: sqlite:"
                            << db
                            << "\n"
                               "stages:\n"
                               "  items:\n"
                               "    inputs: { x: [1, 2, 3] }\n"
                               "    request: GET /items?x={x}\n"
                               "    records: result\n"
                               "    key: { item_id: id }\n";
  }

  RunResult cli(std::vector<std::string> args, std::chrono::seconds timeout) const {
    std::vector<std::string> argv{CASCADE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {}, timeout);
  }
  std::string value(int item) const {
    auto r = query_db(db, "SELECT v FROM items WHERE item_id = " + std::to_string(item));
    return r.rows.empty() ? "(no row)" : r.rows[0][0].to_text();
  }
};

}  // namespace

TEST(StorageErrors, AMessageTheDatabaseRefusesIsDeadLetteredAloneAndTheRestCommits) {
  Fixture fx;
  RunResult first = fx.cli({"sync", fx.pipeline, "--json"}, std::chrono::seconds(60));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  {
    // An analyst's rule on the warehouse table: the database itself refuses some rows.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(fx.db.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TRIGGER refuse BEFORE UPDATE ON items WHEN NEW.v = 'bad' "
                           "BEGIN SELECT RAISE(ABORT, 'bad value refused'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  fx.vendor.value(1, "\"one\"");
  fx.vendor.value(2, "\"bad\"");
  fx.vendor.value(3, "\"three\"");
  RunResult second = fx.cli({"sync", fx.pipeline, "--json"}, std::chrono::seconds(60));
  ASSERT_EQ(second.exit_code, 0) << second.err << second.out;
  Value s = parse_json(second.out);
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 1) << second.out;
  EXPECT_EQ(s.find("total")->find("changed")->as_int(), 2) << second.out;
  EXPECT_EQ(fx.value(1), "one");
  EXPECT_EQ(fx.value(2), "plain") << "the refused message left nothing behind";
  EXPECT_EQ(fx.value(3), "three");

  RunResult dlq = fx.cli({"dlq", "list", "-p", fx.pipeline, "--json"}, std::chrono::seconds(30));
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  EXPECT_NE(dlq.out.find("bad value refused"), std::string::npos) << dlq.out;
  EXPECT_NE(dlq.out.find("/items?x=2"), std::string::npos) << dlq.out;
  // Its staging did not move either: the same response again is still a change to make.
  auto changes = query_db(fx.db, "SELECT count(*) FROM cascade_change_log");
  EXPECT_EQ(changes.rows[0][0].as_int(), 3 + 2);
}

TEST(StorageErrors, ALockedDatabaseStopsTheRunWithAClearErrorAndTheNextRunCompletes) {
  Fixture fx;
  fx.vendor.lock_on(2);
  auto t0 = std::chrono::steady_clock::now();
  RunResult r = fx.cli({"sync", fx.pipeline}, std::chrono::seconds(60));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("the storage failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
  EXPECT_LT(secs, 40.0);

  fx.vendor.unlock();
  RunResult again = fx.cli({"sync", fx.pipeline, "--json"}, std::chrono::seconds(60));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(query_db(fx.db, "SELECT count(*) FROM items").rows[0][0].as_int(), 3);
}

TEST(StorageErrors, SigtermEndsAWaitForAnotherProcesssLockWithinSeconds) {
  Fixture fx;
  fx.vendor.lock_on(1);
  Subprocess p = Subprocess::start({CASCADE_BIN, "sync", fx.pipeline});
  ASSERT_TRUE(fx.vendor.wait_locked());
  auto t0 = std::chrono::steady_clock::now();
  p.signal(SIGTERM);
  int code = p.wait();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 5.0) << "a stop must not wait out the lock";
  EXPECT_EQ(code, 130);
  fx.vendor.unlock();
  RunResult again = fx.cli({"sync", fx.pipeline}, std::chrono::seconds(60));
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(query_db(fx.db, "SELECT count(*) FROM items").rows[0][0].as_int(), 3);
}
