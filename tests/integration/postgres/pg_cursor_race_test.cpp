// Two `cascade sync` workers on one PostgreSQL database applying responses of the same
// incremental scope at the same moment: the cursor of the scope must never move backwards, and
// no record may be skipped or overwritten by an older version. The vendor here is a test server
// that lists six scopes; both workers' first requests of a scope (made from the same, initial
// cursor) are answered at the same instant, one of them from a stale replica (older versions,
// an older cursor value). Whichever worker commits last, the end state must be the newest.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/json.h"
#include "sim/http_server.h"
#include "support/cascade.h"
#include "support/postgres.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kInitial = "2020-01-01T00:00:00Z";
constexpr const char* kOld = "2024-01-01T00:00:01Z";
constexpr const char* kNew = "2024-01-01T00:00:02Z";
const std::vector<std::string> kScopes{"a", "b", "c", "d", "e", "f"};
constexpr int kRows = 400;

// The vendor: per scope, the first two requests from the initial cursor are held until a common
// instant; of those two, one gets the stale listing (the first for even scopes, the second for
// odd ones, so whichever worker commits last, some scope ends with its stale response if the
// two are applied at once). Any other request gets the newest listing.
class RacingVendor {
 public:
  RacingVendor()
      : server_([this](const sim::HttpRequest& q, sim::HttpResponse& r) { serve(q, r); }, 8) {
    port_ = server_.listen("127.0.0.1", 0);
    server_.start();
  }
  ~RacingVendor() {
    server_.stop();
    server_.wait();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Scopes whose first request from the initial cursor has come.
  size_t scopes_requested() {
    std::lock_guard lock(mu_);
    return first_round_.size();
  }
  // Requests from the initial cursor, per scope.
  std::map<std::string, int> first_round() {
    std::lock_guard lock(mu_);
    return first_round_;
  }

 private:
  void serve(const sim::HttpRequest& q, sim::HttpResponse& r) {
    const std::string* x = q.param("x");
    const std::string* since = q.param("since");
    std::string scope = x ? *x : "";
    bool stale = false;
    {
      std::lock_guard lock(mu_);
      if (since && *since == kInitial) {
        int n = ++first_round_[scope];
        auto now = std::chrono::steady_clock::now();
        if (!release_at_) release_at_ = now + 5s;
        if (*release_at_ > now)
          r.delay = std::chrono::duration_cast<std::chrono::milliseconds>(*release_at_ - now);
        auto index = std::find(kScopes.begin(), kScopes.end(), scope) - kScopes.begin();
        stale = n <= 2 && ((n == 1) == (index % 2 == 0));
      }
    }
    std::string body = "{\"result\":[";
    for (int i = 1; i <= kRows; ++i) {
      if (i > 1) body += ',';
      body += "{\"id\":" + std::to_string(i) + ",\"v\":\"" + (stale ? "old" : "new") +
              "\",\"updated_at\":\"" + (stale ? kOld : kNew) + "\"}";
    }
    body += "]}";
    r.body = std::move(body);
  }

  sim::HttpServer server_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, int> first_round_;
  std::optional<std::chrono::steady_clock::time_point> release_at_;
};

int finish(Subprocess& w) {
  if (!eventually([&] { return !w.running(); }, 120s)) {
    ADD_FAILURE() << "worker " << w.pid() << " still running after 120 s";
    w.signal(SIGKILL);
  }
  return w.wait();
}

}  // namespace

TEST(PgCursorRace, TwoWorkersApplyingOneIncrementalScopeNeverMoveItsCursorBackOrKeepOldRows) {
  CASCADE_REQUIRE_POSTGRES(server);
  std::string url = server->create_database("c_pgcursorrace_twoworkers");
  RacingVendor vendor;
  std::string dir = temp_dir();
  std::string pipeline = dir + "/race.yaml";
  {
    std::ofstream f(pipeline);
    f << "name: cursor-race\n"
         "source:\n"
         "  base_url: "
      << vendor.url()
      << "\n"
         "  rate_limit: { per_second: 1000, burst: 100 }\n"
         "storage: ${CASCADE_STORAGE}\n"
         "stages:\n"
         "  items:\n"
         "    inputs:\n"
         "      x: [a, b, c, d, e, f]\n"
         "    request: GET /items\n"
         "    params: { x: \"{x}\" }\n"
         "    records: result\n"
         "    key: { item_id: id, x: \"{message.x}\" }\n"
         "    concurrency: 6\n"
         "    incremental: { cursor_path: updated_at, param: since,\n"
         "                   initial_value: \""
      << kInitial << "\" }\n";
  }
  std::map<std::string, std::string> env{{"CASCADE_STORAGE", url}};
  std::vector<Subprocess> workers;
  workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env));
  // The second starts once the first holds every scope's message (so its own seed is not
  // coalesced into them) and asks from the same initial cursor before the first has committed.
  ASSERT_TRUE(eventually([&] { return vendor.scopes_requested() == kScopes.size(); }, 60s));
  workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env));
  for (auto& w : workers) {
    std::string line = w.read_line(120s);
    EXPECT_EQ(finish(w), 0);
    ASSERT_FALSE(line.empty());
    Value s = parse_json(line);
    EXPECT_TRUE(s.find("completed")->as_bool()) << line;
    EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0) << line;
  }
  for (const auto& [scope, n] : vendor.first_round())
    EXPECT_GE(n, 2) << "scope " << scope << ": the two workers did not race (start too slow?)";

  auto count = [&](const std::string& sql) { return query_storage(url, sql).rows[0][0].as_int(); };
  EXPECT_EQ(count("SELECT count(*) FROM items WHERE _deleted_at IS NULL"),
            static_cast<int64_t>(kScopes.size()) * kRows);
  EXPECT_EQ(count("SELECT count(*) FROM items WHERE v <> 'new'"), 0)
      << "an older response overwrote newer rows";
  EXPECT_EQ(count("SELECT count(*) FROM cascade_cursors WHERE stage = 'items'"),
            static_cast<int64_t>(kScopes.size()));
  EXPECT_EQ(count(std::string("SELECT count(*) FROM cascade_cursors WHERE stage = 'items' AND "
                              "value <> '\"") +
                  kNew + "\"'"),
            0)
      << "a cursor moved back";
}
