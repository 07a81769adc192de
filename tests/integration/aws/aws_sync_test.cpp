// The example pipeline on the `aws:` storage (SQS, DynamoDB with streams, the warehouse in a
// SQLite file) against moto and the simulator, driven through the real `cascade` binary: the
// warehouse equals the simulator's truth, an unchanged re-sync changes nothing, a replayed
// message writes nothing, and the queues and tables exist as the AWS design has them.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "aws/aws_store.h"
#include "aws/client.h"
#include "core/clock.h"
#include "core/json.h"
#include "store/store.h"
#include "support/moto.h"
#include "support/postgres.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

namespace cascade {
namespace {

using aws::Client;

const std::string kPipeline = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";

Value call(Client& c, const std::string& service, const std::string& target,
           const std::string& body) {
  return parse_json(c.json(service, target, body));
}

// Records in the stream of DynamoDB table `table`, from its start.
size_t stream_records(Client& c, const std::string& table) {
  Value d =
      call(c, "dynamodb", "DynamoDB_20120810.DescribeTable", R"({"TableName":")" + table + R"("})");
  std::string arn = d.find("Table")->find("LatestStreamArn")->as_string();
  Value s = call(c, "streams.dynamodb", "DynamoDBStreams_20120810.DescribeStream",
                 R"({"StreamArn":")" + arn + R"("})");
  size_t n = 0;
  for (const auto& shard : s.find("StreamDescription")->find("Shards")->as_array()) {
    Value it =
        call(c, "streams.dynamodb", "DynamoDBStreams_20120810.GetShardIterator",
             R"({"StreamArn":")" + arn + R"(","ShardId":")" + shard.find("ShardId")->as_string() +
                 R"(","ShardIteratorType":"TRIM_HORIZON"})");
    std::string iter = it.find("ShardIterator")->as_string();
    for (int i = 0; i < 10000; ++i) {
      Value r = call(c, "streams.dynamodb", "DynamoDBStreams_20120810.GetRecords",
                     R"({"ShardIterator":")" + iter + R"("})");
      size_t got = r.find("Records")->as_array().size();
      n += got;
      const Value* next = r.find("NextShardIterator");
      if (!got || !next || !next->is_string()) break;
      iter = next->as_string();
    }
  }
  return n;
}

