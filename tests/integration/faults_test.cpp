// The engine against a misbehaving vendor: transient faults are retried, throttling slows the run
// down instead of failing it, and a spent quota leaves the messages queued. Permanent faults
// (dead letters with a reason, then a redrive) run on every storage backend
// (tests/support/contracts/sync_contract.cpp).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/json.h"
#include "store/store.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {}  // namespace

TEST(Faults, TransientFaultsAreRetriedAndTheWarehouseIsExact) {
  SimServer sim(
      {"--seed", "21", "--employees-per-branch", "12", "--sales-per-salesperson", "40", "--faults",
       R"({"5xx":0.2,"reset":0.05,"truncate":0.05,"slow":{"p":0.1,"min_ms":20,"max_ms":200}})"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline =
      example_pipeline(dir, {{"retry: { attempts: 4, backoff: 200ms..30s }",
                              "retry: { attempts: 4, backoff: 10ms..200ms }"},
                             {"per_second: 50, burst: 50", "per_second: 300, burst: 50"}});
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_GT(s.find("total")->find("requests")->as_int(),
            s.find("total")->find("messages")->as_int())
      << "faults should have caused retries";
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  EXPECT_GT(stats.find("faults")->find("total")->as_int(), 10);
  EXPECT_EQ(warehouse_sales(db), truth_sales(sim.truth()));
}

TEST(Faults, AVendorQuotaTheFileOverestimatesSlowsTheRunInsteadOfFailingIt) {
  // The vendor allows 40 requests a second and says so in RateLimit headers; the pipeline file
  // believes 200.
  SimServer sim({"--seed", "23", "--employees-per-branch", "15", "--sales-per-salesperson", "10",
                 "--quota", "40/1s"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline =
      example_pipeline(dir, {{"per_second: 50, burst: 50", "per_second: 200, burst: 20"},
                             {"retry: { attempts: 4, backoff: 200ms..30s }",
                              "retry: { attempts: 6, backoff: 50ms..2s }"}});
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  int64_t requests = s.find("total")->find("requests")->as_int();
  EXPECT_GT(requests, 80) << "enough requests to cross several vendor windows";
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  int64_t throttled = 0;
  for (const auto& [kind, by_path] : stats.find("faults")->find("kinds")->as_object())
    if (kind == "quota")
      for (const auto& [path, n] : by_path.as_object()) throttled += n.as_int();
  EXPECT_EQ(s.find("total")->find("throttled")->as_int(), throttled);
  EXPECT_LT(throttled * 10, requests)
      << "the limiter should follow the vendor's window, not hammer it";
  EXPECT_EQ(warehouse_sales(db), truth_sales(sim.truth()));
}

TEST(Faults, ASpentQuotaLeavesMessagesQueuedAndSurvivesARestart) {
  SimServer sim({"--seed", "24", "--employees-per-branch", "10", "--sales-per-salesperson", "5"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline =
      example_pipeline(dir, {{"quota: { requests: 100000, per: 1d }",
                              "quota: { requests: 40, per: 1d, reserve: { sales: 0.25 } }"}});
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  Value s = parse_json(r.out);
  EXPECT_FALSE(s.find("completed")->as_bool());
  EXPECT_NE(s.find("quota_exhausted_until"), nullptr);
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_GT(s.find("stages")->find("sales")->find("messages")->as_int(), 0)
      << "the reserve let sales through";
  // A second run in the same window makes no request at all: the ledger was saved.
  RunResult again = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  EXPECT_EQ(again.exit_code, 3) << again.err;
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  int64_t served = 0;
  for (const auto& [path, by_status] : stats.find("requests")->as_object())
    if (path != "/admin/stats" && path != "/healthz" && by_status.is_object())
      for (const auto& [status, n] : by_status.as_object()) served += n.as_int();
  EXPECT_LE(served, 40);
  RunResult q = run({CASCADE_BIN, "queues", pipeline, "--json"}, env);
  int64_t waiting = 0, dlq = 0;
  Value queues = parse_json(q.out);
  for (const auto& e : queues.as_array()) {
    waiting += e.find("depth")->as_int() + e.find("in_flight")->as_int();
    dlq += e.find("dlq_depth")->as_int();
  }
  EXPECT_GT(waiting, 0);
  EXPECT_EQ(dlq, 0);
}
