// The orphan sweep when several `cascade sync` workers share one PostgreSQL database: after the
// vendor lets salespersons go, a complete crawl made by several workers marks their sales deleted
// (the crawl-wide stamps in the database), exactly as one SQLite process does; a crawl that
// dead-lettered anything sweeps nothing; a worker killed with kill -9 in the middle of the crawl
// leaves the sweep exact.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <set>
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

std::string test_db_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string("w_") + info->test_suite_name() + "_" + info->name();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  return name.substr(0, 60);
}

int finish(Subprocess& w, std::chrono::seconds limit = 120s) {
  if (!eventually([&] { return !w.running(); }, limit)) {
    ADD_FAILURE() << "worker " << w.pid() << " still running after " << limit.count() << " s";
    w.signal(SIGKILL);
  }
  return w.wait();
}

class PgSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    url_ = server_->create_database(test_db_name());
    dir_ = temp_dir();
  }

  std::map<std::string, std::string> env() const {
    return {{"DM_API_URL", sim_.url()}, {"CASCADE_STORAGE", url_}};
  }
  int64_t count(const std::string& sql) {
    return query_storage(url_, sql).rows.at(0).at(0).as_int();
  }

  // `n` workers sync at once; each must end 0 with a completed run. Returns their summaries.
  std::vector<Value> sync_with(int n, const std::string& pipeline) {
    std::vector<Subprocess> workers;
    for (int i = 0; i < n; ++i)
      workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env()));
    std::vector<Value> out;
    for (auto& w : workers) {
      std::string line = w.read_line(120s);
      EXPECT_EQ(finish(w), 0);
      out.push_back(line.empty() ? Value() : parse_json(line));
      if (out.back().is_object())
        EXPECT_TRUE(out.back().find("completed")->as_bool()) << line;
      else
        ADD_FAILURE() << "a worker printed no summary";
    }
    return out;
  }
  static int64_t total(const std::vector<Value>& summaries, const char* field) {
    int64_t n = 0;
    for (const auto& s : summaries)
      if (s.is_object()) n += s.find("total")->find(field)->as_int();
    return n;
  }

  // Live sales whose salesperson is no longer live: what an orphan sweep must mark deleted.
  int64_t orphaned() {
    return count(
        "SELECT count(*) FROM sales WHERE _deleted_at IS NULL AND employee_id NOT IN "
        "(SELECT employee_id FROM salespersons WHERE _deleted_at IS NULL)");
  }

  // Live sales of the warehouse whose salesperson the vendor no longer lists.
  int64_t sales_of_departed(const Expected& truth) {
    std::set<std::string> current;
    for (const auto& [k, v] : truth.salespersons) current.insert(v.find("employee_id")->to_text());
    int64_t n = 0;
    for (const auto& [k, row] : live_table(url_, "sales", {"sale_id", "employee_id"}))
      if (!current.count(row.find("employee_id")->to_text())) ++n;
    return n;
  }

  // Advances the vendor until some salesperson with live sales in the warehouse has left.
  Expected advance_until_departures(int64_t& departed_sales) {
    for (int i = 0; i < 40; ++i) {
      sim_.advance(2);
      Expected e = expected_from(sim_.truth());
      departed_sales = sales_of_departed(e);
      if (departed_sales > 0) return e;
    }
    ADD_FAILURE() << "no salesperson with sales left in 80 ticks";
    return {};
  }

  int64_t marker(const std::string& prefix) {
    auto r = query_storage(url_,
                           "SELECT coalesce(max(value), 0) FROM cascade_coord_marker WHERE "
                           "key LIKE '" +
                               prefix + ":%'");
    return r.rows[0][0].as_int();
  }

  SimServer sim_{{"--seed", "51", "--employees-per-branch", "8", "--sales-per-salesperson", "12",
                  "--new-sales-per-tick", "3", "--departures-per-tick", "0.5", "--hires-per-tick",
                  "0.3"}};
  PostgresServer* server_ = nullptr;
  std::string url_, dir_;
};

}  // namespace