Value sync_json(const testing::SimServer& sim, const std::string& url) {
  testing::RunResult r = testing::run({CASCADE_BIN, "sync", kPipeline, "--json"},
                                      {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", url}});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  return parse_json(r.out);
}

TEST(AwsSync, ExamplePipelineEqualsTruthAndUnchangedResyncChangesNothing) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  std::string dir = testing::temp_dir();
  const std::string url = "aws:?warehouse=sqlite:" + dir + "/wh.db&prefix=e2e-";
  testing::check_sync_equals_truth_and_resync_writes_nothing(url);

  // The queues and their dead-letter queues, with the pipeline's receive count.
  Client c(moto->config());
  for (std::string q : {"branches-dev", "salespersons-dev", "sales-dev"}) {
    std::string queue_url =
        call(c, "sqs", "AmazonSQS.GetQueueUrl", R"({"QueueName":"e2e-)" + q + R"("})")
            .find("QueueUrl")
            ->as_string();
    Value attrs = call(c, "sqs", "AmazonSQS.GetQueueAttributes",
                       R"({"QueueUrl":")" + queue_url + R"(","AttributeNames":["All"]})");
    const Value* policy = attrs.find("Attributes")->find("RedrivePolicy");
    ASSERT_TRUE(policy) << q << ": " << to_json(attrs);
    Value p = parse_json(policy->as_string());
    EXPECT_EQ(p.find("maxReceiveCount")->to_text(), "10") << q;
    EXPECT_TRUE(p.find("deadLetterTargetArn")->as_string().ends_with(":e2e-" + q + "-dlq")) << q;
  }
  // The staging tables, keyed as the AWS design keys them, with NEW_IMAGE streams.
  struct Keys {
    std::string table, hash, range;
  };
  for (const Keys& k :
       {Keys{"branches", "branch_id", ""}, Keys{"salespersons", "employee_id", "branch_id"},
        Keys{"sales", "sale_id", "employee_id"}}) {
    Value d = call(c, "dynamodb", "DynamoDB_20120810.DescribeTable",
                   R"({"TableName":"e2e-)" + k.table + R"("})");
    const Value& t = *d.find("Table");
    EXPECT_EQ(t.find("StreamSpecification")->find("StreamViewType")->as_string(), "NEW_IMAGE");
    const Array& schema = t.find("KeySchema")->as_array();
    ASSERT_EQ(schema.size(), k.range.empty() ? 1u : 2u) << k.table;
    EXPECT_EQ(schema[0].find("AttributeName")->as_string(), k.hash);
    EXPECT_EQ(schema[0].find("KeyType")->as_string(), "HASH");
    if (!k.range.empty()) {
      EXPECT_EQ(schema[1].find("AttributeName")->as_string(), k.range);
      EXPECT_EQ(schema[1].find("KeyType")->as_string(), "RANGE");
    }
  }
}

// The same on a PostgreSQL warehouse: the streams load it, checkpoints in its own tables.
TEST(AwsSync, ExamplePipelineWithAPostgresWarehouseEqualsTruth) {
  CASCADE_REQUIRE_MOTO(moto);
  CASCADE_REQUIRE_POSTGRES(pg);
  aws::register_aws_storage();
  const std::string url =
      "aws:?warehouse=" + pg->create_database("aws_warehouse") + "&prefix=pgwh-";
  testing::check_sync_equals_truth_and_resync_writes_nothing(url);
  // Each staging table's shard checkpoint lives in the warehouse's own metadata.
  auto meta = testing::query_storage(url,
                                     "SELECT count(*) FROM cascade_meta WHERE key LIKE "
                                     "'aws_stream:%' AND value <> ''");
  EXPECT_GE(meta.rows.at(0).at(0).as_int(), 3);
}

TEST(AwsSync, ReplayedMessagesWriteNothing) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  std::string dir = testing::temp_dir();
  const std::string url = "aws:?warehouse=sqlite:" + dir + "/wh.db&prefix=replay2-";
  testing::SimServer sim(
      {"--seed", "11", "--employees-per-branch", "6", "--sales-per-salesperson", "10"});
  Value first = sync_json(sim, url);
  ASSERT_TRUE(first.find("completed")->as_bool()) << to_json(first);
  Client c(moto->config());
  size_t items_before = stream_records(c, "replay2-sales");
  ASSERT_GT(items_before, 0u);
  int64_t changes_before =
      testing::query_storage(url, "SELECT count(*) FROM cascade_change_log").rows[0][0].as_int();
  // Every sales message of the first run, delivered once more (as SQS may), besides a re-sync.
  auto salespersons =
      testing::query_storage(url, "SELECT employee_id, branch_id FROM salespersons").rows;
  ASSERT_FALSE(salespersons.empty());
  std::string queue_url =
      call(c, "sqs", "AmazonSQS.GetQueueUrl", R"({"QueueName":"replay2-sales-dev"})")
          .find("QueueUrl")
          ->as_string();
  for (const auto& row : salespersons) {
    std::string body =
        R"({"branch_id":)" + row[1].to_text() + R"(,"employee_id":)" + row[0].to_text() + "}";
    std::string send = R"({"QueueUrl":")" + queue_url + R"(","MessageBody":)";
    append_json_string(body, send);
    send += '}';
    call(c, "sqs", "AmazonSQS.SendMessage", send);
  }
  Value again = sync_json(sim, url);
  ASSERT_TRUE(again.find("completed")->as_bool()) << to_json(again);
  for (const char* f : {"new", "changed", "gone"})
    EXPECT_EQ(again.find("total")->find(f)->as_int(), 0) << f;
  // The replays were applied (SQS keeps both copies), and wrote nothing.
  EXPECT_GE(again.find("stages")->find("sales")->find("messages")->as_int(),
            2 * static_cast<int64_t>(salespersons.size()));
  EXPECT_EQ(stream_records(c, "replay2-sales"), items_before);
  EXPECT_EQ(
      testing::query_storage(url, "SELECT count(*) FROM cascade_change_log").rows[0][0].as_int(),
      changes_before);
}

