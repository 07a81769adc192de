// Paged listings end to end: cascade-sim serves every listing in pages (--paginate), the real
// cascade binary syncs a pipeline file with `paginate:` into a real SQLite file, and the
// warehouse is compared with the simulator's ground truth. Also: a failed page, a next-link
// loop, a kill -9 in the middle of paged listings, and pipeline files that are refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
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

const std::vector<std::string> kCompany = {
    "--seed",     "31", "--employees-per-branch", "12", "--sales-per-salesperson", "20",
    "--branches", "4"};

// A three-level pipeline whose stages all page the same way. `records` is the records line
// ("" for records at the root of the response), `paginate` the YAML value of `paginate:`.
std::string write_pipeline(const std::string& dir, const std::string& records,
                           const std::string& paginate, const std::string& extra_source = "",
                           const std::string& name = "pipeline.yaml") {
  std::string rec = records.empty() ? "" : "    records: " + records + "\n";
  std::string pag = "    paginate: " + paginate + "\n";
  std::string text =
      "name: paged\n"
      "source:\n"
      "  base_url: ${DM_API_URL}\n"
      "  rate_limit: { per_second: \"${RATE:-1000}\", burst: 20 }\n"
      "  retry: { attempts: 2, backoff: 10ms..50ms }\n"
      "  headers: { Authorization: \"Bearer ${DM_API_TOKEN:-}\" }\n" +
      extra_source +
      "storage: ${CASCADE_STORAGE}\n"
      "queues: { max_receive_count: \"${MAX_RECEIVES:-2}\" }\n"
      "stages:\n"
      "  branches:\n"
      "    inputs: { branch: [Scranton, Akron, Buffalo, Rochester] }\n"
      "    request: GET /branches?branch={branch}\n" +
      rec + pag +
      "    key: { branch_id: id }\n"
      "    emit: { salespersons: { branch_id: \"{record.id}\" } }\n"
      "  salespersons:\n"
      "    request: GET /employees?branch_id={branch_id}\n" +
      rec + pag +
      "    where: occupation == \"salesperson\"\n"
      "    key: { employee_id: id, branch_id: \"{message.branch_id}\" }\n"
      "    emit: { sales: { employee_id: \"{record.id}\", branch_id: \"{message.branch_id}\" } }\n"
      "  sales:\n"
      "    request: GET /sales?employee_id={employee_id}\n" +
      rec + pag +
      "    key: { sale_id: id, employee_id: \"{message.employee_id}\" }\n"
      "    attach: { branch_id: \"{message.branch_id}\" }\n";
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// Sent in a header on every page; it must never show in a log line or a dead letter.
const char* const kToken = "tok-Pg7-secret";

struct Workdir {
  std::string dir = temp_dir();
  std::string db = dir + "/cascade.db";
  std::map<std::string, std::string> env(const SimServer& sim) const {
    return {
        {"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", "sqlite:" + db}, {"DM_API_TOKEN", kToken}};
  }
};

Value sync(const SimServer& sim, const Workdir& r, const std::string& pipeline,
           std::string* log = nullptr) {
  RunResult res = run({CASCADE_BIN, "sync", pipeline, "--json"}, r.env(sim));
  EXPECT_EQ(res.exit_code, 0) << res.err;
  if (log) *log = res.err;
  std::string last = res.out.substr(0, res.out.find('\n'));
  return parse_json(last.empty() ? "{}" : last);
}

int64_t stat(const Value& summary, const std::string& stage, const std::string& field) {
  return summary.find("stages")->find(stage)->find(field)->as_int();
}

// Live rows of a warehouse table as canonical JSON of the API's fields, keyed by `key` columns.
std::map<std::string, std::string> live_rows(const std::string& db, const std::string& table,
                                             const std::vector<std::string>& key) {
  QueryResult q = query_db(db, "SELECT * FROM " + table + " WHERE _deleted_at IS NULL");
  std::map<std::string, std::string> out;
  for (const auto& row : q.rows) {
    Value obj{Object{}};
    for (size_t i = 0; i < q.columns.size(); ++i)
      if (!is_reserved_column(q.columns[i])) obj.set(q.columns[i], row[i]);
    std::string k;
    for (const auto& c : key) k += obj.find(c)->to_text() + "|";
    EXPECT_TRUE(out.emplace(k, canonical_json(obj)).second) << "duplicate row " << k;
  }
  return out;
}

// What the warehouse must hold, from the ground truth alone (the four branches of the inputs).
struct Expected {
  std::map<std::string, std::string> branches, salespersons, sales;
};

Expected expected_from(const Value& truth) {
  Expected e;
  std::map<int64_t, int64_t> branch_of;
  for (const auto& b : truth.find("branches")->as_array()) {
    Value row{Object{}};
    for (const auto& [k, v] : b.as_object())
      if (k != "id") row.set(k, v);
    row.set("branch_id", *b.find("id"));
    e.branches.emplace(b.find("id")->to_text() + "|", canonical_json(row));
  }
  for (const auto& emp : truth.find("employees")->as_array()) {
    if (emp.find("occupation")->as_string() != "salesperson") continue;
    Value row{Object{}};
    for (const auto& [k, v] : emp.as_object())
      if (k != "id" && k != "branch_history") row.set(k, v);
    row.set("employee_id", *emp.find("id"));
    branch_of[emp.find("id")->as_int()] = emp.find("branch_id")->as_int();
    e.salespersons.emplace(emp.find("id")->to_text() + "|" + emp.find("branch_id")->to_text() + "|",
                           canonical_json(row));
  }
  for (const auto& s : truth.find("sales")->as_array()) {
    auto b = branch_of.find(s.find("employee_id")->as_int());
    if (b == branch_of.end()) continue;
    Value row{Object{}};
    for (const auto& [k, v] : s.as_object())
      if (k != "id" && k != "branch_at_sale") row.set(k, v);
    row.set("sale_id", *s.find("id"));
    row.set("branch_id", Value(b->second));
    e.sales.emplace(s.find("id")->to_text() + "|" + s.find("employee_id")->to_text() + "|",
                    canonical_json(row));
  }
  return e;
}

void expect_equal(const std::map<std::string, std::string>& want,
                  const std::map<std::string, std::string>& got, const std::string& what) {
  EXPECT_EQ(want.size(), got.size()) << what;
  int bad = 0;
  for (const auto& [k, row] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      if (++bad < 4) ADD_FAILURE() << what << ": missing row " << k;
    } else if (it->second != row) {
      if (++bad < 4)
        ADD_FAILURE() << what << ": row " << k << " is " << it->second << ", want " << row;
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

void expect_warehouse_equals_truth(const std::string& db, const Value& truth) {
  Expected e = expected_from(truth);
  ASSERT_GT(e.sales.size(), 50u);
  expect_equal(e.branches, live_rows(db, "branches", {"branch_id"}), "branches");
  expect_equal(e.salespersons, live_rows(db, "salespersons", {"employee_id", "branch_id"}),
               "salespersons");
  expect_equal(e.sales, live_rows(db, "sales", {"sale_id", "employee_id"}), "sales");
}

// No change was recorded twice: a never-changing API gives exactly one 'new' per row.
void expect_no_duplicate_change(const std::string& db) {
  auto dup = query_db(
      db,
      "SELECT count(*), count(DISTINCT table_name || key), sum(operation <> 'insert') FROM "
      "cascade_change_log");
  EXPECT_EQ(dup.rows[0][0].as_int(), dup.rows[0][1].as_int()) << "duplicate changes";
  EXPECT_EQ(dup.rows[0][2].as_int(), 0) << "changes other than 'new'";
}

Value dead_letters(const Workdir& r, const SimServer& sim, const std::string& pipeline) {
  RunResult list = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"}, r.env(sim));
  EXPECT_EQ(list.exit_code, 0) << list.err;
  return parse_json(list.out);
}

struct Kind {
  const char* name;
  std::string sim_mode;
  std::string records;
  std::string paginate;
};

void PrintTo(const Kind& k, std::ostream* os) {
  *os << k.name;
}

class EveryKind : public ::testing::TestWithParam<Kind> {};

}  // namespace

// Each kind, pages of 3 records (several pages per listing): the warehouse equals the truth,
// and a second sync of the same data writes nothing and deletes nothing.
TEST_P(EveryKind, SyncOfSmallPagesEqualsTheTruthAndResyncChangesNothing) {
  const Kind& k = GetParam();
  std::vector<std::string> flags = kCompany;
  flags.insert(flags.end(), {"--paginate", k.sim_mode, "--page-size", "3"});
  SimServer sim(flags);
  Workdir r;
  std::string pipeline = write_pipeline(r.dir, k.records, k.paginate);
  RunResult validate = run({CASCADE_BIN, "validate", pipeline}, r.env(sim));
  ASSERT_EQ(validate.exit_code, 0) << validate.err;
  EXPECT_NE(validate.out.find("GET /sales?employee_id={employee_id} (paginate: "),
            std::string::npos)
      << validate.out;
  Value first = sync(sim, r, pipeline);
  ASSERT_TRUE(first.find("completed")) << to_json(first);
  EXPECT_TRUE(first.find("completed")->as_bool());
  EXPECT_EQ(first.find("total")->find("dead_lettered")->as_int(), 0);
  // Several pages per listing: many more requests than messages.
  EXPECT_GT(stat(first, "sales", "requests"), 3 * stat(first, "sales", "messages"));
  EXPECT_GT(stat(first, "salespersons", "requests"), 2 * stat(first, "salespersons", "messages"));
  expect_warehouse_equals_truth(r.db, sim.truth());
  expect_no_duplicate_change(r.db);

  Value second = sync(sim, r, pipeline);
  EXPECT_EQ(second.find("total")->find("new")->as_int(), 0);
  EXPECT_EQ(second.find("total")->find("changed")->as_int(), 0);
  EXPECT_EQ(second.find("total")->find("gone")->as_int(), 0);
  EXPECT_GT(second.find("total")->find("unchanged")->as_int(), 50);
  expect_warehouse_equals_truth(r.db, sim.truth());
}

INSTANTIATE_TEST_SUITE_P(
    Paginate, EveryKind,
    ::testing::Values(Kind{"json_link", "json_link", "records", "json_link"},
                      Kind{"header_link", "header_link", "", "header_link"},
                      Kind{"offset_with_total", "offset", "records", "{ type: offset, limit: 3 }"},
                      Kind{"offset_until_empty", "offset", "records",
                           "{ type: offset, limit: 3, total_path: null }"},
                      Kind{"page_number_with_total", "page_number", "data",
                           "{ type: page_number, base_page: 1, total_path: total_pages }"},
                      Kind{"page_number_until_empty", "page_number", "data",
                           "{ type: page_number, base_page: 1 }"},
                      Kind{"cursor", "cursor", "data", "cursor"},
                      Kind{"cursor_mapping", "cursor", "data",
                           "{ type: cursor, cursor_path: $.cursors.next, cursor_param: cursor }"},
                      Kind{"auto_json_link", "json_link", "records", "auto"},
                      Kind{"auto_header_link", "header_link", "", "auto"},
                      Kind{"auto_cursor", "cursor", "data", "auto"}),
    [](const ::testing::TestParamInfo<Kind>& i) { return std::string(i.param.name); });

// The paged example, as its header says to run it, against the simulator it names.
TEST(Paginate, ThePagedExampleSyncsTheWholeCompany) {
  SimServer sim({"--seed", "33", "--employees-per-branch", "12", "--sales-per-salesperson", "120",
                 "--paginate", "header_link", "--page-size", "50"});
  Workdir r;
  std::string example = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin-paged.yaml";
  auto env = r.env(sim);
  RunResult res = run({CASCADE_BIN, "sync", example, "--json"}, env);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  Value s = parse_json(res.out);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_GT(stat(s, "sales", "requests"), stat(s, "sales", "messages"));
  Value truth = sim.truth();
  // Every branch of the company is listed, not only the four of the other tests.
  EXPECT_EQ(live_rows(r.db, "branches", {"branch_id"}).size(),
            truth.find("branches")->as_array().size());
  Expected e = expected_from(truth);
  expect_equal(e.salespersons, live_rows(r.db, "salespersons", {"employee_id", "branch_id"}),
               "salespersons");
  expect_equal(e.sales, live_rows(r.db, "sales", {"sale_id", "employee_id"}), "sales");
}

// A page that keeps failing fails its whole listing: nothing of the listing is applied, nothing
// is deleted, and the message is dead-lettered (after its retries) with a reason naming the page.
TEST(Paginate, AFailedPageFailsTheListingAndDeletesNothing) {
  std::vector<std::string> flags = kCompany;
  flags.insert(flags.end(), {"--paginate", "json_link", "--page-size", "3"});
  Workdir r;
  std::string pipeline = write_pipeline(r.dir, "records", "json_link");
  Value truth;
  {
    SimServer sim(flags);
    Value first = sync(sim, r, pipeline);
    EXPECT_EQ(first.find("total")->find("dead_lettered")->as_int(), 0);
    truth = sim.truth();
    expect_warehouse_equals_truth(r.db, truth);
  }
  // The same company (same seed), now failing the second page of every listing.
  flags.insert(flags.end(), {"--fail-page", "2"});
  SimServer sim(flags);
  std::string log;
  Value second = sync(sim, r, pipeline, &log);
  EXPECT_NE(log.find("page 2"), std::string::npos) << log;
  EXPECT_EQ(log.find(kToken), std::string::npos);
  EXPECT_EQ(second.find("total")->find("gone")->as_int(), 0);
  EXPECT_EQ(second.find("total")->find("new")->as_int(), 0);
  EXPECT_EQ(stat(second, "sales", "messages"), 0) << "every sales listing has a second page";
  EXPECT_GT(stat(second, "salespersons", "retried"), 0) << "a failed page is retried as a whole";
  EXPECT_GT(second.find("total")->find("dead_lettered")->as_int(), 0);
  // Every row of the first sync is still live.
  expect_warehouse_equals_truth(r.db, truth);
  Value letters = dead_letters(r, sim, pipeline);
  ASSERT_GT(letters.as_array().size(), 0u);
  for (const auto& d : letters.as_array()) {
    const std::string& reason = d.find("reason")->as_string();
    EXPECT_NE(reason.find("page 2 ("), std::string::npos) << reason;
    EXPECT_NE(reason.find("page=2"), std::string::npos) << reason;
    EXPECT_NE(reason.find("HTTP 500"), std::string::npos) << reason;
    EXPECT_EQ(d.find("receive_count")->as_int(), 2) << reason;
    EXPECT_EQ(reason.find(kToken), std::string::npos);
  }
}

// With the total on the first page, the rest of a listing is fetched in parallel: ten pages of
// 150 ms each take about three round trips, where page after page takes ten.
TEST(Paginate, PagesOfAKnownTotalAreFetchedInParallel) {
  SimServer sim({"--seed", "32", "--employees-per-branch", "20", "--branches", "1", "--paginate",
                 "offset", "--page-size", "2", "--fault-slow", "1", "--slow-ms", "150..150"});
  auto seconds = [&](const std::string& paginate) {
    Workdir r;
    std::string path = r.dir + "/one.yaml";
    std::ofstream(path) << "name: one\n"
                           "source: { base_url: \"${DM_API_URL}\", max_connections: 8 }\n"
                           "storage: ${CASCADE_STORAGE}\n"
                           "stages:\n"
                           "  employees:\n"
                           "    inputs: { branch_id: [1] }\n"
                           "    request: GET /employees?branch_id={branch_id}\n"
                           "    records: records\n"
                           "    paginate: " +
                               paginate +
                               "\n"
                               "    key: { employee_id: id }\n"
                               "    concurrency: 5\n";
    RunResult res = run({CASCADE_BIN, "sync", path, "--json"}, r.env(sim));
    EXPECT_EQ(res.exit_code, 0) << res.err;
    Value s = parse_json(res.out);
    EXPECT_EQ(s.find("stages")->find("employees")->find("new")->as_int(), 20);
    EXPECT_EQ(s.find("stages")->find("employees")->find("requests")->as_int(),
              paginate.find("null") == std::string::npos ? 10 : 11);
    return s.find("seconds")->as_number();
  };
  double parallel = seconds("{ type: offset, limit: 2 }");
  double sequential = seconds("{ type: offset, limit: 2, total_path: null }");
  EXPECT_GE(sequential, 1.5);
  EXPECT_LT(parallel, 1.0);
  EXPECT_LT(parallel * 2, sequential);
}

// Pages carry the source's credential like any request. A vendor that echoes an API key given in
// the query into its next links puts it into the failed page's URL: the dead letter masks it.
TEST(Paginate, PagesCarryTheCredentialAndAnEchoedKeyNeverReachesADeadLetter) {
  const std::string key = "qk-Pg9-4410";
  std::vector<std::string> flags = kCompany;
  flags.insert(flags.end(), {"--paginate", "header_link", "--page-size", "3", "--auth",
                             "api_key_query:api_key:" + key});
  Workdir r;
  std::string pipeline = write_pipeline(
      r.dir, "", "header_link",
      "  auth: { type: api_key, name: api_key, location: query, api_key: \"${DM_KEY}\" }\n");
  auto env_of = [&](const SimServer& sim) {
    auto env = r.env(sim);
    env["DM_KEY"] = key;
    return env;
  };
  {
    SimServer sim(flags);
    RunResult res = run({CASCADE_BIN, "sync", pipeline, "--json"}, env_of(sim));
    ASSERT_EQ(res.exit_code, 0) << res.err;
    EXPECT_EQ(parse_json(res.out).find("total")->find("dead_lettered")->as_int(), 0);
    expect_warehouse_equals_truth(r.db, sim.truth());
  }
  flags.insert(flags.end(), {"--fail-page", "2"});
  SimServer sim(flags);
  RunResult res = run({CASCADE_BIN, "sync", pipeline, "--json"}, env_of(sim));
  EXPECT_EQ(res.err.find(key), std::string::npos) << "the key is in the log";
  RunResult list = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"}, env_of(sim));
  ASSERT_EQ(list.exit_code, 0) << list.err;
  Value letters = parse_json(list.out);
  ASSERT_GT(letters.as_array().size(), 0u);
  for (const auto& d : letters.as_array()) {
    const std::string& reason = d.find("reason")->as_string();
    EXPECT_NE(reason.find("page 2"), std::string::npos) << reason;
    EXPECT_EQ(reason.find(key), std::string::npos) << reason;
    // The vendor did echo it: the page's URL shows where it was, masked.
    EXPECT_NE(reason.find("api_key=***"), std::string::npos) << reason;
  }
}

// A vendor whose pagination loops, or ignores the page parameter, or pages without end: each
// listing ends in the DLQ with the reason, and the run completes instead of hanging.
TEST(Paginate, LoopsAndRunawayListingsEndInTheDlqNotAHang) {
  struct Case {
    std::string mode, records, paginate, phrase;
    bool loop;
  };
  std::vector<Case> cases = {
      {"json_link", "records", "json_link", "pagination loops", true},
      {"header_link", "", "header_link", "pagination loops", true},
      {"cursor", "data", "cursor", "pagination loops", true},
      {"offset", "records", "{ type: offset, limit: 3 }", "seems to ignore the 'offset'", true},
      {"page_number", "data", "{ type: page_number, base_page: 1 }", "seems to ignore the 'page'",
       true},
      {"json_link", "records", "{ type: json_link, max_pages: 2 }", "more than 2 pages", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.mode + " " + c.paginate);
    std::vector<std::string> flags = kCompany;
    flags.insert(flags.end(), {"--paginate", c.mode, "--page-size", "3"});
    if (c.loop) flags.push_back("--page-loop");
    SimServer sim(flags);
    Workdir r;
    std::string pipeline = write_pipeline(r.dir, c.records, c.paginate);
    RunResult res =
        run({CASCADE_BIN, "sync", pipeline, "--json"}, r.env(sim), std::chrono::seconds(60));
    ASSERT_FALSE(res.timed_out);
    Value s = parse_json(res.out.substr(0, res.out.find('\n')));
    EXPECT_TRUE(s.find("completed")->as_bool());
    Value letters = dead_letters(r, sim, pipeline);
    ASSERT_GT(letters.as_array().size(), 0u);
    for (const auto& d : letters.as_array()) {
      const std::string& reason = d.find("reason")->as_string();
      EXPECT_NE(reason.find(c.phrase), std::string::npos) << reason;
      // Permanent: no retry burnt on a loop.
      EXPECT_EQ(d.find("receive_count")->as_int(), 1) << reason;
    }
    // The requests made are bounded: a few pages per listing, not an endless crawl.
    Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
    EXPECT_LT(stats.find("total")->as_int(), 2000);
  }
}

// kill -9 at moments spread over a run of paged listings, then a run to the end: the warehouse
// equals the truth, with no change recorded twice (a half-fetched listing applied nothing).
TEST(Paginate, KilledInTheMiddleOfPagedListingsThenRerunEqualsTheTruth) {
  std::vector<std::string> flags = kCompany;
  flags.insert(flags.end(), {"--paginate", "offset", "--page-size", "2"});
  SimServer sim(flags);
  Workdir r;
  std::string pipeline =
      write_pipeline(r.dir, "records", "{ type: offset, limit: 2, total_path: null }");
  std::map<std::string, std::string> env = r.env(sim);
  env["RATE"] = "150";
  // Each killed run received its messages once more: SQS counts that against them.
  env["MAX_RECEIVES"] = "100";
  std::mt19937 rng(20261129);
  std::uniform_int_distribution<int> delay_ms(100, 1200);
  int kills = 0;
  for (int attempt = 0; attempt < 20 && kills < 6; ++attempt) {
    Subprocess p = Subprocess::start({CASCADE_BIN, "sync", pipeline}, env);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    if (p.running()) p.signal(SIGKILL);
    // It may have finished between the look and the signal: then it exited cleanly.
    int rc = p.wait();
    if (rc == 128 + SIGKILL)
      ++kills;
    else
      EXPECT_EQ(rc, 0);
  }
  EXPECT_GE(kills, 6);
  env["RATE"] = "1000";
  RunResult last = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_TRUE(parse_json(last.out).find("completed")->as_bool());
  expect_warehouse_equals_truth(r.db, sim.truth());
  expect_no_duplicate_change(r.db);
  EXPECT_EQ(dead_letters(r, sim, pipeline).as_array().size(), 0u);
}

// Pipeline files with a wrong `paginate:` are refused before anything runs: exit 2, the file,
// line and column, and what was expected.
TEST(Paginate, WrongPaginateIsRefusedWithItsPosition) {
  std::string dir = temp_dir();
  struct Case {
    std::string paginate, where, phrase;
  };
  // `paginate:` is on line 14 (the branches stage), its value at column 15.
  std::vector<Case> cases = {
      {"json_lnk", ":14:15", "unknown paginator type 'json_lnk': did you mean 'json_link'?"},
      {"offset", ":14:15", "needs a limit"},
      {"{ type: offset }", ":14:15", "missing required key 'limit'"},
      {"{ type: offset, limit: 0 }", ":14:38", "paginate.limit must be between 1"},
      {"{ type: offset, limit: 10, page_param: p }", ":14:42",
       "unknown key 'page_param' in stage 'branches' paginate (type offset)"},
      {"{ type: page_number, total_path: null, stop_after_empty_page: false }", ":14:15",
       "would never stop"},
      {"{ type: cursor, cursor_param: \"a b\" }", ":14:45", "query parameter name"},
      {"{ type: json_link, next_url_path: \"links..next\" }", ":14:49", "dotted path"},
      {"{ limit: 10 }", ":14:15", "missing required key 'type'"},
      {"[json_link]", ":14:15", "expected a paginator type"},
      {"{ type: header_link, max_pages: -1 }", ":14:47", "max_pages must be between 1"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string file =
        write_pipeline(dir, "records", cases[i].paginate, "", "bad" + std::to_string(i) + ".yaml");
    for (const char* cmd : {"validate", "sync"}) {
      RunResult r =
          run({CASCADE_BIN, cmd, file}, {{"DM_API_URL", "http://127.0.0.1:1"},
                                         {"CASCADE_STORAGE", "sqlite:" + dir + "/never.db"}});
      EXPECT_EQ(r.exit_code, 2) << cmd << " case " << i << "\n" << r.err;
      EXPECT_NE(r.err.find(file + cases[i].where), std::string::npos)
          << "case " << i << ": " << r.err;
      EXPECT_NE(r.err.find(cases[i].phrase), std::string::npos) << "case " << i << ": " << r.err;
    }
  }
  EXPECT_FALSE(std::ifstream(dir + "/never.db").good());
}
