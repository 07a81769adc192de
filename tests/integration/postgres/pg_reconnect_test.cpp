// A worker whose connection to PostgreSQL is lost at the moments outside the units of a crawl:
// while it declares the pipeline (Engine::prepare), in the first unit of a run, while it seeds the
// roots, in the unit of an invoke, and in a queue read outside any unit. Each moment is pinned
// down by a lock this test holds, so that the worker waits there; its backend is then terminated
// (pg_terminate_backend, as a server restart or a network cut would) and the lock released. The
// worker must reconnect, do that step again and end as if nothing happened.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/json.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"
#include "support/cascade.h"
#include "support/postgres.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;
using namespace std::chrono_literals;

namespace {

std::string test_db_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string("r_") + info->test_suite_name() + "_" + info->name();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  return name.substr(0, 60);
}

class PgReconnect : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    url_ = server_->create_database(test_db_name());
    dir_ = temp_dir();
    pipeline_ =
        example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 300, burst: 50"}});
  }

  std::map<std::string, std::string> env() const {
    return {{"DM_API_URL", sim_.url()}, {"CASCADE_STORAGE", url_}};
  }
  int64_t count(const std::string& sql) {
    return query_storage(url_, sql).rows.at(0).at(0).as_int();
  }

  // Runs `argv` while this test holds the locks `hold` takes on `locker` (in a transaction, or
  // session advisory locks): once a backend of the database waits for a lock, it is terminated,
  // and the locks are released a moment later by `release`. Returns the command's result.
  RunResult cut_while_waiting(const std::vector<std::string>& argv,
                              const std::vector<std::string>& hold, const std::string& release) {
    pg::Conn locker(url_);
    for (const auto& sql : hold) locker.query(sql);
    RunResult r{};
    std::thread worker([&] { r = run(argv, env(), 120s); });
    pg::Conn watcher(url_);
    const std::string waiting =
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
        "pg_backend_pid() AND pid <> " +
        std::to_string(locker.backend_pid()) + " AND wait_event_type = 'Lock'";
    bool cut = eventually(
        [&] {
          pg::Result w = watcher.query(waiting);
          if (w.rows() == 0) return false;
          watcher.query("SELECT pg_terminate_backend(" + std::string(w.text(0, 0)) + ")");
          return true;
        },
        60s);
    std::this_thread::sleep_for(300ms);
    locker.query(release);
    worker.join();
    EXPECT_TRUE(cut) << "the worker never waited for the lock";
    return r;
  }

  void expect_complete_sync(const RunResult& r, const std::string& step) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ASSERT_FALSE(r.out.empty()) << r.err;
    EXPECT_TRUE(parse_json(r.out).find("completed")->as_bool()) << r.out;
    EXPECT_NE(r.err.find("connection lost while " + step), std::string::npos) << r.err;
    EXPECT_EQ(compare_warehouse(url_, expected_from(sim_.truth())), 0);
  }

  SimServer sim_{{"--seed", "61", "--employees-per-branch", "4", "--sales-per-salesperson", "3"}};
  PostgresServer* server_ = nullptr;
  std::string url_, dir_, pipeline_;
};

}  // namespace

TEST_F(PgReconnect, AConnectionLostWhileDeclaringThePipelineIsRetried) {
  RunResult first = run({CASCADE_BIN, "sync", pipeline_, "--json"}, env());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  sim_.advance(4);
  // Declaring a queue updates its row: a row this test has locked.
  RunResult r = cut_while_waiting({CASCADE_BIN, "sync", pipeline_, "--json"},
                                  {"BEGIN", "SELECT 1 FROM cascade_queues FOR UPDATE"}, "COMMIT");
  expect_complete_sync(r, "declaring");
}