// `cascade streams` killed (SIGKILL) at random instants while it loads 2,500 changes a few
// records per batch, and started again until it finishes: every change lands exactly once.
TEST(AwsSync, KilledStreamReaderProcessResumesExactly) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  std::string dir = testing::temp_dir();
  const std::string url = "aws:?warehouse=sqlite:" + dir + "/wh.db&prefix=killed-";
  {
    ManualClock clock;
    auto s = open_store(url, clock);
    std::vector<Column> key = {Column("sale_id", ColumnType::Integer),
                               Column("employee_id", ColumnType::Integer)};
    s->begin();
    s->warehouse().create_table("sales", key);
    s->warehouse().add_columns("sales", std::vector<Column>{Column("amount", ColumnType::Integer)});
    s->commit();
    auto write = [&](int first, int count, int amount, int64_t run) {
      std::vector<Value> rows;
      for (int i = first; i < first + count; ++i)
        rows.push_back(parse_json("{\"sale_id\":" + std::to_string(i) +
                                  ",\"employee_id\":1,\"amount\":" + std::to_string(amount) + "}"));
      std::vector<RowWrite> w;
      for (auto& r : rows)
        w.push_back({&r, {}, static_cast<uint64_t>(amount * 100000 + w.size() + first), 0, false});
      s->begin();
      s->warehouse().upsert("sales", w, WriteStamp{run, "2026-11-29T10:00:00.000Z"});
      s->commit();
    };
    for (int u = 0; u < 20; ++u) write(u * 100, 100, 1, 1);
    write(0, 500, 2, 2);
  }
  std::mt19937 rng(20261129);
  int kills = 0;
  bool finished = false;
  for (int round = 0; round < 60 && !finished; ++round) {
    testing::RunOptions o;
    o.env = {{"CASCADE_STORAGE", url}};
    o.timeout = std::chrono::milliseconds(200 + rng() % 600);
    o.fail_test_on_timeout = false;
    testing::RunResult r = testing::run({CASCADE_BIN, "streams", kPipeline, "--batch", "3"}, o);
    if (r.timed_out) {
      ++kills;
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    finished = true;
  }
  ASSERT_TRUE(finished) << "the reader never finished in 60 rounds";
  EXPECT_GT(kills, 0) << "the reader was never killed half-way: the test proves nothing";
  testing::RunResult again =
      testing::run({CASCADE_BIN, "streams", kPipeline, "--json"}, {{"CASCADE_STORAGE", url}});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "{\"records\":0}\n");
  auto count = [&](const std::string& sql) {
    return testing::query_storage(url, sql).rows.at(0).at(0).as_int();
  };
  EXPECT_EQ(count("SELECT count(*) FROM cascade_change_log"), 2500);
  EXPECT_EQ(count("SELECT count(*) FROM sales"), 2000);
  EXPECT_EQ(count("SELECT count(*) FROM sales WHERE _version = 2 AND amount = 2"), 500);
  EXPECT_EQ(count("SELECT count(*) FROM sales WHERE _version = 1 AND amount = 1"), 1500);
}

// A vendor whose daily quota is spent, met by more runs than max_receive_count: every run ends
// at once (exit 3), and no message reaches a DLQ, though SQS counts every receive: a released
// message is replaced by a copy, so the vendor's refusals never count.
TEST(AwsSync, ASpentVendorQuotaNeverDeadLettersOverMoreRunsThanMaxReceiveCount) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  std::string dir = testing::temp_dir();
  // The example pipeline, with two receives before the DLQ.
  std::stringstream text;
  text << std::ifstream(kPipeline).rdbuf();
  std::string yaml = text.str();
  const std::string from = "max_receive_count: 10";
  ASSERT_NE(yaml.find(from), std::string::npos);
  yaml.replace(yaml.find(from), from.size(), "max_receive_count: 2");
  const std::string pipeline = dir + "/pipeline.yaml";
  std::ofstream(pipeline) << yaml;
  const std::string url = "aws:?warehouse=sqlite:" + dir + "/wh.db&prefix=spent-";
  // 20 requests a day: the branches and a few salespersons, then 429s with hours to wait.
  testing::SimServer sim({"--quota", "20/1d"});
  const std::map<std::string, std::string> env = {{"DM_API_URL", sim.url()},
                                                  {"CASCADE_STORAGE", url}};
  auto queues = [&] {
    testing::RunResult q = testing::run({CASCADE_BIN, "queues", pipeline, "--json"}, env);
    EXPECT_EQ(q.exit_code, 0) << q.err;
    return parse_json(q.out);
  };
  for (int i = 0; i < 4; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    testing::RunResult r =
        testing::run({CASCADE_BIN, "sync", pipeline, "--json"}, env, std::chrono::seconds(120));
    ASSERT_EQ(r.exit_code, 3) << "run " << i << ": " << r.out << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60)) << "run " << i;
    Value s = parse_json(r.out);
    EXPECT_EQ(s.find("quota_exhausted_by")->as_string(), "vendor") << r.out;
    EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0) << "run " << i;
    int64_t waiting = 0;
    Value listed = queues();
    for (const auto& q : listed.as_array()) {
      EXPECT_EQ(q.find("dlq_depth")->as_int(), 0) << "run " << i << ": " << to_json(q);
      waiting += q.find("depth")->as_int() + q.find("in_flight")->as_int();
    }
    EXPECT_GT(waiting, 0) << "run " << i << ": the refused messages wait in their queues";
  }
}

}  // namespace
}  // namespace cascade