TEST_F(PgSweep, ACrawlBySeveralWorkersMarksTheSalesOfDepartedSalespersonsDeleted) {
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 400, burst: 50"}});
  sync_with(3, pipeline);
  ASSERT_EQ(compare_warehouse(url_, expected_from(sim_.truth())), 0);
  EXPECT_EQ(orphaned(), 0);

  int64_t departed = 0;
  Expected e = advance_until_departures(departed);
  ASSERT_GT(departed, 0);
  int64_t deletes = count(
      "SELECT count(*) FROM cascade_change_log WHERE operation = 'delete' AND table_name = "
      "'sales'");
  std::vector<Value> s = sync_with(3, pipeline);
  EXPECT_EQ(total(s, "dead_lettered"), 0);
  // The sales of those who left are marked deleted, once, and the warehouse is the truth.
  EXPECT_EQ(orphaned(), 0);
  EXPECT_EQ(sales_of_departed(e), 0);
  EXPECT_EQ(compare_warehouse(url_, e), 0);
  EXPECT_GE(count("SELECT count(*) FROM cascade_change_log WHERE operation = 'delete' AND "
                  "table_name = 'sales'"),
            deletes + departed);
  EXPECT_EQ(count("SELECT count(*) FROM sales WHERE _deleted_at IS NULL"),
            count("SELECT count(*) FROM sales_history WHERE _valid_to IS NULL"));
  // Exactly one worker swept the last crawl.
  EXPECT_GT(marker("crawl"), 1);
  EXPECT_EQ(marker("crawl_swept"), marker("crawl"));

  // An unchanged re-sync by several workers writes nothing, and revives nothing.
  int64_t changes = count("SELECT count(*) FROM cascade_change_log");
  sync_with(2, pipeline);
  EXPECT_EQ(count("SELECT count(*) FROM cascade_change_log"), changes);
  EXPECT_EQ(compare_warehouse(url_, e), 0);
}

TEST_F(PgSweep, ACrawlThatDeadLettersAMessageSweepsNothingAndTheNextCleanCrawlDoes) {
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 400, burst: 50"}});
  sync_with(2, pipeline);
  int64_t departed = 0;
  Expected e = advance_until_departures(departed);
  ASSERT_GT(departed, 0);
  // Some sales listings fail for good in this crawl: it did not see every listing, so it may
  // not conclude that a listing it did not apply is no longer requested.
  sim_.set_faults(R"({"malformed":{"p":0.3,"path":"/sales"}})");
  std::vector<Value> s = sync_with(2, pipeline);
  EXPECT_GT(total(s, "dead_lettered"), 0);
  EXPECT_EQ(sales_of_departed(e), departed) << "a crawl that dead-lettered swept orphans";
  EXPECT_LT(marker("crawl_swept"), marker("crawl"));
  EXPECT_GT(marker("crawl_faulted"), 0);

  // The vendor is fixed: the next crawl sees everything and sweeps.
  sim_.clear_faults();
  s = sync_with(2, pipeline);
  EXPECT_EQ(total(s, "dead_lettered"), 0);
  EXPECT_EQ(sales_of_departed(e), 0);
  EXPECT_EQ(orphaned(), 0);
  EXPECT_EQ(compare_warehouse(url_, e), 0);
  EXPECT_EQ(marker("crawl_swept"), marker("crawl"));
}

