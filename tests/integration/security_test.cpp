// Security: a secret header value never leaks into output, logs, dead letters, queue views or
// the database files, whatever fails; values from an event are percent-encoded into one query
// parameter and cannot change the path or add parameters.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "sim/http_server.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

const std::string kExample = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";
// Distinctive enough that any occurrence is a leak, not a coincidence.
const std::string kSecret = "tok-9Qz7-hostile-SECRET-4f1e";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string pipeline_text(const std::string& name, const std::string& base_url,
                          const std::string& db) {
  return "name: " + name +
         "\n"
         "source:\n"
         "  base_url: " +
         base_url +
         "\n"
         "  headers: { Authorization: \"Bearer ${DM_API_TOKEN}\", X-Api-Key: \"${DM_API_TOKEN}\" "
         "}\n"
         "  timeout: 5s\n"
         "  retry: { attempts: 2, backoff: 1ms..5ms }\n"
         "storage: sqlite:" +
         db +
         "\n"
         "queues: { visibility_timeout: 1s, max_receive_count: 2 }\n"
         "stages:\n"
         "  items:\n"
         "    inputs: { case: [ok, e500, malformed, html, truncated] }\n"
         "    request: GET /items?case={case}\n"
         "    records: result\n"
         "    key: { item_id: id }\n"
         "    emit: { details: { item_id: \"{record.id}\" } }\n"
         "  details:\n"
         "    request: GET /details?item_id={item_id}\n"
         "    records: result\n"
         "    key: { detail_id: id }\n";
}

}  // namespace

TEST(Security, SecretHeaderValueAppearsNowhereAfterFailingSyncs) {
  CannedServer server([](const sim::HttpRequest& req, sim::HttpResponse& res) {
    const std::string* c = req.param("case");
    if (req.path == "/v1/items" && c) {
      if (*c == "ok") {
        res.body = R"({"result":[{"id":1,"name":"fine"}]})";
      } else if (*c == "e500") {
        res.status = 500;
        res.body = R"({"error":"internal"})";
      } else if (*c == "malformed") {
        res.body = R"({"result":[{"id":2,"name":)";
      } else if (*c == "html") {
        res.status = 502;
        res.content_type = "text/html";
        res.body = "<html>bad gateway</html>";
      } else {
        res.body = R"({"result":[{"id":3,"name":"cut\)";
      }
    } else if (req.path == "/v1/details") {
      res.status = 500;  // every child fails too, so child messages dead-letter as well
      res.body = "oops";
    } else {
      res.status = 404;
      res.body = "not found";
    }
  });
  std::string dir = temp_dir();
  struct Run {
    std::string pipeline, db;
  };
  // The right base path (mixed failures), a base path that 404s, and a port nobody listens on.
  std::vector<Run> runs;
  const std::vector<std::pair<std::string, std::string>> bases = {
      {"mixed", server.url() + "/v1"},
      {"wrongbase", server.url() + "/nope"},
      {"refused", "http://127.0.0.1:1"}};
  for (const auto& [name, base] : bases) {
    Run r{dir + "/" + name + ".yaml", dir + "/" + name + ".db"};
    std::ofstream(r.pipeline) << pipeline_text(name, base, r.db);
    runs.push_back(r);
  }

  const std::map<std::string, std::string> env = {{"DM_API_TOKEN", kSecret}};
  std::string seen;  // everything the user could read
  size_t dead = 0;
  for (const auto& r : runs) {
    RunResult s = run({CASCADE_BIN, "--log-level", "debug", "sync", r.pipeline, "--json"}, env);
    EXPECT_EQ(s.exit_code, 0) << s.err;
    seen += s.out + s.err;
    for (std::vector<std::string> cmd :
         {std::vector<std::string>{"dlq", "list", "-p", r.pipeline, "--json"},
          std::vector<std::string>{"dlq", "list", "-p", r.pipeline},
          std::vector<std::string>{"dlq", "show", "-p", r.pipeline},
          std::vector<std::string>{"queues", r.pipeline},
          std::vector<std::string>{"queues", r.pipeline, "--json"},
          std::vector<std::string>{"sql", "-p", r.pipeline, "-f", "json",
                                   "SELECT * FROM sqlite_master"}}) {
      cmd.insert(cmd.begin(), {CASCADE_BIN, "--log-level", "debug"});
      RunResult q = run(cmd, env);
      EXPECT_EQ(q.exit_code, 0) << cmd[3] << ": " << q.err;
      seen += q.out + q.err;
      if (cmd[3] == "dlq" && cmd[4] == "list" && cmd.back() == "--json")
        dead += parse_json(q.out).as_array().size();
    }
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::string bytes = read_file(r.db + suffix);
      EXPECT_EQ(bytes.find(kSecret), std::string::npos) << "secret in " << r.db << suffix;
      // The base64 or URL-encoded spelling would be a leak all the same; the token has no
      // characters that percent-encoding changes, so one search covers both spellings.
    }
  }
  // The failures really happened (else this test proves nothing): 4 bad items in the mixed run,
  // its one child, and all 5 inputs in each of the other two runs.
  EXPECT_EQ(dead, 4u + 1u + 5u + 5u) << seen;
  EXPECT_NE(seen.find("HTTP 500"), std::string::npos);
  EXPECT_NE(seen.find("HTTP 404"), std::string::npos);
  EXPECT_NE(seen.find("malformed JSON"), std::string::npos);
  EXPECT_EQ(seen.find(kSecret), std::string::npos) << "the secret leaked:\n" << seen;
  EXPECT_EQ(seen.find("tok-9Qz7"), std::string::npos) << "a prefix of the secret leaked";
}

