// source.auth end to end: cascade syncs the simulator in each of its auth modes with a pipeline
// file and the warehouse matches the truth; OAuth2 tokens that expire mid-run are refreshed;
// refused credentials dead-letter messages whose reasons, like the logs and the database, hold
// no secret; a wrong auth section is refused with its position.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
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

const std::string kHeaders = "headers: { Authorization: \"Bearer ${DM_API_TOKEN:-}\" }";
const std::vector<std::string> kSmallCompany = {
    "--seed", "31", "--employees-per-branch", "6", "--sales-per-salesperson", "8"};

std::set<std::pair<int64_t, int64_t>> truth_sales(const Value& truth) {
  std::set<int64_t> sp;
  for (const auto& e : truth.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson") sp.insert(e.find("id")->as_int());
  std::set<std::pair<int64_t, int64_t>> out;
  for (const auto& s : truth.find("sales")->as_array())
    if (sp.count(s.find("employee_id")->as_int()))
      out.emplace(s.find("id")->as_int(), s.find("employee_id")->as_int());
  return out;
}

std::set<std::pair<int64_t, int64_t>> warehouse_sales(const std::string& db) {
  std::set<std::pair<int64_t, int64_t>> out;
  for (const auto& r :
       query_db(db, "SELECT sale_id, employee_id FROM sales WHERE _deleted_at IS NULL").rows)
    out.emplace(r[0].as_int(), r[1].as_int());
  return out;
}

// Every byte of every file beside the database (the db, its WAL and shared memory).
std::string database_bytes(const std::string& dir) {
  std::string out;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".yaml") continue;  // the pipeline file names variables only
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out += ss.str();
  }
  return out;
}

struct Synced {
  RunResult run;
  Value summary;
  std::string db, pipeline, dir;
  std::map<std::string, std::string> env;
};

// Syncs the example pipeline with `auth` in place of its headers line, at `per_second`.
Synced sync_with(const SimServer& sim, const std::string& auth,
                 std::map<std::string, std::string> env, const std::string& per_second = "300") {
  Synced s;
  s.dir = temp_dir();
  s.db = s.dir + "/cascade.db";
  s.pipeline = example_pipeline(
      s.dir, {{kHeaders, auth},
              {"per_second: 50, burst: 50", "per_second: " + per_second + ", burst: 5"},
              {"retry: { attempts: 4, backoff: 200ms..30s }",
               "retry: { attempts: 3, backoff: 10ms..50ms }"}});
  env["DM_API_URL"] = sim.url();
  env["CASCADE_STORAGE"] = "sqlite:" + s.db;
  s.env = env;
  s.run = run({CASCADE_BIN, "--log-level", "debug", "sync", s.pipeline, "--json"}, env);
  if (s.run.exit_code == 0) s.summary = parse_json(s.run.out);
  return s;
}

void expect_no_secret(const Synced& s, const std::vector<std::string>& secrets) {
  RunResult dlq = run({CASCADE_BIN, "dlq", "list", "-p", s.pipeline, "--json"}, s.env);
  std::string db = database_bytes(s.dir);
  ASSERT_GT(db.size(), 1000u) << "no database written in " << s.dir;
  for (const auto& secret : secrets) {
    EXPECT_EQ(s.run.err.find(secret), std::string::npos) << "secret in the log: " << secret;
    EXPECT_EQ(s.run.out.find(secret), std::string::npos) << "secret in the summary: " << secret;
    EXPECT_EQ(dlq.out.find(secret), std::string::npos) << "secret in a dead letter: " << secret;
    EXPECT_EQ(db.find(secret), std::string::npos) << "secret in the database: " << secret;
  }
}

Value sim_auth_stats(const SimServer& sim) {
  return *parse_json(http_get(sim.url() + "/admin/stats")).find("auth");
}

struct Kind {
  std::string name;
  std::vector<std::string> sim_flags;
  std::string auth;  // the pipeline's auth section
  std::map<std::string, std::string> env;
  std::vector<std::string> secrets;
};

