// The vendor's rate-limit headers (both families, delta-seconds and Unix-time resets), the window
// they imply, and the limiter pacing to the learnt limit, kept across runs through its saved form.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "source/rate_limit_headers.h"
#include "source/rate_limiter.h"

namespace cascade {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Headers = std::vector<std::pair<std::string, std::string>>;

const TimePoint kNow = TimePoint(Duration(1'700'000'000'250));  // a quarter past a second

TEST(SourceRateLimitHeaders, IetfFamilyWithDeltaSecondsReset) {
  RateLimitInfo i = parse_rate_limit_headers(
      {{"ratelimit-limit", "20"}, {"ratelimit-remaining", "7"}, {"ratelimit-reset", "1"}}, kNow);
  ASSERT_TRUE(i.limit && i.remaining && i.reset);
  EXPECT_EQ(*i.limit, 20);
  EXPECT_EQ(*i.remaining, 7);
  EXPECT_EQ(*i.reset, seconds(1));
  EXPECT_TRUE(i.reset_whole_seconds);
  EXPECT_FALSE(i.window);
}

TEST(SourceRateLimitHeaders, XFamilyWithUnixTimeReset) {
  // 1700000002 is 1.75 s after kNow.
  RateLimitInfo i = parse_rate_limit_headers({{"x-ratelimit-limit", "5000"},
                                              {"x-ratelimit-remaining", "0"},
                                              {"x-ratelimit-reset", "1700000002"}},
                                             kNow);
  ASSERT_TRUE(i.limit && i.remaining && i.reset);
  EXPECT_EQ(*i.limit, 5000);
  EXPECT_EQ(*i.remaining, 0);
  EXPECT_EQ(*i.reset, milliseconds(1750));
  EXPECT_TRUE(i.reset_whole_seconds);
}

TEST(SourceRateLimitHeaders, XFamilyWithDeltaSecondsAndAFractionalReset) {
  RateLimitInfo i = parse_rate_limit_headers(
      {{"x-ratelimit-limit", "100"}, {"x-ratelimit-remaining", "3"}, {"x-ratelimit-reset", "0.5"}},
      kNow);
  ASSERT_TRUE(i.reset);
  EXPECT_EQ(*i.reset, milliseconds(500));
  EXPECT_FALSE(i.reset_whole_seconds);
}

TEST(SourceRateLimitHeaders, IetfNamesWinAndPolicyGivesTheWindow) {
  RateLimitInfo i = parse_rate_limit_headers({{"x-ratelimit-limit", "999"},
                                              {"ratelimit-limit", "100"},
                                              {"ratelimit-policy", "100;w=60, 5000;w=3600"}},
                                             kNow);
  ASSERT_TRUE(i.limit && i.window);
  EXPECT_EQ(*i.limit, 100);
  EXPECT_EQ(*i.window, seconds(60));
  // Early drafts put the policy into RateLimit-Limit itself.
  RateLimitInfo j = parse_rate_limit_headers({{"ratelimit-limit", "10, 10;w=2"}}, kNow);
  ASSERT_TRUE(j.limit && j.window);
  EXPECT_EQ(*j.limit, 10);
  EXPECT_EQ(*j.window, seconds(2));
}

TEST(SourceRateLimitHeaders, GarbageIsAbsentNotAnError) {
  RateLimitInfo i = parse_rate_limit_headers({{"ratelimit-limit", "lots"},
                                              {"ratelimit-remaining", "-3"},
                                              {"ratelimit-reset", ""},
                                              {"ratelimit-policy", "many;w=abc"}},
                                             kNow);
  EXPECT_FALSE(i.limit);
  EXPECT_FALSE(i.remaining);
  EXPECT_FALSE(i.reset);
  EXPECT_FALSE(i.window);
  EXPECT_FALSE(parse_rate_limit_headers({}, kNow).limit);
}

TEST(SourceRateLimitHeaders, WindowEstimateIsTheLongestResetSeen) {
  VendorWindowEstimate est;
  EXPECT_FALSE(est.observe(parse_rate_limit_headers({}, kNow)));
  // A Unix-time reset 1.75 s away in a 1 s window: floored, the estimate stays 1 s.
  auto w = est.observe(parse_rate_limit_headers(
      {{"x-ratelimit-limit", "20"}, {"x-ratelimit-reset", "1700000002"}}, kNow));
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, seconds(1));
  // A long window seen mid-way, then from its start.
  VendorWindowEstimate minute;
  EXPECT_EQ(*minute.observe(parse_rate_limit_headers(
                {{"ratelimit-limit", "600"}, {"ratelimit-reset", "25"}}, kNow)),
            seconds(25));
  EXPECT_EQ(*minute.observe(parse_rate_limit_headers(
                {{"ratelimit-limit", "600"}, {"ratelimit-reset", "60"}}, kNow)),
            seconds(60));
  EXPECT_EQ(*minute.observe(parse_rate_limit_headers(
                {{"ratelimit-limit", "600"}, {"ratelimit-reset", "3"}}, kNow)),
            seconds(60));
}

