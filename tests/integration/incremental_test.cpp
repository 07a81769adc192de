// Incremental loading per parent, end to end: crashes in the middle of incremental syncs, a
// vendor that returns nothing, a bad `incremental:` key, responses overtaking each other. The
// whole incremental sync against the simulator's ground truth runs on every storage backend
// (tests/support/contracts/sync_contract.cpp).
#include "support/incremental.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "core/json.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

int64_t count(const std::string& db, const std::string& sql) {
  return query_db(db, sql).rows[0][0].as_int();
}

}  // namespace

// A vendor of parents and their items, whose item listings honour `since` and log what they
// were asked. Parent 2 leaves after the first run; every listing is empty after it.
struct ItemsVendor {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> asked;  // (parent, since or "-")
  bool later = false;
  CannedServer server{[this](const sim::HttpRequest& req, sim::HttpResponse& res) {
    std::lock_guard lock(mu);
    if (req.path == "/parents") {
      res.body = later ? R"([{"id":1}])" : R"([{"id":1},{"id":2}])";
      return;
    }
    const std::string* p = req.param("parent");
    const std::string* since = req.param("since");
    asked.emplace_back(p ? *p : "", since ? *since : "-");
    if (later) {
      res.body = "[]";
      return;
    }
    std::string base = p && *p == "1" ? "2024-01-0" : "2024-02-0";
    res.body = "[";
    for (int i = 1; i <= 6; ++i)
      res.body += (i > 1 ? "," : "") + std::string(R"({"id":)") + std::to_string(i) +
                  R"(,"changed":")" + base + std::to_string(i) + R"( 10:00:00"})";
    res.body += "]";
  }};
};

TEST(Incremental, AnIncrementalListingNeverDeletesAndEachParentSendsItsOwnCursor) {
  ItemsVendor vendor;
  std::string dir = temp_dir();
  std::string db = dir + "/items.db", pipeline = dir + "/items.yaml";
  std::ofstream(pipeline) << "name: items\nsource: { base_url: \"" << vendor.server.url()
                          << "\" }\nstorage: sqlite:" << db
                          << "\nstages:\n"
                             "  parents:\n"
                             "    inputs: { all: [1] }\n"
                             "    request: /parents\n"
                             "    key: { parent_id: id }\n"
                             "    emit: { items: { parent: \"{record.id}\" } }\n"
                             "  items:\n"
                             "    request: /items?parent={parent}\n"
                             "    key: { item_id: id, parent: \"{message.parent}\" }\n"
                             "    incremental: { cursor_path: changed, param: since,\n"
                             "                   initial_value: \"2000-01-01 00:00:00\" }\n";
  auto run_sync = [&] {
    RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out);
  };
  Value s1 = run_sync();
  EXPECT_EQ(stage_stat(s1, "items", "new"), 12);
  {
    std::lock_guard lock(vendor.mu);
    std::set<std::pair<std::string, std::string>> asked(vendor.asked.begin(), vendor.asked.end());
    EXPECT_EQ(asked, (std::set<std::pair<std::string, std::string>>{{"1", "2000-01-01 00:00:00"},
                                                                    {"2", "2000-01-01 00:00:00"}}));
    vendor.asked.clear();
  }
  Value s2 = run_sync();
  {
    std::lock_guard lock(vendor.mu);
    std::set<std::pair<std::string, std::string>> asked(vendor.asked.begin(), vendor.asked.end());
    // Each parent's own cursor, URL-decoded by the server: the space travelled encoded.
    EXPECT_EQ(asked, (std::set<std::pair<std::string, std::string>>{{"1", "2024-01-06 10:00:00"},
                                                                    {"2", "2024-02-06 10:00:00"}}));
    vendor.later = true;
  }
  EXPECT_EQ(stage_stat(s2, "items", "unchanged"), 12);
  // Now every listing is empty and parent 2 is gone: an incremental listing holds only what
  // changed, so no row is deleted, held or swept as an orphan, in this run or the next.
  for (int i = 0; i < 2; ++i) {
    Value s = run_sync();
    EXPECT_EQ(stage_stat(s, "items", "gone"), 0);
    EXPECT_EQ(stage_stat(s, "items", "held"), 0);
    if (i == 0) {
      EXPECT_EQ(stage_stat(s, "parents", "gone"), 1) << "parents still infer deletions";
    }
  }
  EXPECT_EQ(count(db, "SELECT count(*) FROM items WHERE _deleted_at IS NULL"), 12);
  EXPECT_EQ(count(db,
                  "SELECT count(*) FROM cascade_change_log WHERE table_name='items' AND "
                  "operation='delete'"),
            0);
  // An empty listing leaves the cursor where it was.
  {
    std::lock_guard lock(vendor.mu);
    EXPECT_EQ(vendor.asked.back().second, "2024-01-06 10:00:00");
  }
}

