// Fault plan of cascade-sim in process: parsing, deterministic draws, rates, path limits, quota
// windows on a ManualClock, and the body mutations.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/clock.h"
#include "core/json.h"
#include "sim/faults.h"

namespace cascade::sim {
namespace {

HttpRequest get(const std::string& path) {
  HttpRequest r;
  r.method = "GET";
  r.path = path;
  return r;
}

// The handler stands in for the company: a small valid body like the real /sales one.
const ApiHandler kHandler = [](HttpResponse& res) {
  res.body = R"({"result":{"employee_id":7,"sales":[{"id":3972,"amount":10.5,"note":"a, b: c"},)"
             R"({"id":3973,"amount":2,"note":"x"}]}})";
};

HttpResponse serve(Faults& f, const std::string& path) {
  HttpResponse res;
  f.serve(get(path), res, kHandler);
  return res;
}

const std::string* header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return &v;
  return nullptr;
}

// A short label of what happened to a response, to compare sequences.
std::string outcome(const HttpResponse& r) {
  return std::to_string(r.status) + (r.hang ? "h" : "") + (r.reset_after >= 0 ? "r" : "") +
         (r.truncate_body >= 0 ? "t" : "") + "/" + std::to_string(r.delay.count()) + "/" +
         std::to_string(r.body.size());
}

TEST(SimFaultConfig, ParsesEveryKindAndRoundTrips) {
  const FaultConfig c = parse_fault_config(
      R"({"seed":9,"quota":{"requests":100,"per":"1h","path":"/sales"},"5xx":0.1,)"
      R"("slow":{"p":0.2,"min_ms":5,"max_ms":50},"hang":{"p":0.01,"path":"/employees"},)"
      R"("reset":0.02,"truncate":0.03,"malformed":0.04,)"
      R"("wrong_shape":{"p":0.05,"variant":"null_list"},"html":0.06,"huge":{"p":0.07,"mb":2}})");
  EXPECT_EQ(*c.seed, 9u);
  EXPECT_EQ(c.quota.limit, 100);
  EXPECT_EQ(c.quota.per, std::chrono::hours(1));
  EXPECT_EQ(c.quota.path, "/sales");
  EXPECT_DOUBLE_EQ(c.rule(FaultKind::http5xx).p, 0.1);
  EXPECT_EQ(c.rule(FaultKind::hang).path, "/employees");
  EXPECT_EQ(c.slow_min_ms, 5);
  EXPECT_EQ(c.slow_max_ms, 50);
  EXPECT_EQ(c.shape, ShapeVariant::null_list);
  EXPECT_DOUBLE_EQ(c.huge_mb, 2);
  const FaultConfig again = parse_fault_config(fault_config_json(c));
  EXPECT_EQ(fault_config_json(again), fault_config_json(c));
  EXPECT_TRUE(parse_fault_config("{}").empty());
  EXPECT_EQ(parse_fault_config(R"({"quota":"10/1d"})").quota.per, std::chrono::hours(24));
}

TEST(SimFaultConfig, RejectsBadPlans) {
  for (const char* bad : {R"({"5xx":1.5})", R"({"teapot":0.1})", R"({"5xx":{"p":0.1,"path":"/x"}})",
                          R"({"quota":"10/500ms"})", R"({"quota":"10/2d"})", R"({"quota":"x/1s"})",
                          R"({"slow":{"p":0.1,"min_ms":10,"max_ms":5}})", R"({"hang":{}})",
                          R"({"wrong_shape":{"p":1,"variant":"odd"}})", "[1]", "{"}) {
    EXPECT_THROW(parse_fault_config(bad), std::invalid_argument) << bad;
  }
}

TEST(SimFaultDraw, DeterministicPerSeedKindPathAndCounter) {
  EXPECT_EQ(fault_draw(1, FaultKind::http5xx, "/sales", 5),
            fault_draw(1, FaultKind::http5xx, "/sales", 5));
  EXPECT_NE(fault_draw(1, FaultKind::http5xx, "/sales", 5),
            fault_draw(2, FaultKind::http5xx, "/sales", 5));
  EXPECT_NE(fault_draw(1, FaultKind::http5xx, "/sales", 5),
            fault_draw(1, FaultKind::malformed, "/sales", 5));
  EXPECT_NE(fault_draw(1, FaultKind::http5xx, "/sales", 5),
            fault_draw(1, FaultKind::http5xx, "/sales", 6));
  for (uint64_t n = 0; n < 1000; ++n) {
    const double d = fault_draw(3, FaultKind::slow, "/branches", n);
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
}

TEST(SimFaults, SameSeedSameSequenceOfFaults) {
  ManualClock clock;
  FaultConfig c = parse_fault_config(
      R"({"5xx":0.2,"slow":{"p":0.3,"min_ms":1,"max_ms":9},"truncate":0.1,"huge":{"p":0.05,"mb":0.01}})");
  Faults a(c, 42, clock), b(c, 42, clock), other(c, 43, clock);
  std::string seq_a, seq_b, seq_other;
  for (int i = 0; i < 200; ++i) {
    const std::string path = i % 3 == 0 ? "/sales" : "/employees";
    seq_a += outcome(serve(a, path)) + ";";
    seq_b += outcome(serve(b, path)) + ";";
    seq_other += outcome(serve(other, path)) + ";";
  }
  EXPECT_EQ(seq_a, seq_b);
  EXPECT_NE(seq_a, seq_other);
  // Replacing the plan restarts the counters: the same requests meet the same faults again.
  a.replace(c);
  std::string replay;
  for (int i = 0; i < 200; ++i)
    replay += outcome(serve(a, i % 3 == 0 ? "/sales" : "/employees")) + ";";
  EXPECT_EQ(replay, seq_a);
}

TEST(SimFaults, ProbabilitiesHonouredOver1000Draws) {
  ManualClock clock;
  Faults f(parse_fault_config(R"({"5xx":0.1,"slow":{"p":0.3,"min_ms":10,"max_ms":20}})"), 7, clock);
  int errors = 0, slow = 0;
  std::map<int, int> statuses;
  for (int i = 0; i < 1000; ++i) {
    const HttpResponse r = serve(f, "/sales");
    if (r.status != 200) ++errors;
    ++statuses[r.status];
    if (r.delay.count() > 0) {
      ++slow;
      EXPECT_GE(r.delay.count(), 10);
      EXPECT_LE(r.delay.count(), 20);
    }
  }
  // Binomial(1000, p): 4+ standard deviations of slack, so only a broken draw fails.
  EXPECT_NEAR(errors, 100, 40);
  EXPECT_NEAR(slow, 300, 60);
  EXPECT_GT(statuses[500], 0);
  EXPECT_GT(statuses[502], 0);
  EXPECT_GT(statuses[503], 0);
  EXPECT_EQ(statuses[200] + statuses[500] + statuses[502] + statuses[503], 1000);
  const Value stats = parse_json(f.stats_json());
  EXPECT_EQ(stats.find_path("kinds.5xx")->find("/sales")->as_int(), errors);
  EXPECT_EQ(stats.find_path("kinds.slow")->find("/sales")->as_int(), slow);
  EXPECT_EQ(stats.find("total")->as_int(), errors + slow);
}

TEST(SimFaults, PathLimitedRulesLeaveOtherPathsAlone) {
  ManualClock clock;
  Faults f(parse_fault_config(R"({"html":{"p":1,"path":"/sales"}})"), 1, clock);
  const HttpResponse s = serve(f, "/sales");
  EXPECT_TRUE(s.status == 502 || s.status == 503);
  EXPECT_EQ(s.content_type, "text/html");
  EXPECT_NE(s.body.find("<html>"), std::string::npos);
  for (const char* p : {"/branches", "/employees"}) {
    const HttpResponse r = serve(f, p);
    EXPECT_EQ(r.status, 200) << p;
    EXPECT_EQ(r.content_type, "application/json");
  }
}

TEST(SimFaults, EmptyPlanIsTheTrueAnswer) {
  ManualClock clock;
  Faults f(FaultConfig{}, 1, clock);
  const HttpResponse r = serve(f, "/sales");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.headers.empty());
  EXPECT_EQ(outcome(r), outcome([] {
              HttpResponse x;
              kHandler(x);
              return x;
            }()));
}

TEST(SimFaults, QuotaWindowArithmetic) {
  ManualClock clock;
  Faults f(parse_fault_config(R"({"quota":{"requests":3,"per":"10s","path":"/sales"}})"), 1, clock);
  for (int i = 0; i < 3; ++i) {
    const HttpResponse r = serve(f, "/sales");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(*header(r, "RateLimit-Limit"), "3");
    EXPECT_EQ(*header(r, "RateLimit-Remaining"), std::to_string(2 - i));
    EXPECT_EQ(*header(r, "RateLimit-Reset"), std::to_string(10 - i));
    EXPECT_EQ(*header(r, "X-RateLimit-Remaining"), std::to_string(2 - i));
    clock.advance(std::chrono::milliseconds(1000));
  }
  // 3 s into the window: 7 s left.
  HttpResponse r = serve(f, "/sales");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(*header(r, "Retry-After"), "7");
  EXPECT_EQ(*header(r, "RateLimit-Remaining"), "0");
  EXPECT_EQ(*header(r, "RateLimit-Reset"), "7");
  EXPECT_EQ(*header(r, "X-RateLimit-Reset"),
            std::to_string((to_millis(clock.now()) + 7000) / 1000));
  // Partial seconds round up, so a client waiting Retry-After never comes back too early.
  clock.advance(std::chrono::milliseconds(6500));
  r = serve(f, "/sales");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(*header(r, "Retry-After"), "1");
  // Other paths are outside this quota and carry no quota headers.
  EXPECT_EQ(serve(f, "/employees").status, 200);
  EXPECT_EQ(header(serve(f, "/employees"), "RateLimit-Limit"), nullptr);
  // The window reopens exactly at its end, and 429s did not eat into the new one.
  clock.advance(std::chrono::milliseconds(500));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(serve(f, "/sales").status, 200) << i;
  EXPECT_EQ(serve(f, "/sales").status, 429);
  const Value stats = parse_json(f.stats_json());
  EXPECT_EQ(stats.find_path("kinds.quota")->find("/sales")->as_int(), 3);
}

TEST(SimFaults, SlidingQuotaCountsAnyWindowSpan) {
  ManualClock clock;
  FaultConfig c = parse_fault_config(R"({"quota":{"requests":3,"per":"10s","window":"sliding"}})");
  EXPECT_TRUE(c.quota.sliding);
  EXPECT_NE(fault_config_json(c).find("\"window\":\"sliding\""), std::string::npos);
  EXPECT_THROW(parse_fault_config(R"({"quota":{"requests":3,"window":"leaky"}})"),
               std::invalid_argument);
  Faults f(c, 1, clock);
  // Requests at 0 s, 4 s and 8 s fill the window.
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = serve(f, "/sales");
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_EQ(*header(r, "RateLimit-Remaining"), std::to_string(2 - i));
    clock.advance(std::chrono::seconds(4));
  }
  // At 12 s the request of 0 s has left the window: one slot is free. A fixed window would
  // have opened afresh at 12 s and admitted three.
  EXPECT_EQ(serve(f, "/sales").status, 200);
  HttpResponse r = serve(f, "/sales");
  EXPECT_EQ(r.status, 429) << "4 s, 8 s and 12 s are all within the last 10 s";
  // The slot frees when the request of 4 s leaves the window, at 14 s.
  EXPECT_EQ(*header(r, "Retry-After"), "2");
  EXPECT_EQ(*header(r, "RateLimit-Reset"), "2");
  clock.advance(std::chrono::milliseconds(1999));
  EXPECT_EQ(serve(f, "/sales").status, 429);
  clock.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(serve(f, "/sales").status, 200);
}