std::vector<Kind> kinds() {
  return {
      {"bearer",
       {"--auth", "bearer:brr-7Hq2-token-xyz"},
       "auth: { type: bearer, token: \"${DM_TOKEN}\" }",
       {{"DM_TOKEN", "brr-7Hq2-token-xyz"}},
       {"brr-7Hq2-token-xyz"}},
      {"http_basic",
       {"--auth", "basic:michael:pw-Sc0tt-9xx"},
       "auth: { type: http_basic, username: michael, password: \"${DM_PASSWORD}\" }",
       {{"DM_PASSWORD", "pw-Sc0tt-9xx"}},
       {"pw-Sc0tt-9xx", "bWljaGFlbDpwdy1TYzB0dC05eHg="}},
      {"api_key_header",
       {"--auth", "api_key_header:X-Api-Key:key-Dw1ght-4"},
       "auth: { type: api_key, name: X-Api-Key, location: header, api_key: \"${DM_KEY}\" }",
       {{"DM_KEY", "key-Dw1ght-4"}},
       {"key-Dw1ght-4"}},
      {"api_key_query",
       {"--auth", "api_key_query:api_key:qk-J1m-77"},
       "auth: { type: api_key, name: api_key, location: query, api_key: \"${DM_KEY}\" }",
       {{"DM_KEY", "qk-J1m-77"}},
       {"qk-J1m-77"}},
      {"oauth2",
       {"--auth", "oauth2:cascade-client:cs-P4m-secret"},
       "auth:\n    type: oauth2_client_credentials\n"
       "    access_token_url: ${DM_API_URL}/oauth/token\n"
       "    client_id: cascade-client\n    client_secret: \"${DM_CLIENT_SECRET}\"\n"
       "    scopes: [read, sales]",
       {{"DM_CLIENT_SECRET", "cs-P4m-secret"}},
       {"cs-P4m-secret", "simtok-"}},
  };
}

}  // namespace

TEST(Auth, EachKindSyncsTheWarehouseExactlyAndLeaksNoSecret) {
  for (const Kind& k : kinds()) {
    SCOPED_TRACE(k.name);
    std::vector<std::string> flags = kSmallCompany;
    flags.insert(flags.end(), k.sim_flags.begin(), k.sim_flags.end());
    SimServer sim(flags);
    Synced s = sync_with(sim, k.auth, k.env);
    ASSERT_EQ(s.run.exit_code, 0) << s.run.err;
    EXPECT_TRUE(s.summary.find("completed")->as_bool());
    EXPECT_EQ(s.summary.find("total")->find("dead_lettered")->as_int(), 0) << s.run.err;
    EXPECT_EQ(warehouse_sales(s.db), truth_sales(sim.truth()));
    EXPECT_GT(warehouse_sales(s.db).size(), 50u);
    Value a = sim_auth_stats(sim);
    EXPECT_EQ(a.find("rejected")->as_int(), 0) << "every request carried the credential";
    if (k.name == "oauth2") {
      EXPECT_EQ(a.find("tokens_issued")->as_int(), 1);
    }
    expect_no_secret(s, k.secrets);
  }
}

TEST(Auth, WithoutTheCredentialTheSimulatorRefusesAndTheTokenEndpointChecksTheClient) {
  SimServer sim({"--auth", "oauth2:cid:sec-ret-1", "--token-ttl", "1"});
  long status = 0;
  std::string body = http_get(sim.url() + "/branches?branch=Scranton", &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body.find("sec-ret-1"), std::string::npos);
  http_post(sim.url() + "/oauth/token", "grant_type=client_credentials", &status);
  EXPECT_EQ(status, 401) << "no client credentials";
  Value t = parse_json(
      http_post(sim.url() + "/oauth/token",
                "grant_type=client_credentials&client_id=cid&client_secret=sec-ret-1", &status));
  ASSERT_EQ(status, 200);
  EXPECT_EQ(t.find("expires_in")->as_int(), 1);
  EXPECT_EQ(sim_auth_stats(sim).find("tokens_issued")->as_int(), 1);
}