TEST(Incremental, KilledDuringIncrementalSyncsThenRerunEndsExactWithNoDuplicateChange) {
  SimServer sim(quiet_sim("11", "150"));
  std::string dir = temp_dir();
  std::string pipeline = incremental_pipeline(dir, "rate_limit: { per_second: 150, burst: 10 }");
  std::string ref_db = dir + "/reference.db", db = dir + "/killed.db";
  std::map<std::string, std::string> ref_env{{"DM_API_URL", sim.url()},
                                             {"CASCADE_STORAGE", "sqlite:" + ref_db}};
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  // Every change, by table, key and kind: a duplicate change makes a count differ.
  const std::string changes =
      "SELECT table_name || ' ' || key || ' ' || operation, count(*) FROM cascade_change_log "
      "GROUP BY 1 ORDER BY 1";
  auto changes_of = [&](const std::string& file) {
    std::vector<std::string> out;
    for (const auto& row : query_db(file, changes).rows)
      out.push_back(row[0].as_string() + " x" + row[1].to_text());
    return out;
  };
  std::mt19937 rng(20261129);
  auto killed_then_completed = [&](int kills, double seconds) {
    std::uniform_int_distribution<int> delay_ms(5, std::max(50, static_cast<int>(seconds * 1000)));
    int done = 0;
    for (int attempt = 0; attempt < kills * 3 && done < kills; ++attempt) {
      Subprocess p = Subprocess::start({CASCADE_BIN, "sync", pipeline}, env);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      if (p.running()) p.signal(SIGKILL);
      // It may have finished between the look and the signal: then it exited cleanly.
      int rc = p.wait();
      EXPECT_TRUE(rc == 128 + SIGKILL || rc == 0) << rc;
      done += rc == 128 + SIGKILL ? 1 : 0;
    }
    RunResult last = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
    ASSERT_EQ(last.exit_code, 0) << last.err;
    EXPECT_TRUE(parse_json(last.out).find("completed")->as_bool());
  };

  for (int phase = 0; phase < 2; ++phase) {
    SCOPED_TRACE(phase == 0 ? "initial sync" : "incremental sync after changes");
    if (phase == 1) sim.advance(4);
    RunResult ref = run({CASCADE_BIN, "sync", pipeline, "--json"}, ref_env);
    ASSERT_EQ(ref.exit_code, 0) << ref.err;
    double seconds = parse_json(ref.out).find("seconds")->as_number();
    killed_then_completed(phase == 0 ? 8 : 5, seconds);
    Truth t = truth_of(sim.truth());
    expect_sales_equal_truth("sqlite:" + db, t);
    expect_sales_equal_truth("sqlite:" + ref_db, t);
    EXPECT_EQ(changes_of(db), changes_of(ref_db));
    EXPECT_EQ(query_db(db, "SELECT value FROM cascade_cursors ORDER BY scope").rows,
              query_db(ref_db, "SELECT value FROM cascade_cursors ORDER BY scope").rows);
  }
  EXPECT_EQ(query_db(db, "PRAGMA integrity_check").rows[0][0].as_string(), "ok");
}

