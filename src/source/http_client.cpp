#include "source/http_client.h"

#include <curl/curl.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "core/tls.h"
#include "source/rate_limit_headers.h"

namespace cascade {

static_assert(kHttpBodyPadding == simdjson::SIMDJSON_PADDING);

const std::string* HttpResponse::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

namespace {

// scheme://host[:port]/path of a URL: what errors may show. Query strings and user info may
// carry credentials, so they are dropped.
std::string safe_url(const std::string& url) {
  CURLU* u = curl_url();
  if (!u) return "<url>";
  std::string out = "<unparseable url>";
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    char* path = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    out = std::string(scheme ? scheme : "") + "://" + (host ? host : "") +
          (port ? std::string(":") + port : std::string()) + (path ? path : "");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
  }
  curl_url_cleanup(u);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Retry-After as a wait from `now`: delta-seconds or an HTTP date; nullopt if unreadable.
std::optional<Duration> parse_retry_after(const std::string& value, TimePoint now) {
  std::string_view v = trim(value);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 9) return std::chrono::hours(24 * 365);  // absurd, but honoured as "long"
    return std::chrono::seconds(std::stoll(std::string(v)));
  }
  time_t t = curl_getdate(std::string(v).c_str(), nullptr);
  if (t < 0) return std::nullopt;
  Duration d = Duration(static_cast<int64_t>(t) * 1000) - now.time_since_epoch();
  return std::max(Duration(0), d);
}

bool retryable_transport(CURLcode code) {
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:  // our body limit
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return false;
    default:
      return true;
  }
}

// scheme://host:port of a URL, the scheme and host lower-cased and the port explicit: the unit
// credentials are confined to. Empty if the URL does not parse.
std::string origin_of(const std::string& url) {
  CURLU* u = curl_url();
  if (!u) return {};
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    out = std::string(scheme ? scheme : "") + "://" + (host ? host : "") + ":" + (port ? port : "");
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Headers that say nothing about who sends the request: the only ones a redirect carries to
// another host.
bool harmless_header(std::string_view name) {
  return iequals(name, "accept") || iequals(name, "accept-language") ||
         iequals(name, "content-type");
}

bool retry_status(const HttpRequest& q, int status) {
  for (const auto& rule : q.status_retry)
    if (status >= rule.lo && status <= rule.hi) return rule.retry;
  return is_retryable_status(status);
}

void init_curl_once() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) throw std::runtime_error("curl_global_init failed");
}

}  // namespace

struct HttpClient::Loop {
  struct Job {
    HttpRequest request;
    std::function<void(HttpResponse&&)> done;
    HttpResponse response;
    std::string url_for_errors;
    curl_slist* headers = nullptr;
    TimePoint submitted;
    std::string origin;      // of the first URL: credentials go there only
    bool foreign = false;    // a redirect led to another origin
    int hops = 0;            // redirects followed
    int free_tries = 0;      // tries not counted in retry.attempts (hops, the post-401 one)
    bool refreshed = false;  // had its token refreshed after a 401 already
    uint64_t token_gen = 0;  // the OAuth2 token generation its last try carried
    bool internal = false;   // the OAuth2 token request itself
    bool too_large = false;
    size_t max_body = 0;
    char errbuf[CURL_ERROR_SIZE] = {};
    ~Job() { curl_slist_free_all(headers); }
  };
  using JobPtr = std::unique_ptr<Job>;

  HttpClientOptions opt;
  Clock& clock;
  CURLM* multi = nullptr;

  // Shared with submitters.
  std::mutex mu;
  std::vector<JobPtr> incoming;
  bool stopping = false;
  bool cancel_requested = false;
  std::optional<TimePoint>
      quota_blocked;           // guarded by mu  // cancel everything pending, keep running
  TimePoint vendor_blocked{};  // guarded by mu; the loop's own copy is vendor_pause
  TimePoint refusing_since{};  // guarded by mu; zero while the vendor answers
  std::atomic<size_t> in_flight{0};
  std::atomic<uint64_t> requests{0}, retries{0}, throttled{0}, transport_errors{0}, bytes{0},
      tokens{0}, redirects{0};

