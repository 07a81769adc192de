// SqsQueue (cascade::Queue on SQS) against moto: batches, receive and delete, visibility, the
// redrive policy moving a message to the DLQ after max_receive_count receives, dead letters with
// their reasons, redrive and purge, stats, and create=false.
#include "aws/sqs_queue.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aws/client.h"
#include "core/json.h"
#include "support/moto.h"

using cascade::Duration;
using cascade::QueueOptions;
using cascade::aws::Client;
using cascade::aws::SqsQueue;
using cascade::aws::SqsQueueOptions;
using namespace std::chrono_literals;

namespace {

// A prefix no other test (or earlier run against the same server) uses.
std::string unique_prefix() {
  static int n = 0;
  return "t" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-";
}

QueueOptions options(int max_receive_count = 3, Duration visibility = 30s) {
  QueueOptions o;
  o.max_receive_count = max_receive_count;
  o.visibility_timeout = visibility;
  o.retention = std::chrono::hours(24);
  return o;
}

std::set<std::string> bodies_of(const std::vector<cascade::ReceivedMessage>& msgs) {
  std::set<std::string> out;
  for (const auto& m : msgs) out.insert(m.body);
  return out;
}

TEST(SqsQueue, CreateSetsVisibilityRetentionAndRedrivePolicy) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("sales", options(7, 120s));
  q.create("sales", options(5, 90s));  // again, other options: replaced
  cascade::Value v = cascade::parse_json(
      c.json("sqs", "AmazonSQS.GetQueueAttributes",
             R"({"QueueUrl":")" + q.url("sales") + R"(","AttributeNames":["All"]})"));
  const cascade::Value& a = *v.find("Attributes");
  EXPECT_EQ(a.find("VisibilityTimeout")->as_string(), "90");
  EXPECT_EQ(a.find("MessageRetentionPeriod")->as_string(), "86400");
  cascade::Value redrive = cascade::parse_json(a.find("RedrivePolicy")->as_string());
  const cascade::Value* max = redrive.find("maxReceiveCount");
  ASSERT_TRUE(max);
  EXPECT_EQ(max->is_string() ? max->as_string() : std::to_string(max->as_int()), "5");
  EXPECT_NE(redrive.find("deadLetterTargetArn")->as_string().find("sales-dlq"), std::string::npos);
  EXPECT_NE(q.url("sales-dlq").find("sales-dlq"), std::string::npos);
}

TEST(SqsQueue, RefusesOptionsSqsCannotHold) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  EXPECT_THROW(q.create("a", options(0)), std::invalid_argument);
  EXPECT_THROW(q.create("a", options(3, std::chrono::hours(13))), std::invalid_argument);
  QueueOptions long_retention = options();
  long_retention.retention = std::chrono::days(30);
  EXPECT_THROW(q.create("a", long_retention), std::invalid_argument);
  EXPECT_THROW(q.create("bad name", options()), std::invalid_argument);
}

TEST(SqsQueue, CreateFalseRefusesAMissingQueueClearly) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  std::string prefix = unique_prefix();
  SqsQueue strict(c, {prefix, false});
  try {
    strict.create("branches", options());
    FAIL() << "create=false created a queue";
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("SQS queue '" + prefix + "branches"), std::string::npos) << m;
    EXPECT_NE(m.find("does not exist"), std::string::npos) << m;
    EXPECT_NE(m.find("create=false"), std::string::npos) << m;
  }
  // Nothing was created by the refusal.
  cascade::Value listed = cascade::parse_json(
      c.json("sqs", "AmazonSQS.ListQueues", R"({"QueueNamePrefix":")" + prefix + R"("})"));
  const cascade::Value* urls = listed.find("QueueUrls");
  EXPECT_TRUE(!urls || urls->as_array().empty());
  // Once they exist, create=false uses them.
  SqsQueue(c, {prefix, true}).create("branches", options());
  EXPECT_NO_THROW(strict.create("branches", options()));
  std::vector<std::string> one = {"{}"};
  EXPECT_EQ(strict.send("branches", one), 1u);
}

TEST(SqsQueue, SendsInBatchesReceivesAndDeletes) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("employees", options());
  std::vector<std::string> bodies;
  for (int i = 0; i < 23; ++i)
    bodies.push_back(R"({"branch_id":)" + std::to_string(i) + R"(,"name":"Scr\"anton \u00e9 é"})");
  auto before = std::chrono::system_clock::now() - 60s;
  EXPECT_EQ(q.send("employees", bodies), 23u);
  cascade::QueueStats s = q.stats("employees");
  EXPECT_EQ(s.depth, 23);
  EXPECT_EQ(s.in_flight, 0);

  auto got = q.receive("employees", 30);
  ASSERT_EQ(got.size(), 23u);
  EXPECT_EQ(bodies_of(got), std::set<std::string>(bodies.begin(), bodies.end()));
  std::set<std::string> ids;
  for (const auto& m : got) {
    EXPECT_EQ(m.receive_count, 1);
    EXPECT_GT(m.sent_at, before);
    ids.insert(m.id);
  }
  EXPECT_EQ(ids.size(), 23u);
  s = q.stats("employees");
  EXPECT_EQ(s.depth, 0);
  EXPECT_EQ(s.in_flight, 23);
  EXPECT_TRUE(q.receive("employees", 10).empty());  // all hidden
  for (const auto& m : got) EXPECT_TRUE(q.remove("employees", m.receipt));
  s = q.stats("employees");
  EXPECT_EQ(s.depth + s.in_flight, 0);
  EXPECT_EQ(s.dlq_depth, 0);
  EXPECT_EQ(s.oldest_age_ms, 0);  // not an SQS attribute (see sqs_queue.h)
}