TEST_F(PgSweep, AWorkerKilledMidCrawlLeavesTheSweepExact) {
  // Slow enough that the kill lands mid-crawl; a short visibility timeout, so the killed
  // worker's messages come back to the others within the test.
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 40, burst: 5"},
                              {"visibility_timeout: 15m", "visibility_timeout: 3s"}});
  sync_with(3, pipeline);
  int64_t departed = 0;
  Expected e = advance_until_departures(departed);
  ASSERT_GT(departed, 0);
  std::vector<Subprocess> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env()));
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(workers[1].running()) << "the crawl ended before the kill";
  workers[1].signal(SIGKILL);
  EXPECT_EQ(workers[1].wait(), 128 + SIGKILL);
  for (int i : {0, 2}) {
    std::string line = workers[i].read_line(120s);
    EXPECT_EQ(finish(workers[i]), 0);
    ASSERT_FALSE(line.empty());
    EXPECT_TRUE(parse_json(line).find("completed")->as_bool()) << line;
  }
  // The killed crawl is exact but for what only a sweep removes: whether it swept depends on
  // whether a survivor saw both its seed and its drained end (on a loaded machine a late
  // starter may open a new crawl). It never sweeps wrong.
  const int64_t left = sales_of_departed(e);
  EXPECT_EQ(compare_warehouse(url_, e, /*report=*/false), left);
  // Then a drain, as after any crash: exact, the departed salespersons' sales marked deleted.
  sync_with(2, pipeline);
  EXPECT_EQ(sales_of_departed(e), 0);
  EXPECT_EQ(orphaned(), 0);
  EXPECT_EQ(compare_warehouse(url_, e), 0);
  EXPECT_EQ(marker("crawl_swept"), marker("crawl"));
}

// The crawl's fault is known to every worker, not only to the one that met it: a worker that
// joins a crawl after another dead-lettered some of its listings, and itself dead-letters
// nothing, must not sweep either (those listings were not applied, so their rows are no orphans).
TEST_F(PgSweep, AWorkerThatDeadLetteredNothingDoesNotSweepACrawlAnotherDeadLetteredIn) {
  std::string fast =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 400, burst: 50"}});
  sync_with(1, fast);
  int64_t departed = 0;
  Expected e = advance_until_departures(departed);
  ASSERT_GT(departed, 0);
  std::string slow_dir = temp_dir();
  std::string slow =
      example_pipeline(slow_dir, {{"per_second: 50, burst: 50", "per_second: 20, burst: 2"}});
  auto sales_dead = [&] {
    RunResult q = run({CASCADE_BIN, "queues", slow, "--json"}, env());
    if (q.exit_code != 0) return int64_t{0};
    Value v = parse_json(q.out);
    for (const auto& s : v.as_array())
      if (s.find("stage")->as_string() == "sales") return s.find("dlq_depth")->as_int();
    return int64_t{0};
  };
  // The first worker meets a vendor that garbles every sales listing...
  sim_.set_faults(R"({"malformed":{"p":1,"path":"/sales"}})");
  Subprocess first = Subprocess::start({CASCADE_BIN, "sync", slow, "--json"}, env());
  ASSERT_TRUE(eventually([&] { return sales_dead() >= 3; }, 60s));
  // ... which is fixed; once the first worker's requests under way are answered, a second joins
  // the crawl and meets no fault at all.
  sim_.clear_faults();
  std::this_thread::sleep_for(1s);
  int64_t dead_before_second = sales_dead();
  ASSERT_TRUE(first.running()) << "the crawl ended before the second worker joined";
  Subprocess second = Subprocess::start({CASCADE_BIN, "sync", slow, "--json"}, env());
  std::string line = second.read_line(120s);
  EXPECT_EQ(finish(second), 0);
  EXPECT_EQ(finish(first), 0);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(parse_json(line).find("total")->find("dead_lettered")->as_int(), 0) << line;
  EXPECT_EQ(sales_dead(), dead_before_second) << "the second worker's run saw dead letters itself";
  // No sweep: every sale the vendor lists is still live, those of the departed too.
  EXPECT_EQ(
      compare_rows(e.sales, live_table(url_, "sales", {"sale_id", "employee_id"}), "sales", false),
      0);
  EXPECT_EQ(sales_of_departed(e), departed);
  EXPECT_LT(marker("crawl_swept"), marker("crawl"));
}
