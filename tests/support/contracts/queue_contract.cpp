// The Queue contract's tests (queue_contract.h): SQS semantics every backend keeps, with time
// moved by hand where the backend lets it.
#include "support/contracts/queue_contract.h"

#include <stdexcept>
#include <utility>

using namespace std::chrono_literals;

namespace cascade::testing {
namespace {

class StoreQueue final : public QueueUnderTest {
 public:
  StoreQueue(std::string url, std::unique_ptr<Clock> clock)
      : url_(std::move(url)), clock_(std::move(clock)), store_(open_store(url_, *clock_)) {}
  Queue& queue() override { return store_->queue(); }
  ManualClock* clock() override { return dynamic_cast<ManualClock*>(clock_.get()); }
  Store* store() override { return store_.get(); }
  void reopen() override {
    store_.reset();
    store_ = open_store(url_, *clock_);
  }

 private:
  std::string url_;
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<Store> store_;
};

}  // namespace

std::unique_ptr<QueueUnderTest> store_queue(std::string url, std::unique_ptr<Clock> clock) {
  return std::make_unique<StoreQueue>(std::move(url), std::move(clock));
}

void QueueContract::SetUp() {
  std::string why;
  under_test_ = GetParam().open(why);
  if (!under_test_) GTEST_SKIP() << why;
  QueueOptions o;
  o.visibility_timeout = 30s;
  o.max_receive_count = 3;
  o.retention = 1h;
  q().create("work", o);
}

TEST_P(QueueContract, VisibilityTimeoutHidesThenReshowsWithHigherCount) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  EXPECT_EQ(send({"a", "b"}), 2u);
  auto got = q().receive("work", 10);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].body, "a");
  EXPECT_EQ(got[1].body, "b");
  EXPECT_EQ(got[0].receive_count, 1);
  EXPECT_EQ(got[0].sent_at, clock().now());
  EXPECT_TRUE(q().receive("work", 10).empty());
  clock().advance(29s);
  EXPECT_TRUE(q().receive("work", 10).empty());
  clock().advance(1s);
  auto again = q().receive("work", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, got[0].id);
  EXPECT_EQ(again[0].receive_count, 2);
  EXPECT_NE(again[0].receipt, got[0].receipt);
}

TEST_P(QueueContract, ExplicitVisibilityOverridesQueueDefault) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"a"});
  ASSERT_EQ(q().receive("work", 1, 5s).size(), 1u);
  clock().advance(5s);
  EXPECT_EQ(q().receive("work", 1).size(), 1u);
}

TEST_P(QueueContract, DeadLettersPastMaxReceiveCountWithLastError) {
  send({"bad"});
  for (int i = 1; i <= 3; ++i) {
    auto m = q().receive("work", 1);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0].receive_count, i);
    EXPECT_TRUE(
        q().change_visibility("work", m[0].receipt, 0s, "HTTP 500 try " + std::to_string(i)));
  }
  EXPECT_TRUE(q().receive("work", 1).empty());  // 4th receive dead-letters instead
  auto dl = q().dead_letters("work", 10);
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0].body, "bad");
  EXPECT_EQ(dl[0].queue, "work");
  EXPECT_EQ(dl[0].receive_count, 3);
  EXPECT_EQ(dl[0].reason, "HTTP 500 try 3");
  EXPECT_EQ(q().stats("work").dlq_depth, 1);
  EXPECT_EQ(q().stats("work").depth, 0);
}

TEST_P(QueueContract, DeadLetterWithoutErrorSaysWhy) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"x"});
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(q().receive("work", 1).size(), 1u);
    clock().advance(30s);
  }
  EXPECT_TRUE(q().receive("work", 1).empty());
  auto dl = q().dead_letters("work", 10);
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0].reason, "max receive count exceeded");
}

