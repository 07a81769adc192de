// The status server of `cascade run` over real sockets on 127.0.0.1: /metrics read back by a
// strict parser, /healthz, /status, the page and its assets, read-only methods, bearer-token
// rules, and a stop() that does not wait for clients that hang.
#include "observe/status_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "observe/metrics.h"
#include "support/prometheus.h"

namespace cascade::observe {
namespace {

using testing::parse_prometheus;
using testing::prom_value;
using Steady = std::chrono::steady_clock;

struct Reply {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

size_t collect_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t collect_header(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n ") + 1);
    (*static_cast<std::map<std::string, std::string>*>(user))[name] = value;
  }
  return size * n;
}

// One request with libcurl; throws if no HTTP response arrives.
Reply request(const std::string& method, const std::string& url,
              const std::vector<std::string>& headers = {}, const std::string& body = "") {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  Reply r;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  if (method == "HEAD") {
    curl_easy_setopt(curl.get(), CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty()) {
      curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
  }
  const CURLcode rc = curl_easy_perform(curl.get());
  curl_slist_free_all(list);
  if (rc != CURLE_OK)
    throw std::runtime_error(std::string("request failed: ") + curl_easy_strerror(rc));
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

Reply get(const std::string& url, const std::vector<std::string>& headers = {}) {
  return request("GET", url, headers);
}

// A raw TCP connection to 127.0.0.1:port, for clients that misbehave.
int connect_raw(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("connect failed");
  return fd;
}

void send_all(int fd, const std::string& s) {
  ASSERT_EQ(send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Sets an environment variable for one test and restores the previous state after it.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value)
      setenv(name_.c_str(), value, 1);
    else
      unsetenv(name_.c_str());
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Captures spdlog's output for one test.
class LogCapture {
 public:
  LogCapture()
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)),
        previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const {
    std::string out;
    for (const auto& line : sink_->last_formatted()) out += line;
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

std::string url(const StatusServer& s, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(s.port()) + path;
}

StatusContent serving(StatusContent content, const Registry& registry) {
  content.registry = &registry;
  return content;
}

// A registry with the metrics of `cascade run` and a server for it, not started.
struct Fixture {
  Registry registry;
  CascadeMetrics metrics{registry};
  StatusServer server;

  explicit Fixture(StatusContent content = {}, StatusOptions options = {})
      : server(serving(std::move(content), registry), std::move(options)) {
    register_process_metrics(registry, "0.1.0-test");
  }
};

TEST(StatusServer, ServesMetricsInTheExpositionFormat) {
  Fixture f;
  auto sales = f.metrics.stage("sales");
  sales.messages.inc(3);
  sales.request(200).inc(3);
  sales.records_changed.inc(1);
  sales.message_duration_seconds.observe(0.2);
  sales.message_duration_seconds.observe(7);
  f.metrics.run_duration_seconds.with({"branches"}).observe(95);
  std::atomic<int> scrapes{0};
  f.registry.add_collector([&] {
    ++scrapes;
    f.metrics.queue_depth.with({"sales"}).set(41);
    f.metrics.dlq_depth.with({"sales"}).set(2);
    f.metrics.quota_left.with({"1d"}).set(9000);
  });
  f.server.start("127.0.0.1", 0);
  ASSERT_GT(f.server.port(), 0);
  EXPECT_TRUE(f.server.running());

  const Reply r = get(url(f.server, "/metrics"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.header("cache-control"), "no-store");
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  const auto families = parse_prometheus(r.body);
  EXPECT_EQ(scrapes.load(), 1);
  EXPECT_EQ(prom_value(families, "cascade_messages_total", {{"stage", "sales"}}), 3);
  EXPECT_EQ(prom_value(families, "cascade_requests_total", {{"stage", "sales"}, {"class", "2xx"}}),
            3);
  EXPECT_EQ(
      prom_value(families, "cascade_records_total", {{"stage", "sales"}, {"kind", "changed"}}), 1);
  EXPECT_EQ(prom_value(families, "cascade_message_duration_seconds_count", {{"stage", "sales"}}),
            2);
  EXPECT_EQ(prom_value(families, "cascade_message_duration_seconds_sum", {{"stage", "sales"}}),
            7.2);
  EXPECT_EQ(prom_value(families, "cascade_run_duration_seconds_bucket",
                       {{"stage", "branches"}, {"le", "+Inf"}}),
            1);
  EXPECT_EQ(prom_value(families, "cascade_queue_depth", {{"stage", "sales"}}), 41);
  EXPECT_EQ(prom_value(families, "cascade_dlq_depth", {{"stage", "sales"}}), 2);
  EXPECT_EQ(prom_value(families, "cascade_quota_left", {{"window", "1d"}}), 9000);
  EXPECT_EQ(prom_value(families, "cascade_build_info", {{"version", "0.1.0-test"}}), 1);
  EXPECT_GT(prom_value(families, "process_resident_memory_bytes"), 0);
  EXPECT_GT(prom_value(families, "process_open_fds"), 0);
  EXPECT_GT(prom_value(families, "process_start_time_seconds"), 1.6e9);
  for (const auto& [name, family] : families) {
    EXPECT_FALSE(family.help.empty()) << name;
    if (family.type == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    }
  }

  const Reply head = request("HEAD", url(f.server, "/metrics"));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  f.server.stop();
  EXPECT_FALSE(f.server.running());
}

TEST(StatusServer, HealthzFollowsTheCallback) {
  std::mutex mu;
  std::optional<std::string> reason;
  StatusContent content;
  content.health = [&]() -> std::optional<std::string> {
    std::lock_guard lock(mu);
    return reason;
  };
  Fixture f(std::move(content));
  f.server.start();
  Reply r = get(url(f.server, "/healthz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"status\":\"ok\"}");
  EXPECT_EQ(r.header("content-type"), "application/json");
  {
    std::lock_guard lock(mu);
    reason = "storage: database is locked \"dm.db\"";
  }
  r = get(url(f.server, "/healthz"));
  EXPECT_EQ(r.status, 503);
  const Value v = parse_json(r.body);
  EXPECT_EQ(v.find("status")->as_string(), "unhealthy");
  EXPECT_EQ(v.find("reason")->as_string(), "storage: database is locked \"dm.db\"");
}

TEST(StatusServer, HealthzWithoutCallbackIsOk) {
  Fixture f;
  f.server.start();
  EXPECT_EQ(get(url(f.server, "/healthz")).status, 200);
}

TEST(StatusServer, StatusComesFromTheCallback) {
  std::atomic<int> calls{0};
  StatusContent content;
  content.status = [&] {
    if (++calls == 2) throw std::runtime_error("private detail /home/x/dm.db");
    return std::string("{\"stages\":[{\"name\":\"sales\",\"queue_depth\":") +
           std::to_string(calls.load()) + "}]}";
  };
  Fixture f(std::move(content));
  f.server.start();
  Reply r = get(url(f.server, "/status"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("cache-control"), "no-store");
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(parse_json(r.body).find("stages")->as_array().at(0).find("queue_depth")->as_int(), 1);
  r = get(url(f.server, "/status"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("private detail"), std::string::npos) << r.body;
  for (const auto& [name, value] : r.headers)
    EXPECT_EQ(value.find("private detail"), std::string::npos) << name;
  EXPECT_EQ(get(url(f.server, "/status")).status, 200) << "one failure does not stick";
}

TEST(StatusServer, PageAndAssets) {
  StatusContent content;
  content.page = "<!doctype html><title>cascade</title><script src=\"/assets/app.js\"></script>";
  content.assets["app.js"] = {"text/javascript; charset=utf-8", "console.log(1);"};
  content.assets["css/site.css"] = {"text/css", "body{}"};
  Fixture f(std::move(content));
  f.server.start();
  Reply r = get(url(f.server, "/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<title>cascade</title>"), std::string::npos);
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  r = get(url(f.server, "/assets/app.js"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(r.body, "console.log(1);");
  EXPECT_EQ(get(url(f.server, "/assets/css/site.css")).body, "body{}");
  EXPECT_EQ(get(url(f.server, "/assets/missing.js")).status, 404);
  EXPECT_EQ(get(url(f.server, "/assets/")).status, 404);
  EXPECT_EQ(get(url(f.server, "/nope")).status, 404);
  EXPECT_EQ(get(url(f.server, "/status")).status, 404) << "no status callback given";
}

TEST(StatusServer, EverythingIsReadOnly) {
  StatusContent content;
  content.page = "<p>hi</p>";
  content.status = [] { return std::string("{}"); };
  Fixture f(std::move(content));
  f.server.start();
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    for (const char* path : {"/metrics", "/healthz", "/status", "/", "/assets/x", "/nope"}) {
      const Reply r = request(method, url(f.server, path), {}, "{\"x\":1}");
      EXPECT_EQ(r.status, 405) << method << " " << path;
      EXPECT_EQ(r.header("allow"), "GET, HEAD") << method << " " << path;
    }
  }
  EXPECT_EQ(get(url(f.server, "/status")).status, 200) << "still serving after refusals";
}

TEST(StatusServer, RefusesANonLoopbackAddressWithoutAToken) {
  ScopedEnv env("CASCADE_TEST_STATUS_TOKEN_A", nullptr);
  StatusOptions options;
  options.token_env = "CASCADE_TEST_STATUS_TOKEN_A";
  for (const char* address : {"0.0.0.0", "::", "10.1.2.3"}) {
    Fixture f({}, options);
    try {
      f.server.start(address, 0);
      FAIL() << "started on " << address << " without a token";
    } catch (const StatusServerError& e) {
      EXPECT_NE(std::string(e.what()).find("CASCADE_TEST_STATUS_TOKEN_A"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("allow_unauthenticated"), std::string::npos);
    }
    EXPECT_EQ(f.server.port(), 0) << "refused before binding";
    EXPECT_FALSE(f.server.running());
  }
  {
    ScopedEnv empty("CASCADE_TEST_STATUS_TOKEN_A", "");
    Fixture f({}, options);
    EXPECT_THROW(f.server.start("0.0.0.0", 0), StatusServerError) << "an empty token is none";
    EXPECT_EQ(f.server.port(), 0);
  }
  // Forcing the token on loopback without one is refused as well.
  options.require_token = true;
  Fixture f({}, options);
  EXPECT_THROW(f.server.start("127.0.0.1", 0), StatusServerError);
  EXPECT_EQ(f.server.port(), 0);
}

TEST(StatusServer, BearerTokenIsCheckedAndNeverRevealed) {
  const std::string token = "tok-7Hq2-status-SECRET-e91b";
  ScopedEnv env("CASCADE_TEST_STATUS_TOKEN_B", token.c_str());
  LogCapture logs;
  StatusOptions options;
  options.token_env = "CASCADE_TEST_STATUS_TOKEN_B";
  options.require_token = true;
  StatusContent content;
  content.page = "<p>page</p>";
  content.status = [] { return std::string("{\"ok\":true}"); };
  Fixture f(std::move(content), options);
  f.server.start("127.0.0.1", 0);

  std::vector<Reply> replies;
  auto expect_status = [&](const std::string& path, const std::vector<std::string>& headers,
                           long status) {
    replies.push_back(get(url(f.server, path), headers));
    EXPECT_EQ(replies.back().status, status)
        << path << " with " << ::testing::PrintToString(headers);
  };
  for (const char* path : {"/metrics", "/healthz", "/status", "/", "/nope"}) {
    expect_status(path, {}, 401);
    expect_status(path, {"Authorization: Bearer wrong"}, 401);
    expect_status(path, {"Authorization: Bearer " + token.substr(0, token.size() - 1)}, 401);
    expect_status(path, {"Authorization: Bearer " + token + "x"}, 401);
    expect_status(path, {"Authorization: Basic " + token}, 401);
    expect_status(path, {"Authorization: " + token}, 401);
    expect_status(path, {"X-Token: " + token}, 401);
  }
  EXPECT_EQ(replies.front().header("www-authenticate"), "Bearer realm=\"cascade\"");
  expect_status("/metrics", {"Authorization: Bearer " + token}, 200);
  expect_status("/status", {"Authorization: bearer " + token}, 200);
  expect_status("/", {"Authorization: BEARER   " + token}, 200);
  expect_status("/nope", {"Authorization: Bearer " + token}, 404);
  // Authentication comes before the method check: an anonymous POST learns nothing.
  EXPECT_EQ(request("POST", url(f.server, "/metrics")).status, 401);
  EXPECT_EQ(request("POST", url(f.server, "/metrics"), {"Authorization: Bearer " + token}).status,
            405);

  f.server.stop();
  for (const Reply& r : replies) {
    EXPECT_EQ(r.body.find(token), std::string::npos) << r.body;
    for (const auto& [name, value] : r.headers) EXPECT_EQ(value.find(token), std::string::npos);
  }
  const std::string log_text = logs.text();
  EXPECT_NE(log_text.find("bearer token required"), std::string::npos) << log_text;
  EXPECT_EQ(log_text.find(token), std::string::npos) << log_text;
}

TEST(StatusServer, LoopbackServesWithoutTokenEvenWhenOneIsSet) {
  ScopedEnv env("CASCADE_TEST_STATUS_TOKEN_C", "some-token");
  StatusOptions options;
  options.token_env = "CASCADE_TEST_STATUS_TOKEN_C";
  Fixture f({}, options);
  f.server.start("127.0.0.1", 0);
  EXPECT_EQ(get(url(f.server, "/metrics")).status, 200);
}

TEST(StatusServer, StopReturnsPromptlyWithHangingClients) {
  std::atomic<int> status_calls{0};
  StatusContent content;
  content.status = [&] {
    ++status_calls;
    return std::string("{}");
  };
  StatusOptions options;
  options.threads = 8;  // every client below gets a thread at once, as if the server were busy
  Fixture f(std::move(content), options);
  f.server.start("127.0.0.1", 0);
  // Connected and silent; half a request line; headers without their end; a finished request on
  // a connection kept alive.
  const int silent = connect_raw(f.server.port());
  const int partial = connect_raw(f.server.port());
  send_all(partial, "GET /met");
  const int headers = connect_raw(f.server.port());
  send_all(headers, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  const int kept = connect_raw(f.server.port());
  send_all(kept, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
  char buf[4096];
  ASSERT_GT(recv(kept, buf, sizeof buf, 0), 0);
  // A client that drips a byte every 200 ms, which no read timeout ends.
  std::atomic<bool> dripping{true};
  const int drip = connect_raw(f.server.port());
  std::thread dripper([&] {
    (void)send(drip, "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
    while (dripping) {
      (void)send(drip, "X", 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int calls_before = status_calls.load();

  const auto t0 = Steady::now();
  f.server.stop();
  const auto took = Steady::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_FALSE(f.server.running());
  // The listening socket is closed: a new connection is refused.
  EXPECT_THROW(request("GET", "http://127.0.0.1:" + std::to_string(f.server.port()) + "/status"),
               std::runtime_error);
  EXPECT_EQ(status_calls.load(), calls_before) << "no callback after stop()";

  // The connections were closed by the server, not abandoned to their timeouts.
  for (int fd : {silent, partial, headers, drip}) {
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto t1 = Steady::now();
    char b[256];
    while (recv(fd, b, sizeof b, 0) > 0) {
    }
    EXPECT_LT(Steady::now() - t1, std::chrono::milliseconds(1500)) << "fd " << fd;
  }

  dripping = false;
  dripper.join();
  for (int fd : {silent, partial, headers, kept, drip}) close(fd);
}

TEST(StatusServer, StopIsIdempotentAndStartOnlyOnce) {
  Fixture f;
  f.server.stop();  // before start: nothing to do
  f.server.start();
  EXPECT_THROW(f.server.start(), std::logic_error);
  f.server.stop();
  f.server.stop();
  EXPECT_THROW(f.server.start(), std::logic_error);
}

TEST(StatusServer, APortInUseIsAClearError) {
  Fixture a;
  a.server.start("127.0.0.1", 0);
  Fixture b;
  try {
    b.server.start("127.0.0.1", a.server.port());
    FAIL() << "bound a port in use";
  } catch (const StatusServerError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(a.server.port())), std::string::npos);
  }
  EXPECT_THROW(Fixture().server.start("127.0.0.1", 70000), StatusServerError);
}

TEST(StatusServer, ConcurrentIncrementsWhileScrapedSumExactly) {
  Fixture f;
  f.server.start("127.0.0.1", 0);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<CascadeMetrics::Stage> stages;
  for (int t = 0; t < kThreads; ++t)
    stages.push_back(f.metrics.stage(t % 2 ? "sales" : "employees"));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        stages[t].messages.inc();
        stages[t].request(i % 7 ? 200 : 0).inc();
        stages[t].limiter_wait_seconds.inc(0.25);
        stages[t].message_duration_seconds.observe((i % 100) * 0.01);
      }
    });
  }
  go = true;
  // Every scrape taken mid-flight must parse strictly (+Inf == _count in each histogram).
  for (int i = 0; i < 5; ++i) parse_prometheus(get(url(f.server, "/metrics")).body);
  for (auto& t : threads) t.join();
  const auto families = parse_prometheus(get(url(f.server, "/metrics")).body);
  const double per_stage = 2.0 * kPerThread;
  for (const char* stage : {"sales", "employees"}) {
    EXPECT_EQ(prom_value(families, "cascade_messages_total", {{"stage", stage}}), per_stage);
    EXPECT_EQ(prom_value(families, "cascade_requests_total", {{"stage", stage}, {"class", "2xx"}}) +
                  prom_value(families, "cascade_requests_total",
                             {{"stage", stage}, {"class", "transport"}}),
              per_stage);
    EXPECT_EQ(prom_value(families, "cascade_limiter_wait_seconds_total", {{"stage", stage}}),
              per_stage * 0.25);
    EXPECT_EQ(prom_value(families, "cascade_message_duration_seconds_count", {{"stage", stage}}),
              per_stage);
  }
}

}  // namespace
}  // namespace cascade::observe
