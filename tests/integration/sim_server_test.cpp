// The real cascade-sim binary over real sockets: paths, errors, truth, time, dump, shutdown.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "core/json.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

namespace cascade::testing {
namespace {

const std::vector<std::string> kFlags = {"--seed",
                                         "11",
                                         "--branches",
                                         "3",
                                         "--employees-per-branch",
                                         "8",
                                         "--sales-per-salesperson",
                                         "5",
                                         "--transfers-per-tick",
                                         "1",
                                         "--departures-per-tick",
                                         "0.5",
                                         "--hires-per-tick",
                                         "0.5"};

Value get_json(const std::string& url, long expect_status = 200) {
  long status = 0;
  const std::string body = http_get(url, &status);
  EXPECT_EQ(status, expect_status) << url << ": " << body;
  return parse_json(body);
}

// The truth without its truth-only fields (sim/truth.h): what the paths alone can rebuild.
Value served_part(Value truth) {
  auto strip = [&truth](const char* list, std::string_view field) {
    for (Value& r : truth.find(list)->as_array()) {
      Object& o = r.as_object();
      o.erase(std::remove_if(o.begin(), o.end(), [&](const Member& m) { return m.first == field; }),
              o.end());
    }
  };
  strip("employees", "branch_history");
  strip("sales", "branch_at_sale");
  return truth;
}

// Builds the truth document from the vendor paths alone, as cascade would.
Value walk(SimServer& sim, int64_t tick, int64_t seed) {
  Array branches, employees, sales;
  for (const char* name : {"Scranton", "Akron", "Buffalo"}) {
    const Value r = get_json(sim.url() + "/branches?branch=" + name);
    EXPECT_EQ(r.find("result")->as_array().size(), 1u) << name;
    branches.push_back(r.find("result")->as_array().at(0));
  }
  std::vector<int64_t> ids;
  for (const Value& b : branches) {
    const int64_t bid = b.find("id")->as_int();
    const Value r = get_json(sim.url() + "/employees?branch_id=" + std::to_string(bid));
    for (Value e : r.find_path("result.employees")->as_array()) {
      ids.push_back(e.find("id")->as_int());
      e.set("branch_id", bid);
      employees.push_back(std::move(e));
    }
  }
  std::sort(ids.begin(), ids.end());
  for (int64_t id : ids) {
    const Value r = get_json(sim.url() + "/sales?employee_id=" + std::to_string(id));
    for (Value s : r.find_path("result.sales")->as_array()) {
      s.set("employee_id", id);
      sales.push_back(std::move(s));
    }
  }
  Object o;
  o.emplace_back("tick", tick);
  o.emplace_back("seed", seed);
  o.emplace_back("branches", std::move(branches));
  o.emplace_back("employees", std::move(employees));
  o.emplace_back("sales", std::move(sales));
  return Value(std::move(o));
}

TEST(SimServer, ServesEachPath) {
  SimServer sim(kFlags);
  const Value b = get_json(sim.url() + "/branches?branch=Scranton");
  ASSERT_EQ(b.find("result")->as_array().size(), 1u);
  EXPECT_EQ(b.find("result")->as_array()[0].find("id")->as_int(), 1);
  EXPECT_EQ(b.find("result")->as_array()[0].find("employees")->as_int(), 8);
  const Value ny = get_json(sim.url() + "/branches?branch=New%20York");
  EXPECT_TRUE(ny.find("result")->as_array().empty());  // only 3 branches here
  const Value e = get_json(sim.url() + "/employees?branch_id=2");
  EXPECT_EQ(e.find_path("result.branch_id")->as_int(), 2);
  EXPECT_EQ(e.find_path("result.employees")->as_array().size(), 8u);
  const Value none = get_json(sim.url() + "/employees?branch_id=77");
  EXPECT_TRUE(none.find_path("result.employees")->as_array().empty());
  const Value s = get_json(sim.url() + "/sales?employee_id=1");
  EXPECT_EQ(s.find_path("result.employee_id")->as_int(), 1);
  EXPECT_TRUE(s.find_path("result.sales")->as_array().empty());
  EXPECT_TRUE(get_json(sim.url() + "/healthz").find("ok")->as_bool());
}

TEST(SimServer, BadParametersAre400AndUnknownPaths404) {
  SimServer sim(kFlags);
  for (const char* path : {"/employees?branch_id=abc", "/employees", "/sales?employee_id=",
                           "/sales?employee_id=12x", "/branches", "/employees?branch_id=-1"}) {
    const Value v = get_json(sim.url() + path, 400);
    EXPECT_TRUE(v.find("error") && v.find("error")->is_string()) << path;
  }
  EXPECT_TRUE(get_json(sim.url() + "/nope", 404).find("error"));
  long status = 0;
  http_post(sim.url() + "/admin/advance?ticks=x", "", &status);
  EXPECT_EQ(status, 400);
  const Value stats = get_json(sim.url() + "/admin/stats");
  EXPECT_EQ(stats.find_path("requests./employees")->find("400")->as_int(), 3);
  EXPECT_EQ(stats.find_path("requests.other")->find("404")->as_int(), 1);
}

TEST(SimServer, TruthIsWhatThePathsServeBeforeAndAfterTime) {
  SimServer sim(kFlags);
  const Value t0 = sim.truth();
  EXPECT_EQ(t0.find("tick")->as_int(), 0);
  EXPECT_TRUE(served_part(t0) == walk(sim, 0, 11));
  const Value summary = sim.advance(30);
  EXPECT_EQ(summary.find("tick")->as_int(), 30);
  EXPECT_GT(summary.find("new_sales")->as_int(), 0);
  EXPECT_GT(summary.find("transfers")->as_int(), 0);
  const Value t1 = sim.truth();
  EXPECT_EQ(t1.find("tick")->as_int(), 30);
  EXPECT_FALSE(t0 == t1);
  EXPECT_GT(t1.find("sales")->as_array().size(), t0.find("sales")->as_array().size());
  EXPECT_TRUE(served_part(t1) == walk(sim, 30, 11));
}

TEST(SimServer, DumpEqualsTruthByteForByte) {
  SimServer sim(kFlags);
  sim.advance(12);
  sim.advance(13);
  const std::string served = http_get(sim.url() + "/admin/truth");
  std::vector<std::string> argv = {CASCADE_SIM_BIN, "dump"};
  argv.insert(argv.end(), kFlags.begin(), kFlags.end());
  argv.insert(argv.end(), {"--ticks", "25"});
  const RunResult r = run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, served);
  EXPECT_EQ(parse_json(r.out).find("tick")->as_int(), 25);
}

TEST(SimServer, ManyConcurrentClients) {
  SimServer sim({"--threads", "2"});
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        long status = 0;
        const std::string body = http_get(
            sim.url() + "/employees?branch_id=" + std::to_string(1 + (t + i) % 13), &status);
        if (status == 200 && body.find("\"employees\":[{") != std::string::npos) ++ok;
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 160);
}

TEST(SimServer, StopsCleanlyOnSigterm) {
  Subprocess p = Subprocess::start({CASCADE_SIM_BIN, "--port", "0"});
  const std::string line = p.read_line(std::chrono::seconds(10));
  ASSERT_EQ(line.rfind("listening on http://127.0.0.1:", 0), 0u) << line;
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(), 0);
}

TEST(SimServer, HelpExplainsEveryFlag) {
  const RunResult r = run({CASCADE_SIM_BIN, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--seed", "--branches", "--employees-per-branch", "--salesperson-share",
        "--sales-per-salesperson", "--new-sales-per-tick", "--threads", "--port"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  EXPECT_NE(run({CASCADE_SIM_BIN, "--salesperson-share", "2", "dump"}).exit_code, 0);
}

}  // namespace
}  // namespace cascade::testing
