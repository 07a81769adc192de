// The crash test: four `cascade sync` workers on one PostgreSQL database, 20 kill -9s among
// them at varied moments (some right after a start, the rest spread over the run), a replacement
// started after each so four keep working, then a drain. The warehouse must equal the
// simulator's truth with no duplicate change: every key has exactly one version, written once.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "core/json.h"
#include "support/cascade.h"
#include "support/postgres.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;
using namespace std::chrono_literals;

namespace {

int finish(Subprocess& w, std::chrono::seconds limit) {
  if (!eventually([&] { return !w.running(); }, limit)) {
    ADD_FAILURE() << "worker " << w.pid() << " still running after " << limit.count() << " s";
    w.signal(SIGKILL);
  }
  return w.wait();
}

class PgCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    url_ = server->create_database("s_pgcrash_twentykills");
    dir_ = temp_dir();
  }
  int64_t count(const std::string& sql) { return query_storage(url_, sql).rows[0][0].as_int(); }
  // Sales changes so far; 0 until the tables exist.
  int64_t sales_changes() {
    try {
      return count("SELECT count(*) FROM cascade_change_log WHERE table_name = 'sales'");
    } catch (const std::exception&) {
      return 0;
    }
  }

  std::string url_, dir_;
};

}  // namespace

TEST_F(PgCrash, FourWorkersTwentyKillsThenADrainEqualTheTruthWithNoDuplicateChange) {
  SimServer sim({"--seed", "41", "--employees-per-branch", "12", "--sales-per-salesperson", "50"});
  // Paced so the crawl outlasts the kills; a short visibility timeout, so a killed worker's
  // messages come back to the others within seconds.
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 40, burst: 10"},
                              {"visibility_timeout: 15m", "visibility_timeout: 2s"}});
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", url_}};
  Expected expected = expected_from(sim.truth());
  const auto total = static_cast<int64_t>(expected.sales.size());
  auto start = [&] { return Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env); };
  const auto began = std::chrono::steady_clock::now();

  std::vector<Subprocess> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(start());
  std::mt19937 rng(41);
  int kills = 0, ended_alone = 0;
  for (int k = 0; k < 20; ++k) {
    // The first kills land right after a start; the rest wait for the run to move on, so they
    // hit workers mid-page, mid-commit and mid-wait alike.
    if (k >= 3) {
      int64_t seen = sales_changes();
      int64_t step = std::uniform_int_distribution<int64_t>(20, 100)(rng);
      eventually([&] { return sales_changes() >= seen + step; }, 3s);
    }
    std::vector<size_t> live;
    for (size_t i = 0; i < workers.size(); ++i)
      if (workers[i].running()) live.push_back(i);
    if (live.empty()) {
      for (auto& w : workers) ADD_FAILURE() << "worker ended with " << w.wait();
      FAIL() << "every worker ended before kill " << k << "; sales changes " << sales_changes()
             << " of " << total;
    }
    size_t victim = live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)];
    workers[victim].signal(SIGKILL);
    int code = workers[victim].wait();
    if (code == 128 + SIGKILL)
      ++kills;
    else
      ++ended_alone;  // it ended by itself just before the signal
    workers[victim] = start();
  }
  int64_t at_last_kill = sales_changes();
  EXPECT_EQ(kills, 20) << ended_alone << " workers ended by themselves before their kill";
  EXPECT_LT(at_last_kill, total) << "the kills came after the run was done";
  const auto killed_at = std::chrono::steady_clock::now() - began;

  // One deadline for all four, so a lost message fails the test in a minute, not four.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (auto& w : workers)
    EXPECT_EQ(finish(w, std::max(1s, std::chrono::duration_cast<std::chrono::seconds>(
                                         deadline - std::chrono::steady_clock::now()))),
              0);
  RunResult drain = run({CASCADE_BIN, "sync", "--drain", pipeline, "--json"}, env, 60s);
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_EQ(compare_warehouse(url_, expected), 0);

  // No duplicate change: each key has exactly one version (no superseded version in the past
  // tables, every live row at version 1), and the change log holds one insert per key.
  for (const char* t : {"branches", "salespersons", "sales"}) {
    EXPECT_EQ(count(std::string("SELECT count(*) FROM cascade_past_") + t), 0) << t;
    EXPECT_EQ(count(std::string("SELECT count(*) FROM ") + t + " WHERE _version <> 1"), 0) << t;
  }
  auto log = query_storage(url_,
                           "SELECT count(*), count(DISTINCT table_name || ':' || key), "
                           "count(*) FILTER (WHERE operation <> 'insert') FROM cascade_change_log")
                 .rows[0];
  EXPECT_EQ(log[0].as_int(), log[1].as_int()) << "a key changed twice";
  EXPECT_EQ(log[2].as_int(), 0) << "changes other than inserts";
  EXPECT_EQ(log[0].as_int(),
            static_cast<int64_t>(expected.branches.size() + expected.salespersons.size() + total));

  // Nothing dead-lettered, nothing left in any queue.
  RunResult q = run({CASCADE_BIN, "queues", pipeline, "--json"}, env);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Value queues = parse_json(q.out);
  for (const auto& s : queues.as_array()) {
    EXPECT_EQ(s.find("depth")->as_int(), 0) << to_json(s);
    EXPECT_EQ(s.find("in_flight")->as_int(), 0) << to_json(s);
    EXPECT_EQ(s.find("dlq_depth")->as_int(), 0) << to_json(s);
  }
  RunResult dlq = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"}, env);
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  EXPECT_EQ(parse_json(dlq.out).as_array().size(), 0u) << dlq.out;

  // An unchanged re-sync writes nothing.
  int64_t changes = log[0].as_int();
  RunResult again = run({CASCADE_BIN, "sync", pipeline, "--json"}, env, 60s);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count("SELECT count(*) FROM cascade_change_log"), changes);
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
  std::cerr << "kills over "
            << std::chrono::duration_cast<std::chrono::milliseconds>(killed_at).count()
            << " ms; sales changes at the last kill: " << at_last_kill << " of " << total << "\n";
}
