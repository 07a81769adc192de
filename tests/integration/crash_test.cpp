// Crash safety: kill -9 at random moments, SIGTERM, and a second process on the same database.
// Each ends in the same warehouse as an uninterrupted run.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/json.h"
#include "store/store.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

// The reference pipeline with another vendor limit, so a run lasts seconds, not minutes.
std::string write_pipeline(const std::string& dir, const std::string& rate) {
  return example_pipeline(dir, {{"rate_limit: { per_second: 50, burst: 50 }", rate}});
}

// A whole table as sorted canonical JSON rows, for equality between two databases.
std::vector<std::string> dump(const std::string& db, const std::string& table) {
  QueryResult r = query_db(db, "SELECT * FROM " + table);
  std::vector<std::string> rows;
  for (const auto& row : r.rows) {
    Value obj{Object{}};
    for (size_t i = 0; i < r.columns.size(); ++i) {
      // When and in which run a row was written differs between the two runs; what it holds,
      // its version count and whether it is deleted do not.
      const std::string& c = r.columns[i];
      // The change-log seq follows the order in which messages happened to be applied.
      if (c == "_first_seen" || c == "_last_changed" || c == "_run_id" || c == "_seq") continue;
      obj.set(c, c == "_deleted_at" ? Value(!row[i].is_null()) : row[i]);
    }
    rows.push_back(canonical_json(obj));
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

void expect_same_warehouse(const std::string& a, const std::string& b) {
  for (const char* t : {"branches", "salespersons", "sales"}) {
    auto x = dump(a, t), y = dump(b, t);
    EXPECT_EQ(x.size(), y.size()) << t;
    EXPECT_TRUE(x == y) << t << " differs";
  }
}

void expect_clean(const std::string& db, const std::map<std::string, std::string>& env,
                  const std::string& pipeline) {
  EXPECT_EQ(query_db(db, "PRAGMA integrity_check").rows[0][0].as_string(), "ok");
  // No duplicate change: the data never changed, so each row has exactly one change, a 'new'.
  auto dup = query_db(
      db,
      "SELECT count(*), count(DISTINCT table_name || key), sum(operation <> 'insert') FROM "
      "cascade_change_log");
  EXPECT_EQ(dup.rows[0][0].as_int(), dup.rows[0][1].as_int()) << "duplicate changes";
  EXPECT_EQ(dup.rows[0][2].as_int(), 0) << "changes other than 'new'";
  RunResult q = run({CASCADE_BIN, "queues", pipeline, "--json"}, env);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Value queues = parse_json(q.out);
  for (const auto& s : queues.as_array()) {
    EXPECT_EQ(s.find("depth")->as_int(), 0) << to_json(s);
    EXPECT_EQ(s.find("in_flight")->as_int(), 0) << to_json(s);
    EXPECT_EQ(s.find("dlq_depth")->as_int(), 0) << to_json(s);
  }
}

}  // namespace

TEST(Crash, KilledTwentyTimesThenRestartedEqualsAnUninterruptedRun) {
  SimServer sim({"--seed", "11", "--employees-per-branch", "25", "--sales-per-salesperson", "150"});
  std::string dir = temp_dir();
  std::string pipeline = write_pipeline(dir, "rate_limit: { per_second: 150, burst: 10 }");
  std::string ref_db = dir + "/reference.db", db = dir + "/killed.db";

  RunResult ref = run({CASCADE_BIN, "sync", pipeline, "--json"},
                      {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", "sqlite:" + ref_db}});
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  double ref_seconds = parse_json(ref.out).find("seconds")->as_number();

  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  std::mt19937 rng(20261125);
  // Kill moments spread over the whole length of a run, so every stage is hit.
  std::uniform_int_distribution<int> delay_ms(5,
                                              std::max(50, static_cast<int>(ref_seconds * 1000)));
  int kills = 0, completed = 0;
  for (int attempt = 0; attempt < 60 && kills < 20; ++attempt) {
    Subprocess p = Subprocess::start({CASCADE_BIN, "sync", pipeline}, env);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    if (p.running()) p.signal(SIGKILL);
    // It may have finished between the look and the signal: then it exited cleanly.
    int rc = p.wait();
    if (rc == 128 + SIGKILL) {
      ++kills;
    } else {
      EXPECT_EQ(rc, 0);
      ++completed;
    }
  }
  EXPECT_GE(kills, 20);
  RunResult last = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_TRUE(parse_json(last.out).find("completed")->as_bool());
  expect_same_warehouse(ref_db, db);
  expect_clean(db, env, pipeline);
}

TEST(Crash, SigtermStopsWithinSecondsAndLosesNothing) {
  SimServer sim({"--seed", "12", "--employees-per-branch", "20", "--sales-per-salesperson", "100"});
  std::string dir = temp_dir();
  // Slow enough that the run is still going when the signal arrives.
  std::string pipeline = write_pipeline(dir, "rate_limit: { per_second: 20, burst: 1 }");
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + dir + "/t.db"}};
  Subprocess p = Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(p.running());
  auto t0 = std::chrono::steady_clock::now();
  p.signal(SIGTERM);
  std::string summary = p.read_line(std::chrono::seconds(10));
  int code = p.wait();
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(code, 130) << "a stopped run exits 130";
  EXPECT_LT(took, 5.0);
  ASSERT_FALSE(summary.empty());
  EXPECT_FALSE(parse_json(summary).find("completed")->as_bool());

  std::string fast = write_pipeline(dir, "rate_limit: { per_second: 500, burst: 50 }");
  RunResult r = run({CASCADE_BIN, "sync", fast, "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Everything the API holds is there exactly once.
  Value truth = sim.truth();
  int64_t salespersons = 0;
  std::set<int64_t> ids;
  for (const auto& e : truth.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson") {
      ++salespersons;
      ids.insert(e.find("id")->as_int());
    }
  int64_t sales = 0;
  for (const auto& s : truth.find("sales")->as_array())
    if (ids.count(s.find("employee_id")->as_int())) ++sales;
  std::string db = dir + "/t.db";
  EXPECT_EQ(query_db(db, "SELECT count(*) FROM salespersons WHERE _deleted_at IS NULL")
                .rows[0][0]
                .as_int(),
            salespersons);
  EXPECT_EQ(
      query_db(db, "SELECT count(*) FROM sales WHERE _deleted_at IS NULL").rows[0][0].as_int(),
      sales);
  expect_clean(db, env, fast);
}

TEST(Crash, SecondProcessOnTheSameDatabaseIsRefusedClearly) {
  SimServer sim({"--seed", "13", "--employees-per-branch", "10", "--sales-per-salesperson", "20"});
  std::string dir = temp_dir();
  std::string pipeline = write_pipeline(dir, "rate_limit: { per_second: 10, burst: 1 }");
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + dir + "/t.db"}};
  Subprocess first = Subprocess::start({CASCADE_BIN, "sync", pipeline}, env);
  // The claim names its holder in t.db.lock: wait (bounded) until the first process holds it.
  bool claimed = false;
  for (int i = 0; i < 500 && !claimed && first.running(); ++i) {
    std::ifstream lock(dir + "/t.db.lock");
    std::string pid;
    claimed = (lock >> pid) && pid == std::to_string(first.pid());
    if (!claimed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(claimed) << "the first process never claimed the database";
  RunResult second = run({CASCADE_BIN, "sync", pipeline}, env);
  ASSERT_TRUE(first.running()) << "the first run ended before the second could meet it";
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("another cascade process"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find(std::to_string(first.pid())), std::string::npos) << second.err;
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait(), 130);
  EXPECT_EQ(query_db(dir + "/t.db", "PRAGMA integrity_check").rows[0][0].as_string(), "ok");
}