TEST(Incremental, ABadIncrementalKeyIsRefusedWithItsPosition) {
  std::string dir = temp_dir();
  std::string pipeline = example_pipeline(
      dir, {{"    concurrency: 3\n",
             "    concurrency: 3\n    incremental: { cursor_pth: updated_at, param: since }\n"}});
  RunResult r =
      run({CASCADE_BIN, "sync", pipeline}, {{"CASCADE_STORAGE", "sqlite:" + dir + "/never.db"}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // At the key, on the line after sales' concurrency.
  int line = 1;
  {
    std::ifstream in(pipeline);
    std::string text;
    while (std::getline(in, text) && text.find("cursor_pth") == std::string::npos) ++line;
  }
  EXPECT_NE(r.err.find("pipeline.yaml:" + std::to_string(line) + ":20:"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("unknown key 'cursor_pth' in stage 'sales' incremental: did you mean "
                       "'cursor_path'?"),
            std::string::npos)
      << r.err;
  std::string missing = example_pipeline(
      dir, {{"    concurrency: 3\n", "    concurrency: 3\n    incremental: { param: since }\n"}});
  r = run({CASCADE_BIN, "validate", missing});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("missing required key 'cursor_path'"), std::string::npos) << r.err;
  r = run({CASCADE_BIN, "validate", incremental_pipeline(dir)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("/sales?employee_id={employee_id} (incremental: updated_at -> "
                       "updated_since)"),
            std::string::npos)
      << r.out;
}

TEST(Incremental, TheSimulatorFiltersSalesByUpdatedSinceAndRefusesABadTime) {
  SimServer sim(quiet_sim("5", "40"));
  Truth t = truth_of(sim.truth());
  const auto& [emp, ids] = *t.sales_of.begin();
  std::string cursor = cursors_of(t).at(emp);
  int64_t expected = 0;
  for (int64_t id : ids) expected += t.sales.at(id).find("updated_at")->as_string() >= cursor;
  ASSERT_LT(expected, static_cast<int64_t>(ids.size()));
  auto listed = [](const std::string& body) {
    return static_cast<int64_t>(parse_json(body).find_path("result.sales")->as_array().size());
  };
  std::string encoded = cursor;
  encoded.replace(encoded.find(' '), 1, "%20");
  long status = 0;
  std::string q = "/sales?employee_id=" + std::to_string(emp) + "&updated_since=";
  EXPECT_EQ(listed(http_get(sim.url() + q + encoded, &status)), expected);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(listed(http_get(sim.url() + q + "2020-01-01T00:00:00Z")),
            static_cast<int64_t>(ids.size()));
  std::string search = "{\"employee_id\":" + std::to_string(emp) + "}";
  EXPECT_EQ(listed(http_post(sim.url() + "/sales/search?updated_since=" + encoded, search)),
            expected);
  EXPECT_EQ(
      listed(http_post(sim.url() + "/sales/search", "{\"employee_id\":" + std::to_string(emp) +
                                                        ",\"updated_since\":\"" + cursor + "\"}")),
      expected);
  http_get(sim.url() + q + "last%20tuesday", &status);
  EXPECT_EQ(status, 400);
}

TEST(Incremental, TwoMessagesOfOneListingInFlightNeverApplyAnOlderResponseLast) {
  // Two parents emit the same listing request (/items?group=7): both messages are in flight at
  // once with no cursor. The first to commit moves the cursor; the other, whose response may
  // be older, asks again from the new cursor instead of writing over newer rows.
  std::mutex mu;
  std::vector<std::string> asked;
  CannedServer vendor([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    if (req.path == "/parents") {
      res.body = R"([{"id":1,"group":7},{"id":2,"group":7}])";
      return;
    }
    const std::string* since = req.param("since");
    {
      std::lock_guard lock(mu);
      asked.push_back(since ? *since : "-");
    }
    res.body = R"([{"id":1,"v":"2024-01-01"},{"id":2,"v":"2024-01-02"}])";
  });
  std::string dir = temp_dir();
  std::string db = dir + "/items.db", pipeline = dir + "/items.yaml";
  std::ofstream(pipeline) << "name: items\nsource: { base_url: \"" << vendor.url()
                          << "\" }\nstorage: sqlite:" << db
                          << "\nstages:\n"
                             "  parents:\n"
                             "    inputs: { all: [1] }\n"
                             "    request: /parents\n"
                             "    key: { parent_id: id }\n"
                             "    emit: { items: { group: \"{record.group}\", via: \"{record.id}\" "
                             "} }\n"
                             "  items:\n"
                             "    request: /items?group={group}\n"
                             "    key: { item_id: id, group: \"{message.group}\" }\n"
                             "    concurrency: 4\n"
                             "    incremental: { cursor_path: v, param: since, initial_value: "
                             "\"2000-01-01\" }\n";
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  EXPECT_EQ(stage_stat(s, "items", "messages"), 2);
  EXPECT_EQ(stage_stat(s, "items", "new"), 2);
  EXPECT_EQ(stage_stat(s, "items", "dead_lettered"), 0);
  std::lock_guard lock(mu);
  std::multiset<std::string> got(asked.begin(), asked.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"2000-01-01", "2000-01-01", "2024-01-02"}));
  EXPECT_EQ(count(db, "SELECT count(*) FROM cascade_change_log WHERE table_name='items'"), 2);
}