TEST_F(PgReconnect, AConnectionLostInTheFirstUnitOfARunIsRetried) {
  // The run number is read under an advisory lock on its key.
  RunResult r = cut_while_waiting({CASCADE_BIN, "sync", pipeline_, "--json"},
                                  {"SELECT pg_advisory_lock(hashtext('cascade_meta:last_run_id'))"},
                                  "SELECT pg_advisory_unlock_all()");
  expect_complete_sync(r, "starting the run");
  EXPECT_GE(count("SELECT value::bigint FROM cascade_meta WHERE key = 'last_run_id'"), 1);
}

TEST_F(PgReconnect, AConnectionLostWhileSeedingTheRootsIsRetried) {
  // The tables exist (a first command opened the store), then sends wait for this lock.
  RunResult q = run({CASCADE_BIN, "queues", pipeline_, "--json"}, env());
  ASSERT_EQ(q.exit_code, 0) << q.err;
  RunResult r = cut_while_waiting({CASCADE_BIN, "sync", pipeline_, "--json"},
                                  {"BEGIN", "LOCK TABLE cascade_messages IN SHARE MODE"}, "COMMIT");
  expect_complete_sync(r, "seeding");
}

TEST_F(PgReconnect, AnInvokeWhoseUnitLosesItsConnectionAppliesItsMessagesAnyway) {
  RunResult q = run({CASCADE_BIN, "queues", pipeline_, "--json"}, env());
  ASSERT_EQ(q.exit_code, 0) << q.err;
  std::string event = dir_ + "/event.json";
  {
    std::ofstream f(event);
    f << R"({"branches": ["Scranton", "Stamford"]})";
  }
  // The unit that applies the two branches queues their salespersons: it waits for this lock.
  RunResult r = cut_while_waiting(
      {CASCADE_BIN, "invoke", "branches", "--event", event, "-p", pipeline_, "--json"},
      {"BEGIN", "LOCK TABLE cascade_messages IN SHARE MODE"}, "COMMIT");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("connection lost while committing"), std::string::npos) << r.err;
  QueryResult rows = query_storage(url_, "SELECT branch_name FROM branches ORDER BY branch_name");
  ASSERT_EQ(rows.rows.size(), 2u);
  EXPECT_EQ(rows.rows[0][0].as_string(), "Scranton");
  EXPECT_EQ(rows.rows[1][0].as_string(), "Stamford");
  RunResult queues = run({CASCADE_BIN, "queues", pipeline_, "--json"}, env());
  ASSERT_EQ(queues.exit_code, 0) << queues.err;
  std::map<std::string, int64_t> depth;
  Value stats = parse_json(queues.out);
  for (const auto& e : stats.as_array())
    depth[e.find("stage")->as_string()] = e.find("depth")->as_int();
  EXPECT_EQ(depth["salespersons"], 2);  // one message per branch, once
  EXPECT_EQ(count("SELECT count(*) FROM cascade_change_log WHERE table_name = 'branches'"), 2);
}

// Outside any unit of work (a daemon looking for queued work, `cascade queues`), a read that
// finds the connection lost while it idled reconnects and reads again.
TEST_F(PgReconnect, AQueueReadOutsideAUnitSurvivesALostConnection) {
  ManualClock clock;
  auto store = open_store(url_, clock);
  store->begin();
  store->queue().create("q", QueueOptions{});
  std::vector<std::string> bodies{"{\"a\":1}", "{\"a\":2}"};
  store->queue().send("q", bodies);
  store->commit();
  const std::string db = url_.substr(url_.rfind('/') + 1);
  const std::string others =
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
      "current_database() AND pid <> pg_backend_pid()";
  server_->exec(db, others);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(store->queue().stats("q").depth, 2);
  server_->exec(db, others);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(store->queue().dead_letters("q", 10).size(), 0u);
  // Inside a unit a lost connection still loses the unit.
  store->begin();
  server_->exec(db, others);
  std::this_thread::sleep_for(200ms);
  EXPECT_THROW(store->queue().stats("q"), ConnectionLost);
  store->rollback();
  store->begin();
  EXPECT_EQ(store->queue().receive("q", 10).size(), 2u);
  store->commit();
}
