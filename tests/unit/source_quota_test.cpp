#include <gtest/gtest.h>

#include "source/quota.h"
#include "source/rate_limiter.h"

using namespace cascade;
using namespace std::chrono_literals;

TEST(SourceQuota, CountsWithinAWindowThenReopensAtItsEnd) {
  ManualClock clock(from_millis(1'000'000'000'000));  // a window boundary for 1s..1d
  QuotaLedger q(3, 1000ms, clock);
  EXPECT_FALSE(q.try_take(0));
  EXPECT_FALSE(q.try_take(0));
  EXPECT_FALSE(q.try_take(1));
  auto blocked = q.try_take(0);
  ASSERT_TRUE(blocked);
  EXPECT_EQ(to_millis(*blocked), 1'000'000'001'000);
  EXPECT_EQ(q.used(), 3);
  clock.advance(999ms);
  EXPECT_TRUE(q.try_take(0));
  clock.advance(1ms);
  EXPECT_FALSE(q.try_take(0));
  EXPECT_EQ(q.used(), 1);
}

TEST(SourceQuota, ReservedShareKeepsRoomForChildren) {
  ManualClock clock(from_millis(1'000'000'000'000));
  // 10 per window, 40% kept for class 2 (the leaf stage).
  QuotaLedger q(10, std::chrono::hours(24), clock, {0.0, 0.0, 0.4});
  int parent = 0;
  while (!q.try_take(0)) ++parent;
  EXPECT_EQ(parent, 6);  // the parent stops at 6, 4 stay reserved
  int child = 0;
  while (!q.try_take(2)) ++child;
  EXPECT_EQ(child, 4);
  EXPECT_TRUE(q.check(1));
}

TEST(SourceQuota, SurvivesARestartWithinTheWindowOnly) {
  ManualClock clock(from_millis(1'000'000'000'000));
  QuotaLedger a(5, 60'000ms, clock, {0.2});
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(a.try_take(0));
  std::string saved = a.serialize();
  QuotaLedger b(5, 60'000ms, clock, {0.2});
  b.restore(saved);
  EXPECT_EQ(b.used(), 4);
  EXPECT_FALSE(b.try_take(1));  // class 0 has used its reserve: the last one is anyone's
  EXPECT_TRUE(b.try_take(0));   // and the window is spent
  clock.advance(60'000ms);
  QuotaLedger c(5, 60'000ms, clock, {0.2});
  c.restore(saved);  // that window is over
  EXPECT_EQ(c.used(), 0);
  c.restore("garbage");
  EXPECT_EQ(c.used(), 0);
}

TEST(SourceQuota, RefusesImpossibleSettings) {
  ManualClock clock;
  EXPECT_THROW(QuotaLedger(0, 1000ms, clock), std::invalid_argument);
  EXPECT_THROW(QuotaLedger(5, 0ms, clock), std::invalid_argument);
  EXPECT_THROW(QuotaLedger(5, 1000ms, clock, {0.6, 0.5}), std::invalid_argument);
}

TEST(SourceRateLimiter, ThrottlesHalveTheRateAndQuietTimeRestoresIt) {
  ManualClock clock;
  RateLimiter r(40, 1, clock);
  r.on_throttled();
  EXPECT_DOUBLE_EQ(r.current_rate(), 20);
  r.on_throttled();
  EXPECT_DOUBLE_EQ(r.current_rate(), 10);
  for (int i = 0; i < 10; ++i) r.on_throttled();
  EXPECT_DOUBLE_EQ(r.current_rate(), 2);  // floor: 1/20 of the configured rate
  // Paced at the adapted rate: after the one token, the next is 500 ms away at 2/s.
  ASSERT_FALSE(r.try_acquire());
  auto next = r.try_acquire();
  ASSERT_TRUE(next);
  EXPECT_EQ((*next - clock.now()).count(), 500);
  for (int i = 0; i < 20; ++i) {
    clock.advance(1000ms);
    r.on_success();
  }
  EXPECT_DOUBLE_EQ(r.current_rate(), 40);
}

TEST(SourceQuota, EveryWindowMustAllowARequest) {
  ManualClock clock(from_millis(1'000'000'000'000));  // a boundary of 1 s and of 1 day
  QuotaLedger q(3, 1000ms, clock);                    // 3 a second
  q.add_window(5, std::chrono::hours(24));            // and 5 a day
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(q.try_take(0));
  auto per_second = q.try_take(0);
  ASSERT_TRUE(per_second);
  EXPECT_EQ(to_millis(*per_second), 1'000'000'001'000);
  clock.advance(1000ms);
  ASSERT_FALSE(q.try_take(0));
  ASSERT_FALSE(q.try_take(0));
  auto per_day = q.try_take(0);  // the second window is spent: the later reopening wins
  ASSERT_TRUE(per_day);
  EXPECT_EQ(to_millis(*per_day), 1'000'000'000'000 + 86'400'000 - (1'000'000'000'000 % 86'400'000));
  std::string saved = q.serialize();
  QuotaLedger r(3, 1000ms, clock);
  r.add_window(5, std::chrono::hours(24));
  r.restore(saved);
  EXPECT_TRUE(r.try_take(0)) << "the day's budget survives a restart";
}

TEST(SourceQuota, EachWindowReportsItsOwnUseAndReset) {
  ManualClock clock(from_millis(1'000'000'000'000));
  QuotaLedger q(3, 1000ms, clock);
  q.add_window(5, std::chrono::hours(24));
  for (int i = 0; i < 2; ++i) ASSERT_FALSE(q.try_take(0));
  clock.advance(1000ms);
  ASSERT_FALSE(q.try_take(0));
  auto w = q.windows();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].requests, 3);
  EXPECT_EQ(w[0].used, 1) << "a new second";
  EXPECT_EQ(to_millis(w[0].ends), 1'000'000'002'000);
  EXPECT_EQ(w[1].requests, 5);
  EXPECT_EQ(w[1].used, 3) << "the day counts all three";
  EXPECT_EQ(w[1].per, std::chrono::hours(24));
}
