// The PostgreSQL backend end to end, as a user drives it: the real cascade binary with a pipeline
// whose storage is a postgresql:// URL on a real PostgreSQL 15, against the real simulator. The
// scenarios every backend runs, with the same assertions as on SQLite (SyncContract, see
// tests/support/contracts/sync_contract.h), then what only a shared database brings: several
// `cascade sync` workers at once, one of them killed with kill -9, and a password in the
// connection string that must appear nowhere.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "core/json.h"
#include "store/postgres/pg_conn.h"
#include "support/cascade.h"
#include "support/contracts/sync_contract.h"
#include "support/postgres.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;
using namespace std::chrono_literals;

namespace {

// The end-to-end scenarios every storage backend runs (support/contracts/sync_contract.h), each
// on a database of its own; times are timestamptz, as PostgreSQL prints them.
const StorageBackend kPostgres{
    "postgres", R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?)",
    [](const std::string& tag, std::string& why) {
      PostgresServer* server = shared_postgres(why);
      if (!server) {
        why = "PostgreSQL unavailable: " + why;
        return std::string();
      }
      return server->create_database(test_database_name("s" + tag + "_"));
    }};
INSTANTIATE_TEST_SUITE_P(Postgres, SyncContract, ::testing::Values(kPostgres));

// The exit code of a worker, which must end within `limit` (killed and failed otherwise: a test
// never hangs on a worker waiting for a lost message's visibility timeout).
int finish(Subprocess& w, std::chrono::seconds limit = 120s) {
  if (!eventually([&] { return !w.running(); }, limit)) {
    ADD_FAILURE() << "worker " << w.pid() << " still running after " << limit.count() << " s";
    w.signal(SIGKILL);
  }
  return w.wait();
}

class PgSync : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    url_ = server_->create_database(test_database_name("s_"));
    dir_ = temp_dir();
  }

  std::map<std::string, std::string> env(const SimServer& sim) const {
    return {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", url_}};
  }
  int64_t count(const std::string& sql) { return query_storage(url_, sql).rows[0][0].as_int(); }

  // Waits (at most a minute) until the sales change log has more than `n` entries: the run is
  // well under way.
  bool sales_changes_exceed(int64_t n) {
    return eventually(
        [&] {
          try {
            return count("SELECT count(*) FROM cascade_change_log WHERE table_name = 'sales'") > n;
          } catch (const std::exception&) {
            return false;  // the tables are not there yet
          }
        },
        60s);
  }

  // No key has two changes (the data did not change while the workers ran), every change is a
  // 'new', every row is at version 1, and no queue holds anything.
  void expect_no_duplicate_change(const std::string& pipeline, const SimServer& sim) {
    auto dup =
        query_storage(url_,
                      "SELECT count(*), count(DISTINCT table_name || key), "
                      "count(*) FILTER (WHERE operation <> 'insert') FROM cascade_change_log")
            .rows[0];
    EXPECT_GT(dup[0].as_int(), 0);
    EXPECT_EQ(dup[0].as_int(), dup[1].as_int()) << "duplicate changes";
    EXPECT_EQ(dup[2].as_int(), 0) << "changes other than 'new'";
    for (const char* t : {"branches", "salespersons", "sales"})
      EXPECT_EQ(count(std::string("SELECT count(*) FROM ") + t + " WHERE _version <> 1"), 0) << t;
    RunResult q = run({CASCADE_BIN, "queues", pipeline, "--json"}, env(sim));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    Value queues = parse_json(q.out);
    for (const auto& s : queues.as_array()) {
      EXPECT_EQ(s.find("depth")->as_int(), 0) << to_json(s);
      EXPECT_EQ(s.find("in_flight")->as_int(), 0) << to_json(s);
      EXPECT_EQ(s.find("dlq_depth")->as_int(), 0) << to_json(s);
    }
  }

  PostgresServer* server_ = nullptr;
  std::string url_, dir_;
};

}  // namespace

