// The SAM template `cascade aws template` prints and the `aws:` storage agree: the functions run
// with `create=false`, so every table and queue the storage uses must be the one the template
// declares, named and keyed alike. The storage makes them on moto during a real `cascade sync` of
// the example pipeline with prefix `STACK-`; the template's are read from its YAML with
// ${AWS::StackName} = STACK and ${Environment} = its default. Then a stack made only from the
// template's declarations (nothing made by the storage) syncs with `create=false`.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>

#include "aws/aws_store.h"
#include "aws/client.h"
#include "core/json.h"
#include "support/moto.h"
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

// A table as both sides describe it.
struct TableShape {
  std::vector<std::string> key;              // "name HASH", "name RANGE"
  std::map<std::string, std::string> types;  // key attribute -> S / N / B
  bool stream = false;
  bool operator==(const TableShape&) const = default;
};

std::string shape_text(const TableShape& s) {
  std::string out;
  for (const auto& k : s.key) out += k + "; ";
  for (const auto& [a, t] : s.types) out += a + ":" + t + " ";
  return out + (s.stream ? "stream" : "no stream");
}

std::string substitute(std::string text, const std::string& stack, const std::string& env) {
  for (auto [var, value] : {std::pair<std::string, std::string>{"${AWS::StackName}", stack},
                            std::pair<std::string, std::string>{"${Environment}", env}})
    for (size_t at = text.find(var); at != std::string::npos; at = text.find(var))
      text.replace(at, var.size(), value);
  return text;
}

struct Declared {
  std::map<std::string, TableShape> tables;
  std::set<std::string> queues;
  std::map<std::string, std::string> dead_letter_of;  // queue -> its DLQ
  std::map<std::string, int> max_receive;
};

Declared from_template(const std::string& stack) {
  testing::RunResult r = testing::run({CASCADE_BIN, "aws", "template", kPipeline});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  YAML::Node t = YAML::Load(r.out);
  const std::string env = t["Parameters"]["Environment"]["Default"].as<std::string>();
  Declared d;
  std::map<std::string, std::string> queue_of_id;
  for (const auto& res : t["Resources"]) {
    const std::string type = res.second["Type"].as<std::string>();
    YAML::Node p = res.second["Properties"];
    if (type == "AWS::DynamoDB::Table") {
      EXPECT_EQ(p["TableName"].Tag(), "!Sub");
      TableShape s;
      for (const auto& k : p["KeySchema"])
        s.key.push_back(k["AttributeName"].as<std::string>() + " " +
                        k["KeyType"].as<std::string>());
      for (const auto& a : p["AttributeDefinitions"])
        s.types[a["AttributeName"].as<std::string>()] = a["AttributeType"].as<std::string>();
      s.stream = p["StreamSpecification"].IsDefined() &&
                 p["StreamSpecification"]["StreamViewType"].as<std::string>() == "NEW_IMAGE";
      d.tables[substitute(p["TableName"].as<std::string>(), stack, env)] = s;
    } else if (type == "AWS::SQS::Queue") {
      EXPECT_EQ(p["QueueName"].Tag(), "!Sub");
      std::string name = substitute(p["QueueName"].as<std::string>(), stack, env);
      d.queues.insert(name);
      queue_of_id[res.first.as<std::string>()] = name;
    }
  }
  for (const auto& res : t["Resources"]) {
    YAML::Node rp = res.second["Properties"]["RedrivePolicy"];
    if (!rp.IsDefined()) continue;
    std::string dlq_arn = rp["deadLetterTargetArn"].as<std::string>();  // ID.Arn
    std::string q = queue_of_id[res.first.as<std::string>()];
    d.dead_letter_of[q] = queue_of_id[dlq_arn.substr(0, dlq_arn.find('.'))];
    d.max_receive[q] = rp["maxReceiveCount"].as<int>();
  }
  return d;
}