  // Loop thread only.
  std::deque<JobPtr> ready;                 // due now, waiting for a slot and a token
  std::multimap<TimePoint, JobPtr> timers;  // backoffs
  std::unordered_map<CURL*, JobPtr> active;
  std::vector<CURL*> idle_easy;
  TimePoint vendor_pause{};              // no try starts before this: the vendor asked for the wait
  VendorWindowEstimate window_estimate;  // of the vendor's rate-limit window
  bool window_seeded = false;            // with the limiter's restored window
  std::vector<std::string> secrets;      // of opt.auth: masked out of every error

  // OAuth2 (loop thread only).
  std::string token;
  uint64_t token_gen = 0;        // raised with each token received
  TimePoint token_refresh_at{};  // fetch the next one from then on
  TimePoint token_expires_at{};  // no request leaves with it from then on
  TimePoint token_retry_at{};    // a failed early refresh is not tried again before this
  bool token_fetching = false;
  std::deque<JobPtr> token_waiters;  // requests due while no usable token is at hand

  Loop(HttpClientOptions o, Clock& c) : opt(std::move(o)), clock(c) {
    if (opt.auth) secrets = opt.auth->secrets();
    opt.max_connections = std::max(1, opt.max_connections);
    opt.retry.attempts = std::max(1, opt.retry.attempts);
    multi = curl_multi_init();
    if (!multi) throw std::runtime_error("curl_multi_init failed");
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      static_cast<long>(opt.max_connections));
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(opt.max_connections));
  }

  ~Loop() {
    for (CURL* e : idle_easy) curl_easy_cleanup(e);
    curl_multi_cleanup(multi);
  }

  static size_t on_body(char* data, size_t size, size_t n, void* userp) {
    auto* job = static_cast<Job*>(userp);
    size_t len = size * n;
    std::string& body = job->response.body;
    if (body.size() + len > job->max_body) {
      job->too_large = true;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    if (body.capacity() < body.size() + len + kHttpBodyPadding) {
      body.reserve(std::max(body.capacity() * 2, body.size() + len + kHttpBodyPadding));
    }
    body.append(data, len);
    return len;
  }

  static size_t on_header(char* data, size_t size, size_t n, void* userp) {
    auto* job = static_cast<Job*>(userp);
    size_t len = size * n;
    std::string_view line(data, len);
    if (line.starts_with("HTTP/")) {
      job->response.headers.clear();  // a new response (after 100-continue, or a new try)
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string name(trim(line.substr(0, colon)));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      job->response.headers.emplace_back(std::move(name),
                                         std::string(trim(line.substr(colon + 1))));
    }
    return len;
  }

  void start(JobPtr job) {
    CURL* e;
    if (!idle_easy.empty()) {
      e = idle_easy.back();
      idle_easy.pop_back();
      curl_easy_reset(e);  // keeps the connection and DNS caches
    } else {
      e = curl_easy_init();
    }
    HttpResponse& r = job->response;
    r.status = 0;
    r.body.clear();
    r.headers.clear();
    r.error.clear();
    r.attempts++;
    r.retry_at.reset();
    job->too_large = false;
    job->errbuf[0] = 0;
    job->max_body = opt.max_body_bytes;
    if (!e) {
      r.error = job->request.method + " " + job->url_for_errors + ": cannot allocate a curl handle";
      complete(std::move(job));
      return;
    }
    const HttpRequest& q = job->request;
    std::string url = prepare_try(*job);
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    if (const char* ca = ca_bundle_override()) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(opt.timeout.count()));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, opt.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt.max_body_bytes));
    if (q.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (q.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q.method.c_str());
    }
    if (!q.body.empty() && q.method != "GET" && q.method != "HEAD") {
      // Not copied: the job, and so the body, outlives the transfer.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(q.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, q.body.data());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Loop::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, job.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Loop::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, job.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->errbuf);
    requests++;
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
      idle_easy.push_back(e);
      r.error = job->request.method + " " + job->url_for_errors + ": cannot start transfer";
      complete(std::move(job));
      return;
    }
    active.emplace(e, std::move(job));
  }

  bool oauth() const {
    return opt.auth && opt.auth->kind == AuthSpec::Kind::OAuth2ClientCredentials;
  }

  // The URL of the job's next try and its header list, with the credential added when the try
  // goes to the request's own origin: redirects to another host carry none.
  std::string prepare_try(Job& job) {
    const HttpRequest& q = job.request;
    std::string url = q.url;
    bool with_auth = opt.auth && !job.internal && !job.foreign;
    std::string auth_name = with_auth ? auth_header_name(*opt.auth) : std::string();
    curl_slist_free_all(job.headers);
    job.headers = nullptr;
    auto add = [&](const std::string& line) {
      if (curl_slist* next = curl_slist_append(job.headers, line.c_str())) job.headers = next;
    };
    for (const auto& [name, value] : q.headers) {
      if (job.foreign && !harmless_header(name)) continue;
      if (!auth_name.empty() && iequals(name, auth_name)) continue;  // the credential wins
      add(name + ": " + value);
    }
    if (with_auth) {
      if (!auth_name.empty())
        add(auth_name + ": " + auth_header_value(*opt.auth, token));
      else if (opt.auth->kind == AuthSpec::Kind::ApiKey && opt.auth->in_query)
        url = add_query_param(url, opt.auth->name, opt.auth->api_key);
    }
    // curl would otherwise wait for a 100 Continue before sending bodies over 1 KiB.
    if (!q.body.empty()) add("Expect:");
    job.token_gen = token_gen;
    return url;
  }

  // The error text of a failed try: method, safe URL, curl's words; never a header value.
  std::string transport_error(const Job& job, CURLcode code) const {
    std::string what;
    if (job.too_large) {
      what = "response body exceeds max_body_bytes (" + std::to_string(opt.max_body_bytes) + ")";
    } else if (code == CURLE_FILESIZE_EXCEEDED) {
      what = "response body exceeds max_body_bytes (" + std::to_string(opt.max_body_bytes) + ")";
    } else {
      what = job.errbuf[0] ? std::string(job.errbuf) : std::string(curl_easy_strerror(code));
    }
    std::string msg = job.request.method + " " + job.url_for_errors + ": " + what;
    // Belt and braces: curl's messages should not echo headers, but make sure.
    for (const auto& [name, value] : job.request.headers) {
      if (value.size() < 4) continue;
      for (size_t p; (p = msg.find(value)) != std::string::npos;)
        msg.replace(p, value.size(), "***");
    }
    return mask_secrets(std::move(msg), secrets);
  }

  void finish(CURL* e, CURLcode code) {
    auto it = active.find(e);
    if (it == active.end()) return;
    JobPtr job = std::move(it->second);
    active.erase(it);
    curl_multi_remove_handle(multi, e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    // Where a redirect leads, resolved against the request's URL by curl (which follows none).
    std::string redirect_to;
    if (code == CURLE_OK &&
        (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)) {
      char* target = nullptr;
      curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &target);
      if (target) redirect_to = target;
    }
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nullptr);
    idle_easy.push_back(e);

    HttpResponse& r = job->response;
    TimePoint now = clock.now();
    bool retry = false;
    Duration delay = backoff_delay(opt.retry, r.attempts);
    if (code == CURLE_OK) {
      int cls = status >= 200 && status < 300   ? 0
                : status >= 300 && status < 400 ? 1
                : status >= 400 && status < 500 ? 2
                                                : 3;
      r.by_class[static_cast<size_t>(cls)]++;
    } else {
      r.by_class[4]++;
    }
    if (code != CURLE_OK) {
      transport_errors++;
      r.error = transport_error(*job, code);
      r.status = 0;
      r.body.clear();
      r.headers.clear();
      retry = !job->too_large && retryable_transport(code);
    } else {
      r.status = static_cast<int>(status);
      bytes += r.body.size();
      if (!redirect_to.empty() && opt.max_redirects > 0) {
        redirect(std::move(job), redirect_to);
        return;
      }
      if (r.status == 401 && oauth() && !job->internal && !job->foreign && !job->refreshed) {
        // The token lapsed early or was revoked: a fresh one, and this request once more.
        job->refreshed = true;
        job->free_tries++;
        if (job->token_gen == token_gen) token.clear();
        retries++;
        ready.push_back(std::move(job));
        return;
      }
      retry = retry_status(job->request, r.status);
      if (opt.limiter) {
        if (r.status == 429)
          opt.limiter->on_throttled();
        else if (r.status < 500)
          opt.limiter->on_success();
      }
      RateLimitInfo limits = parse_rate_limit_headers(r.headers, now);
      learn_vendor_limit(limits);
      std::optional<Duration> wait;
      if (r.status == 429 || r.status == 503)
        if (const std::string* ra = r.header("retry-after")) wait = parse_retry_after(*ra, now);
      if (!wait) wait = spent_window_wait(limits);
      if (r.status == 429) {
        r.throttled++;
        throttled++;
      }
      bool refused = r.status == 429 || (r.status == 503 && wait);
      if (refused) r.held_off++;
      {
        // Any other answer shows the vendor serving again; transport errors say nothing.
        std::lock_guard lock(mu);
        if (!refused)
          refusing_since = TimePoint{};
        else if (refusing_since == TimePoint{})
          refusing_since = now;
      }
      if (wait && *wait > Duration::zero()) {
        r.retry_at = now + *wait;
        pause_until(*r.retry_at);
        // Waiting longer than the policy allows inside one request would hold the caller
        // hostage; the caller gets the response and the pause keeps every request back.
        if (*wait > opt.retry.max) retry = false;
        delay = std::max(delay, *wait);
      }
    }
    if (retry && r.attempts - job->free_tries < opt.retry.attempts) {
      retries++;
      timers.emplace(now + delay, std::move(job));
      return;
    }
    complete(std::move(job));
  }

  // Follows one redirect as a browser does: 303 (and 301/302 after a POST) become a GET without
  // a body, 307/308 repeat the request as it was. The next hop waits for the limiter like any try.
  void redirect(JobPtr job, const std::string& target) {
    HttpResponse& r = job->response;
    HttpRequest& q = job->request;
    if (job->hops >= opt.max_redirects) {
      r.error = q.method + " " + job->url_for_errors + ": more than " +
                std::to_string(opt.max_redirects) + " redirects (the last to " + safe_url(target) +
                ")";
      r.permanent = true;
      complete(std::move(job));
      return;
    }
    if (!(target.starts_with("http://") || target.starts_with("https://"))) {
      r.error = q.method + " " + job->url_for_errors + ": redirected to a URL that is not http(s)";
      r.permanent = true;
      complete(std::move(job));
      return;
    }
    int status = r.status;
    if ((status == 303 && q.method != "HEAD") ||
        ((status == 301 || status == 302) && q.method == "POST")) {
      q.method = "GET";
      q.body.clear();
      std::erase_if(q.headers, [](const auto& h) { return iequals(h.first, "content-type"); });
    }
    q.url = target;
    job->url_for_errors = safe_url(target);
    job->foreign = job->foreign || origin_of(target) != job->origin;
    job->hops++;
    job->free_tries++;
    redirects++;
    ready.push_back(std::move(job));
  }

  // The token request, sent ahead of everything waiting; its answer releases the waiters.
  void fetch_token() {
    token_fetching = true;
    auto job = std::make_unique<Job>();
    job->internal = true;
    job->request.method = "POST";
    job->request.url = opt.auth->access_token_url;
    job->request.headers = token_request_headers(*opt.auth);
    job->request.body = token_request_body(*opt.auth);
    job->url_for_errors = safe_url(job->request.url);
    job->origin = origin_of(job->request.url);
    job->submitted = clock.now();
    job->done = [this](HttpResponse&& r) { on_token(std::move(r)); };
    in_flight++;
    ready.push_front(std::move(job));
  }

  void on_token(HttpResponse&& r) {
    token_fetching = false;
    std::string why;
    bool permanent = false;
    if (r.status >= 200 && r.status < 300) {
      try {
        OAuthToken t = parse_token_response(r.body);
        token = std::move(t.access_token);
        ++token_gen;
        tokens++;
        // However short a life the server grants, tokens are not fetched in a tight loop: one
        // said to live under a second is used for a second (and a 401 refreshes it).
        Duration life = std::max<Duration>(
            t.expires_in.value_or(opt.auth->default_token_expiration), std::chrono::seconds(1));
        TimePoint now = clock.now();
        token_refresh_at = now + token_refresh_after(life);
        token_expires_at = now + life;
        while (!token_waiters.empty()) {
          ready.push_front(std::move(token_waiters.back()));
          token_waiters.pop_back();
        }
        return;
      } catch (const std::exception& ex) {
        why = ex.what();
        permanent = true;
      }
    } else if (r.error == "cancelled") {
      why = "cancelled";
    } else if (!r.error.empty()) {
      why = r.error;
      permanent = r.permanent;
    } else {
      why = "HTTP " + std::to_string(r.status);
      permanent = !is_retryable_status(r.status);
    }
    token_retry_at = clock.now() + std::chrono::seconds(1);
    std::string error = why == "cancelled"
                            ? why
                            : mask_secrets("cannot get an OAuth2 access token from " +
                                               safe_url(opt.auth->access_token_url) + ": " + why,
                                           secrets);
    std::deque<JobPtr> waiting;
    waiting.swap(token_waiters);
    for (auto& j : waiting) {
      j->response.error = error;
      j->response.permanent = permanent;
      complete(std::move(j));
    }
  }

  // The vendor's limit (RateLimit-Limit per the window its headers state or imply) paces the
  // shared limiter from now on, every stage alike.
  void learn_vendor_limit(const RateLimitInfo& info) {
    if (!opt.limiter || !info.limit) return;
    if (!window_seeded) {
      if (auto known = opt.limiter->vendor_limit()) window_estimate.seed(known->window);
      window_seeded = true;
    }
    if (auto window = window_estimate.observe(info))
      opt.limiter->set_vendor_limit(*info.limit, *window);
  }

  // RateLimit-Remaining / X-RateLimit-Remaining of 0 means the vendor's window is spent: the
  // wait until its reset. A reset in whole seconds is rounded up by the vendor; while the limiter
  // paces to the vendor's known limit the wait is its lower bound (a second less), since pacing
  // alone spaces the next request into the new window and a full extra second would idle a
  // short window's worth of quota every window.
  std::optional<Duration> spent_window_wait(const RateLimitInfo& info) const {
    if (!info.remaining || *info.remaining >= 1 || !info.reset) return std::nullopt;
    Duration wait = std::min<Duration>(*info.reset, std::chrono::hours(24));
    if (info.reset_whole_seconds && opt.limiter && opt.limiter->vendor_limit())
      wait = std::max(Duration(0), wait - std::chrono::seconds(1));
    if (wait <= Duration(0)) return std::nullopt;
    return wait;
  }

  // The vendor's limits apply to the client as a whole, not to the one request that heard them.
  void pause_until(TimePoint until) {
    if (opt.limiter) opt.limiter->pause_until(until);
    if (until <= vendor_pause) return;
    vendor_pause = until;
    std::lock_guard lock(mu);
    vendor_blocked = until;
  }

  void complete(JobPtr job) {
    HttpResponse& r = job->response;
    if (!r.error.empty()) {
      r.status = 0;
      r.body.clear();
      r.headers.clear();
    }
    if (r.body.capacity() < r.body.size() + kHttpBodyPadding) {
      r.body.reserve(r.body.size() + kHttpBodyPadding);
    }
    r.elapsed = clock.now() - job->submitted;
    auto done = std::move(job->done);
    HttpResponse out = std::move(r);
    job.reset();
    done(std::move(out));
    in_flight--;
  }

  void cancel(JobPtr job) {
    job->response.error = "cancelled";
    complete(std::move(job));
  }

  void run() {
    std::vector<JobPtr> fresh;
    bool do_cancel = false;
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (stopping) break;
        fresh.swap(incoming);
        if (cancel_requested) {
          cancel_requested = false;
          for (auto& j : fresh) incoming.push_back(std::move(j));
          fresh.clear();
          do_cancel = true;
        }
      }
      if (do_cancel) {
        cancel_everything();
        do_cancel = false;
        continue;
      }
      for (auto& j : fresh) ready.push_back(std::move(j));
      fresh.clear();

      TimePoint now = clock.now();
      while (!timers.empty() && timers.begin()->first <= now) {
        ready.push_back(std::move(timers.begin()->second));
        timers.erase(timers.begin());
      }

      if (oauth()) {
        // No request leaves without a token that is still good: they wait for the one being
        // fetched. Near its end the next one is fetched while the current one is still used.
        bool usable = !token.empty() && now < token_expires_at;
        if (!usable) {
          for (auto it = ready.begin(); it != ready.end();) {
            if ((*it)->internal || (*it)->foreign) {
              ++it;
            } else {
              token_waiters.push_back(std::move(*it));
              it = ready.erase(it);
            }
          }
        }
        bool early = usable && now >= token_refresh_at && now >= token_retry_at && !ready.empty();
        if (!token_fetching && (!token_waiters.empty() || early)) fetch_token();
      }

      std::optional<TimePoint> token_at;
      std::optional<TimePoint> quota_at;
      while (!ready.empty() && active.size() < static_cast<size_t>(opt.max_connections) &&
             vendor_pause <= now) {
        // The first waiting request the quota lets through: one stage blocked by another's
        // reserve must not hold up the requests behind it.
        auto pick = ready.begin();
        if (opt.quota) {
          quota_at.reset();
          for (; pick != ready.end(); ++pick) {
            auto until = opt.quota->check((*pick)->request.quota_class);
            if (!until) break;
            if (!quota_at || *until < *quota_at) quota_at = until;
          }
          if (pick == ready.end()) break;
        }
        if (opt.limiter) {
          token_at = opt.limiter->try_acquire();
          if (token_at) break;
        }
        if (opt.quota) opt.quota->try_take((*pick)->request.quota_class);
        JobPtr j = std::move(*pick);
        ready.erase(pick);
        start(std::move(j));
      }
      {
        bool all_blocked = quota_at && !ready.empty();
        std::lock_guard lock(mu);
        quota_blocked = all_blocked ? quota_at : std::nullopt;
      }

      int running = 0;
      curl_multi_perform(multi, &running);
      bool finished = false;
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg == CURLMSG_DONE) {
          finish(m->easy_handle, m->data.result);
          finished = true;
        }
      }
      if (finished) continue;  // freed slots may start ready jobs right away

      long wait = 1000;
      long curl_wait = -1;
      curl_multi_timeout(multi, &curl_wait);
      if (curl_wait >= 0) wait = std::min(wait, curl_wait);
      now = clock.now();
      if (token_at) wait = std::min<long>(wait, std::max<long>(1, (*token_at - now).count()));
      if (quota_at) wait = std::min<long>(wait, std::max<long>(1, (*quota_at - now).count()));
      if (!ready.empty() && vendor_pause > now)
        wait = std::min<long>(wait, std::max<long>(1, (vendor_pause - now).count()));
      if (!timers.empty()) {
        wait = std::min<long>(wait, std::max<long>(0, (timers.begin()->first - now).count()));
      }
      curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait), nullptr);
    }

    // Shutting down: everything not completed is cancelled, exactly once.
    cancel_everything();
  }

  void cancel_everything() {
    for (auto& [e, j] : active) {
      curl_multi_remove_handle(multi, e);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nullptr);  // the job owning it goes away
      idle_easy.push_back(e);
    }
    std::vector<JobPtr> rest;
    for (auto& [e, j] : active) rest.push_back(std::move(j));
    active.clear();
    for (auto& [t, j] : timers) rest.push_back(std::move(j));
    timers.clear();
    for (auto& j : ready) rest.push_back(std::move(j));
    ready.clear();
    for (auto& j : token_waiters) rest.push_back(std::move(j));
    token_waiters.clear();
    {
      std::lock_guard lock(mu);
      for (auto& j : incoming) rest.push_back(std::move(j));
      incoming.clear();
    }
    for (auto& j : rest) cancel(std::move(j));
  }
};

