// Incremental loading per parent, end to end: `cascade sync` with a pipeline whose sales stage
// lists only what changed since each salesperson's own cursor (the simulator's
// `updated_since`), compared with the simulator's ground truth; crashes in the middle; a vendor
// that returns nothing; a bad `incremental:` key.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "core/json.h"
#include "load/column_names.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

constexpr const char* kIncremental =
    "    concurrency: 3\n"
    "    incremental: { cursor_path: updated_at, param: updated_since,\n"
    "                   initial_value: \"2020-01-01T00:00:00Z\" }\n";

// The reference pipeline with incremental sales and a faster vendor limit.
std::string incremental_pipeline(const std::string& dir, const std::string& rate =
                                                             "rate_limit: { per_second: 400, "
                                                             "burst: 20 }") {
  return example_pipeline(dir, {{"    concurrency: 3\n", kIncremental},
                                {"rate_limit: { per_second: 50, burst: 50 }", rate}});
}

// A simulator whose time changes only what a test asks for: a few new sales and corrections per
// tick, no transfers, departures, hires or promotions.
std::vector<std::string> quiet_sim(const std::string& seed, const std::string& sales) {
  return {"--seed",
          seed,
          "--employees-per-branch",
          "12",
          "--sales-per-salesperson",
          sales,
          "--new-sales-per-tick",
          "1",
          "--late-sales-per-tick",
          "1",
          "--corrections-per-tick",
          "2",
          "--transfers-per-tick",
          "0",
          "--departures-per-tick",
          "0",
          "--hires-per-tick",
          "0",
          "--promotions-per-tick",
          "0"};
}

struct Env {
  std::string dir = temp_dir();
  std::string db = dir + "/cascade.db";
  std::string pipeline;
  std::map<std::string, std::string> vars(const std::string& url) const {
    return {{"DM_API_URL", url}, {"CASCADE_STORAGE", "sqlite:" + db}};
  }
};