TEST(SourceRateLimitHeaders, LimiterPacesJustUnderTheVendorWithoutBursts) {
  ManualClock clock;
  RateLimiter limiter(50, 50, clock);  // the pipeline allows 50/s with a burst of 50
  limiter.set_vendor_limit(20, seconds(1));
  EXPECT_DOUBLE_EQ(limiter.ceiling(), 20 * RateLimiter::kVendorShare);
  // Count grants over 10 s in 1 ms steps: never more than 20 in any 1 s span.
  std::vector<int64_t> granted;
  for (int ms = 0; ms < 10'000; ++ms) {
    while (!limiter.try_acquire()) granted.push_back(ms);
    clock.advance(milliseconds(1));
  }
  ASSERT_GE(granted.size(), 190u);
  EXPECT_LE(granted.size(), 200u);
  for (size_t i = 20; i < granted.size(); ++i)
    EXPECT_GE(granted[i] - granted[i - 20], 1000) << "21 requests within a second at " << i;
}

TEST(SourceRateLimitHeaders, ABurstSentBeforeTheLimitWasKnownCountsInItsWindow) {
  ManualClock clock;
  TimePoint t0 = clock.now();
  RateLimiter limiter(50, 50, clock);
  for (int i = 0; i < 13; ++i) ASSERT_FALSE(limiter.try_acquire().has_value());
  limiter.set_vendor_limit(20, seconds(1));
  std::vector<TimePoint> granted(13, t0);
  for (int ms = 0; ms < 3000; ++ms) {
    while (!limiter.try_acquire()) granted.push_back(clock.now());
    clock.advance(milliseconds(1));
  }
  // No second (the vendor's window plus its margin) ever holds more than 20 of them.
  for (size_t i = 20; i < granted.size(); ++i)
    EXPECT_GE(granted[i] - granted[i - 20], milliseconds(1000)) << i;
  // And the pause is no longer than that: the 21st goes as soon as the burst leaves the window.
  ASSERT_GT(granted.size(), 20u);
  EXPECT_LE(granted[20] - t0, milliseconds(1100));
}

TEST(SourceRateLimitHeaders, AVendorLimitAboveTheConfiguredRateChangesNothing) {
  ManualClock clock;
  RateLimiter limiter(10, 10, clock);
  limiter.set_vendor_limit(1000, seconds(1));
  EXPECT_DOUBLE_EQ(limiter.ceiling(), 10);
  // Unlimited by the pipeline: the vendor's alone.
  RateLimiter unlimited(0, 1, clock);
  EXPECT_FALSE(unlimited.try_acquire().has_value());
  unlimited.set_vendor_limit(4, seconds(2));
  EXPECT_DOUBLE_EQ(unlimited.ceiling(), 2 * RateLimiter::kVendorShare);
  EXPECT_FALSE(unlimited.try_acquire().has_value());
  EXPECT_TRUE(unlimited.try_acquire().has_value());
}

TEST(SourceRateLimitHeaders, ALongWindowIsNotSpreadOutButNeverOverrun) {
  ManualClock clock;
  RateLimiter limiter(0, 1, clock);  // the pipeline sets no rate of its own
  limiter.set_vendor_limit(100, std::chrono::hours(1));
  EXPECT_DOUBLE_EQ(limiter.ceiling(), 0);
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(limiter.try_acquire().has_value()) << i;
  auto next = limiter.try_acquire();
  ASSERT_TRUE(next.has_value()) << "the 101st request within the hour";
  EXPECT_GE(*next - clock.now(), std::chrono::hours(1));
  clock.advance(std::chrono::hours(1) + std::chrono::minutes(2));
  EXPECT_FALSE(limiter.try_acquire().has_value());
}

TEST(SourceRateLimitHeaders, AThrottleUnderAKnownLimitTrimsTheRateAndItRecovers) {
  ManualClock clock;
  RateLimiter limiter(50, 50, clock);
  limiter.set_vendor_limit(20, seconds(1));
  double top = limiter.ceiling();
  limiter.on_throttled();
  EXPECT_NEAR(limiter.current_rate(), top * 0.9, 1e-9);
  clock.advance(seconds(2));
  limiter.on_success();
  EXPECT_DOUBLE_EQ(limiter.current_rate(), top);
}

TEST(SourceRateLimitHeaders, TheLearntLimitSurvivesARestart) {
  ManualClock clock;
  std::string saved;
  {
    RateLimiter run1(50, 50, clock);
    EXPECT_EQ(run1.serialize_vendor(), "");
    run1.set_vendor_limit(20, seconds(1));
    saved = run1.serialize_vendor();
  }
  RateLimiter run2(50, 50, clock);
  run2.restore_vendor(saved);
  ASSERT_TRUE(run2.vendor_limit());
  EXPECT_EQ(run2.vendor_limit()->limit, 20);
  EXPECT_EQ(run2.vendor_limit()->window, seconds(1));
  // From its first second: the bucket holds no burst of 50, only what the vendor allows.
  int first_second = 0;
  for (int ms = 0; ms < 1000; ++ms) {
    while (!run2.try_acquire()) ++first_second;
    clock.advance(milliseconds(1));
  }
  EXPECT_LE(first_second, 20);
  EXPECT_GE(first_second, 19);
  // A limit this process learnt is fresher than a saved one; damaged text is ignored.
  run2.restore_vendor("5 1000");
  EXPECT_EQ(run2.vendor_limit()->limit, 20);
  for (const char* bad : {"", "x", "20", "-1 1000", "20 0", "nan 1000", "20 99999999999"}) {
    RateLimiter fresh(50, 50, clock);
    fresh.restore_vendor(bad);
    EXPECT_FALSE(fresh.vendor_limit()) << bad;
  }
}

}  // namespace
}  // namespace cascade
