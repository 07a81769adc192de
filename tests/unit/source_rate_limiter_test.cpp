// RateLimiter and retry policy on a ManualClock: exact token arithmetic, no real time.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "source/rate_limiter.h"
#include "source/retry.h"

namespace cascade {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(SourceRateLimiter, GrantsBurstThenTellsWhenNextTokenIsDue) {
  ManualClock clock;
  RateLimiter limiter(10, 5, clock);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.try_acquire().has_value()) << i;
  auto next = limiter.try_acquire();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, clock.now() + milliseconds(100));
  // Asking again takes nothing and gives the same answer.
  EXPECT_EQ(limiter.try_acquire(), next);
  clock.advance(milliseconds(99));
  EXPECT_TRUE(limiter.try_acquire().has_value());
  clock.advance(milliseconds(1));
  EXPECT_FALSE(limiter.try_acquire().has_value());
  EXPECT_TRUE(limiter.try_acquire().has_value());
}

TEST(SourceRateLimiter, SteadyRateAndBurstCap) {
  ManualClock clock;
  RateLimiter limiter(10, 5, clock);
  while (!limiter.try_acquire()) {
  }
  int granted = 0;
  for (int step = 0; step < 100; ++step) {  // 10 s in 100 ms steps: one token each
    clock.advance(milliseconds(100));
    while (!limiter.try_acquire()) ++granted;
  }
  EXPECT_EQ(granted, 100);
  clock.advance(seconds(60));  // idle for long: only the burst accumulates
  granted = 0;
  while (!limiter.try_acquire()) ++granted;
  EXPECT_EQ(granted, 5);
  EXPECT_DOUBLE_EQ(limiter.per_second(), 10);
}

TEST(SourceRateLimiter, PauseUntilBlocksEveryoneThenRestartsSlowly) {
  ManualClock clock;
  RateLimiter limiter(10, 5, clock);
  TimePoint until = clock.now() + seconds(2);
  limiter.pause_until(until);
  EXPECT_EQ(limiter.try_acquire(), until);
  limiter.pause_until(clock.now() + seconds(1));  // an earlier pause does not shorten it
  clock.advance(milliseconds(1999));
  EXPECT_EQ(limiter.try_acquire(), until);
  clock.advance(milliseconds(1));
  EXPECT_FALSE(limiter.try_acquire().has_value());  // one token at the end of the pause...
  auto next = limiter.try_acquire();                // ...then the steady rate, no burst
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, until + milliseconds(100));
}

TEST(SourceRateLimiter, UnlimitedStillHonoursPause) {
  ManualClock clock;
  RateLimiter limiter(0, 0, clock);
  for (int i = 0; i < 10000; ++i) ASSERT_FALSE(limiter.try_acquire().has_value());
  limiter.pause_until(clock.now() + seconds(1));
  EXPECT_TRUE(limiter.try_acquire().has_value());
  clock.advance(seconds(1));
  EXPECT_FALSE(limiter.try_acquire().has_value());
}

TEST(SourceRateLimiter, ConcurrentAcquirersNeverExceedTheBucket) {
  ManualClock clock;
  RateLimiter limiter(1, 50, clock);
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (!limiter.try_acquire()) ++granted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 50);
}

TEST(SourceRetry, BackoffIsFullJitterWithinCappedExponential) {
  RetryPolicy policy{.attempts = 10, .min = milliseconds(200), .max = seconds(30)};
  for (int attempt = 1; attempt <= 12; ++attempt) {
    int64_t cap = std::min<int64_t>(30000, int64_t{200} << (attempt - 1));
    int64_t highest = 0;
    for (int i = 0; i < 2000; ++i) {
      Duration d = backoff_delay(policy, attempt);
      ASSERT_GE(d.count(), 1);
      ASSERT_LE(d.count(), cap) << "attempt " << attempt;
      highest = std::max(highest, d.count());
    }
    EXPECT_GT(highest, cap / 2) << "jitter should span the range, attempt " << attempt;
  }
  EXPECT_LE(backoff_delay(policy, 1000).count(), 30000);  // no overflow for absurd attempts
  EXPECT_GE(
      backoff_delay(RetryPolicy{.attempts = 2, .min = Duration(0), .max = Duration(0)}, 1).count(),
      1);
}

TEST(SourceRetry, RetryableStatuses) {
  for (int s : {408, 429, 500, 502, 503, 504, 599}) EXPECT_TRUE(is_retryable_status(s)) << s;
  for (int s : {0, 200, 204, 301, 400, 401, 403, 404, 409, 422, 600}) {
    EXPECT_FALSE(is_retryable_status(s)) << s;
  }
}

}  // namespace
}  // namespace cascade