TEST_P(QueueContract, ExplicitDeadLetterAndStaleReceipts) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"x"});
  auto first = q().receive("work", 1);
  ASSERT_EQ(first.size(), 1u);
  clock().advance(30s);
  auto second = q().receive("work", 1);
  ASSERT_EQ(second.size(), 1u);
  // The first receipt is stale now for every operation.
  EXPECT_FALSE(q().remove("work", first[0].receipt));
  EXPECT_FALSE(q().change_visibility("work", first[0].receipt, 0s));
  EXPECT_FALSE(q().dead_letter("work", first[0].receipt, "nope"));
  EXPECT_FALSE(q().remove("work", "garbage"));
  EXPECT_FALSE(q().remove("work", ""));
  EXPECT_TRUE(q().dead_letter("work", second[0].receipt, "DataError: missing field id"));
  EXPECT_FALSE(q().remove("work", second[0].receipt));  // gone from the queue
  auto dl = q().dead_letters("work", 10);
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0].reason, "DataError: missing field id");
  EXPECT_EQ(dl[0].id, second[0].id);
  EXPECT_EQ(dl[0].dead_at, clock().now());
}

TEST_P(QueueContract, RemoveDeletesOnce) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"x"});
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(q().remove("work", m[0].receipt));
  EXPECT_FALSE(q().remove("work", m[0].receipt));
  clock().advance(1h);
  EXPECT_TRUE(q().receive("work", 1).empty());
  EXPECT_EQ(q().stats("work").in_flight, 0);
}

TEST_P(QueueContract, ChangeVisibilityZeroMakesVisibleNow) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"x"});
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(q().change_visibility("work", m[0].receipt, 0s));
  auto again = q().receive("work", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].receive_count, 2);
  // A longer timeout hides it for that long.
  EXPECT_TRUE(q().change_visibility("work", again[0].receipt, 2min));
  clock().advance(119s);
  EXPECT_TRUE(q().receive("work", 1).empty());
  clock().advance(1s);
  EXPECT_EQ(q().receive("work", 1).size(), 1u);
}

TEST_P(QueueContract, ReleaseReturnsAMessageWithoutCountingTheReceive) {
  send({"x"});
  // Far more releases than max_receive_count (3): none of them brings the message closer to
  // its dead letter.
  for (int i = 0; i < 10; ++i) {
    auto m = q().receive("work", 1);
    ASSERT_EQ(m.size(), 1u) << "release " << i;
    EXPECT_EQ(m[0].receive_count, 1);
    EXPECT_TRUE(q().release("work", m[0].receipt, 0s));
  }
  EXPECT_EQ(q().stats("work").dlq_depth, 0);
  // A real failure still counts, and a release after it keeps that count.
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(q().change_visibility("work", m[0].receipt, 0s, "HTTP 500"));
  m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].receive_count, 2);
  EXPECT_TRUE(q().release("work", m[0].receipt, 0s));
  m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].receive_count, 2);
}

TEST_P(QueueContract, ReleaseHidesForTheDelayAndRejectsStaleReceipts) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"x"});
  auto first = q().receive("work", 1);
  ASSERT_EQ(first.size(), 1u);
  // Longer than the visibility timeout (30s), within the retention (1h).
  EXPECT_TRUE(q().release("work", first[0].receipt, 45min));
  clock().advance(30s);
  EXPECT_TRUE(q().receive("work", 1).empty());
  EXPECT_EQ(q().stats("work").in_flight, 1);
  clock().advance(44min + 30s);
  auto second = q().receive("work", 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, first[0].id);
  EXPECT_EQ(second[0].receive_count, 1);
  EXPECT_FALSE(q().release("work", "garbage", 0s));
  // The first receipt belongs to a receive that was undone, then superseded.
  EXPECT_FALSE(q().release("work", first[0].receipt, 0s));
  EXPECT_TRUE(q().remove("work", second[0].receipt));
  EXPECT_FALSE(q().release("work", second[0].receipt, 0s));  // gone
}