TEST(SqsQueue, ReceiveStopsAtMax) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("q", options());
  std::vector<std::string> bodies;
  for (int i = 0; i < 15; ++i) bodies.push_back("m" + std::to_string(i));
  q.send("q", bodies);
  EXPECT_EQ(q.receive("q", 4).size(), 4u);
  EXPECT_EQ(q.receive("q", 100).size(), 11u);
  cascade::QueueStats s = q.stats("q");
  EXPECT_EQ(s.in_flight, 15);
}

TEST(SqsQueue, BodiesOverTheLimitAreRefusedBeforeAnythingIsSent) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("big", options());
  std::vector<std::string> bodies = {"small", std::string(SqsQueue::kMaxBody + 1, 'x')};
  try {
    q.send("big", bodies);
    FAIL() << "an oversized body was sent";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("256 KiB"), std::string::npos) << e.what();
  }
  EXPECT_EQ(q.stats("big").depth, 0);
  // Exactly the limit goes (alone in its batch, as two would pass 256 KiB).
  std::vector<std::string> max = {std::string(SqsQueue::kMaxBody, 'y'), "z"};
  EXPECT_EQ(q.send("big", max), 2u);
  auto got = q.receive("big", 10);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(bodies_of(got), std::set<std::string>(max.begin(), max.end()));
}

TEST(SqsQueue, VisibilityHidesAndReleaseShowsAgainWithoutCountingTheReceive) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("v", options(10, 60s));
  std::vector<std::string> one = {"payload"};
  q.send("v", one);
  auto first = q.receive("v", 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(q.receive("v", 1).empty());
  EXPECT_TRUE(q.change_visibility("v", first[0].receipt, Duration::zero(), "HTTP 503"));
  auto second = q.receive("v", 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, first[0].id);
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_TRUE(q.release("v", second[0].receipt, Duration::zero()));
  auto third = q.receive("v", 1, 1s);
  ASSERT_EQ(third.size(), 1u);
  // A copy replaced it (see sqs_queue.h): the released receive is not counted, the failed one
  // is, and the first send time stays.
  EXPECT_EQ(third[0].body, "payload");
  EXPECT_EQ(third[0].receive_count, 2);
  EXPECT_EQ(third[0].sent_at, first[0].sent_at);
  // Its own visibility of 1 s ends: back without a release, counted.
  std::this_thread::sleep_for(1500ms);
  auto fourth = q.receive("v", 1);
  ASSERT_EQ(fourth.size(), 1u);
  EXPECT_EQ(fourth[0].receive_count, 3);
  EXPECT_EQ(q.stats("v").dlq_depth, 0);
  EXPECT_EQ(q.release_in_flight("v"), 0u);
}

// A vendor that turns a message away for hours releases it again and again: never counted, never
// dead-lettered; the failures it had before are still counted, and past max_receive_count the
// message goes to the DLQ with the reason, though SQS's own count restarted with each copy.
TEST(SqsQueue, ReleasesNeverCountAndCarriedFailuresStillDeadLetter) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("r", options(2));
  std::vector<std::string> one = {R"({"employee_id":7})"};
  q.send("r", one);
  for (int i = 0; i < 5; ++i) {  // more releases than max_receive_count
    auto got = q.receive("r", 10);
    ASSERT_EQ(got.size(), 1u) << "release " << i;
    EXPECT_EQ(got[0].receive_count, 1) << "release " << i;
    EXPECT_TRUE(q.release("r", got[0].receipt, Duration::zero()));
  }
  EXPECT_EQ(q.stats("r").dlq_depth, 0);
  // One failure, then a release, then a failure again: three receives that count.
  auto a = q.receive("r", 10);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(q.change_visibility("r", a[0].receipt, Duration::zero(), "HTTP 500"));
  auto b = q.receive("r", 10);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].receive_count, 2);
  EXPECT_TRUE(q.release("r", b[0].receipt, Duration::zero()));
  auto c2 = q.receive("r", 10);
  ASSERT_EQ(c2.size(), 1u);
  EXPECT_EQ(c2[0].receive_count, 2) << "the failure before the release still counts";
  EXPECT_TRUE(q.change_visibility("r", c2[0].receipt, Duration::zero(), "HTTP 500"));
  EXPECT_TRUE(q.receive("r", 10).empty()) << "a third counted receive is past max_receive_count";
  auto dead = q.dead_letters("r", 10);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].body, one[0]);
  EXPECT_NE(dead[0].reason.find("max_receive_count (2)"), std::string::npos) << dead[0].reason;
  EXPECT_EQ(dead[0].receive_count, 3);
}

