// The analysts' warehouse end to end: the real cascade binary syncs the example pipeline from the
// real simulator tick after tick (transfers, late sales, departures, hires); the attribution
// view, the deletion of a gone salesperson's sales and the guide's queries are checked against
// the ground truth. History, soft deletes and the change log run on every storage backend
// (tests/support/contracts/sync_contract.cpp).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/json.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

struct Fixture {
  SimServer sim{moving_sim()};
  std::string dir = temp_dir();
  std::string db = dir + "/w.db";
  std::string pipeline = example_pipeline(dir, {{"rate_limit: { per_second: 50, burst: 50 }",
                                                 "rate_limit: { per_second: 2000, burst: 200 }"}});

  Value sync() {
    RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"},
                      {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", "sqlite:" + db}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out);
  }
  int64_t scalar(const std::string& sql) { return query_db(db, sql).rows.at(0).at(0).as_int(); }
};

}  // namespace

TEST(Warehouse, EverySaleIsAttributedToTheBranchItsSalespersonBelongedToWhenItWasMade) {
  Fixture f;
  f.sync();
  int64_t transfers = 0;
  // One tick per sync: every membership of a salesperson is seen at least once.
  for (int tick = 0; tick < 30; ++tick) {
    transfers += f.sim.advance(1).find("transfers")->as_int();
    Value s = f.sync();
    ASSERT_TRUE(s.find("completed")->as_bool());
    ASSERT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  }
  ASSERT_GT(transfers, 5) << "the simulator should have moved people in 30 ticks";

  Value truth = f.sim.truth();
  std::map<std::pair<int64_t, int64_t>, int64_t> truth_branch;  // (sale, employee) -> branch
  for (const auto& s : truth.find("sales")->as_array())
    truth_branch[{s.find("id")->as_int(), s.find("employee_id")->as_int()}] =
        s.find("branch_at_sale")->as_int();
  QueryResult view = query_db(f.db,
                              "SELECT sale_id, employee_id, attributed_branch_id, "
                              "collected_branch_id FROM sales_attributed");
  ASSERT_EQ(view.rows.size(), truth_branch.size()) << "the view holds every listed sale once";
  int wrong = 0, moved = 0;
  for (const auto& row : view.rows) {
    auto it = truth_branch.find({row[0].as_int(), row[1].as_int()});
    ASSERT_NE(it, truth_branch.end()) << "sale " << row[0].to_text() << " is not in the truth";
    if (row[2].is_null() || row[2].as_int() != it->second) {
      if (++wrong <= 5)
        ADD_FAILURE() << "sale " << row[0].to_text() << " of employee " << row[1].to_text()
                      << ": attributed to " << row[2].to_text() << ", the vendor says "
                      << it->second;
    }
    if (row[3].as_int() != it->second) ++moved;
  }
  EXPECT_EQ(wrong, 0);
  // Sales made before a transfer and listed under the new branch: the reason for the view.
  EXPECT_GT(moved, 0);
}