TEST_F(PgSync, ThreeWorkersAtOnceEqualTheTruthWithNoDuplicateChange) {
  SimServer sim({"--seed", "31", "--employees-per-branch", "12", "--sales-per-salesperson", "25"});
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 400, burst: 50"}});
  Expected expected = expected_from(sim.truth());
  std::vector<Subprocess> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env(sim)));
  // A worker's sync ends only when the whole crawl is done, its share and the others': the
  // warehouse is complete the moment the first one ends, whichever it is.
  std::string summary = workers[0].read_line(120s);
  EXPECT_EQ(finish(workers[0]), 0);
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
  for (auto& w : workers) {
    if (w.pid() != workers[0].pid()) summary = w.read_line(120s);
    EXPECT_TRUE(parse_json(summary).find("completed")->as_bool()) << summary;
    EXPECT_EQ(finish(w), 0);
  }
  expect_no_duplicate_change(pipeline, sim);
  // Each ran runs of its own.
  EXPECT_EQ(count("SELECT value::bigint FROM cascade_meta WHERE key = 'last_run_id'"), 3);

  // An unchanged re-sync by three workers at once writes nothing.
  int64_t changes = count("SELECT count(*) FROM cascade_change_log");
  workers.clear();
  for (int i = 0; i < 3; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env(sim)));
  for (auto& w : workers) EXPECT_EQ(finish(w), 0);
  EXPECT_EQ(count("SELECT count(*) FROM cascade_change_log"), changes);
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
}

TEST_F(PgSync, AWorkerKilledMidRunThenADrainEndsExact) {
  SimServer sim({"--seed", "32", "--employees-per-branch", "12", "--sales-per-salesperson", "25"});
  // Slow enough that the kill lands mid-run; a short visibility timeout, so the killed worker's
  // messages come back within the test.
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 120, burst: 20"},
                              {"visibility_timeout: 15m", "visibility_timeout: 3s"}});
  Expected expected = expected_from(sim.truth());
  std::vector<Subprocess> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env(sim)));
  // Killed once the run is well under way (the sales stage has rows).
  ASSERT_TRUE(sales_changes_exceed(300));
  int64_t at_kill = count("SELECT count(*) FROM cascade_change_log WHERE table_name = 'sales'");
  EXPECT_LT(at_kill, static_cast<int64_t>(expected.sales.size())) << "the kill came too late";
  workers[1].signal(SIGKILL);
  EXPECT_EQ(workers[1].wait(), 128 + SIGKILL);
  EXPECT_EQ(finish(workers[0]), 0);
  EXPECT_EQ(finish(workers[2]), 0);
  // The survivors waited for the killed worker's messages to come back and applied them.
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
  RunResult drain = run({CASCADE_BIN, "sync", pipeline, "--json"}, env(sim));
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_TRUE(parse_json(drain.out).find("completed")->as_bool());
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
  expect_no_duplicate_change(pipeline, sim);
}