TEST(Auth, OAuthTokenExpiringMidRunIsRefreshedAndTheSyncIsExact) {
  std::vector<std::string> flags = kSmallCompany;
  flags.insert(flags.end(), {"--auth", "oauth2:cascade-client:cs-P4m-secret", "--token-ttl", "1"});
  SimServer sim(flags);
  // ~55 requests at 15/s: over three seconds, more than three token lifetimes.
  Synced s = sync_with(sim, kinds()[4].auth, kinds()[4].env, "15");
  ASSERT_EQ(s.run.exit_code, 0) << s.run.err;
  EXPECT_EQ(s.summary.find("total")->find("dead_lettered")->as_int(), 0) << s.run.err;
  EXPECT_EQ(warehouse_sales(s.db), truth_sales(sim.truth()));
  Value a = sim_auth_stats(sim);
  EXPECT_GE(a.find("tokens_issued")->as_int(), 3) << "tokens are refreshed before they expire";
  expect_no_secret(s, {"cs-P4m-secret", "simtok-"});
}

TEST(Auth, OAuthTokenThatLapsesEarlyIsRefreshedOnA401AndNothingIsDeadLettered) {
  // The token answer claims an hour; the token is honoured for 1 s: only 401s tell.
  std::vector<std::string> flags = kSmallCompany;
  flags.insert(flags.end(), {"--auth", "oauth2:cascade-client:cs-P4m-secret", "--token-ttl", "1",
                             "--token-reported-ttl", "3600"});
  SimServer sim(flags);
  Synced s = sync_with(sim, kinds()[4].auth, kinds()[4].env, "15");
  ASSERT_EQ(s.run.exit_code, 0) << s.run.err;
  EXPECT_EQ(s.summary.find("total")->find("dead_lettered")->as_int(), 0) << s.run.err;
  EXPECT_EQ(warehouse_sales(s.db), truth_sales(sim.truth()));
  Value a = sim_auth_stats(sim);
  EXPECT_GE(a.find("tokens_issued")->as_int(), 2);
  EXPECT_GE(a.find("rejected")->as_int(), 1) << "the run did meet the lapsed token";
  expect_no_secret(s, {"cs-P4m-secret", "simtok-"});
}

TEST(Auth, WrongCredentialsAreDeadLetteredWithAReasonWithoutTheSecret) {
  struct Case {
    std::string sim_auth, pipeline_auth, var, value, phrase;
  };
  std::vector<Case> cases = {
      {"bearer:right-token-1", "auth: { type: bearer, token: \"${T}\" }", "T", "wr0ng-T0ken-abc",
       "HTTP 401"},
      {"api_key_query:key:right-key-1",
       "auth: { type: api_key, name: key, location: query, api_key: \"${T}\" }", "T",
       "wr0ng-K3y-abc", "HTTP 401"},
      {"oauth2:cid:right-secret-1",
       "auth: { type: oauth2_client_credentials, access_token_url: \"${DM_API_URL}/oauth/token\", "
       "client_id: cid, client_secret: \"${T}\" }",
       "T", "wr0ng-S3cret-abc", "cannot get an OAuth2 access token"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.sim_auth);
    SimServer sim({"--auth", c.sim_auth});
    Synced s = sync_with(sim, c.pipeline_auth, {{c.var, c.value}});
    ASSERT_EQ(s.run.exit_code, 0) << s.run.err;
    EXPECT_EQ(s.summary.find("total")->find("dead_lettered")->as_int(), 13) << s.run.err;
    RunResult list = run({CASCADE_BIN, "dlq", "list", "-p", s.pipeline, "--json"}, s.env);
    ASSERT_EQ(list.exit_code, 0) << list.err;
    Value letters = parse_json(list.out);
    ASSERT_EQ(letters.as_array().size(), 13u);
    for (const auto& d : letters.as_array()) {
      const std::string& reason = d.find("reason")->as_string();
      EXPECT_NE(reason.find(c.phrase), std::string::npos) << reason;
      EXPECT_EQ(d.find("receive_count")->as_int(), 1) << "refused credentials are permanent";
    }
    expect_no_secret(s, {c.value});
  }
}