std::map<std::string, TableShape> tables_on_moto(Client& c, const std::string& prefix) {
  std::map<std::string, TableShape> out;
  Value list = call(c, "dynamodb", "DynamoDB_20120810.ListTables", R"({"Limit":100})");
  for (const auto& n : list.find("TableNames")->as_array()) {
    if (!n.as_string().starts_with(prefix)) continue;
    Value d = call(c, "dynamodb", "DynamoDB_20120810.DescribeTable",
                   R"({"TableName":")" + n.as_string() + R"("})");
    const Value& t = *d.find("Table");
    TableShape s;
    for (const auto& k : t.find("KeySchema")->as_array())
      s.key.push_back(k.find("AttributeName")->as_string() + " " + k.find("KeyType")->as_string());
    for (const auto& a : t.find("AttributeDefinitions")->as_array())
      s.types[a.find("AttributeName")->as_string()] = a.find("AttributeType")->as_string();
    const Value* spec = t.find("StreamSpecification");
    s.stream = spec && spec->find("StreamEnabled") && spec->find("StreamEnabled")->as_bool() &&
               spec->find("StreamViewType")->as_string() == "NEW_IMAGE";
    out[n.as_string()] = s;
  }
  return out;
}

std::set<std::string> queues_on_moto(Client& c, const std::string& prefix) {
  std::set<std::string> out;
  Value list = call(c, "sqs", "AmazonSQS.ListQueues", R"({"QueueNamePrefix":")" + prefix + "\"}");
  if (const Value* urls = list.find("QueueUrls"))
    for (const auto& u : urls->as_array())
      out.insert(u.as_string().substr(u.as_string().rfind('/') + 1));
  return out;
}

testing::RunResult sync(const testing::MotoServer& moto, const testing::SimServer& sim,
                        const std::string& url) {
  std::map<std::string, std::string> env = moto.env();
  env["DM_API_URL"] = sim.url();
  env["CASCADE_STORAGE"] = url;
  return testing::run({CASCADE_BIN, "sync", kPipeline, "--json"}, env);
}

TEST(AwsTemplateAgrees, TablesKeysAndQueuesTheStorageMakesAreTheTemplates) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  std::string dir = testing::temp_dir();
  testing::SimServer sim({"--seed", "5", "--employees-per-branch", "4"});
  testing::RunResult r = sync(*moto, sim, "aws:?warehouse=sqlite:" + dir + "/wh.db&prefix=STACK-");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ASSERT_TRUE(parse_json(r.out).find("completed")->as_bool()) << r.out;

  Declared declared = from_template("STACK");
  Client c(moto->config());
  std::map<std::string, TableShape> made = tables_on_moto(c, "STACK-");
  ASSERT_FALSE(made.empty());
  ASSERT_TRUE(made.count("STACK-cascade_listings"));
  ASSERT_TRUE(declared.tables.count("STACK-cascade_listings"));
  for (const auto& [name, shape] : made) {
    auto it = declared.tables.find(name);
    ASSERT_NE(it, declared.tables.end())
        << "the storage made " << name << " (" << shape_text(shape) << "), the template lacks it";
    EXPECT_EQ(it->second, shape) << name << ": template " << shape_text(it->second)
                                 << " vs storage " << shape_text(shape);
  }
  for (const auto& [name, shape] : declared.tables)
    EXPECT_TRUE(made.count(name)) << "the template declares " << name << ", the storage has none";
  EXPECT_EQ(made.at("STACK-sales").types.at("sale_id"), "N");  // integer ids are numbers

  std::set<std::string> queues = queues_on_moto(c, "STACK-");
  EXPECT_EQ(queues, declared.queues);
  EXPECT_TRUE(queues.count("STACK-sales-dev"));
  EXPECT_TRUE(queues.count("STACK-sales-dev-dlq"));
}

