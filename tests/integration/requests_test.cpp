// Stage requests end to end: POST search endpoints with a JSON body template, query parameters
// as a map, per-stage headers, records at the root of an array, per-stage status rules, and
// redirects that keep credentials on their own host.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "core/json.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

std::set<int64_t> ids(const std::string& db, const std::string& sql) {
  std::set<int64_t> out;
  for (const auto& r : query_db(db, sql).rows) out.insert(r[0].as_int());
  return out;
}

// Requests a canned server saw, for assertions after the run.
struct Seen {
  std::mutex mu;
  std::vector<sim::HttpRequest> requests;
  void add(const sim::HttpRequest& r) {
    std::lock_guard lock(mu);
    requests.push_back(r);
  }
  size_t count(const std::string& path) {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const auto& r : requests) n += r.path == path;
    return n;
  }
};

std::string write(const std::string& dir, const std::string& text) {
  std::string path = dir + "/pipeline.yaml";
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Requests, PostSearchWithAJsonBodyTemplateSyncsTheWarehouseExactly) {
  SimServer sim({"--seed", "41", "--employees-per-branch", "6", "--sales-per-salesperson", "8"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  // The simulator's search takes employee_id as a JSON integer only: "{employee_id}" must keep
  // the message value's type.
  std::string pipeline = example_pipeline(
      dir, {{"request: GET /sales?employee_id={employee_id}",
             "request: POST /sales/search\n    body: { employee_id: \"{employee_id}\", "
             "filter: { from: \"{{2000}}\", kinds: [a, 1, true] } }"},
            {"per_second: 50, burst: 50", "per_second: 300, burst: 50"}});
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"},
                    {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", "sqlite:" + db}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0) << r.err;
  EXPECT_GT(s.find("stages")->find("sales")->find("messages")->as_int(), 20);
  EXPECT_EQ(warehouse_sales(db), truth_sales(sim.truth()));
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  EXPECT_GT(stats.find("requests")->find("/sales/search")->find("200")->as_int(), 20);
  EXPECT_EQ(stats.find("requests")->find("/sales"), nullptr) << "no GET /sales was made";
}

TEST(Requests, ParamsHeadersRootArraysAndStatusRules) {
  Seen seen;
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    seen.add(req);
    const std::string* stage = req.header("x-stage");
    const std::string* source = req.header("x-source");
    if (req.path == "/items") {
      const std::string* q = req.param("q");
      const std::string* kind = req.param("kind");
      // The stage's own header wins over the source's one of the same name.
      if (!q || *q != "a b&c=d" || !kind || *kind != "tools" || !stage || *stage != "items" ||
          !source || *source != "stage-wins") {
        res.status = 400;
        res.body = R"({"error":"params or headers missing"})";
        return;
      }
      res.body = R"([{"id":1,"name":"one"},{"id":2,"name":"two"},{"id":3,"name":"three"},
                     {"id":4,"name":"four"},{"id":5,"name":"five"}])";
    } else if (req.path == "/details") {
      const std::string* id = req.param("item_id");
      if (!source || *source != "from-source" || stage) {
        res.status = 400;
        res.body = R"({"error":"headers wrong"})";
        return;
      }
      std::string i = id ? *id : "";
      if (i == "1") {
        res.body = R"([{"detail_id":10,"item_id":1}])";
      } else if (i == "2") {
        res.status = 404;  // the rule: an empty listing
        res.body = R"({"error":"no details"})";
      } else if (i == "3") {
        res.status = 204;  // the rule: an empty listing (no body to parse)
      } else if (i == "4") {
        res.status = 409;  // the rule: retry
        res.body = R"({"error":"busy"})";
      } else {
        res.status = 503;  // the rule: dead-letter at once
        res.body = R"({"error":"gone for good"})";
      }
    } else {
      res.status = 404;
    }
  });
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = write(dir,
                               "name: reqs\n"
                               "source:\n"
                               "  base_url: " +
                                   server.url() +
                                   "\n"
                                   "  headers: { X-Source: from-source }\n"
                                   "  retry: { attempts: 3, backoff: 1ms..5ms }\n"
                                   "storage: sqlite:" +
                                   db +
                                   "\n"
                                   "queues: { visibility_timeout: 1s, max_receive_count: 2 }\n"
                                   "stages:\n"
                                   "  items:\n"
                                   "    inputs: { kind: [tools] }\n"
                                   "    request: /items\n"
                                   "    params: { q: \"a b&c=d\", kind: \"{kind}\" }\n"
                                   "    headers: { X-Stage: items, x-source: stage-wins }\n"
                                   "    key: { item_id: id }\n"
                                   "    emit: { details: { item_id: \"{record.id}\" } }\n"
                                   "  details:\n"
                                   "    request: GET /details\n"
                                   "    params: { item_id: \"{item_id}\" }\n"
                                   "    key: { detail_id: detail_id }\n"
                                   "    responses:\n"
                                   "      - { status: [404, 204], action: empty }\n"
                                   "      - { status: 409, action: retry }\n"
                                   "      - { status: 5xx, action: dead_letter }\n");
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  ASSERT_EQ(s.find("stages")->find("items")->find("dead_lettered")->as_int(), 0) << r.err;
  // Records at the root of the array, no `records:` needed.
  EXPECT_EQ(ids(db, "SELECT item_id FROM items"), (std::set<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(ids(db, "SELECT detail_id FROM details"), (std::set<int64_t>{10}));
  // 404 and 204 were empty listings; 409 was retried (3 tries in each of its 2 receives) and then
  // dead-lettered; the 503 was dead-lettered on its first try.
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 2) << r.out;
  RunResult list = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::map<std::string, int64_t> receives;
  Value letters = parse_json(list.out);
  for (const auto& d : letters.as_array()) {
    const std::string& reason = d.find("reason")->as_string();
    if (reason.find("HTTP 503") != std::string::npos) {
      EXPECT_NE(reason.find("dead_letter"), std::string::npos) << reason;
      receives["503"] = d.find("receive_count")->as_int();
    } else if (reason.find("HTTP 409") != std::string::npos) {
      receives["409"] = d.find("receive_count")->as_int();
    }
  }
  EXPECT_EQ(receives["503"], 1);
  EXPECT_EQ(receives["409"], 2);
  size_t tries_409 = 0, tries_503 = 0;
  {
    std::lock_guard lock(seen.mu);
    for (const auto& q : seen.requests) {
      const std::string* id = q.param("item_id");
      if (q.path == "/details" && id && *id == "4") ++tries_409;
      if (q.path == "/details" && id && *id == "5") ++tries_503;
    }
  }
  EXPECT_EQ(tries_409, 6u);
  EXPECT_EQ(tries_503, 1u);
}

