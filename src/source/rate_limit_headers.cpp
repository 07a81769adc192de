#include "source/rate_limit_headers.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace cascade {
namespace {

const std::string* find(const std::vector<std::pair<std::string, std::string>>& headers,
                        std::string_view name) {
  for (const auto& [n, v] : headers)
    if (n == name) return &v;
  return nullptr;
}

// The leading non-negative number of a value ("20", "20, 100;w=60", " 4.5"); nullopt otherwise.
std::optional<double> leading_number(const std::string& v, bool* whole = nullptr) {
  const char* p = v.c_str();
  while (*p == ' ' || *p == '\t') ++p;
  if (!std::isdigit(static_cast<unsigned char>(*p))) return std::nullopt;
  char* end = nullptr;
  double x = std::strtod(p, &end);
  if (end == p || !std::isfinite(x) || x < 0) return std::nullopt;
  if (whole)
    *whole = std::string_view(p, static_cast<size_t>(end - p)).find('.') == std::string_view::npos;
  return x;
}

// The "w=SECONDS" parameter of the first policy item that has one ("20;w=1",
// "100;w=60;burst=5", "10, 10;w=2").
std::optional<Duration> window_param(const std::string& v) {
  std::string_view s(v);
  size_t at = 0;
  while ((at = s.find(';', at)) != std::string_view::npos) {
    ++at;
    while (at < s.size() && s[at] == ' ') ++at;
    if (s.substr(at, 2) == "w=") {
      auto secs = leading_number(std::string(s.substr(at + 2)));
      if (secs && *secs > 0 && *secs <= 7 * 86400.0)
        return Duration(static_cast<int64_t>(std::llround(*secs * 1000)));
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

RateLimitInfo parse_rate_limit_headers(
    const std::vector<std::pair<std::string, std::string>>& headers, TimePoint now) {
  RateLimitInfo info;
  auto either = [&](std::string_view ietf, std::string_view x) {
    const std::string* v = find(headers, ietf);
    return v ? v : find(headers, x);
  };
  if (const std::string* v = either("ratelimit-limit", "x-ratelimit-limit")) {
    info.limit = leading_number(*v);
    if (info.limit && *info.limit <= 0) info.limit.reset();
    info.window = window_param(*v);
  }
  if (const std::string* v = find(headers, "ratelimit-policy")) {
    if (auto w = window_param(*v)) info.window = w;
    if (!info.limit) info.limit = leading_number(*v);
  }
  if (const std::string* v = either("ratelimit-remaining", "x-ratelimit-remaining"))
    info.remaining = leading_number(*v);
  if (const std::string* v = either("ratelimit-reset", "x-ratelimit-reset")) {
    bool whole = false;
    if (auto secs = leading_number(*v, &whole)) {
      double s = *secs;
      if (s > 1e9) s -= static_cast<double>(to_millis(now)) / 1000.0;  // a Unix time
      s = std::clamp(s, 0.0, 7 * 86400.0);
      info.reset = Duration(static_cast<int64_t>(std::ceil(s * 1000)));
      info.reset_whole_seconds = whole;
    }
  }
  return info;
}

std::optional<Duration> VendorWindowEstimate::observe(const RateLimitInfo& info) {
  if (info.window) return *info.window;
  if (info.reset) {
    Duration r = *info.reset;
    // A whole-second Unix time lands up to a second past the true end; flooring keeps the
    // estimate within the window (a delta in whole seconds is the ceiling of the true wait,
    // which for a window of whole seconds is at most the window).
    if (info.reset_whole_seconds) r = std::chrono::duration_cast<std::chrono::seconds>(r);
    longest_ = std::max(longest_, r);
  }
  if (longest_.count() <= 0) {
    if (!info.limit) return std::nullopt;
    longest_ = std::chrono::seconds(1);
  }
  return std::max<Duration>(longest_, std::chrono::seconds(1));
}

}  // namespace cascade