// Makes the tables and queues `declared` names, as CloudFormation would from the template; with
// `keys_as_text` every key attribute is declared S.
void make_stack(Client& c, const Declared& declared, bool keys_as_text) {
  for (const auto& [name, shape] : declared.tables) {
    std::string body = R"({"TableName":")" + name + R"(","BillingMode":"PAY_PER_REQUEST",)";
    if (shape.stream)
      body += R"("StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"},)";
    body += R"("KeySchema":[)";
    for (size_t k = 0; k < shape.key.size(); ++k) {
      size_t sp = shape.key[k].find(' ');
      body += (k ? "," : "") + std::string(R"({"AttributeName":")") + shape.key[k].substr(0, sp) +
              R"(","KeyType":")" + shape.key[k].substr(sp + 1) + "\"}";
    }
    body += R"(],"AttributeDefinitions":[)";
    bool first = true;
    for (const auto& [a, t] : shape.types) {
      body += (first ? "" : ",") + std::string(R"({"AttributeName":")") + a +
              R"(","AttributeType":")" + (keys_as_text ? std::string("S") : t) + "\"}";
      first = false;
    }
    body += "]}";
    call(c, "dynamodb", "DynamoDB_20120810.CreateTable", body);
  }
  std::map<std::string, std::string> arn;
  for (const auto& q : declared.queues)
    if (!declared.dead_letter_of.count(q)) {
      std::string url = call(c, "sqs", "AmazonSQS.CreateQueue", R"({"QueueName":")" + q + "\"}")
                            .find("QueueUrl")
                            ->as_string();
      arn[q] = call(c, "sqs", "AmazonSQS.GetQueueAttributes",
                    R"({"QueueUrl":")" + url + R"(","AttributeNames":["QueueArn"]})")
                   .find("Attributes")
                   ->find("QueueArn")
                   ->as_string();
    }
  for (const auto& [q, dlq] : declared.dead_letter_of) {
    ASSERT_TRUE(arn.count(dlq)) << q;
    std::string policy = R"({"deadLetterTargetArn":")" + arn[dlq] + R"(","maxReceiveCount":)" +
                         std::to_string(declared.max_receive.at(q)) + "}";
    std::string body = R"({"QueueName":")" + q + R"(","Attributes":{"RedrivePolicy":)";
    append_json_string(policy, body);
    body += "}}";
    call(c, "sqs", "AmazonSQS.CreateQueue", body);
  }
}

// A stack holding only what the template declares (made here as CloudFormation would, from the
// parsed template), and functions' storage with `create=false`: the example syncs and equals
// the truth; nothing beyond the declared tables and queues appears.
TEST(AwsTemplateAgrees, AStackMadeFromTheTemplateSyncsWithCreateFalse) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  Declared declared = from_template("DEPLOYED");
  Client c(moto->config());
  make_stack(c, declared, false);
  std::set<std::string> tables_before;
  for (const auto& [n, s] : tables_on_moto(c, "DEPLOYED-")) tables_before.insert(n);
  std::set<std::string> queues_before = queues_on_moto(c, "DEPLOYED-");

  std::string dir = testing::temp_dir();
  const std::string url = "aws:?warehouse=sqlite:" + dir + "/wh.db&create=false&prefix=DEPLOYED-";
  testing::check_sync_equals_truth_and_resync_writes_nothing(url);

  std::set<std::string> tables_after;
  for (const auto& [n, s] : tables_on_moto(c, "DEPLOYED-")) tables_after.insert(n);
  EXPECT_EQ(tables_after, tables_before);
  EXPECT_EQ(queues_on_moto(c, "DEPLOYED-"), queues_before);
}

// A table whose keys were declared S (as a hand-written template does) takes integer ids as their
// text, and the warehouse still gets them as integers, equal to the truth.
TEST(AwsTemplateAgrees, KeysDeclaredAsTextTakeIntegerIdsAsText) {
  CASCADE_REQUIRE_MOTO(moto);
  aws::register_aws_storage();
  Declared declared = from_template("TEXTKEYS");
  Client c(moto->config());
  make_stack(c, declared, true);
  std::string dir = testing::temp_dir();
  const std::string url = "aws:?warehouse=sqlite:" + dir + "/wh.db&create=false&prefix=TEXTKEYS-";
  testing::check_sync_equals_truth_and_resync_writes_nothing(url);
  Value scan =
      call(c, "dynamodb", "DynamoDB_20120810.Scan", R"({"TableName":"TEXTKEYS-sales","Limit":1})");
  ASSERT_EQ(scan.find("Items")->as_array().size(), 1u);
  const Value& item = scan.find("Items")->as_array()[0];
  ASSERT_TRUE(item.find("sale_id")->find("S")) << to_json(item);
  EXPECT_FALSE(number_from_token(item.find("sale_id")->find("S")->as_string()).is_null());
  auto typed =
      testing::query_storage(url, "SELECT typeof(sale_id), typeof(employee_id) FROM sales LIMIT 1");
  EXPECT_EQ(typed.rows.at(0).at(0).as_string(), "integer");
  EXPECT_EQ(typed.rows.at(0).at(1).as_string(), "integer");
}

}  // namespace
}  // namespace cascade
