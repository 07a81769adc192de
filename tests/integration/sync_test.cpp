// End to end on a real SQLite file: `cascade invoke` runs one stage on an AWS-style event. The
// whole sync against the simulator's ground truth, and `cascade sql`, run on every storage
// backend (tests/support/contracts/sync_contract.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "core/json.h"
#include "load/column_names.h"
#include "store/store.h"
#include "support/contracts/sync_contract.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

const std::string kPipeline = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";

struct Env {
  std::string dir = temp_dir();
  std::string db = dir + "/cascade.db";
  std::map<std::string, std::string> vars(const SimServer& sim) const {
    return {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", "sqlite:" + db}};
  }
};

Value sync_json(const SimServer& sim, const Env& env, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{CASCADE_BIN, "sync", kPipeline, "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  RunResult r = run(argv, env.vars(sim));
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  return parse_json(r.out);
}

QueryResult query(const Env& env, const std::string& sql) {
  return query_storage("sqlite:" + env.db, sql);
}

// The end-to-end scenarios every storage backend runs (support/contracts/sync_contract.h), on a
// SQLite file of their own; times are ISO text with milliseconds in UTC.
const StorageBackend kSqlite{"sqlite", R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)",
                             [](const std::string& tag, std::string&) {
                               return "sqlite:" + temp_dir() + "/cascade" + tag + ".db";
                             }};
INSTANTIATE_TEST_SUITE_P(Sqlite, SyncContract, ::testing::Values(kSqlite));

}  // namespace

TEST(Sync, InvokeRunsOneStageOnAnAwsStyleEventAndQueuesChildren) {
  SimServer sim({"--seed", "3", "--employees-per-branch", "10", "--sales-per-salesperson", "5"});
  Env env;
  std::string event = env.dir + "/event.json";
  {
    std::ofstream f(event);
    f << R"({"branches": ["Scranton", "Stamford"]})";
  }
  RunResult r =
      run({CASCADE_BIN, "invoke", "branches", "--event", event, "-p", kPipeline, "--json"},
          env.vars(sim));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = query(env, "SELECT branch_name FROM branches ORDER BY branch_name");
  ASSERT_EQ(rows.rows.size(), 2u);
  EXPECT_EQ(rows.rows[0][0].as_string(), "Scranton");
  EXPECT_EQ(rows.rows[1][0].as_string(), "Stamford");
  RunResult q = run({CASCADE_BIN, "queues", kPipeline, "--json"}, env.vars(sim));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Value queues = parse_json(q.out);
  std::map<std::string, int64_t> depth;
  for (const auto& e : queues.as_array())
    depth[e.find("stage")->as_string()] = e.find("depth")->as_int();
  EXPECT_EQ(depth["salespersons"], 2);  // one message per branch, not yet processed
  EXPECT_EQ(depth["sales"], 0);
  // A sync then drains what invoke queued (and the default inputs).
  Value s = sync_json(sim, env);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_EQ(query(env, "SELECT count(*) FROM branches").rows[0][0].as_int(), 13);
}