TEST_P(QueueContract, AReleasedMessageCoalescesWithAnIdenticalWaitingOne) {
  send({"same"});
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(send({"same"}, 1min), 1u);  // new work while the first is held
  EXPECT_TRUE(q().release("work", m[0].receipt, 0s));
  QueueStats s = q().stats("work");
  EXPECT_EQ(s.depth + s.in_flight, 1) << "one message does that work";
  // The survivor is visible as early as the released one would have been.
  auto again = q().receive("work", 10);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].body, "same");
  EXPECT_EQ(again[0].receive_count, 1);
  // Released back to zero receives, it absorbs a later identical send like any waiting message.
  EXPECT_TRUE(q().release("work", again[0].receipt, 0s));
  EXPECT_EQ(send({"same"}), 0u);
  EXPECT_EQ(q().stats("work").depth, 1);
}

TEST_P(QueueContract, DelayedSendIsInFlightUntilDue) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  EXPECT_EQ(send({"later"}, 10s), 1u);
  EXPECT_TRUE(q().receive("work", 1).empty());
  EXPECT_EQ(q().stats("work").in_flight, 1);
  clock().advance(10s);
  EXPECT_EQ(q().receive("work", 1).size(), 1u);
}

TEST_P(QueueContract, RetentionDeletesOldMessages) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"old"});
  clock().advance(30min);
  send({"young"});
  clock().advance(31min);
  auto m = q().receive("work", 10);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].body, "young");
  EXPECT_EQ(q().stats("work").depth + q().stats("work").in_flight, 1);
}

TEST_P(QueueContract, CoalescesIdenticalPendingBodiesOnly) {
  EXPECT_EQ(send({"{\"branch_id\":1}", "{\"branch_id\":1}", "{\"branch_id\":2}"}), 2u);
  EXPECT_EQ(send({"{\"branch_id\":1}"}), 0u);
  EXPECT_EQ(q().stats("work").depth, 2);
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].body, "{\"branch_id\":1}");
  // Once received, a new identical body is new work again.
  EXPECT_EQ(send({"{\"branch_id\":1}"}), 1u);
  EXPECT_EQ(send({"{\"branch_id\":1}"}), 0u);
  EXPECT_EQ(q().stats("work").depth, 2);
  EXPECT_EQ(q().stats("work").in_flight, 1);
}

TEST_P(QueueContract, CoalescingIsPerQueue) {
  q().create("other", QueueOptions{});
  EXPECT_EQ(send({"same"}), 1u);
  std::vector<std::string> b{"same"};
  EXPECT_EQ(q().send("other", b), 1u);
}

TEST_P(QueueContract, RedriveAllAndByIdResetReceiveCount) {
  send({"a", "b", "c"});
  auto m = q().receive("work", 3);
  ASSERT_EQ(m.size(), 3u);
  for (auto& r : m) ASSERT_TRUE(q().dead_letter("work", r.receipt, "boom"));
  EXPECT_EQ(q().stats("work").dlq_depth, 3);
  std::vector<std::string> one{m[1].id, "999999", "not-an-id"};
  EXPECT_EQ(q().redrive("work", one), 1u);
  auto back = q().receive("work", 10);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].body, "b");
  EXPECT_EQ(back[0].receive_count, 1);
  EXPECT_EQ(q().redrive("work"), 2u);
  EXPECT_EQ(q().stats("work").dlq_depth, 0);
  auto rest = q().receive("work", 10);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].receive_count, 1);
  EXPECT_EQ(rest[1].receive_count, 1);
}

TEST_P(QueueContract, DeadLetterIdIsNeverReusedBySend) {
  send({"a"});
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  ASSERT_TRUE(q().dead_letter("work", m[0].receipt, "x"));  // the newest row leaves the table
  send({"b"});
  auto b = q().receive("work", 1);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NE(b[0].id, m[0].id);
  ASSERT_TRUE(q().change_visibility("work", b[0].receipt, 0s));
  EXPECT_EQ(q().redrive("work"), 1u);
  EXPECT_EQ(q().receive("work", 10).size(), 2u);
}