Value sync(const Env& env, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{CASCADE_BIN, "sync", env.pipeline, "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  RunResult r = run(argv, env.vars(url));
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  Value v = parse_json(r.out);
  EXPECT_TRUE(v.find("completed")->as_bool()) << r.out;
  return v;
}

int64_t stat(const Value& summary, const std::string& stage, const std::string& field) {
  return summary.find("stages")->find(stage)->find(field)->as_int();
}

int64_t count(const std::string& db, const std::string& sql) {
  return query_db(db, sql).rows[0][0].as_int();
}

// The salespersons the cascade reaches and their sales, from the truth: sale id -> row.
struct Truth {
  std::map<int64_t, int64_t> branch_of;              // salesperson -> branch
  std::map<int64_t, Value> sales;                    // sale id -> truth record
  std::map<int64_t, std::vector<int64_t>> sales_of;  // salesperson -> sale ids
};

Truth truth_of(const Value& truth) {
  Truth t;
  for (const auto& e : truth.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson")
      t.branch_of[e.find("id")->as_int()] = e.find("branch_id")->as_int();
  for (const auto& s : truth.find("sales")->as_array()) {
    int64_t emp = s.find("employee_id")->as_int();
    if (!t.branch_of.count(emp)) continue;
    t.sales[s.find("id")->as_int()] = s;
    t.sales_of[emp].push_back(s.find("id")->as_int());
  }
  return t;
}

// Per salesperson: the largest updated_at of its sales (the cursor its listing leaves).
std::map<int64_t, std::string> cursors_of(const Truth& t) {
  std::map<int64_t, std::string> out;
  for (const auto& [emp, ids] : t.sales_of)
    for (int64_t id : ids) {
      const std::string& u = t.sales.at(id).find("updated_at")->as_string();
      if (u > out[emp]) out[emp] = u;
    }
  return out;
}

// How many sales a listing from `cursors` returns: those updated at or after their own
// salesperson's cursor (all of them for a salesperson without one).
int64_t listed_since(const Truth& t, const std::map<int64_t, std::string>& cursors) {
  int64_t n = 0;
  for (const auto& [emp, ids] : t.sales_of) {
    auto c = cursors.find(emp);
    for (int64_t id : ids)
      n += c == cursors.end() || t.sales.at(id).find("updated_at")->as_string() >= c->second;
  }
  return n;
}

// The live sales table equals the truth: same keys, same values in every column the vendor
// sends, branch_id attached from the salesperson.
void expect_sales_equal_truth(const std::string& db, const Truth& t) {
  QueryResult r = query_db(db, "SELECT * FROM sales WHERE _deleted_at IS NULL");
  std::map<int64_t, Value> rows;
  for (const auto& row : r.rows) {
    Value obj{Object{}};
    for (size_t i = 0; i < r.columns.size(); ++i)
      if (!is_reserved_column(r.columns[i])) obj.set(r.columns[i], row[i]);
    int64_t id = obj.find("sale_id")->as_int();
    EXPECT_TRUE(rows.emplace(id, obj).second) << "duplicate sale " << id;
  }
  EXPECT_EQ(rows.size(), t.sales.size());
  int bad = 0;
  for (const auto& [id, s] : t.sales) {
    auto it = rows.find(id);
    if (it == rows.end()) {
      if (++bad < 5) ADD_FAILURE() << "missing sale " << id;
      continue;
    }
    for (const auto& [k, v] : s.as_object()) {
      if (k == "id" || k == "branch_at_sale") continue;
      const Value* got = it->second.find(k);
      if ((!got || !(*got == v)) && ++bad < 5)
        ADD_FAILURE() << "sale " << id << " column " << k << ": expected " << to_json(v) << ", got "
                      << (got ? to_json(*got) : "(none)");
    }
    int64_t emp = s.find("employee_id")->as_int();
    if (!(*it->second.find("branch_id") == Value(t.branch_of.at(emp))) && ++bad < 5)
      ADD_FAILURE() << "sale " << id << " has the wrong branch";
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace

TEST(Incremental, EachSalespersonListsFromItsOwnCursorAndTheWarehouseStaysExact) {
  SimServer sim(quiet_sim("7", "30"));
  Env env;
  env.pipeline = incremental_pipeline(env.dir);
  Truth t1 = truth_of(sim.truth());
  ASSERT_GT(t1.sales.size(), 500u);

  // First sync: no cursor anywhere, every sale since the initial value.
  Value s1 = sync(env, sim.url());
  EXPECT_EQ(stat(s1, "sales", "records"), static_cast<int64_t>(t1.sales.size()));
  EXPECT_EQ(stat(s1, "sales", "new"), static_cast<int64_t>(t1.sales.size()));
  expect_sales_equal_truth(env.db, t1);
  EXPECT_EQ(count(env.db, "SELECT count(*) FROM cascade_cursors WHERE stage='sales'"),
            static_cast<int64_t>(t1.sales_of.size()))
      << "one cursor per salesperson";
  EXPECT_EQ(count(env.db, "SELECT count(*) FROM cascade_listings WHERE stage='sales'"), 0)
      << "an incremental stage keeps no listing records";

  // Nothing changed: each salesperson's request carries its own cursor, so the vendor returns
  // only the sales updated at exactly that cursor (>=), and nothing is written.
  auto c1 = cursors_of(t1);
  int64_t own = listed_since(t1, c1);
  std::string global;
  for (const auto& [emp, c] : c1) global = std::max(global, c);
  std::map<int64_t, std::string> one_cursor;
  for (const auto& [emp, c] : c1) one_cursor[emp] = global;
  ASSERT_LT(own, static_cast<int64_t>(t1.sales.size()) / 4) << "the test needs a selective cursor";
  ASSERT_NE(own, listed_since(t1, one_cursor)) << "the test must tell per-parent cursors apart";
  int64_t changes = count(env.db, "SELECT count(*) FROM cascade_change_log");
  Value s2 = sync(env, sim.url());
  EXPECT_EQ(stat(s2, "sales", "records"), own);
  for (const char* f : {"new", "changed", "gone"}) EXPECT_EQ(stat(s2, "sales", f), 0) << f;
  EXPECT_EQ(count(env.db, "SELECT count(*) FROM cascade_change_log"), changes);

  // The vendor corrects a few sales and adds some: only those (and the ones at a cursor) are
  // fetched, and the change log gains exactly them.
  sim.advance(3);
  Truth t2 = truth_of(sim.truth());
  int64_t added = 0, changed = 0;
  for (const auto& [id, s] : t2.sales) {
    auto it = t1.sales.find(id);
    if (it == t1.sales.end())
      ++added;
    else if (!(it->second == s))
      ++changed;
  }
  ASSERT_GT(added, 0);
  ASSERT_GT(changed, 0);
  Value s3 = sync(env, sim.url());
  EXPECT_EQ(stat(s3, "sales", "records"), listed_since(t2, c1));
  EXPECT_EQ(stat(s3, "sales", "new"), added);
  EXPECT_EQ(stat(s3, "sales", "changed"), changed);
  EXPECT_EQ(stat(s3, "sales", "gone"), 0);
  expect_sales_equal_truth(env.db, t2);
  int64_t run3 = s3.find("run_id")->as_int();
  EXPECT_EQ(count(env.db,
                  "SELECT count(*) FROM cascade_change_log WHERE table_name='sales' AND "
                  "operation='update' AND run_id=" +
                      std::to_string(run3)),
            changed);
  EXPECT_EQ(count(env.db,
                  "SELECT count(*) FROM cascade_change_log WHERE table_name='sales' AND "
                  "operation='insert' AND run_id=" +
                      std::to_string(run3)),
            added);
  EXPECT_EQ(count(env.db,
                  "SELECT count(*) FROM cascade_change_log WHERE table_name='sales' AND "
                  "operation='delete'"),
            0);

  // --full-refresh: every sale is fetched again and nothing is written.
  changes = count(env.db, "SELECT count(*) FROM cascade_change_log");
  Value s4 = sync(env, sim.url(), {"--full-refresh"});
  EXPECT_EQ(stat(s4, "sales", "records"), static_cast<int64_t>(t2.sales.size()));
  EXPECT_EQ(stat(s4, "sales", "unchanged"), static_cast<int64_t>(t2.sales.size()));
  for (const char* f : {"new", "changed", "gone"}) EXPECT_EQ(stat(s4, "sales", f), 0) << f;
  EXPECT_EQ(count(env.db, "SELECT count(*) FROM cascade_change_log"), changes);
  // ...and the cursors it leaves make the next run incremental again.
  Value s5 = sync(env, sim.url());
  EXPECT_EQ(stat(s5, "sales", "records"), listed_since(t2, cursors_of(t2)));
}

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
  EXPECT_EQ(stat(s1, "items", "new"), 12);
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
  EXPECT_EQ(stat(s2, "items", "unchanged"), 12);
  // Now every listing is empty and parent 2 is gone: an incremental listing holds only what
  // changed, so no row is deleted, held or swept as an orphan, in this run or the next.
  for (int i = 0; i < 2; ++i) {
    Value s = run_sync();
    EXPECT_EQ(stat(s, "items", "gone"), 0);
    EXPECT_EQ(stat(s, "items", "held"), 0);
    if (i == 0) {
      EXPECT_EQ(stat(s, "parents", "gone"), 1) << "parents still infer deletions";
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
    expect_sales_equal_truth(db, t);
    expect_sales_equal_truth(ref_db, t);
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
  EXPECT_EQ(stat(s, "items", "messages"), 2);
  EXPECT_EQ(stat(s, "items", "new"), 2);
  EXPECT_EQ(stat(s, "items", "dead_lettered"), 0);
  std::lock_guard lock(mu);
  std::multiset<std::string> got(asked.begin(), asked.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"2000-01-01", "2000-01-01", "2024-01-02"}));
  EXPECT_EQ(count(db, "SELECT count(*) FROM cascade_change_log WHERE table_name='items'"), 2);
}