// An event's values reach the API percent-encoded as the one `branch` parameter of /branches:
// "../" cannot climb, "?" and "#" cannot start a query or fragment, "&" cannot add a parameter.
TEST(Security, EventValuesReachTheSimulatorOnlyAsOneEncodedBranchParameter) {
  SimServer sim({"--seed", "3", "--employees-per-branch", "4", "--sales-per-salesperson", "3"});
  std::string dir = temp_dir();
  std::string event = dir + "/event.json";
  std::ofstream(event) << R"({"branches": ["../admin?x=1#", "a&branch=b", "Scranton"]})";
  std::map<std::string, std::string> env = {{"DM_API_URL", sim.url()},
                                            {"CASCADE_STORAGE", "sqlite:" + dir + "/ev.db"}};
  RunResult r = run({CASCADE_BIN, "sync", kExample, "--event", event, "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;

  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  std::set<std::string> paths;
  for (const auto& [path, by_status] : stats.find("requests")->as_object()) paths.insert(path);
  EXPECT_EQ(paths, (std::set<std::string>{"/branches", "/employees", "/sales"})) << to_json(stats);
  const Value* branches = stats.find("requests")->find("/branches");
  ASSERT_NE(branches, nullptr);
  int64_t branch_requests = 0;
  for (const auto& [status, n] : branches->as_object()) {
    EXPECT_EQ(status, "200");
    branch_requests += n.as_int();
  }
  EXPECT_EQ(branch_requests, 3);

  RunResult q = run({CASCADE_BIN, "sql", "-p", kExample, "-f", "json",
                     "SELECT branch_name FROM branches ORDER BY 1"},
                    env);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(parse_json(q.out), parse_json(R"([{"branch_name":"Scranton"}])"));
}

// The same event against a server that records what it receives: each value arrives whole, as
// the only parameter, on the /branches path.
TEST(Security, EventValuesArriveDecodedExactlyAsSent) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> got;
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    {
      std::lock_guard lock(mu);
      got.emplace_back(req.path, req.params);
    }
    res.body = R"({"result":[]})";
  });
  std::string dir = temp_dir();
  std::string event = dir + "/event.json";
  const std::vector<std::string> values = {"../admin?x=1#", "a&branch=b", "Scranton",
                                           "100% +plus/slash\\ \xC3\xA9"};
  std::string list;
  for (const auto& v : values) {
    list += list.empty() ? "" : ",";
    append_json_string(v, list);
  }
  std::ofstream(event) << "{\"branches\": [" << list << "]}";
  std::map<std::string, std::string> env = {{"DM_API_URL", server.url()},
                                            {"CASCADE_STORAGE", "sqlite:" + dir + "/ev.db"}};
  RunResult r = run({CASCADE_BIN, "sync", kExample, "--event", event, "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;

  std::lock_guard lock(mu);
  std::multiset<std::string> received;
  for (const auto& [path, params] : got) {
    EXPECT_EQ(path, "/branches");
    ASSERT_EQ(params.size(), 1u) << path;
    EXPECT_EQ(params[0].first, "branch");
    received.insert(params[0].second);
  }
  EXPECT_EQ(received, std::multiset<std::string>(values.begin(), values.end()));
}