TEST_P(QueueContract, PurgeDeadLetters) {
  send({"a", "b", "c"});
  auto m = q().receive("work", 3);
  for (auto& r : m) ASSERT_TRUE(q().dead_letter("work", r.receipt, "boom"));
  std::vector<std::string> one{m[0].id};
  EXPECT_EQ(q().purge_dead_letters("work", one), 1u);
  EXPECT_EQ(q().dead_letters("work", 10).size(), 2u);
  EXPECT_EQ(q().purge_dead_letters("work"), 2u);
  EXPECT_EQ(q().stats("work").dlq_depth, 0);
  EXPECT_EQ(q().redrive("work"), 0u);
}

TEST_P(QueueContract, ReleaseInFlightKeepsCounts) {
  send({"a", "b"});
  send({"delayed"}, 1h);
  ASSERT_EQ(q().receive("work", 10).size(), 2u);
  EXPECT_EQ(q().release_in_flight("work"), 2u);  // the delayed send keeps its delay
  auto m = q().receive("work", 10);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].receive_count, 2);
}

TEST_P(QueueContract, StatsCountDepthInFlightAgeAndDlq) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"a", "b", "c"});
  clock().advance(5s);
  send({"d"});
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  ASSERT_TRUE(q().dead_letter("work", m[0].receipt, "x"));
  ASSERT_EQ(q().receive("work", 1).size(), 1u);
  clock().advance(2s);
  QueueStats s = q().stats("work");
  EXPECT_EQ(s.depth, 2);
  EXPECT_EQ(s.in_flight, 1);
  EXPECT_EQ(s.oldest_age_ms, 7000);
  EXPECT_EQ(s.dlq_depth, 1);
}

TEST_P(QueueContract, UnknownQueueThrowsNamingIt) {
  std::vector<std::string> b{"x"};
  try {
    q().send("nope", b);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos);
  }
  EXPECT_THROW(q().receive("nope", 1), std::runtime_error);
  EXPECT_THROW(q().stats("nope"), std::runtime_error);
}

TEST_P(QueueContract, CreateReplacesOptions) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  QueueOptions o;
  o.visibility_timeout = 1s;
  o.max_receive_count = 1;
  q().create("work", o);
  send({"x"});
  ASSERT_EQ(q().receive("work", 1).size(), 1u);
  clock().advance(1s);
  EXPECT_TRUE(q().receive("work", 1).empty());
  EXPECT_EQ(q().stats("work").dlq_depth, 1);
}

TEST_P(QueueContract, BodiesKeepEveryByteAndLargeOnesCoalesce) {
  // Quotes, backslashes, braces and commas are array-literal syntax; 100 kB is far beyond
  // what a btree entry can hold, so coalescing must not index the body itself.
  std::string odd = "{\"a\\\\\":\"x,y}\",\"z\":\"\xc3\xa9\xe2\x82\xac\"} \\N NULL";
  std::string big(100'000, 'x');
  big += "end";
  EXPECT_EQ(send({odd, big, big, "", odd}), 3u);
  EXPECT_EQ(send({big}), 0u);
  auto m = q().receive("work", 10);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].body, odd);
  EXPECT_EQ(m[1].body, big);
  EXPECT_EQ(m[2].body, "");
}

TEST_P(QueueContract, ReceivesOldestFirstAcrossDelays) {
  CASCADE_NEEDS_MANUAL_CLOCK();
  send({"late"}, 5s);
  clock().advance(1s);
  send({"early1", "early2"});
  clock().advance(10s);
  auto m = q().receive("work", 10);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].body, "early1");
  EXPECT_EQ(m[1].body, "early2");
  EXPECT_EQ(m[2].body, "late");
}

TEST_P(QueueContract, MessagesReceiptsAndOptionsSurviveReopening) {
  send({"a", "b"});
  auto m = q().receive("work", 1);
  ASSERT_EQ(m.size(), 1u);
  under_test_->reopen();
  EXPECT_TRUE(q().remove("work", m[0].receipt));  // receipts and options are durable too
  auto rest = q().receive("work", 10);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].body, "b");
}

}  // namespace cascade::testing
