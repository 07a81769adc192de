// `cascade init URL` as a new user runs it: against the simulator and against small third-party
// style servers (root arrays, a Link header, a `next` field), then `cascade validate` and
// `cascade sync` with the file it wrote, compared with what was served.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/json.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

using Env = std::map<std::string, std::string>;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// Whether this cascade took the paginate: line init wrote (rather than commenting it out).
bool paging_active(const std::string& yaml) {
  return has(yaml, "\n    paginate:");
}

// The page of a canned listing of 7 items, 3 per page: {"id": N, "name": "item-N"}.
std::string page_items(int page) {
  std::string out = "[";
  for (int id = (page - 1) * 3 + 1; id <= std::min(7, page * 3); ++id)
    out += (out.size() > 1 ? "," : "") +
           ("{\"id\":" + std::to_string(id) + ",\"name\":\"item-" + std::to_string(id) +
            "\",\"price\":\"" + std::to_string(id) + ".25\"}");
  return out + "]";
}

int page_of(const sim::HttpRequest& req) {
  const std::string* p = req.param("page");
  return p ? std::atoi(p->c_str()) : 1;
}

std::set<std::string> names_in(const std::string& db, const std::string& table) {
  std::set<std::string> out;
  for (const auto& r :
       query_db(db, "SELECT id, name FROM " + table + " WHERE _deleted_at IS NULL").rows)
    out.insert(r[0].to_text() + ":" + r[1].as_string());
  return out;
}

std::set<std::string> expected_names(int pages) {
  std::set<std::string> out;
  for (int id = 1; id <= std::min(7, pages * 3); ++id)
    out.insert(std::to_string(id) + ":item-" + std::to_string(id));
  return out;
}

}  // namespace