TEST(SimFaults, OnlyRealAnswersAreSpoiled) {
  ManualClock clock;
  Faults f(parse_fault_config(R"({"malformed":1})"), 1, clock);
  HttpResponse r;
  f.serve(get("/sales"), r, [](HttpResponse& res) {
    res.status = 400;
    res.body = R"({"error":"employee_id must be a non-negative integer"})";
  });
  EXPECT_EQ(r.status, 400);
  EXPECT_NO_THROW(parse_json(r.body));
  EXPECT_EQ(parse_json(f.stats_json()).find("total")->as_int(), 0);
}

TEST(SimFaults, KindsSetTheServerMisbehaviour) {
  ManualClock clock;
  Faults hang(parse_fault_config(R"({"hang":1,"slow":1})"), 1, clock);
  const HttpResponse h = serve(hang, "/branches");
  EXPECT_TRUE(h.hang);
  EXPECT_EQ(h.delay.count(), 0);  // a hang is not also "slow"

  Faults reset(parse_fault_config(R"({"reset":1})"), 1, clock);
  bool before = false, mid = false;
  for (int i = 0; i < 40; ++i) {
    const HttpResponse r = serve(reset, "/sales");
    ASSERT_GE(r.reset_after, 0);
    (r.reset_after == 0 ? before : mid) = true;
  }
  EXPECT_TRUE(before && mid);

  Faults trunc(parse_fault_config(R"({"truncate":1})"), 1, clock);
  for (int i = 0; i < 20; ++i) {
    const HttpResponse r = serve(trunc, "/sales");
    EXPECT_GT(r.truncate_body, 0);
    EXPECT_LT(r.truncate_body, static_cast<int64_t>(r.body.size()));
  }

  Faults huge(parse_fault_config(R"({"huge":{"p":1,"mb":1}})"), 1, clock);
  const HttpResponse big = serve(huge, "/sales");
  EXPECT_GE(big.body.size(), 1024u * 1024);
  const Value v = parse_json(big.body);
  EXPECT_EQ(v.find_path("result.sales")->as_array().size(), 2u);
}