TEST(SqsQueue, TooManyReceivesMoveAMessageToTheDlqAndRedriveBringsItBack) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  SqsQueue q(c, {unique_prefix(), true});
  q.create("sales", options(2));
  std::vector<std::string> bodies = {R"({"sale_id":"S-1"})", R"({"sale_id":"S-2"})"};
  q.send("sales", bodies);
  // Every receive fails the messages; the third receive finds them gone to the DLQ.
  for (int round = 1; round <= 2; ++round) {
    auto got = q.receive("sales", 10);
    ASSERT_EQ(got.size(), 2u) << "round " << round;
    for (const auto& m : got) {
      EXPECT_EQ(m.receive_count, round);
      EXPECT_TRUE(q.change_visibility("sales", m.receipt, Duration::zero(), "boom"));
    }
  }
  EXPECT_TRUE(q.receive("sales", 10).empty());
  cascade::QueueStats s = q.stats("sales");
  EXPECT_EQ(s.depth + s.in_flight, 0);
  EXPECT_EQ(s.dlq_depth, 2);

  auto dead = q.dead_letters("sales", 10);
  ASSERT_EQ(dead.size(), 2u);
  std::set<std::string> dead_bodies;
  for (const auto& d : dead) {
    dead_bodies.insert(d.body);
    EXPECT_EQ(d.queue, "sales");
    EXPECT_NE(d.reason.find("SQS"), std::string::npos) << d.reason;
    EXPECT_GE(d.receive_count, 2);
  }
  EXPECT_EQ(dead_bodies, std::set<std::string>(bodies.begin(), bodies.end()));
  // Listing leaves them where they were, visible for the next listing.
  EXPECT_EQ(q.dead_letters("sales", 10).size(), 2u);
  EXPECT_EQ(q.stats("sales").dlq_depth, 2);

  // Redrive one by id, then the rest.
  std::vector<std::string> first = {dead[0].id};
  EXPECT_EQ(q.redrive("sales", first), 1u);
  auto back = q.receive("sales", 10);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].body, dead[0].body);
  EXPECT_EQ(back[0].receive_count, 1);  // a new message
  EXPECT_TRUE(q.remove("sales", back[0].receipt));
  auto left = q.dead_letters("sales", 10);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].body, dead[1].body);
  EXPECT_EQ(q.redrive("sales"), 1u);
  s = q.stats("sales");
  EXPECT_EQ(s.depth, 1);
  EXPECT_EQ(s.dlq_depth, 0);
  EXPECT_TRUE(q.dead_letters("sales", 10).empty());
}

TEST(SqsQueue, DeadLetterKeepsTheReasonAndPurgeCounts) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  std::string prefix = unique_prefix();
  SqsQueue q(c, {prefix, true});
  q.create("branches", options());
  std::vector<std::string> bodies = {"b1", "b2", "b3"};
  q.send("branches", bodies);
  auto got = q.receive("branches", 10);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& m : got)
    EXPECT_TRUE(q.dead_letter("branches", m.receipt, "HTTP 404 for " + m.body));
  // A receipt this queue never handed out: its body is unknown, nothing is moved.
  EXPECT_FALSE(q.dead_letter("branches", "not-a-receipt", "x"));
  // Received by someone else (a Lambda SQS event) and adopted: moved like its own.
  std::vector<std::string> b4 = {"b4"};
  q.send("branches", b4);
  auto theirs = q.receive("branches", 10);
  ASSERT_EQ(theirs.size(), 1u);
  SqsQueue lambda(c, {prefix, true});
  EXPECT_FALSE(lambda.dead_letter("branches", theirs[0].receipt, "x"));
  lambda.adopt(theirs[0]);
  EXPECT_TRUE(lambda.dead_letter("branches", theirs[0].receipt, "HTTP 404 for b4"));
  cascade::QueueStats s = q.stats("branches");
  EXPECT_EQ(s.depth + s.in_flight, 0);
  EXPECT_EQ(s.dlq_depth, 4);
  auto dead = q.dead_letters("branches", 10);
  ASSERT_EQ(dead.size(), 4u);
  for (const auto& d : dead) {
    EXPECT_EQ(d.reason, "HTTP 404 for " + d.body);
    EXPECT_EQ(d.receive_count, 1);
    EXPECT_LE(d.sent_at, d.dead_at);
  }
  EXPECT_EQ(q.dead_letters("branches", 2).size(), 2u);
  std::vector<std::string> one = {dead[0].id};
  EXPECT_EQ(q.purge_dead_letters("branches", one), 1u);
  EXPECT_EQ(q.purge_dead_letters("branches"), 3u);
  EXPECT_EQ(q.stats("branches").dlq_depth, 0);
  EXPECT_TRUE(q.receive("branches", 10).empty());
}

}  // namespace
