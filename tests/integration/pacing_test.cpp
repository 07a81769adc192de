// Pacing to a vendor limit learnt only from its RateLimit headers: `cascade sync` of a pipeline
// that allows 50 requests/s against a simulator that allows 20/s (fixed or sliding window) draws
// at most 1% 429s and fills the warehouse exactly, and the learnt limit paces the next run from
// its first request even when the vendor stops saying it. Timing targets live in bench/pacing.sh.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/json.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

// Responses the simulator served with `status`, over the vendor paths.
int64_t served_with(SimServer& sim, const std::string& status) {
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  int64_t n = 0;
  for (const auto& [path, by_status] : stats.find("requests")->as_object())
    if (by_status.is_object())
      for (const auto& [st, count] : by_status.as_object())
        if (st == status) n += count.as_int();
  return n;
}

struct Synced {
  int64_t requests = 0, throttled = 0;
  double seconds = 0;
};

Synced sync(const std::string& pipeline, const std::map<std::string, std::string>& env) {
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  return {s.find("total")->find("requests")->as_int(), s.find("total")->find("throttled")->as_int(),
          s.find("seconds")->as_number()};
}

void expect_paced(const std::string& window) {
  // 13 branches, 13 employee listings and about 80 sales listings: ~5 vendor windows.
  SimServer sim({"--seed", "31", "--employees-per-branch", "16", "--sales-per-salesperson", "5",
                 "--quota", "20/1s", "--quota-window", window});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = example_pipeline(dir);  // rate_limit: 50/s, burst 50
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  Synced s = sync(pipeline, env);
  EXPECT_GT(s.requests, 80) << "enough requests to cross several vendor windows";
  EXPECT_EQ(s.throttled, served_with(sim, "429"));
  EXPECT_LE(s.throttled * 100, s.requests) << s.throttled << " 429s in " << s.requests;
  EXPECT_EQ(warehouse_sales(db), truth_sales(sim.truth()));
  // The limit is kept for the next run.
  auto saved = query_db(db, "SELECT value FROM cascade_meta WHERE key = 'vendor_rate'");
  ASSERT_EQ(saved.rows.size(), 1u);
  EXPECT_EQ(saved.rows[0][0].as_string(), "20 1000");
}

}  // namespace

TEST(Pacing, AFixedWindowVendorLimitDrawsAtMostOnePercent429s) {
  expect_paced("fixed");
}

TEST(Pacing, ASlidingWindowVendorLimitDrawsAtMostOnePercent429s) {
  expect_paced("sliding");
}

TEST(Pacing, TheLearntLimitPacesTheNextRunFromItsFirstRequest) {
  SimServer sim({"--seed", "32", "--employees-per-branch", "16", "--sales-per-salesperson", "5",
                 "--quota", "20/1s"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = example_pipeline(dir);
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  Synced first = sync(pipeline, env);
  EXPECT_LE(first.throttled * 100, first.requests);
  // The vendor no longer sends a single RateLimit header: only the saved limit can pace run 2,
  // which would otherwise go at the file's 50/s with a burst of 50 (well under 2 s).
  sim.clear_faults();
  Synced second = sync(pipeline, env);
  ASSERT_GT(second.requests, 80);
  EXPECT_EQ(second.throttled, 0);
  double fastest = static_cast<double>(second.requests - 1) / 20.0;
  EXPECT_GE(second.seconds, fastest * 0.95)
      << second.requests << " requests in " << second.seconds << " s: not paced at 20/s";
  EXPECT_EQ(warehouse_sales(db), truth_sales(sim.truth()));
}