TEST(SimFaultBodies, MalformedIsNeverValidJson) {
  const std::string bodies[] = {
      R"({"result":{"employee_id":7,"sales":[{"id":1,"note":"a, b"},{"id":2}]}})",
      R"({"result":[]})", R"({"result":[{"id":1,"name":"x,y"}]})"};
  for (const std::string& body : bodies) {
    ASSERT_NO_THROW(parse_json(body));
    for (uint64_t n = 0; n < 4; ++n)
      EXPECT_THROW(parse_json(malformed_body(body, n)), JsonError) << body << " variant " << n;
  }
  EXPECT_NE(malformed_body(bodies[0], 1).find(",@"), std::string::npos);
}

TEST(SimFaultBodies, WrongShapeVariants) {
  const std::string sales = R"({"result":{"employee_id":7,"sales":[{"id":3972,"a":1},{"id":5}]}})";
  const std::string branches = R"({"result":[{"id":1,"name":"Scranton"}]})";

  Value v = parse_json(wrong_shape_body(sales, ShapeVariant::id_string));
  EXPECT_EQ(v.find_path("result.sales")->as_array()[0].find("id")->as_string(), "3972");
  v = parse_json(wrong_shape_body(branches, ShapeVariant::id_string));
  EXPECT_EQ(v.find("result")->as_array()[0].find("id")->as_string(), "1");

  v = parse_json(wrong_shape_body(sales, ShapeVariant::result_missing));
  EXPECT_EQ(v.find("result"), nullptr);

  v = parse_json(wrong_shape_body(sales, ShapeVariant::null_list));
  EXPECT_TRUE(v.find_path("result.sales")->is_null());
  v = parse_json(wrong_shape_body(branches, ShapeVariant::null_list));
  EXPECT_TRUE(v.find("result")->is_null());

  v = parse_json(wrong_shape_body(sales, ShapeVariant::number_record));
  EXPECT_EQ(v.find_path("result.sales")->as_array()[0].as_int(), 3972);
  v = parse_json(wrong_shape_body(R"({"result":[]})", ShapeVariant::number_record));
  EXPECT_TRUE(v.find("result")->as_array()[0].is_int());
}

TEST(SimFaultBodies, HugeStaysValidJsonWithTheSameData) {
  const std::string body = R"({"result":[{"id":1}]})";
  const std::string big = huge_body(body, 100000);
  EXPECT_GE(big.size(), 100000u);
  EXPECT_LE(big.size(), 100010u);
  const Value v = parse_json(big);
  EXPECT_EQ(canonical_json(*v.find("result")), canonical_json(*parse_json(body).find("result")));
  EXPECT_NO_THROW(parse_json(huge_body("{}", 1000)));
}

}  // namespace
}  // namespace cascade::sim