HttpClient::HttpClient(HttpClientOptions options, Clock& clock) {
  init_curl_once();
  loop_ = std::make_unique<Loop>(std::move(options), clock);
  thread_ = std::thread([this] { loop_->run(); });
}

HttpClient::~HttpClient() {
  {
    std::lock_guard lock(loop_->mu);
    loop_->stopping = true;
  }
  curl_multi_wakeup(loop_->multi);
  thread_.join();
}

void HttpClient::submit(HttpRequest request, std::function<void(HttpResponse&&)> done) {
  auto job = std::make_unique<Loop::Job>();
  job->url_for_errors = safe_url(request.url);
  job->origin = origin_of(request.url);
  job->request = std::move(request);
  job->done = std::move(done);
  job->submitted = loop_->clock.now();
  loop_->in_flight++;
  {
    std::unique_lock lock(loop_->mu);
    if (!loop_->stopping) {
      loop_->incoming.push_back(std::move(job));
      lock.unlock();
      curl_multi_wakeup(loop_->multi);
      return;
    }
  }
  loop_->cancel(std::move(job));
}

void HttpClient::cancel_all() {
  {
    std::lock_guard lock(loop_->mu);
    loop_->cancel_requested = true;
  }
  curl_multi_wakeup(loop_->multi);
}

std::optional<TimePoint> HttpClient::quota_blocked_until() const {
  std::lock_guard lock(loop_->mu);
  return loop_->quota_blocked;
}

std::optional<TimePoint> HttpClient::vendor_blocked_until() const {
  TimePoint now = loop_->clock.now();
  std::lock_guard lock(loop_->mu);
  if (loop_->vendor_blocked <= now) return std::nullopt;
  return loop_->vendor_blocked;
}

std::optional<TimePoint> HttpClient::vendor_refusing_since() const {
  std::lock_guard lock(loop_->mu);
  if (loop_->refusing_since == TimePoint{}) return std::nullopt;
  return loop_->refusing_since;
}

size_t HttpClient::in_flight() const {
  return loop_->in_flight.load();
}

HttpClient::Stats HttpClient::stats() const {
  Stats s;
  s.requests = loop_->requests.load();
  s.retries = loop_->retries.load();
  s.throttled = loop_->throttled.load();
  s.transport_errors = loop_->transport_errors.load();
  s.bytes = loop_->bytes.load();
  s.tokens = loop_->tokens.load();
  s.redirects = loop_->redirects.load();
  return s;
}

}  // namespace cascade