TEST(Warehouse, OnlyACompleteCrawlMarksTheSalesOfAGoneSalespersonDeleted) {
  Fixture f;
  f.sync();
  // Run until someone with sales has left.
  auto orphaned = [&] {
    return f.scalar(
        "SELECT count(*) FROM sales WHERE _deleted_at IS NULL AND employee_id NOT IN "
        "(SELECT employee_id FROM salespersons WHERE _deleted_at IS NULL)");
  };
  for (int i = 0; i < 40 && orphaned() == 0; ++i) {
    f.sim.advance(2);
    // A partial crawl (one branch) learns of departures there but concludes nothing about sales
    // it did not ask for.
    RunResult partial =
        run({CASCADE_BIN, "sync", f.pipeline, "--json", "--event",
             R"({"branches": ["Scranton", "Akron", "Buffalo", "Rochester", "Syracuse", "Utica"]})"},
            {{"DM_API_URL", f.sim.url()}, {"CASCADE_STORAGE", "sqlite:" + f.db}});
    ASSERT_EQ(partial.exit_code, 0) << partial.err << partial.out;
  }
  ASSERT_GT(orphaned(), 0) << "no salesperson with sales left in 80 ticks";
  // The complete crawl marks them deleted, closing their history, with a delete in the log.
  int64_t deletes = f.scalar(
      "SELECT count(*) FROM cascade_change_log WHERE operation = 'delete' "
      "AND table_name = 'sales'");
  int64_t n = orphaned();
  Value s = f.sync();
  EXPECT_GE(s.find("stages")->find("sales")->find("gone")->as_int(), n);
  EXPECT_EQ(orphaned(), 0);
  EXPECT_GE(f.scalar("SELECT count(*) FROM cascade_change_log WHERE operation = 'delete' AND "
                     "table_name = 'sales'"),
            deletes + n);
  EXPECT_EQ(f.scalar("SELECT count(*) FROM sales WHERE _deleted_at IS NULL"),
            f.scalar("SELECT count(*) FROM sales_history WHERE _valid_to IS NULL"));
  // And the warehouse now holds exactly what a full crawl of the API yields.
  Value truth = f.sim.truth();
  EXPECT_EQ(f.scalar("SELECT count(*) FROM sales WHERE _deleted_at IS NULL"),
            static_cast<int64_t>(truth.find("sales")->as_array().size()));
}

TEST(Warehouse, TheQueriesOfTheWarehouseGuideRunAsWritten) {
  std::ifstream in(std::string(CASCADE_SOURCE_DIR) + "/docs/warehouse.md");
  ASSERT_TRUE(in) << "docs/warehouse.md";
  std::stringstream doc;
  doc << in.rdbuf();
  std::string text = doc.str();
  std::vector<std::string> queries;
  std::regex block("```sql\n([\\s\\S]*?)```");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), block);
       it != std::sregex_iterator(); ++it)
    queries.push_back((*it)[1]);
  ASSERT_GE(queries.size(), 5u);

  Fixture f;
  f.sync();
  int64_t transfers = 0;
  for (int tick = 0; tick < 16; ++tick) {
    transfers += f.sim.advance(1).find("transfers")->as_int();
    f.sync();
  }
  ASSERT_GT(transfers, 0);
  for (const auto& q : queries) {
    // Through the CLI, as an analyst runs them.
    RunResult r = run({CASCADE_BIN, "sql", "--storage", "sqlite:" + f.db, "-f", "json", q});
    ASSERT_EQ(r.exit_code, 0) << q << r.err;
    Value rows = parse_json(r.out);
    EXPECT_GT(rows.as_array().size(), 0u) << "no rows from:\n" << q;
  }
}

TEST(Warehouse, AStageThatKeepsOrphansKeepsTheSalesOfAGoneSalespersonListed) {
  Fixture f;
  f.pipeline = example_pipeline(
      temp_dir(),
      {{"rate_limit: { per_second: 50, burst: 50 }",
        "rate_limit: { per_second: 2000, burst: 200 }"},
       {"    concurrency: 3\n", "    concurrency: 3\n    deletions: { orphans: keep }\n"}});
  f.sync();
  auto orphaned = [&] {
    return f.scalar(
        "SELECT count(*) FROM sales WHERE _deleted_at IS NULL AND employee_id NOT IN "
        "(SELECT employee_id FROM salespersons WHERE _deleted_at IS NULL)");
  };
  for (int i = 0; i < 40 && orphaned() == 0; ++i) {
    f.sim.advance(2);
    Value s = f.sync();
    ASSERT_TRUE(s.find("completed")->as_bool());
  }
  ASSERT_GT(orphaned(), 0) << "complete crawls keep them: the stage says so";
  int64_t n = orphaned();
  f.sync();
  EXPECT_EQ(orphaned(), n);
}
