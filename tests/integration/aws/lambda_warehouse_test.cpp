// The Lambda deployment's whole path on moto: the real `cascade lambda` runs the branches stage
// for an SQS batch (rows land in DynamoDB, the warehouse is not touched: a stage function only
// writes the staging tables), then the warehouse loader function (CASCADE_FUNCTION=warehouse)
// answers a Schedule event by reading the tables' streams into the warehouse.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "core/json.h"
#include "support/cascade.h"
#include "support/moto.h"
#include "support/runtime_api.h"
#include "support/sim.h"
#include "support/subprocess.h"

namespace cascade {
namespace {

const std::string kPipeline = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";

// Rows of `sql` in the warehouse file, or -1 when it cannot be read (no such table yet).
int64_t rows_of(const std::string& db, const std::string& sql) {
  try {
    return static_cast<int64_t>(testing::query_db(db, sql).rows.size());
  } catch (const std::exception&) {
    return -1;
  }
}

TEST(AwsLambda, AStageFunctionWritesDynamoAndTheWarehouseLoaderLoadsItFromTheStreams) {
  CASCADE_REQUIRE_MOTO(moto);
  testing::SimServer sim({"--employees-per-branch", "3", "--sales-per-salesperson", "2"});
  std::string dir = testing::temp_dir();
  std::string db = dir + "/warehouse.db";
  std::string url = "aws:?warehouse=sqlite:" + db + "&prefix=lw-";
  std::map<std::string, std::string> env = moto->env();
  env["CASCADE_PIPELINE"] = kPipeline;
  env["CASCADE_STORAGE"] = url;
  env["DM_API_URL"] = sim.url();

  // The branches function: one SQS record naming Scranton.
  testing::RuntimeApiServer stage_api;
  std::string batch = stage_api.push(
      R"({"Records":[{"messageId":"m-1","receiptHandle":"rh","body":"{\"branch\":\"Scranton\"}",)"
      R"("eventSource":"aws:sqs","attributes":{"ApproximateReceiveCount":"1"}}]})");
  auto stage_env = env;
  stage_env["AWS_LAMBDA_RUNTIME_API"] = stage_api.endpoint();
  stage_env["CASCADE_STAGE"] = "branches";
  testing::RunResult stage_run =
      testing::run({CASCADE_BIN, "lambda", "--max-invocations", "1"}, stage_env);
  ASSERT_EQ(stage_run.exit_code, 0) << stage_run.err;
  auto a = stage_api.wait_answer(batch, std::chrono::seconds(5));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body, R"({"batchItemFailures":[]})");
  EXPECT_LE(rows_of(db, "SELECT 1 FROM branches WHERE _deleted_at IS NULL"), 0)
      << "a stage function loaded the warehouse itself";

  // The warehouse loader, on its schedule.
  testing::RuntimeApiServer loader_api;
  std::string tick =
      loader_api.push(R"({"version":"0","id":"2","detail-type":"Scheduled Event",)"
                      R"("source":"aws.events","time":"2026-11-29T19:00:00Z","detail":{}})");
  auto loader_env = env;
  loader_env["AWS_LAMBDA_RUNTIME_API"] = loader_api.endpoint();
  loader_env["CASCADE_FUNCTION"] = "warehouse";
  testing::RunResult load_run =
      testing::run({CASCADE_BIN, "lambda", "--max-invocations", "1"}, loader_env);
  ASSERT_EQ(load_run.exit_code, 0) << load_run.err;
  auto b = loader_api.wait_answer(tick, std::chrono::seconds(5));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, "response") << b->body;
  EXPECT_EQ(parse_json(b->body).find("function")->as_string(), "warehouse");
  auto rows = testing::query_db(db, "SELECT branch_name FROM branches WHERE _deleted_at IS NULL");
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.rows[0][0].as_string(), "Scranton");
  EXPECT_EQ(rows_of(db, "SELECT 1 FROM cascade_change_log WHERE table_name = 'branches'"), 1);

  // An unknown role is an init error, named.
  testing::RuntimeApiServer bad_api;
  auto bad_env = env;
  bad_env["AWS_LAMBDA_RUNTIME_API"] = bad_api.endpoint();
  bad_env["CASCADE_FUNCTION"] = "loader";
  testing::RunResult bad = testing::run({CASCADE_BIN, "lambda", "--max-invocations", "1"}, bad_env);
  EXPECT_NE(bad.exit_code, 0);
  auto answers = bad_api.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].kind, "init_error");
  EXPECT_NE(answers[0].body.find("CASCADE_FUNCTION 'loader' is unknown"), std::string::npos)
      << answers[0].body;
}

}  // namespace
}  // namespace cascade