TEST_F(PgSync, ThePasswordOfTheConnectionStringAppearsInNoOutputErrorOrTable) {
  SimServer sim({"--seed", "33", "--employees-per-branch", "4", "--sales-per-salesperson", "3"});
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 300, burst: 50"}});
  const std::string& pw = server_->password();
  ASSERT_GE(pw.size(), 8u);
  ASSERT_NE(url_.find(pw), std::string::npos) << "the test URL should carry the password";
  std::vector<RunResult> outputs;
  auto debug = env(sim);
  debug["LOGGING_LEVEL"] = "debug";
  outputs.push_back(run({CASCADE_BIN, "sync", pipeline, "--json"}, debug));
  EXPECT_EQ(outputs.back().exit_code, 0) << outputs.back().err;
  outputs.push_back(run({CASCADE_BIN, "validate", pipeline}, env(sim)));
  EXPECT_EQ(outputs.back().exit_code, 0) << outputs.back().err;
  outputs.push_back(run({CASCADE_BIN, "queues", pipeline}, env(sim)));
  outputs.push_back(run({CASCADE_BIN, "sql", "--storage", url_, "SELECT * FROM no_such_table"}));
  EXPECT_EQ(outputs.back().exit_code, 1);
  outputs.push_back(run({CASCADE_BIN, "export", "no_such_table", "--storage", url_}));
  EXPECT_NE(outputs.back().exit_code, 0);
  // A wrong password, and a server that is not there: refused, without echoing either.
  const std::string wrong = "Wr0ng-s3cret-xyzzy";
  std::string wrong_url = url_;
  wrong_url.replace(wrong_url.find(pw), pw.size(), wrong);
  outputs.push_back(run({CASCADE_BIN, "sql", "--storage", wrong_url, "SELECT 1"}));
  EXPECT_NE(outputs.back().exit_code, 0);
  std::string closed_url = "postgresql://cascade:" + wrong + "@127.0.0.1:1/nodb";
  outputs.push_back(run({CASCADE_BIN, "sync", pipeline},
                        {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", closed_url}}));
  EXPECT_NE(outputs.back().exit_code, 0);
  EXPECT_NE(outputs.back().err.find("127.0.0.1"), std::string::npos) << outputs.back().err;
  for (const auto& o : outputs) {
    for (const std::string& secret : {pw, wrong}) {
      EXPECT_EQ(o.out.find(secret), std::string::npos) << o.out;
      EXPECT_EQ(o.err.find(secret), std::string::npos) << o.err;
    }
  }
  // No table or view of the database holds it.
  pg::Conn conn(url_);
  pg::Result rels = conn.query(
      "SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = "
      "'public'");
  ASSERT_GT(rels.rows(), 5);
  for (int i = 0; i < rels.rows(); ++i) {
    std::string t(rels.text(i, 0));
    pg::Result hit =
        conn.query("SELECT count(*) FROM " + t + " x WHERE x::text LIKE '%' || $1 || '%'", pw);
    EXPECT_EQ(hit.integer(0, 0), 0) << t << " holds the password";
  }
}

TEST_F(PgSync, SigtermStopsAWorkerWithinSecondsAndLosesNothing) {
  SimServer sim({"--seed", "34", "--employees-per-branch", "20", "--sales-per-salesperson", "10"});
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 8, burst: 2"}});
  Expected expected = expected_from(sim.truth());
  std::vector<Subprocess> workers;
  for (int i = 0; i < 2; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env(sim)));
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(workers[0].running());
  auto t0 = std::chrono::steady_clock::now();
  workers[0].signal(SIGTERM);
  std::string summary = workers[0].read_line(10s);
  EXPECT_EQ(workers[0].wait(), 130) << "a stopped run exits 130";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ASSERT_FALSE(summary.empty());
  EXPECT_FALSE(parse_json(summary).find("completed")->as_bool());
  // The stopped worker returned what it held: the other one completes the crawl without
  // waiting for a visibility timeout (15 minutes in this pipeline).
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(finish(workers[1]), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
  expect_no_duplicate_change(pipeline, sim);
}

// Every worker's connection is cut several times mid-run (pg_terminate_backend, as a server
// restart or a network cut would): each reconnects, returns the messages of the unit it lost
// at once and goes on, so all end 0 well within the 15 min visibility timeout, exact and with
// no duplicate change.
TEST_F(PgSync, WorkersWhoseConnectionsAreCutMidRunReconnectAndEndExactAndQuickly) {
  SimServer sim({"--seed", "33", "--employees-per-branch", "12", "--sales-per-salesperson", "25"});
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 100, burst: 20"}});
  Expected expected = expected_from(sim.truth());
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Subprocess> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env(sim)));
  ASSERT_TRUE(sales_changes_exceed(100));
  const std::string others =
      " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
  int64_t cut = 0;
  const int64_t at_first_cut =
      count("SELECT count(*) FROM cascade_change_log WHERE table_name = 'sales'");
  for (int i = 0; i < 5; ++i) {
    if (std::none_of(workers.begin(), workers.end(), [](Subprocess& w) { return w.running(); }))
      break;
    cut += count("SELECT count(*)" + others);
    server_->exec(test_database_name("s_"), "SELECT pg_terminate_backend(pid)" + others);
    std::this_thread::sleep_for(700ms);
  }
  EXPECT_GT(cut, 0) << "no connection was cut";
  EXPECT_LT(at_first_cut, static_cast<int64_t>(expected.sales.size())) << "the cuts came too late";
  for (auto& w : workers) EXPECT_EQ(finish(w, 90s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s)
      << "a worker waited for a message's visibility timeout";
  EXPECT_EQ(compare_warehouse(url_, expected), 0);
  expect_no_duplicate_change(pipeline, sim);
}
