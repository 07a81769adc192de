// HttpClient: one event-loop thread running libcurl multi, keeping many requests in flight over
// keep-alive connections, each try paced by a shared RateLimiter and retried with backoff.
// Thread-safe: submit/in_flight/stats may be called from any thread, callbacks run on the loop.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "source/auth.h"
#include "source/quota.h"
#include "source/rate_limiter.h"
#include "source/retry.h"

namespace cascade {

// Spare capacity left after every response body, so callers can parse it in place with
// simdjson (equals simdjson::SIMDJSON_PADDING; checked in the .cpp).
inline constexpr size_t kHttpBodyPadding = 64;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  // Sent as given to the request's own host; values may be secrets and never appear in errors.
  // A redirect to another host keeps only Accept, Accept-Language and Content-Type.
  std::vector<std::pair<std::string, std::string>> headers;
  // Sent when not empty (give a Content-Type header with it); dropped when a redirect turns the
  // request into a GET (303, or 301/302 after a POST).
  std::string body{};
  size_t quota_class = 0;  // whose reserved share of the quota it draws on (the stage)
  // Statuses lo..hi whose retrying differs from the default (408, 429 and 5xx are retried,
  // nothing else is): the first rule that matches decides.
  struct StatusRetry {
    int lo = 0, hi = 0;
    bool retry = false;
  };
  std::vector<StatusRetry> status_retry{};
};

struct HttpResponse {
  int status = 0;  // 0 when no (complete) HTTP response was received; then `error` says why
  // Capacity is at least size() + kHttpBodyPadding.
  std::string body{};
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  // Transport error (timeout, refused, reset, body too large, cancelled...), naming the method
  // and the URL's scheme://host[:port]/path only; empty if a response arrived. When non-empty,
  // status is 0 and body/headers are empty.
  std::string error;
  // With `error`: trying again cannot help (the token endpoint refused the client's credentials,
  // too many redirects, a redirect to another scheme).
  bool permanent = false;
  int attempts = 0;   // tries made, first included (each redirect hop is a try)
  int throttled = 0;  // 429s seen across the tries
  // Tries the vendor turned away for its own limits: every 429, and each 503 that said when to
  // come back. When it equals `attempts`, the request never failed on its merits.
  int held_off = 0;
  // Tries by what came back: [0] 2xx, [1] 3xx, [2] 4xx, [3] 5xx or another status, [4] transport
  // error (no response).
  std::array<int, 5> by_class{};
  // When the last try's response said the vendor takes requests again: its Retry-After (on a 429
  // or 503), or its RateLimit-Reset when RateLimit-Remaining was 0. nullopt if it did not say.
  std::optional<TimePoint> retry_at;
  Duration elapsed{};  // from submit to completion, waits included

  // The first header with that (lower-case) name, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

struct HttpClientOptions {
  int max_connections = 16;                     // transfers in flight and open connections, at most
  Duration timeout = std::chrono::seconds(10);  // per try, whole transfer
  Duration connect_timeout = std::chrono::seconds(5);
  RetryPolicy retry;
  RateLimiter* limiter = nullptr;  // not owned; must outlive the client; null = unpaced
  QuotaLedger* quota = nullptr;    // not owned; must outlive the client; null = no budget
  std::string user_agent = "cascade/0.1";
  size_t max_body_bytes = size_t{256} << 20;  // larger (decoded) bodies fail, not retried
  // Credentials added to every try of every request to the host of the request's URL, never to
  // another host a redirect leads to. Not owned; must outlive the client; null = none. With
  // oauth2_client_credentials the client fetches the token itself (a request paced like any
  // other), keeps it, fetches the next one a tenth of its lifetime before it expires (requests
  // go on with the current one meanwhile; they wait only while no token is good), and on a
  // 401 fetches a new one and tries that request once more, a try not counted in
  // retry.attempts. A refused token request completes the requests waiting for it with a
  // `permanent` error.
  const AuthSpec* auth = nullptr;
  // Redirects (301, 302, 303, 307, 308 with a Location) followed per request, each hop a try paced
  // by the limiter and not counted in retry.attempts; one more is an error. 0 = none followed.
  int max_redirects = 5;
};

class HttpClient {
 public:
  // Starts the loop thread. Throws std::runtime_error if libcurl cannot be initialised.
  explicit HttpClient(HttpClientOptions options, Clock& clock = SystemClock::instance());
  // Stops the loop; every request not yet completed gets its callback with error "cancelled".
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Queues a request; never blocks on the network. `done` is called exactly once, on the loop
  // thread (keep it short and non-throwing: hand work to another thread), with the final
  // response: the first non-retryable one, or the last try. Transport errors, 408, 429 and 5xx
  // are retried with backoff_delay up to retry.attempts tries. The vendor's word on when it
  // takes requests again (see HttpResponse::retry_at) pauses every request of the client until
  // then, and limiter->pause_until() so every user of the limiter slows down; it delays the
  // retry, and if it exceeds retry.max the response is returned at once instead of waiting.
  // Redirects are followed as HttpClientOptions::max_redirects says. `done` may submit further
  // requests. Submitting during destruction completes the request at once with error
  // "cancelled".
  void submit(HttpRequest request, std::function<void(HttpResponse&&)> done);

  // Completes every request submitted so far with error "cancelled" (soon, on the loop thread);
  // the client stays usable. For a fast, clean stop.
  void cancel_all();

  // When every waiting request is held back by the quota: the time its window reopens.
  // nullopt while requests can still go (or none wait).
  std::optional<TimePoint> quota_blocked_until() const;

  // While the vendor's own limits hold every request back (see submit): the time it said it
  // takes requests again. nullopt once that time has passed, or if it never said.
  std::optional<TimePoint> vendor_blocked_until() const;

  // Since when every response has been the vendor turning requests away (429, or 503 with a
  // wait): the first such response after the last other one. nullopt once the vendor answers
  // anything else; transport errors change nothing. Thread-safe.
  std::optional<TimePoint> vendor_refusing_since() const;

  size_t in_flight() const;  // submitted and whose callback has not yet returned

  struct Stats {
    uint64_t requests = 0;  // HTTP tries actually sent
    uint64_t retries = 0;
    uint64_t throttled = 0;  // 429s received
    uint64_t transport_errors = 0;
    uint64_t bytes = 0;      // response body bytes received (decoded)
    uint64_t tokens = 0;     // OAuth2 access tokens received
    uint64_t redirects = 0;  // redirect hops followed
  };
  Stats stats() const;

 private:
  struct Loop;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace cascade