TEST(Requests, RedirectsAreFollowedAndCredentialsNeverReachAnotherHost) {
  const std::string key = "rk-Secr3t-key-55", token = "rt-Secr3t-tok-66";
  Seen seen_b;
  CannedServer b([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    seen_b.add(req);
    if (req.path == "/elsewhere/items")
      res.body = R"({"data":[{"id":7},{"id":8}]})";
    else
      res.status = 404;
  });
  Seen seen_a;
  const std::string b_url = b.url();
  CannedServer a([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    seen_a.add(req);
    const std::string* k = req.header("x-api-key");
    const std::string* authz = req.header("authorization");
    if (!k || *k != key || !authz || *authz != "Bearer " + token) {
      res.status = 401;
      res.body = R"({"error":"no key"})";
      return;
    }
    if (req.path == "/old/items") {  // same host first, then another host
      res.status = 301;
      res.headers.emplace_back("Location", "/new/items?x=1");
    } else if (req.path == "/new/items") {
      res.status = 307;
      res.headers.emplace_back("Location", b_url + "/elsewhere/items");
    } else if (req.path == "/loop/items") {
      res.status = 302;
      res.headers.emplace_back("Location", "/loop/items");
    } else {
      res.status = 404;
    }
  });
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline =
      write(dir,
            "name: redirects\n"
            "source:\n"
            "  base_url: " +
                a.url() +
                "\n"
                "  headers: { Authorization: \"Bearer ${TOK}\", Accept: application/json, "
                "Cookie: \"session=${TOK}\" }\n"
                "  auth: { type: api_key, name: X-Api-Key, api_key: \"${KEY}\" }\n"
                "  retry: { attempts: 2, backoff: 1ms..5ms }\n"
                "storage: sqlite:" +
                db +
                "\n"
                "queues: { visibility_timeout: 1s, max_receive_count: 2 }\n"
                "stages:\n"
                "  items:\n"
                "    inputs: { path: [old, loop] }\n"
                "    request: /{path}/items\n"
                "    records: data\n"
                "    key: { item_id: id }\n");
  RunResult r = run({CASCADE_BIN, "--log-level", "debug", "sync", pipeline, "--json"},
                    {{"KEY", key}, {"TOK", token}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  // Followed: /old/items -> /new/items on the same host -> the other host's /elsewhere/items.
  EXPECT_EQ(ids(db, "SELECT item_id FROM items"), (std::set<int64_t>{7, 8}));
  EXPECT_EQ(seen_b.count("/elsewhere/items"), 1u);
  // The loop: the first try and 5 hops, then a permanent error.
  EXPECT_EQ(seen_a.count("/loop/items"), 6u);
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 1);
  RunResult list =
      run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"}, {{"KEY", key}, {"TOK", token}});
  Value letters = parse_json(list.out);
  ASSERT_EQ(letters.as_array().size(), 1u) << list.out;
  EXPECT_NE(letters.as_array()[0].find("reason")->as_string().find("more than 5 redirects"),
            std::string::npos)
      << list.out;
  EXPECT_EQ(letters.as_array()[0].find("receive_count")->as_int(), 1);
  // Nothing that identifies the client reached the other host.
  {
    std::lock_guard lock(seen_b.mu);
    for (const auto& q : seen_b.requests) {
      EXPECT_EQ(q.header("x-api-key"), nullptr);
      EXPECT_EQ(q.header("authorization"), nullptr);
      EXPECT_EQ(q.header("cookie"), nullptr);
      ASSERT_NE(q.header("accept"), nullptr) << "harmless headers still go";
      for (const auto& [name, value] : q.headers) {
        EXPECT_EQ(value.find(key), std::string::npos) << name;
        EXPECT_EQ(value.find(token), std::string::npos) << name;
      }
      for (const auto& [name, value] : q.params) EXPECT_EQ(value.find(key), std::string::npos);
    }
  }
  EXPECT_EQ(r.err.find(key), std::string::npos);
  EXPECT_EQ(r.err.find(token), std::string::npos);
  EXPECT_EQ(list.out.find(key), std::string::npos);
}

namespace {

// (sale id, employee id, updated_at) of the truth's salespersons' sales and of the warehouse's
// live sales: a correction changes updated_at, so equal sets mean equal content too.
std::set<std::string> truth_sale_versions(const Value& truth) {
  std::set<int64_t> sp;
  for (const auto& e : truth.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson") sp.insert(e.find("id")->as_int());
  std::set<std::string> out;
  for (const auto& s : truth.find("sales")->as_array())
    if (sp.count(s.find("employee_id")->as_int()))
      out.insert(s.find("id")->to_text() + "/" + s.find("employee_id")->to_text() + "/" +
                 s.find("updated_at")->as_string());
  return out;
}

std::set<std::string> warehouse_sale_versions(const std::string& db) {
  std::set<std::string> out;
  for (const auto& r :
       query_db(db, "SELECT sale_id, employee_id, updated_at FROM sales WHERE _deleted_at IS NULL")
           .rows)
    out.insert(r[0].to_text() + "/" + r[1].to_text() + "/" + r[2].as_string());
  return out;
}

}  // namespace

// A vendor that expands each employee's sales into the employee record: the sales stage reads
// them from its message (records_from) and sends no request, and stays exact as the vendor moves.
TEST(Requests, AChildStageFedFromAListEmbeddedInItsParentSendsNoRequest) {
  SimServer sim({"--seed", "43", "--employees-per-branch", "6", "--sales-per-salesperson", "8",
                 "--departures-per-tick", "0.3", "--corrections-per-tick", "5"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = example_pipeline(
      dir,
      {{"request: GET /employees?branch_id={branch_id}",
        "request: GET /employees?branch_id={branch_id}&embed=sales"},
       {"emit: { sales: { employee_id: \"{record.id}\", branch_id: \"{message.branch_id}\" } }",
        "emit: { sales: { employee_id: \"{record.id}\", branch_id: \"{message.branch_id}\", "
        "sales: \"{record.sales}\" } }"},
       {"request: GET /sales?employee_id={employee_id}\n    records: result.sales",
        "records_from: sales"},
       {"per_second: 50, burst: 50", "per_second: 300, burst: 50"}});
  std::map<std::string, std::string> env = {{"DM_API_URL", sim.url()},
                                            {"CASCADE_STORAGE", "sqlite:" + db}};
  auto sync = [&] {
    RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out);
  };
  Value s1 = sync();
  EXPECT_EQ(s1.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_GT(s1.find("stages")->find("sales")->find("messages")->as_int(), 20);
  EXPECT_EQ(s1.find("stages")->find("sales")->find("requests")->as_int(), 0);
  EXPECT_EQ(warehouse_sale_versions(db), truth_sale_versions(sim.truth()));
  // The list lives in the sales table, not a second time in the salespersons rows.
  for (const auto& r : query_db(db, "SELECT name FROM pragma_table_info('salespersons')").rows)
    EXPECT_NE(r[0].as_string(), "sales");
  EXPECT_TRUE(query_db(db,
                       "SELECT name FROM sqlite_master WHERE name LIKE 'salespersons\\_\\_%' "
                       "ESCAPE '\\'")
                  .rows.empty());

  Value s2 = sync();  // unchanged: nothing written
  for (const char* f : {"new", "changed", "gone"})
    EXPECT_EQ(s2.find("total")->find(f)->as_int(), 0) << f;

  // Corrections change sales inside their lists; departures take whole lists away.
  sim.advance(48);
  Value truth = sim.truth();
  Value s3 = sync();
  EXPECT_TRUE(s3.find("completed")->as_bool());
  EXPECT_GT(s3.find("stages")->find("sales")->find("changed")->as_int(), 0);
  EXPECT_EQ(warehouse_sale_versions(db), truth_sale_versions(truth));
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  EXPECT_EQ(stats.find("requests")->find("/sales"), nullptr) << "no GET /sales was made";
}

// Embedded lists as they come: an item gone from its parent's list is deleted, a parent whose
// list is missing or null has an empty listing, and a field that is no list dead-letters that
// parent's message with the reason while the others load.
TEST(Requests, EmbeddedListsDeleteGoneItemsAndRefuseWhatIsNoList) {
  std::atomic<int> version{1};
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    if (req.path != "/orders") {
      res.status = 404;
      return;
    }
    if (version == 1)
      res.body = R"([{"id":1,"lines":[{"n":1,"sku":"a","qty":2},{"n":2,"sku":"b","qty":1}]},
                     {"id":2,"lines":[{"n":1,"sku":"c","qty":123456789012345678901234567890}]},
                     {"id":3,"lines":"see attachment"},
                     {"id":4,"lines":null}])";
    else
      res.body = R"([{"id":1,"lines":[{"n":1,"sku":"a","qty":3}]},
                     {"id":2,"lines":[{"n":1,"sku":"c","qty":123456789012345678901234567890}]},
                     {"id":3,"lines":[]},
                     {"id":4,"lines":[{"n":1,"sku":"d","qty":1}]}])";
  });
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = write(dir, R"(name: shop
source: { base_url: )" + server.url() + R"( }
storage: sqlite:)" + db + R"(
stages:
  orders:
    inputs: { all: [1] }
    request: GET /orders
    key: { order_id: id }
    emit: { lines: { order_id: "{record.id}", lines: "{record.lines}" } }
  lines:
    records_from: lines
    key: { order_id: "{message.order_id}", line: n }
    deletions: { hold_above: 1 }
)");
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // a dead letter is an outcome, not a failed run
  Value s = parse_json(r.out);
  EXPECT_EQ(s.find("stages")->find("lines")->find("dead_lettered")->as_int(), 1);
  EXPECT_EQ(s.find("stages")->find("lines")->find("new")->as_int(), 3);
  auto rows = query_db(db,
                       "SELECT order_id, line, sku, CAST(qty AS TEXT) FROM lines "
                       "WHERE _deleted_at IS NULL ORDER BY 1, 2")
                  .rows;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2][3].as_string(), "123456789012345678901234567890");
  RunResult dlq = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"});
  EXPECT_NE(dlq.out.find("message field 'lines' is string, expected a list"), std::string::npos)
      << dlq.out;

  version = 2;
  r = run({CASCADE_BIN, "sync", pipeline, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  rows = query_db(db,
                  "SELECT order_id, line, sku, qty FROM lines WHERE _deleted_at IS NULL "
                  "ORDER BY 1, 2")
             .rows;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0].as_int(), 1);
  EXPECT_EQ(rows[0][3].as_int(), 3);  // changed
  EXPECT_EQ(rows[1][0].as_int(), 2);
  EXPECT_EQ(rows[2][0].as_int(), 4);  // a null list became one line
  EXPECT_EQ(
      query_db(db, "SELECT count(*) FROM lines WHERE _deleted_at IS NOT NULL").rows[0][0].as_int(),
      1);  // order 1's second line
}