TEST(Auth, ConfigErrorsPointAtTheAuthSection) {
  std::string dir = temp_dir();
  const std::string head = "name: t\nsource:\n  base_url: http://127.0.0.1:1\n";
  const std::string tail =
      "stages:\n  a:\n    inputs: { n: [1] }\n    request: GET /a\n    key: { id: id }\n";
  struct Case {
    std::string auth, where, phrase;
  };
  std::vector<Case> cases = {
      {"  auth: { type: bearer }\n", ":4:9", "missing required key 'token' in source.auth"},
      {"  auth: { type: bearer, token: \"${NOT_SET_TOKEN:-}\" }\n", ":4:32",
       "source.auth.token is empty"},
      {"  auth: { type: oauth2 }\n", ":4:17",
       "unknown auth type 'oauth2' (expected one of: bearer, http_basic, api_key, "
       "oauth2_client_credentials)"},
      {"  auth: { type: bearer, tokn: x }\n", ":4:25", "unknown key 'tokn'"},
      {"  auth: { type: api_key, api_key: k, location: cookie }\n", ":4:48",
       "location must be header or query"},
      {"  auth: { type: oauth2_client_credentials, client_id: c, client_secret: s }\n", ":4:9",
       "missing required key 'access_token_url'"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string file = dir + "/bad" + std::to_string(i) + ".yaml";
    std::ofstream(file) << head << cases[i].auth << tail;
    RunResult r = run({CASCADE_BIN, "sync", file});
    EXPECT_EQ(r.exit_code, 2) << file << "\n" << r.err;
    EXPECT_NE(r.err.find(file + cases[i].where), std::string::npos)
        << "case " << i << ": " << r.err;
    EXPECT_NE(r.err.find(cases[i].phrase), std::string::npos) << "case " << i << ": " << r.err;
  }
}

TEST(Auth, TheOAuthExamplePipelineSyncsTheSimulatorExactly) {
  SimServer sim({"--seed", "32", "--employees-per-branch", "6", "--sales-per-salesperson", "8",
                 "--auth", "oauth2:cascade-reporting:ex-S3cret-77", "--token-ttl", "60"});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::map<std::string, std::string> env = {{"DM_API_URL", sim.url()},
                                            {"CASCADE_STORAGE", "sqlite:" + db},
                                            {"DM_CLIENT_SECRET", "ex-S3cret-77"}};
  RunResult r =
      run({CASCADE_BIN, "sync",
           std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin-oauth.yaml", "--json"},
          env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value s = parse_json(r.out);
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0) << r.err;
  EXPECT_EQ(warehouse_sales(db), truth_sales(sim.truth()));
  Value stats = parse_json(http_get(sim.url() + "/admin/stats"));
  EXPECT_GT(stats.find("requests")->find("/sales/search")->find("200")->as_int(), 20);
  EXPECT_EQ(stats.find("auth")->find("tokens_issued")->as_int(), 1);
  EXPECT_EQ(stats.find("auth")->find("rejected")->as_int(), 0);
  EXPECT_EQ(r.err.find("ex-S3cret-77"), std::string::npos);
  RunResult v = run({CASCADE_BIN, "validate",
                     std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin-oauth.yaml"},
                    env);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find("auth: oauth2_client_credentials"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("sales: POST /sales/search (JSON body)"), std::string::npos) << v.out;
  EXPECT_EQ(v.out.find("ex-S3cret-77"), std::string::npos);
}
