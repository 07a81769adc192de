// `cascade aws template PIPELINE` as a user runs it: the SAM template of the example pipeline
// passes cfn-lint, holds the old design's resources with the pipeline's settings, grants nothing
// broad, and carries no secret of the environment it was printed in.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <set>

#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade::testing;

namespace {

const std::string kExample = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";
const std::map<std::string, std::string> kSecrets = {
    {"DM_API_TOKEN", "tok-SECRET-4711"},
    {"ALERT_WEBHOOK_URL", "https://hooks.example.com/services/SECRET-0815"},
    {"APP_ENV", "dev"}};

std::string print_template(const std::string& pipeline, std::string* err = nullptr) {
  RunResult r = run({CASCADE_BIN, "aws", "template", pipeline}, kSecrets);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (err) *err = r.err;
  return r.out;
}

// Every node of a document, with the key it sits under (empty for sequence items and the root).
void walk(const YAML::Node& n, const std::string& key,
          const std::function<void(const std::string&, const YAML::Node&)>& fn) {
  fn(key, n);
  if (n.IsMap())
    for (const auto& kv : n) walk(kv.second, kv.first.as<std::string>(), fn);
  if (n.IsSequence())
    for (const auto& item : n) walk(item, key, fn);
}

}  // namespace

TEST(AwsTemplate, ExamplePassesCfnLint) {
  std::string text = print_template(kExample);
  std::string dir = temp_dir();
  std::string file = dir + "/template.yaml";
  std::ofstream(file) << text;
  RunResult which = run({"sh", "-c", "command -v cfn-lint"});
  if (which.exit_code != 0) GTEST_SKIP() << "cfn-lint not installed: cannot lint the template";
  RunResult lint = run({"cfn-lint", "--", file}, {}, std::chrono::seconds(180));
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err << "\n--- template:\n" << text;
}

