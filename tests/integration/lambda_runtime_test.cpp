// `cascade lambda`, the Lambda custom runtime, against a local server speaking the Runtime API,
// the real simulator and a SQLite storage: a Schedule event seeds the root stage's queue; an SQS
// batch whose one record the vendor refuses is answered with exactly that record's id.
#include <gtest/gtest.h>

#include <csignal>
#include <set>

#include "core/json.h"
#include "support/cascade.h"
#include "support/runtime_api.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

constexpr auto kWait = std::chrono::seconds(60);

struct LambdaEnv {
  std::string dir = temp_dir();
  std::string db = dir + "/cascade.db";
  std::string pipeline;
  std::map<std::string, std::string> env(const SimServer& sim, const RuntimeApiServer& api,
                                         const std::string& stage) const {
    return {{"AWS_LAMBDA_RUNTIME_API", api.endpoint()},
            {"CASCADE_PIPELINE", pipeline},
            {"CASCADE_STORAGE", "sqlite:" + db},
            {"CASCADE_STAGE", stage},
            {"DM_API_URL", sim.url()},
            {"DM_API_TOKEN", "tok-SECRET-lambda"},
            {"LOGGING_LEVEL", "INFO"}};
  }
};

Value queue_depths(const LambdaEnv& e) {
  RunResult r = run({CASCADE_BIN, "queues", e.pipeline, "--storage", "sqlite:" + e.db, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return parse_json(r.out);
}

int64_t depth_of(const Value& queues, const std::string& stage) {
  for (const auto& q : queues.as_array())
    if (q.find("stage")->as_string() == stage) return q.find("depth")->as_int();
  ADD_FAILURE() << "no queue for " << stage;
  return -1;
}

std::string sqs_record(const std::string& id, const std::string& body) {
  std::string out = R"({"messageId":)";
  append_json_string(id, out);
  out += R"(,"receiptHandle":"rh-)" + id + R"(","body":)";
  append_json_string(body, out);
  out += R"(,"attributes":{"ApproximateReceiveCount":"1"},"eventSource":"aws:sqs",)"
         R"("eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:q","awsRegion":"us-east-1"})";
  return out;
}

}  // namespace

TEST(LambdaRuntime, ScheduleSeedsTheRootAndAnSqsBatchReportsExactlyTheFailedRecord) {
  SimServer sim;
  RuntimeApiServer api;
  LambdaEnv e;
  e.pipeline = example_pipeline(e.dir);

  // The root function: a Schedule event from EventBridge.
  std::string sched = api.push(
      R"({"version":"0","id":"53dc4d37","detail-type":"Scheduled Event","source":"aws.events",)"
      R"("account":"123456789012","time":"2026-11-29T18:00:00Z","region":"us-east-1",)"
      R"("resources":["arn:aws:events:us-east-1:123456789012:rule/r"],"detail":{}})");
  // Then one of the seeded messages, as SQS would deliver it.
  std::string root_batch =
      api.push(R"({"Records":[)" + sqs_record("m-scranton", R"({"branch":"Scranton"})") + "]}");
  Subprocess root = Subprocess::start({CASCADE_BIN, "lambda"}, e.env(sim, api, "branches"));
  auto a = api.wait_answer(sched, kWait);
  ASSERT_TRUE(a) << "no answer to the Schedule event";
  EXPECT_EQ(a->kind, "response") << a->body;
  Value seeded = parse_json(a->body);
  EXPECT_EQ(seeded.find("stage")->as_string(), "branches");
  EXPECT_EQ(seeded.find("seeded")->as_int(), 13) << a->body;
  auto b = api.wait_answer(root_batch, kWait);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, "response") << b->body;
  EXPECT_EQ(b->body, R"({"batchItemFailures":[]})");
  // It waits for the next event (a long poll) and ends cleanly on SIGTERM.
  ASSERT_TRUE(eventually([&] { return api.next_calls() >= 3; }));
  root.signal(SIGTERM);
  EXPECT_EQ(root.wait(), 0);
  Value queues = queue_depths(e);
  EXPECT_EQ(depth_of(queues, "branches"), 13);  // seeded; SQS would run them through the function
  auto branches = query_db(e.db, "SELECT branch_name FROM branches WHERE _deleted_at IS NULL");
  ASSERT_EQ(branches.rows.size(), 1u);
  EXPECT_EQ(branches.rows[0][0].as_string(), "Scranton");
  EXPECT_EQ(depth_of(queues, "salespersons"), 1);  // Scranton's branch id, for the child function

  // The salespersons function: a batch of three, one of which the vendor refuses (400).
  std::string batch = api.push(R"({"Records":[)" + sqs_record("m-1", R"({"branch_id":1})") + "," +
                               sqs_record("m-bad", R"({"branch_id":"not-a-branch"})") + "," +
                               sqs_record("m-2", R"({"branch_id":2})") + "]}");
  std::string broken = api.push(R"({"Records":[)" + sqs_record("m-json", "{not json") + "," +
                                sqs_record("m-3", R"({"branch_id":3})") + "]}");
  Subprocess child = Subprocess::start({CASCADE_BIN, "lambda"}, e.env(sim, api, "salespersons"));
  auto c = api.wait_answer(batch, kWait);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, "response") << c->body;
  EXPECT_EQ(c->body, R"({"batchItemFailures":[{"itemIdentifier":"m-bad"}]})");
  auto d = api.wait_answer(broken, kWait);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->body, R"({"batchItemFailures":[{"itemIdentifier":"m-json"}]})");
  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(), 0);

  // Branches 1, 2 and 3 are in the warehouse as the vendor has them; nothing of the refused one.
  Value truth = sim.truth();
  std::set<std::pair<std::string, std::string>> want, got;
  for (const auto& emp : truth.find("employees")->as_array()) {
    int64_t branch = emp.find("branch_id")->as_int();
    if (emp.find("occupation")->as_string() == "salesperson" && branch >= 1 && branch <= 3)
      want.emplace(std::to_string(emp.find("id")->as_int()), std::to_string(branch));
  }
  ASSERT_FALSE(want.empty());
  for (const auto& r :
       query_db(e.db,
                "SELECT CAST(employee_id AS TEXT), CAST(branch_id AS TEXT) FROM salespersons "
                "WHERE _deleted_at IS NULL")
           .rows)
    got.emplace(r[0].as_string(), r[1].as_string());
  EXPECT_EQ(got, want);
  // Each of them is a message for the sales function.
  EXPECT_EQ(depth_of(queue_depths(e), "sales"), static_cast<int64_t>(want.size()));
  // An unknown stage is an init error, reported to the Runtime API.
  RuntimeApiServer api2;
  RunResult bad = run({CASCADE_BIN, "lambda"}, e.env(sim, api2, "nosuch"));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  auto answers = api2.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].kind, "init_error");
  EXPECT_NE(answers[0].body.find("nosuch"), std::string::npos) << answers[0].body;
}

