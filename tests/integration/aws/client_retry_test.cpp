// The AWS client's requests and retries, seen by a local HTTP server standing in for AWS: what
// goes on the wire (target, SigV4 authorization, session token, never the secret), throttling
// and 5xx retried until they pass or the tries run out, in json() and per item in json_many().
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "aws/client.h"
#include "support/cascade.h"

using cascade::aws::AwsConfig;
using cascade::aws::AwsError;
using cascade::aws::Client;
using cascade::testing::CannedServer;

namespace {

constexpr const char* kSecret = "wire-secret-NEVER-SENT-4d2e";

AwsConfig config_for(const CannedServer& s) {
  AwsConfig c;
  c.region = "eu-west-3";
  c.credentials = {"AKIAWIRETEST", kSecret, "wire-session-token"};
  c.endpoint_url = s.url();
  c.max_attempts = 4;
  return c;
}

struct Seen {
  std::mutex mu;
  std::vector<cascade::sim::HttpRequest> requests;
  void add(const cascade::sim::HttpRequest& r) {
    std::lock_guard lock(mu);
    requests.push_back(r);
  }
};

TEST(AwsClientWire, SignsWithSigV4AndSendsTheTokenNeverTheSecret) {
  Seen seen;
  CannedServer server([&](const cascade::sim::HttpRequest& req, cascade::sim::HttpResponse& res) {
    seen.add(req);
    res.content_type = "application/x-amz-json-1.0";
    res.body = R"({"ok":true})";
  });
  Client c(config_for(server));
  EXPECT_EQ(c.json("dynamodb", "DynamoDB_20120810.DescribeTable", R"({"TableName":"t"})"),
            R"({"ok":true})");
  c.json("streams.dynamodb", "DynamoDBStreams_20120810.ListStreams", "{}");
  ASSERT_EQ(seen.requests.size(), 2u);
  const auto& r = seen.requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(r.body, R"({"TableName":"t"})");
  ASSERT_TRUE(r.header("x-amz-target"));
  EXPECT_EQ(*r.header("x-amz-target"), "DynamoDB_20120810.DescribeTable");
  EXPECT_EQ(*r.header("content-type"), "application/x-amz-json-1.0");
  ASSERT_TRUE(r.header("authorization"));
  const std::string& auth = *r.header("authorization");
  EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AKIAWIRETEST/", 0), 0u) << auth;
  EXPECT_NE(auth.find("/eu-west-3/dynamodb/aws4_request"), std::string::npos) << auth;
  EXPECT_NE(auth.find("x-amz-target"), std::string::npos) << auth;  // signed
  EXPECT_TRUE(r.header("x-amz-date"));
  ASSERT_TRUE(r.header("x-amz-security-token"));
  EXPECT_EQ(*r.header("x-amz-security-token"), "wire-session-token");
  // Streams sign as dynamodb.
  EXPECT_NE(seen.requests[1].header("authorization")->find("/eu-west-3/dynamodb/aws4_request"),
            std::string::npos);
  for (const auto& req : seen.requests) {
    EXPECT_EQ(req.body.find(kSecret), std::string::npos);
    for (const auto& [name, value] : req.headers)
      EXPECT_EQ(value.find(kSecret), std::string::npos) << name;
  }
}

TEST(AwsClientWire, ThrottlingAndServerErrorsAreRetried) {
  std::atomic<int> calls{0};
  CannedServer server([&](const cascade::sim::HttpRequest&, cascade::sim::HttpResponse& res) {
    int n = ++calls;
    res.content_type = "application/x-amz-json-1.0";
    if (n == 1) {
      res.status = 400;
      res.body =
          R"({"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"})";
    } else if (n == 2) {
      res.status = 500;
      res.body = R"({"__type":"InternalServerError"})";
    } else {
      res.body = R"({"Item":{}})";
    }
  });
  Client c(config_for(server));
  EXPECT_EQ(c.json("dynamodb", "DynamoDB_20120810.GetItem", "{}"), R"({"Item":{}})");
  EXPECT_EQ(calls.load(), 3);
}

TEST(AwsClientWire, RetriesEndAfterMaxAttemptsWithARetryableError) {
  std::atomic<int> calls{0};
  CannedServer server([&](const cascade::sim::HttpRequest&, cascade::sim::HttpResponse& res) {
    ++calls;
    res.status = 400;
    res.content_type = "application/x-amz-json-1.0";
    res.body = R"({"__type":"ProvisionedThroughputExceededException","message":"too fast"})";
  });
  Client c(config_for(server));
  try {
    c.json("dynamodb", "DynamoDB_20120810.PutItem", "{}");
    FAIL() << "a request throttled every time succeeded";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.code, "ProvisionedThroughputExceededException");
    EXPECT_TRUE(e.retryable);
    EXPECT_EQ(e.http_status, 400);
  }
  EXPECT_EQ(calls.load(), 4);
  // Not retryable: once.
  calls = 0;
  CannedServer refusing([&](const cascade::sim::HttpRequest&, cascade::sim::HttpResponse& res) {
    ++calls;
    res.status = 400;
    res.content_type = "application/x-amz-json-1.0";
    res.body =
        R"({"__type":"ConditionalCheckFailedException","message":"The conditional request failed"})";
  });
  Client c2(config_for(refusing));
  try {
    c2.json("dynamodb", "DynamoDB_20120810.PutItem", "{}");
    FAIL();
  } catch (const AwsError& e) {
    EXPECT_EQ(e.code, "ConditionalCheckFailedException");
    EXPECT_FALSE(e.retryable);
  }
  EXPECT_EQ(calls.load(), 1);
}

TEST(AwsClientWire, JsonManyRetriesOnlyTheThrottledItems) {
  std::mutex mu;
  std::map<std::string, int> tries;  // by body
  CannedServer server([&](const cascade::sim::HttpRequest& req, cascade::sim::HttpResponse& res) {
    int n;
    {
      std::lock_guard lock(mu);
      n = ++tries[req.body];
    }
    res.content_type = "application/x-amz-json-1.0";
    bool odd = req.body.find("odd") != std::string::npos;
    if (odd && n <= 2) {
      res.status = 429;
      res.body = R"({"__type":"TooManyRequestsException"})";
    } else if (req.body.find("refuse") != std::string::npos) {
      res.status = 400;
      res.body = R"({"__type":"ConditionalCheckFailedException","message":"no"})";
    } else {
      res.body = "{\"echo\":" + req.body + "}";
    }
  });
  Client c(config_for(server));
  std::vector<std::string> bodies;
  for (int i = 0; i < 30; ++i)
    bodies.push_back("{\"i\":" + std::to_string(i) + ",\"kind\":\"" +
                     (i == 7  ? "refuse"
                      : i % 2 ? "odd"
                              : "even") +
                     "\"}");
  auto out = c.json_many("dynamodb", "DynamoDB_20120810.PutItem", bodies, 5);
  ASSERT_EQ(out.size(), 30u);
  for (int i = 0; i < 30; ++i) {
    if (i == 7) {
      ASSERT_FALSE(out[i].ok());
      EXPECT_EQ(out[i].error->code, "ConditionalCheckFailedException");
      continue;
    }
    ASSERT_TRUE(out[i].ok()) << i << ": " << out[i].error->what();
    EXPECT_EQ(out[i].body, "{\"echo\":" + bodies[i] + "}");
  }
  std::lock_guard lock(mu);
  for (int i = 0; i < 30; ++i) {
    if (i == 7) continue;
    EXPECT_EQ(tries[bodies[i]], i % 2 ? 3 : 1) << i;
  }
}

}  // namespace
