// The AWS client against moto: JSON-protocol calls, errors carrying the service's code, calls in
// parallel on curl multi, the stop flag, and secrets kept out of every message.
#include "aws/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "support/moto.h"

using cascade::aws::AwsConfig;
using cascade::aws::AwsError;
using cascade::aws::Client;

namespace {

std::string queue_url(Client& c, const std::string& name) {
  std::string body = c.json("sqs", "AmazonSQS.CreateQueue", R"({"QueueName":")" + name + R"("})");
  cascade::Value v = cascade::parse_json(body);
  const cascade::Value* url = v.find("QueueUrl");
  if (!url || !url->is_string()) return "";
  return url->as_string();
}

TEST(AwsClient, JsonRoundTripCreatesAndListsQueues) {
  CASCADE_REQUIRE_MOTO(moto);
  // The configuration as a user's process gets it: from the variables shared_moto set.
  Client c(AwsConfig::from_environment());
  EXPECT_EQ(c.config().endpoint_for("sqs"), moto->endpoint());
  std::string url = queue_url(c, "client-roundtrip");
  EXPECT_NE(url.find("client-roundtrip"), std::string::npos) << url;
  cascade::Value listed = cascade::parse_json(
      c.json("sqs", "AmazonSQS.ListQueues", R"({"QueueNamePrefix":"client-round"})"));
  const cascade::Value* urls = listed.find("QueueUrls");
  ASSERT_TRUE(urls && urls->is_array()) << cascade::to_json(listed);
  ASSERT_EQ(urls->as_array().size(), 1u);
  EXPECT_EQ(urls->as_array()[0].as_string(), url);
}

TEST(AwsClient, ServiceErrorThrowsAwsErrorWithItsCode) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  try {
    c.json("sqs", "AmazonSQS.GetQueueUrl", R"({"QueueName":"client-no-such-queue"})");
    FAIL() << "GetQueueUrl of a missing queue succeeded";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.code, "QueueDoesNotExist");
    EXPECT_EQ(e.http_status, 400);
    EXPECT_FALSE(e.retryable);
    EXPECT_NE(std::string(e.what()).find("AmazonSQS.GetQueueUrl"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

TEST(AwsClient, SecretKeyNeverAppearsInErrors) {
  CASCADE_REQUIRE_MOTO(moto);
  std::vector<std::string> messages;
  {
    AwsConfig cfg = moto->config();
    cfg.credentials.session_token = "session-token-SECRET-77";
    Client c(cfg);
    try {
      c.json("sqs", "AmazonSQS.GetQueueUrl", R"({"QueueName":"client-missing"})");
    } catch (const AwsError& e) {
      messages.push_back(e.what());
    }
    try {
      c.json("sqs", "AmazonSQS.NoSuchAction", "{}");
    } catch (const AwsError& e) {
      messages.push_back(e.what());
    }
    try {
      c.rest("s3", "GET", "/client-no-such-bucket/key");
    } catch (const AwsError& e) {
      EXPECT_EQ(e.code, "NoSuchBucket");
      messages.push_back(e.what());
    }
  }
  {
    // A transport failure: nothing listens on this port.
    AwsConfig cfg = moto->config();
    cfg.endpoint_url = "http://127.0.0.1:1";
    cfg.max_attempts = 2;
    Client c(cfg);
    try {
      c.json("sqs", "AmazonSQS.ListQueues", "{}");
    } catch (const AwsError& e) {
      EXPECT_EQ(e.code, "Transport");
      EXPECT_TRUE(e.retryable);
      messages.push_back(e.what());
    }
  }
  ASSERT_EQ(messages.size(), 4u);
  for (const auto& m : messages) {
    EXPECT_EQ(m.find(cascade::testing::MotoServer::kSecretAccessKey), std::string::npos) << m;
    EXPECT_EQ(m.find("session-token-SECRET-77"), std::string::npos) << m;
  }
}

TEST(AwsClient, JsonManyRunsEveryBodyAndKeepsOrder) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  std::vector<std::string> bodies;
  for (int i = 0; i < 40; ++i) {
    // Every fifth one is malformed: its own error, no effect on the others.
    bodies.push_back(i % 5 == 4 ? R"({"QueueName":"bad name!"})"
                                : R"({"QueueName":"client-many-)" + std::to_string(i) + R"("})");
  }
  auto outcomes = c.json_many("sqs", "AmazonSQS.CreateQueue", bodies, 8);
  ASSERT_EQ(outcomes.size(), bodies.size());
  for (int i = 0; i < 40; ++i) {
    if (i % 5 == 4) {
      ASSERT_FALSE(outcomes[i].ok()) << i;
      EXPECT_FALSE(outcomes[i].error->code.empty());
      EXPECT_EQ(outcomes[i].error->http_status, 400);
    } else {
      ASSERT_TRUE(outcomes[i].ok()) << i << ": " << outcomes[i].error->what();
      EXPECT_NE(outcomes[i].body.find("client-many-" + std::to_string(i) + "\""), std::string::npos)
          << outcomes[i].body;
    }
  }
  cascade::Value listed = cascade::parse_json(
      c.json("sqs", "AmazonSQS.ListQueues", R"({"QueueNamePrefix":"client-many-"})"));
  EXPECT_EQ(listed.find("QueueUrls")->as_array().size(), 32u);
}

TEST(AwsClient, StopFlagEndsRetriesWithinASecond) {
  CASCADE_REQUIRE_MOTO(moto);
  AwsConfig cfg = moto->config();
  cfg.endpoint_url = "http://127.0.0.1:1";  // refused: retried with backoff
  cfg.max_attempts = 100;
  Client c(cfg);
  std::atomic<bool> stop{false};
  c.set_stop_flag(&stop);
  std::thread raiser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  try {
    c.json("sqs", "AmazonSQS.ListQueues", "{}");
    ADD_FAILURE() << "a call to a closed port succeeded";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.code, "Stopped");
  }
  auto elapsed = std::chrono::steady_clock::now() - t0;
  raiser.join();
  EXPECT_GE(elapsed, std::chrono::milliseconds(1400));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2600));
}

}  // namespace