TEST(LambdaRuntime, LogsAreJsonLinesAndCarryNoSecret) {
  SimServer sim;
  RuntimeApiServer api;
  LambdaEnv e;
  e.pipeline = example_pipeline(e.dir);
  std::string id = api.push(R"({"Records":[)" + sqs_record("m-x", R"({"branch":"Akron"})") + "]}");
  std::map<std::string, std::string> env = e.env(sim, api, "branches");
  env["LOGGING_LEVEL"] = "DEBUG";
  RunResult r = run({CASCADE_BIN, "lambda", "--max-invocations", "1"}, env);
  auto a = api.wait_answer(id, std::chrono::seconds(1));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body, R"({"batchItemFailures":[]})");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ((r.out + r.err).find("tok-SECRET-lambda"), std::string::npos);
  size_t lines = 0;
  for (const std::string* stream : {&r.out, &r.err}) {
    size_t start = 0;
    while (start < stream->size()) {
      size_t end = stream->find('\n', start);
      if (end == std::string::npos) end = stream->size();
      std::string line = stream->substr(start, end - start);
      start = end + 1;
      if (line.empty()) continue;
      ++lines;
      EXPECT_NO_THROW(parse_json(line)) << line;
    }
  }
  EXPECT_GE(lines, 2u);  // at least the ready line (stderr) and the metrics line (stdout)
  EXPECT_NE(r.err.find("lambda ready: pipeline dunder-mifflin, stage branches"), std::string::npos)
      << r.err;
  // The metrics line CloudWatch turns into metrics.
  EXPECT_NE(r.out.find(R"("Namespace":"cascade")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("Stage":"branches")"), std::string::npos) << r.out;
}