TEST(Init, FromTheSimulatorsSalesListingTheFileValidatesAndSyncsThatSalespersonsSales) {
  SimServer sim({"--seed", "5", "--employees-per-branch", "5", "--sales-per-salesperson", "9"});
  Value truth = sim.truth();
  // A salesperson with sales, and the true ids of their sales.
  int64_t employee = -1;
  std::set<int64_t> ids;
  for (const auto& s : truth.find("sales")->as_array()) {
    if (employee < 0) employee = s.find("employee_id")->as_int();
    if (s.find("employee_id")->as_int() == employee) ids.insert(s.find("id")->as_int());
  }
  ASSERT_GT(ids.size(), 1u);
  std::string dir = temp_dir();
  std::string file = dir + "/sales.yaml";
  RunResult r = run({CASCADE_BIN, "init",
                     sim.url() + "/sales?employee_id=" + std::to_string(employee), "--out", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "wrote " + file)) << r.out;
  std::string yaml = slurp(file);
  EXPECT_TRUE(has(yaml, "records: result.sales")) << yaml;
  EXPECT_TRUE(has(yaml, "key: { id: id }")) << yaml;
  EXPECT_TRUE(has(yaml, "inputs: { employee_id: [" + std::to_string(employee) + "] }")) << yaml;
  EXPECT_TRUE(has(yaml, "base_url: " + sim.url())) << yaml;
  EXPECT_FALSE(has(yaml, "TODO")) << "nothing to ask for this listing\n" << yaml;
  EXPECT_FALSE(has(yaml, "paginate:")) << "the simulator serves one page by default\n" << yaml;

  RunResult v = run({CASCADE_BIN, "validate", file});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  std::string db = dir + "/w.db";
  RunResult s = run({CASCADE_BIN, "sync", file, "--storage", "sqlite:" + db});
  ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
  std::set<int64_t> got;
  for (const auto& row : query_db(db, "SELECT id FROM sales WHERE _deleted_at IS NULL").rows)
    got.insert(row[0].as_int());
  EXPECT_EQ(got, ids);
  // The amounts too, exactly as served.
  auto amount = query_db(db, "SELECT amount FROM sales ORDER BY id LIMIT 1").rows;
  ASSERT_EQ(amount.size(), 1u);
  for (const auto& t : truth.find("sales")->as_array())
    if (t.find("id")->as_int() == *ids.begin()) {
      EXPECT_EQ(amount[0][0], *t.find("amount"));
    }

  // An input more and the same file fans out: the employees of two branches.
  file = dir + "/employees.yaml";
  r = run({CASCADE_BIN, "init", sim.url() + "/employees?branch_id=1", "-o", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  yaml = slurp(file);
  EXPECT_TRUE(has(yaml, "records: result.employees")) << yaml;
  EXPECT_EQ(run({CASCADE_BIN, "validate", file}).exit_code, 0);
}

TEST(Init, RefusesToOverwriteWithoutForceAndRefusesBadUsage) {
  CannedServer api(
      [](const sim::HttpRequest&, sim::HttpResponse& res) { res.body = page_items(3); });
  std::string dir = temp_dir();
  std::string file = dir + "/items.yaml";
  std::ofstream(file) << "mine\n";
  RunResult r = run({CASCADE_BIN, "init", api.url() + "/items", "--out", file});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "already exists")) << r.err;
  EXPECT_TRUE(has(r.err, "--force")) << r.err;
  EXPECT_EQ(slurp(file), "mine\n");
  r = run({CASCADE_BIN, "init", api.url() + "/items", "--out", file, "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(slurp(file), "key: { id: id }"));
  EXPECT_FALSE(std::filesystem::exists(file + ".partial"));

  r = run({CASCADE_BIN, "init", "ftp://example.com/x", "--out", dir + "/x.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "ftp")) << r.err;
  r = run({CASCADE_BIN, "init", api.url() + "/items", "--out", dir + "/x.yaml", "--header",
           "no-colon-here"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "'Name: value'")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.yaml"));

  // `--out -` prints the file.
  r = run({CASCADE_BIN, "init", api.url() + "/items", "--out", "-"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "name: items")) << r.out;
}

TEST(Init, ARootArrayPagedByLinkHeadersIsLoadedWhole) {
  CannedServer api([](const sim::HttpRequest& req, sim::HttpResponse& res) {
    int page = page_of(req);
    res.body = page_items(page);
    if (page < 3) {
      const std::string* host = req.header("host");
      res.headers.emplace_back("Link", "<http://" + (host ? *host : std::string()) +
                                           "/v1/items?page=" + std::to_string(page + 1) +
                                           ">; rel=\"next\"");
    }
  });
  std::string dir = temp_dir();
  std::string file = dir + "/items.yaml";
  RunResult r = run({CASCADE_BIN, "init", api.url() + "/v1/items", "--out", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string yaml = slurp(file);
  EXPECT_FALSE(has(yaml, "\n    records:")) << "a root array needs no records line\n" << yaml;
  EXPECT_TRUE(has(yaml, "key: { id: id }")) << yaml;
  EXPECT_TRUE(has(yaml, "request: GET /v1/items")) << yaml;
  EXPECT_TRUE(has(yaml, "paginate: { type: header_link }")) << yaml;
  EXPECT_TRUE(has(yaml, "rel=\"next\"")) << "the evidence is named\n" << yaml;
  EXPECT_EQ(run({CASCADE_BIN, "validate", file}).exit_code, 0);
  std::string db = dir + "/w.db";
  RunResult s = run({CASCADE_BIN, "sync", file, "--storage", "sqlite:" + db});
  ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
  // With paging the whole listing; while this cascade cannot page, the first page exactly.
  EXPECT_EQ(names_in(db, "items"), expected_names(paging_active(yaml) ? 3 : 1)) << yaml;
  auto price = query_db(db, "SELECT price FROM items WHERE id = 2").rows;
  ASSERT_EQ(price.size(), 1u);
  EXPECT_EQ(price[0][0].as_string(), "2.25");
}

TEST(Init, AListUnderResultsWithANextFieldIsLoadedWhole) {
  CannedServer api([](const sim::HttpRequest& req, sim::HttpResponse& res) {
    int page = page_of(req);
    const std::string* host = req.header("host");
    std::string next = page < 3 ? "\"http://" + (host ? *host : std::string()) +
                                      "/things?page=" + std::to_string(page + 1) + "\""
                                : "null";
    res.body = "{\"count\":7,\"next\":" + next +
               ",\"previous\":null,\"results\":" + page_items(page) + "}";
  });
  std::string dir = temp_dir();
  std::string file = dir + "/things.yaml";
  RunResult r = run({CASCADE_BIN, "init", api.url() + "/things", "--out", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string yaml = slurp(file);
  EXPECT_TRUE(has(yaml, "records: results")) << yaml;
  EXPECT_TRUE(has(yaml, "key: { id: id }")) << yaml;
  EXPECT_TRUE(has(yaml, "paginate: { type: json_link, next_url_path: next }")) << yaml;
  EXPECT_EQ(run({CASCADE_BIN, "validate", file}).exit_code, 0);
  std::string db = dir + "/w.db";
  RunResult s = run({CASCADE_BIN, "sync", file, "--storage", "sqlite:" + db});
  ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
  EXPECT_EQ(names_in(db, "things"), expected_names(paging_active(yaml) ? 3 : 1)) << yaml;
}

TEST(Init, ACredentialIsSentButOnlyItsEnvironmentVariableIsWritten) {
  const std::string token = "init-S3cret-T0ken-77";
  SimServer sim({"--seed", "8", "--employees-per-branch", "4", "--auth", "bearer:" + token});
  std::string dir = temp_dir();
  std::string file = dir + "/branches.yaml";
  std::string url = sim.url() + "/branches?branch=Scranton";
  // Without it: a 401, a hint, and no file.
  RunResult r = run({CASCADE_BIN, "init", url, "--out", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "401")) << r.err;
  EXPECT_TRUE(has(r.err, "--header")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(file));

  r = run({CASCADE_BIN, "init", url, "--out", file, "--header", "Authorization: Bearer " + token});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string yaml = slurp(file);
  EXPECT_FALSE(has(yaml + r.out + r.err, token)) << yaml << r.out << r.err;
  EXPECT_TRUE(has(yaml, "auth: { type: bearer, token: \"${BRANCHES_TOKEN}\" }")) << yaml;
  EXPECT_TRUE(has(yaml, "# TODO: export BRANCHES_TOKEN")) << yaml;
  EXPECT_TRUE(has(yaml, "records: result")) << yaml;
  EXPECT_TRUE(has(yaml, "inputs: { branch: [Scranton] }")) << yaml;

  // The file wants the variable: refused without it, accepted and synced with it.
  RunResult v = run({CASCADE_BIN, "validate", file}, Env{{"BRANCHES_TOKEN", ""}});
  EXPECT_EQ(v.exit_code, 2) << v.out;
  v = run({CASCADE_BIN, "validate", file}, Env{{"BRANCHES_TOKEN", token}});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  std::string db = dir + "/w.db";
  RunResult s =
      run({CASCADE_BIN, "sync", file, "--storage", "sqlite:" + db}, Env{{"BRANCHES_TOKEN", token}});
  ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
  auto rows = query_db(db, "SELECT id, branch_name FROM branches").rows;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][1].as_string(), "Scranton");
  Value truth = sim.truth();
  const Value* branches = truth.find("branches");
  ASSERT_TRUE(branches && branches->is_array()) << to_json(truth).substr(0, 300);
  bool found = false;
  for (const auto& b : branches->as_array()) {
    const Value* n = b.find("branch_name");
    if (n && n->is_string() && n->as_string() == "Scranton") {
      found = true;
      EXPECT_EQ(rows[0][0], *b.find("id"));
    }
  }
  EXPECT_TRUE(found);
  EXPECT_FALSE(has(slurp(db), token));
}