TEST(AwsTemplate, ExampleHasTheOldDesignsResourcesWithThePipelinesSettings) {
  std::string text = print_template(kExample);
  YAML::Node t = YAML::Load(text);
  EXPECT_EQ(t["AWSTemplateFormatVersion"].as<std::string>(), "2010-09-09");
  EXPECT_EQ(t["Transform"].as<std::string>(), "AWS::Serverless-2016-10-31");
  YAML::Node res = t["Resources"];
  ASSERT_TRUE(res.IsMap()) << text;

  struct Stage {
    std::string id, name;
    int concurrency;
    std::vector<std::pair<std::string, std::string>> keys;
  };
  for (const Stage& s :
       {Stage{"Branches", "branches", 4, {{"branch_id", "HASH"}}},
        Stage{"Salespersons", "salespersons", 5, {{"employee_id", "HASH"}, {"branch_id", "RANGE"}}},
        Stage{"Sales", "sales", 3, {{"sale_id", "HASH"}, {"employee_id", "RANGE"}}}}) {
    SCOPED_TRACE(s.name);
    YAML::Node fn = res[s.id + "Function"];
    ASSERT_TRUE(fn.IsMap()) << text;
    EXPECT_EQ(fn["Type"].as<std::string>(), "AWS::Serverless::Function");
    YAML::Node p = fn["Properties"];
    EXPECT_EQ(p["Runtime"].as<std::string>(), "provided.al2023");
    EXPECT_EQ(p["Handler"].as<std::string>(), "bootstrap");
    EXPECT_EQ(p["CodeUri"].as<std::string>(), "cascade-package");
    EXPECT_EQ(p["ReservedConcurrentExecutions"].as<int>(), s.concurrency);
    EXPECT_EQ(p["Role"].Tag(), "!GetAtt");
    EXPECT_EQ(p["Role"].as<std::string>(), s.id + "Role.Arn");
    YAML::Node env = p["Environment"]["Variables"];
    EXPECT_EQ(env["CASCADE_STAGE"].as<std::string>(), s.name);
    EXPECT_EQ(env["CASCADE_PIPELINE"].as<std::string>(), "/var/task/pipeline.yaml");
    EXPECT_EQ(env["APP_ENV"].Tag(), "!Ref");
    EXPECT_EQ(env["DB"].as<std::string>(), s.id + "Table");
    EXPECT_EQ(env["SQS"].as<std::string>(), s.id + "Queue");
    EXPECT_EQ(env["CASCADE_STORAGE"].Tag(), "!Sub");
    EXPECT_EQ(env["CASCADE_STORAGE"].as<std::string>().rfind("aws:?warehouse=${Warehouse}", 0), 0u);
    YAML::Node sqs = p["Events"]["Queue"];
    EXPECT_EQ(sqs["Type"].as<std::string>(), "SQS");
    EXPECT_EQ(sqs["Properties"]["Queue"].as<std::string>(), s.id + "Queue.Arn");
    ASSERT_EQ(sqs["Properties"]["FunctionResponseTypes"].size(), 1u);
    EXPECT_EQ(sqs["Properties"]["FunctionResponseTypes"][0].as<std::string>(),
              "ReportBatchItemFailures");
    EXPECT_EQ(sqs["Properties"]["ScalingConfig"]["MaximumConcurrency"].as<int>(),
              std::max(2, s.concurrency));
    // Only the root has a schedule: the old design's rate(1 hour).
    if (s.name == "branches") {
      EXPECT_EQ(p["Events"]["Schedule"]["Type"].as<std::string>(), "Schedule");
      EXPECT_EQ(p["Events"]["Schedule"]["Properties"]["Schedule"].as<std::string>(),
                "rate(1 hour)");
    } else {
      EXPECT_FALSE(p["Events"]["Schedule"].IsDefined());
    }

    YAML::Node q = res[s.id + "Queue"]["Properties"];
    EXPECT_EQ(res[s.id + "Queue"]["Type"].as<std::string>(), "AWS::SQS::Queue");
    EXPECT_EQ(q["VisibilityTimeout"].as<int>(), 900);
    EXPECT_EQ(q["MessageRetentionPeriod"].as<int>(), 1209600);
    EXPECT_EQ(q["RedrivePolicy"]["maxReceiveCount"].as<int>(), 10);
    EXPECT_EQ(q["RedrivePolicy"]["deadLetterTargetArn"].Tag(), "!GetAtt");
    EXPECT_EQ(q["RedrivePolicy"]["deadLetterTargetArn"].as<std::string>(),
              s.id + "DeadLetterQueue.Arn");
    EXPECT_EQ(q["QueueName"].as<std::string>(), "${AWS::StackName}-" + s.name + "-${Environment}");
    EXPECT_EQ(res[s.id + "DeadLetterQueue"]["Type"].as<std::string>(), "AWS::SQS::Queue");
    EXPECT_EQ(res[s.id + "DeadLetterQueue"]["Properties"]["QueueName"].as<std::string>(),
              "${AWS::StackName}-" + s.name + "-${Environment}-dlq");

    YAML::Node table = res[s.id + "Table"];
    EXPECT_EQ(table["Type"].as<std::string>(), "AWS::DynamoDB::Table");
    YAML::Node tp = table["Properties"];
    EXPECT_EQ(tp["StreamSpecification"]["StreamViewType"].as<std::string>(), "NEW_IMAGE");
    EXPECT_EQ(tp["BillingMode"].as<std::string>(), "PAY_PER_REQUEST");
    ASSERT_EQ(tp["KeySchema"].size(), s.keys.size());
    ASSERT_EQ(tp["AttributeDefinitions"].size(), s.keys.size());
    for (size_t k = 0; k < s.keys.size(); ++k) {
      EXPECT_EQ(tp["KeySchema"][k]["AttributeName"].as<std::string>(), s.keys[k].first);
      EXPECT_EQ(tp["KeySchema"][k]["KeyType"].as<std::string>(), s.keys[k].second);
      EXPECT_EQ(tp["AttributeDefinitions"][k]["AttributeName"].as<std::string>(), s.keys[k].first);
      // Named `*_id`: numbers, as the storage types integer keys.
      EXPECT_EQ(tp["AttributeDefinitions"][k]["AttributeType"].as<std::string>(), "N");
    }
    // The storage's name: `{prefix}{table}` (aws_tests' AwsTemplateAgrees checks it on moto).
    EXPECT_EQ(tp["TableName"].as<std::string>(), "${AWS::StackName}-" + s.name);
  }
  YAML::Node listings = res["ListingsTable"]["Properties"];
  EXPECT_EQ(listings["TableName"].as<std::string>(), "${AWS::StackName}-cascade_listings");
  EXPECT_EQ(listings["KeySchema"][0]["AttributeName"].as<std::string>(), "stage");
  EXPECT_EQ(listings["KeySchema"][1]["AttributeName"].as<std::string>(), "id");
  EXPECT_FALSE(listings["StreamSpecification"].IsDefined());
  // The child stages' queues are the only other queues a function may send to.
  YAML::Node stmts =
      res["BranchesRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
  bool child_queue = false;
  for (const auto& st : stmts)
    if (st["Sid"].as<std::string>() == "ChildQueues") {
      ASSERT_EQ(st["Resource"].size(), 1u);
      EXPECT_EQ(st["Resource"][0].as<std::string>(), "SalespersonsQueue.Arn");
      child_queue = true;
    }
  EXPECT_TRUE(child_queue);

  // Alarms: the old design's per-function alarms, with its metrics and thresholds.
  YAML::Node dur = res["BranchesDurationAlarm"]["Properties"];
  EXPECT_EQ(dur["Namespace"].as<std::string>(), "AWS/Lambda");
  EXPECT_EQ(dur["MetricName"].as<std::string>(), "Duration");
  EXPECT_EQ(dur["Statistic"].as<std::string>(), "Maximum");
  EXPECT_EQ(dur["Period"].as<int>(), 60);
  EXPECT_DOUBLE_EQ(dur["Threshold"].as<double>(), 750000);
  EXPECT_EQ(dur["ComparisonOperator"].as<std::string>(), "GreaterThanOrEqualToThreshold");
  EXPECT_EQ(dur["AlarmActions"][0].as<std::string>(), "AlarmTopic");
  YAML::Node err = res["SalesErrorsAlarm"]["Properties"];
  EXPECT_EQ(err["Namespace"].as<std::string>(), "cascade");
  EXPECT_EQ(err["Period"].as<int>(), 300);
  EXPECT_EQ(err["TreatMissingData"].as<std::string>(), "notBreaching");
  // dlq_not_empty watches every stage's dead-letter queue.
  YAML::Node dlq = res["DlqNotEmptyAlarm"]["Properties"]["Metrics"];
  ASSERT_EQ(dlq.size(), 4u) << text;
  EXPECT_EQ(dlq[3]["Expression"].as<std::string>(), "MAX([m0,m1,m2])");
  EXPECT_EQ(dlq[0]["MetricStat"]["Metric"]["MetricName"].as<std::string>(),
            "ApproximateNumberOfMessagesVisible");
  YAML::Node backlog = res["SalesBacklogAlarm"]["Properties"];
  EXPECT_EQ(backlog["MetricName"].as<std::string>(), "ApproximateAgeOfOldestMessage");
  EXPECT_EQ(backlog["EvaluationPeriods"].as<int>(), 3);
  EXPECT_EQ(backlog["DatapointsToAlarm"].as<int>(), 2);
  // No CloudWatch metric says when a run last completed: named, not silently dropped.
  EXPECT_FALSE(res["BranchesStaleAlarm"].IsDefined());
  EXPECT_NE(text.find("no CloudWatch metric on AWS (cascade run evaluates them, Lambda does not): "
                      "branches_stale"),
            std::string::npos);
  // The webhook is an https subscription whose URL is a NoEcho parameter.
  EXPECT_EQ(res["AlarmTopic"]["Type"].as<std::string>(), "AWS::SNS::Topic");
  YAML::Node hook = res["NotifyWebhook1Subscription"]["Properties"];
  EXPECT_EQ(hook["Protocol"].as<std::string>(), "https");
  EXPECT_EQ(hook["Endpoint"].Tag(), "!Ref");
  EXPECT_EQ(hook["Endpoint"].as<std::string>(), "NotifyWebhook1");
  EXPECT_TRUE(t["Parameters"]["NotifyWebhook1"]["NoEcho"].as<bool>());
  EXPECT_TRUE(t["Parameters"]["DmApiToken"]["NoEcho"].as<bool>());
  EXPECT_EQ(res["SalesFunction"]["Properties"]["Environment"]["Variables"]["DM_API_TOKEN"]
                .as<std::string>(),
            "DmApiToken");

  // The warehouse loader: one at a time, on a schedule, reading every table's stream and no
  // queue.
  YAML::Node loader = res["WarehouseLoaderFunction"]["Properties"];
  ASSERT_TRUE(loader.IsMap()) << text;
  EXPECT_EQ(loader["Environment"]["Variables"]["CASCADE_FUNCTION"].as<std::string>(), "warehouse");
  EXPECT_EQ(loader["ReservedConcurrentExecutions"].as<int>(), 1);
  EXPECT_EQ(loader["Events"]["Schedule"]["Type"].as<std::string>(), "Schedule");
  YAML::Node statements =
      res["WarehouseLoaderRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
  std::set<std::string> streams;
  for (const auto& st : statements) {
    for (const auto& a : st["Action"])
      EXPECT_EQ(a.as<std::string>().rfind("sqs:", 0), std::string::npos);
    if (st["Sid"].as<std::string>() == "PipelineStreams")
      for (const auto& r : st["Resource"]) streams.insert(r.as<std::string>());
  }
  EXPECT_EQ(streams,
            (std::set<std::string>{"BranchesTable.StreamArn", "SalespersonsTable.StreamArn",
                                   "SalesTable.StreamArn"}));
}

TEST(AwsTemplate, GrantsNoWildcardResourceNoFullAccessAndLeaksNoSecret) {
  std::string text = print_template(kExample);
  for (const auto& [name, value] : kSecrets)
    if (name != "APP_ENV") {
      EXPECT_EQ(text.find(value), std::string::npos) << name << " leaked";
    }
  EXPECT_EQ(text.find("FullAccess"), std::string::npos);
  YAML::Node t = YAML::Load(text);
  int resources = 0, roles = 0;
  walk(t, "", [&](const std::string& key, const YAML::Node& n) {
    if (key == "ManagedPolicyArns")
      ADD_FAILURE() << "managed policies are broad: " << YAML::Dump(n);
    if (key == "Resource" && n.IsScalar()) {
      ++resources;
      EXPECT_EQ(n.as<std::string>().find('*'), std::string::npos) << n.as<std::string>();
      EXPECT_TRUE(n.Tag() == "!GetAtt" || n.Tag() == "!Ref" || n.Tag() == "!Sub")
          << "resource not named through the template: " << n.as<std::string>();
    }
    if (key == "Action" && n.IsScalar()) {
      EXPECT_EQ(n.as<std::string>().find('*'), std::string::npos) << n.as<std::string>();
    }
    if (key == "Type" && n.IsScalar() && n.as<std::string>() == "AWS::IAM::Role") ++roles;
  });
  EXPECT_EQ(roles, 4);       // one per function: three stages and the warehouse loader
  EXPECT_GE(resources, 17);  // logs, queue, DLQ, table, stream each; child queues but for sales
}

TEST(AwsTemplate, TimezoneSchedulesUseScheduleV2AndBadFilesExit2WithAPosition) {
  std::string dir = temp_dir();
  std::string path =
      example_pipeline(dir, {{"    schedule: rate(1 hour)",
                              "    schedule: cron(30 2 * * ? *)\n    timezone: Europe/Berlin"}});
  YAML::Node t = YAML::Load(print_template(path));
  YAML::Node sched = t["Resources"]["BranchesFunction"]["Properties"]["Events"]["Schedule"];
  EXPECT_EQ(sched["Type"].as<std::string>(), "ScheduleV2");
  EXPECT_EQ(sched["Properties"]["ScheduleExpression"].as<std::string>(), "cron(30 2 * * ? *)");
  EXPECT_EQ(sched["Properties"]["ScheduleExpressionTimezone"].as<std::string>(), "Europe/Berlin");

  std::string bad = example_pipeline(dir, {{"concurrency: 5", "concurrency: five"}});
  RunResult r = run({CASCADE_BIN, "aws", "template", bad});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(bad + ":"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(AwsTemplate, AwsCommandsHaveHelpAndNeedASubcommand) {
  for (std::vector<std::string> cmd :
       {std::vector<std::string>{"aws"}, {"aws", "template"}, {"aws", "package"}, {"lambda"}}) {
    cmd.insert(cmd.begin(), CASCADE_BIN);
    cmd.push_back("--help");
    RunResult r = run(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd[1];
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << cmd[1];
  }
  EXPECT_EQ(run({CASCADE_BIN, "aws"}).exit_code, 2);
  EXPECT_EQ(run({CASCADE_BIN, "aws", "package"}).exit_code, 2);  // --out is required
}
