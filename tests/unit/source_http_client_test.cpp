// HttpClient against a real HTTP server on 127.0.0.1 (ephemeral port), real sockets only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "source/http_client.h"

namespace cascade {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

// Debian's httplib.h (0.11.4) is the split build: declarations only, its implementation lives in
// libcpp-httplib.so, which we must not link. So the tests carry this small HTTP/1.1 server: real
// sockets, keep-alive, Content-Length or chunked bodies, one thread per connection.
struct ServerRequest {
  std::string method;
  std::string path;                            // without the query
  std::string param;                           // what follows a prefix route ("/item/" + param)
  std::map<std::string, std::string> headers;  // names lower-cased
  int remote_port = 0;
};

struct ServerResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;
  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
  void set_content(std::string b, std::string type) {
    body = std::move(b);
    set_header("Content-Type", std::move(type));
  }
};

using Wall = std::chrono::system_clock;

struct Hit {
  std::string path;
  int remote_port = 0;
  Wall::time_point at;  // when the kernel received the request's first bytes
  std::map<std::string, std::string> headers;
};

// A real HTTP server on an ephemeral port of 127.0.0.1 that records every request it gets.
class TestServer {
 public:
  using Handler = std::function<void(const ServerRequest&, ServerResponse&)>;

  ~TestServer() { stop(); }

  // `route` ending in '/' matches every path under it; otherwise the exact path.
  void Get(std::string route, Handler h) { routes_.emplace_back(std::move(route), std::move(h)); }

  void start() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd_, 256), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  void stop() {
    release();
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> conns;
    {
      std::lock_guard lock(mu_);
      for (int c : open_) ::shutdown(c, SHUT_RDWR);  // wakes blocked reads
      conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::vector<Hit> hits(const std::string& path = "") const {
    std::lock_guard lock(mu_);
    std::vector<Hit> out;
    for (const auto& h : hits_) {
      if (path.empty() || h.path == path) out.push_back(h);
    }
    return out;
  }
  // Blocks a handler until release() (or 5 s), so "slow" costs no test time.
  void block() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, seconds(5), [this] { return released_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  void accept_loop() {
    for (;;) {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int c = ::accept(fd_, reinterpret_cast<sockaddr*>(&peer), &len);
      if (c < 0) {
        if (errno == EINTR) continue;
        return;  // shut down
      }
      // Kernel receive timestamps: arrival times must not include this server's scheduling delays.
      int one = 1;
      ::setsockopt(c, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
      std::lock_guard lock(mu_);
      open_.insert(c);
      conns_.emplace_back([this, c, port = ntohs(peer.sin_port)] { serve(c, port); });
    }
  }

  static bool send_all(int c, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(c, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  static ssize_t recv_stamped(int c, char* data, size_t size, Wall::time_point* stamp) {
    iovec iov{data, size};
    char ctrl[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    ssize_t n = ::recvmsg(c, &msg, 0);
    *stamp = Wall::now();
    if (n <= 0) return n;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        *stamp = Wall::time_point(std::chrono::duration_cast<Wall::duration>(
            seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
      }
    }
    return n;
  }

  void serve(int c, int remote_port) {
    std::string buf;
    char chunk[4096];
    Wall::time_point arrived{}, stamp{};
    for (bool open = true; open;) {
      size_t end;
      bool fresh = buf.empty();
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = recv_stamped(c, chunk, sizeof chunk, &stamp);
        if (fresh) {
          arrived = stamp;
          fresh = false;
        }
        if (n <= 0) {
          open = false;
          break;
        }
        buf.append(chunk, static_cast<size_t>(n));
      }
      if (!open) break;
      std::istringstream head(buf.substr(0, end));
      buf.erase(0, end + 4);
      ServerRequest req;
      req.remote_port = remote_port;
      std::string target, line;
      head >> req.method >> target;
      std::getline(head, line);
      while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = line.find_first_not_of(' ', colon + 1);
        req.headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      req.path = target.substr(0, target.find('?'));
      {
        std::lock_guard lock(mu_);
        hits_.push_back(Hit{req.path, remote_port, arrived, req.headers});
      }
      ServerResponse res;
      res.status = 404;
      for (const auto& [route, handler] : routes_) {
        bool prefix = route.back() == '/' && req.path.starts_with(route);
        if (prefix || req.path == route) {
          req.param = prefix ? req.path.substr(route.size()) : "";
          res.status = 200;
          handler(req, res);
          break;
        }
      }
      std::string out = "HTTP/1.1 " + std::to_string(res.status) + " X\r\n";
      for (const auto& [n, v] : res.headers) out += n + ": " + v + "\r\n";
      out += res.chunked ? "Transfer-Encoding: chunked\r\n\r\n"
                         : "Content-Length: " + std::to_string(res.body.size()) + "\r\n\r\n";
      if (!res.chunked) {
        out += res.body;
      } else {
        for (size_t off = 0; off < res.body.size(); off += 4096) {
          std::string_view piece = std::string_view(res.body).substr(off, 4096);
          char size[32];
          std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
          out += size;
          out += piece;
          out += "\r\n";
        }
        out += "0\r\n\r\n";
      }
      open = send_all(c, out) && req.headers["connection"] != "close";
    }
    std::lock_guard lock(mu_);
    open_.erase(c);
    ::close(c);
  }

  std::vector<std::pair<std::string, Handler>> routes_;
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::set<int> open_;
  std::vector<std::thread> conns_;
  std::vector<Hit> hits_;
};

HttpRequest get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  return r;
}

HttpResponse fetch(HttpClient& client, HttpRequest req) {
  auto p = std::make_shared<std::promise<HttpResponse>>();
  auto f = p->get_future();
  client.submit(std::move(req), [p](HttpResponse&& r) { p->set_value(std::move(r)); });
  if (f.wait_for(seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "request did not complete";
    return {};
  }
  return f.get();
}

HttpClientOptions fast_retry(int attempts) {
  HttpClientOptions o;
  o.retry = RetryPolicy{.attempts = attempts, .min = milliseconds(5), .max = milliseconds(20)};
  return o;
}

int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // never listened: connecting is refused
  return ntohs(addr.sin_port);
}

template <class Pred>
bool eventually(Pred pred) {
  auto deadline = Steady::now() + seconds(5);
  while (!pred()) {
    if (Steady::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

constexpr const char* kSecret = "Bearer TOPSECRET-4f9a2c";

TEST(SourceHttpClient, GetSendsHeadersAndReceivesBody) {
  TestServer server;
  server.Get("/hello", [&](const ServerRequest&, ServerResponse& res) {
    res.set_header("X-Reply", "  yes ");
    res.set_content(R"({"ok":true})", "application/json");
  });
  server.start();
  HttpClient client(HttpClientOptions{});
  HttpResponse r =
      fetch(client, HttpRequest{.url = server.url("/hello?x=1"),
                                .headers = {{"X-Test", "42"}, {"Authorization", kSecret}}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.body, R"({"ok":true})");
  EXPECT_GE(r.body.capacity(), r.body.size() + kHttpBodyPadding);
  ASSERT_NE(r.header("x-reply"), nullptr);
  EXPECT_EQ(*r.header("x-reply"), "yes");
  ASSERT_NE(r.header("content-type"), nullptr);
  EXPECT_EQ(r.header("X-Reply"), nullptr);  // lookups are by lower-case name
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.throttled, 0);

  auto hits = server.hits("/hello");
  ASSERT_EQ(hits.size(), 1u);
  auto sent = [&](const char* name) {
    auto it = hits[0].headers.find(name);
    return it == hits[0].headers.end() ? std::string("<missing>") : it->second;
  };
  EXPECT_EQ(sent("x-test"), "42");
  EXPECT_EQ(sent("authorization"), kSecret);
  EXPECT_EQ(sent("user-agent"), "cascade/0.1");
  EXPECT_NE(sent("accept-encoding").find("gzip"), std::string::npos);

  auto s = client.stats();
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.bytes, r.body.size());
}

TEST(SourceHttpClient, ManyConcurrentRequestsReuseConnections) {
  TestServer server;
  server.Get("/item/", [&](const ServerRequest& req, ServerResponse& res) {
    res.set_content("item " + req.param, "text/plain");
  });
  server.start();
  HttpClientOptions opt;
  opt.max_connections = 4;
  HttpClient client(opt);
  constexpr int kN = 200;
  std::mutex mu;
  std::vector<HttpResponse> got(kN);
  std::promise<void> all;
  std::atomic<int> left{kN};
  for (int i = 0; i < kN; ++i) {
    client.submit(get(server.url("/item/" + std::to_string(i))), [&, i](HttpResponse&& r) {
      {
        std::lock_guard lock(mu);
        got[i] = std::move(r);
      }
      if (--left == 0) all.set_value();
    });
  }
  ASSERT_EQ(all.get_future().wait_for(seconds(10)), std::future_status::ready);
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(got[i].status, 200) << got[i].error;
    EXPECT_EQ(got[i].body, "item " + std::to_string(i));
  }
  EXPECT_TRUE(eventually([&] { return client.in_flight() == 0; }));
  std::set<int> ports;
  for (const auto& h : server.hits()) ports.insert(h.remote_port);
  EXPECT_EQ(server.hits().size(), static_cast<size_t>(kN));
  EXPECT_GE(ports.size(), 1u);
  EXPECT_LE(ports.size(), 4u) << "connections must be reused and capped at max_connections";
  EXPECT_EQ(client.stats().requests, static_cast<uint64_t>(kN));
}

TEST(SourceHttpClient, ServerErrorIsRetriedThenSucceeds) {
  TestServer server;
  std::atomic<int> calls{0};
  server.Get("/flaky", [&](const ServerRequest&, ServerResponse& res) {
    if (calls++ == 0) {
      res.status = 503;
      res.set_content("busy", "text/plain");
    } else {
      res.set_content("fine", "text/plain");
    }
  });
  server.start();
  HttpClient client(fast_retry(4));
  HttpResponse r = fetch(client, get(server.url("/flaky")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "fine");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(client.stats().retries, 1u);
  EXPECT_EQ(client.stats().requests, 2u);
}

TEST(SourceHttpClient, LastServerErrorIsReturnedWhenAttemptsRunOut) {
  TestServer server;
  server.Get("/down", [&](const ServerRequest&, ServerResponse& res) {
    res.status = 500;
    res.set_content("oops", "text/plain");
  });
  server.start();
  HttpClient client(fast_retry(3));
  HttpResponse r = fetch(client, get(server.url("/down")));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "oops");
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(server.hits("/down").size(), 3u);
}

TEST(SourceHttpClient, ClientErrorsAreNotRetried) {
  TestServer server;
  server.Get("/bad", [&](const ServerRequest&, ServerResponse& res) {
    res.status = 400;
    res.set_content("no", "text/plain");
  });
  server.start();
  HttpClient client(fast_retry(4));
  HttpResponse bad = fetch(client, get(server.url("/bad")));
  HttpResponse missing = fetch(client, get(server.url("/missing")));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.attempts, 1);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.attempts, 1);
  EXPECT_EQ(server.hits("/bad").size(), 1u);
  EXPECT_EQ(client.stats().requests, 2u);
  EXPECT_EQ(client.stats().retries, 0u);
}

TEST(SourceHttpClient, TooManyRequestsHonoursRetryAfterAndPausesLimiter) {
  TestServer server;
  std::atomic<int> calls{0};
  server.Get("/throttle", [&](const ServerRequest&, ServerResponse& res) {
    if (calls++ == 0) {
      res.status = 429;
      res.set_header("Retry-After", "1");
    } else {
      res.set_content("ok", "text/plain");
    }
  });
  server.start();
  RateLimiter limiter(1000, 1000, SystemClock::instance());
  HttpClientOptions opt = fast_retry(3);
  opt.retry.max = seconds(2);  // Retry-After: 1 is within the policy
  opt.limiter = &limiter;
  HttpClient client(opt);
  auto p = std::make_shared<std::promise<HttpResponse>>();
  auto f = p->get_future();
  client.submit(get(server.url("/throttle")),
                [p](HttpResponse&& r) { p->set_value(std::move(r)); });
  ASSERT_TRUE(eventually([&] { return client.stats().throttled >= 1; }));
  // Every other user of the limiter is held back too.
  auto wait = limiter.try_acquire();
  ASSERT_TRUE(wait.has_value());
  EXPECT_GE(*wait - SystemClock::instance().now(), milliseconds(500));

  ASSERT_EQ(f.wait_for(seconds(5)), std::future_status::ready);
  HttpResponse r = f.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.throttled, 1);
  EXPECT_GE(r.elapsed, milliseconds(950));
  auto hits = server.hits("/throttle");
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_GE(hits[1].at - hits[0].at, milliseconds(950));
}

TEST(SourceHttpClient, RetryAfterBeyondPolicyReturnsThe429AndKeepsLimiterPaused) {
  TestServer server;
  server.Get("/later", [&](const ServerRequest&, ServerResponse& res) {
    res.status = 429;
    res.set_header("Retry-After", "30");
  });
  server.start();
  RateLimiter limiter(1000, 1000, SystemClock::instance());
  HttpClientOptions opt = fast_retry(4);  // retry.max = 20ms
  opt.limiter = &limiter;
  HttpClient client(opt);
  HttpResponse r = fetch(client, get(server.url("/later")));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.throttled, 1);
  auto wait = limiter.try_acquire();
  ASSERT_TRUE(wait.has_value());
  EXPECT_GE(*wait - SystemClock::instance().now(), seconds(25));
}

TEST(SourceHttpClient, TheVendorsLongWaitHoldsEveryRequestAndIsReported) {
  TestServer server;
  server.Get("/busy", [&](const ServerRequest&, ServerResponse& res) {
    res.status = 503;
    res.set_header("Retry-After", "7200");
  });
  server.Get("/other", [&](const ServerRequest&, ServerResponse& res) {
    res.set_content("ok", "text/plain");
  });
  server.start();
  HttpClient client(fast_retry(4));  // no limiter: the client itself holds requests back
  EXPECT_FALSE(client.vendor_blocked_until().has_value());
  HttpResponse r = fetch(client, get(server.url("/busy")));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.attempts, 1) << "an hours-long wait is not waited inside the request";
  EXPECT_EQ(r.held_off, 1);
  EXPECT_EQ(r.throttled, 0) << "not a 429";
  auto now = SystemClock::instance().now();
  ASSERT_TRUE(r.retry_at.has_value());
  EXPECT_GE(*r.retry_at - now, std::chrono::seconds(7190));
  auto until = client.vendor_blocked_until();
  ASSERT_TRUE(until.has_value());
  EXPECT_EQ(*until, *r.retry_at);
  // Another endpoint waits too: the vendor's limits are the client's, not one path's.
  auto p = std::make_shared<std::promise<HttpResponse>>();
  auto f = p->get_future();
  client.submit(get(server.url("/other")), [p](HttpResponse&& x) { p->set_value(std::move(x)); });
  EXPECT_EQ(f.wait_for(milliseconds(300)), std::future_status::timeout);
  EXPECT_TRUE(server.hits("/other").empty());
  client.cancel_all();
  ASSERT_EQ(f.wait_for(seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get().error, "cancelled");
}

TEST(SourceHttpClient, A503WithoutAWaitIsAnOrdinaryFailure) {
  TestServer server;
  server.Get("/down", [&](const ServerRequest&, ServerResponse& res) { res.status = 503; });
  server.start();
  HttpClient client(fast_retry(2));
  HttpResponse r = fetch(client, get(server.url("/down")));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.held_off, 0);
  EXPECT_FALSE(r.retry_at.has_value());
  EXPECT_FALSE(client.vendor_blocked_until().has_value());
}

TEST(SourceHttpClient, TransportErrorIsRetriedThenReported) {
  int port = closed_port();
  HttpClient client(fast_retry(3));
  HttpResponse r = fetch(client, HttpRequest{.url = "http://127.0.0.1:" + std::to_string(port) +
                                                    "/nothing?api_key=QUERYSECRET",
                                             .headers = {{"Authorization", kSecret}}});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_NE(r.error.find("http://127.0.0.1:" + std::to_string(port) + "/nothing"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(r.error.find("QUERYSECRET"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("TOPSECRET"), std::string::npos) << r.error;
  auto s = client.stats();
  EXPECT_EQ(s.transport_errors, 3u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.requests, 3u);
}

TEST(SourceHttpClient, SlowServerTimesOutEachTry) {
  TestServer server;
  server.Get("/slow", [&](const ServerRequest&, ServerResponse& res) {
    server.block();
    res.set_content("late", "text/plain");
  });
  server.start();
  HttpClientOptions opt = fast_retry(2);
  opt.timeout = milliseconds(200);
  HttpClient client(opt);
  HttpResponse r = fetch(
      client, HttpRequest{.url = server.url("/slow"), .headers = {{"Authorization", kSecret}}});
  server.release();
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(r.elapsed, milliseconds(400));
  EXPECT_NE(r.error.find("/slow"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("imed out"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("TOPSECRET"), std::string::npos) << r.error;
  EXPECT_EQ(server.hits("/slow").size(), 2u);
}

TEST(SourceHttpClient, BodyLargerThanLimitIsAnErrorNotRetried) {
  TestServer server;
  const std::string big(100'000, 'x');
  server.Get("/big", [&](const ServerRequest&, ServerResponse& res) {
    res.set_content(big, "text/plain");  // with Content-Length
  });
  server.Get("/stream", [&](const ServerRequest&, ServerResponse& res) {
    res.chunked = true;
    res.set_content(big, "text/plain");
  });
  server.start();
  HttpClientOptions opt = fast_retry(3);
  opt.max_body_bytes = 10'000;
  HttpClient client(opt);
  for (const char* path : {"/big", "/stream"}) {
    HttpResponse r = fetch(
        client, HttpRequest{.url = server.url(path), .headers = {{"Authorization", kSecret}}});
    EXPECT_EQ(r.status, 0) << path;
    EXPECT_TRUE(r.body.empty()) << path;
    EXPECT_EQ(r.attempts, 1) << path;
    EXPECT_NE(r.error.find("max_body_bytes"), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find("TOPSECRET"), std::string::npos) << r.error;
    EXPECT_EQ(server.hits(path).size(), 1u) << path;
  }
  // The limit is on size, not a broken client: a small body still works afterwards.
  opt.max_body_bytes = 200'000;
  HttpClient roomy(opt);
  EXPECT_EQ(fetch(roomy, get(server.url("/stream"))).body, big);
}

TEST(SourceHttpClient, PacingKeepsEveryOneSecondWindowWithinRatePlusBurst) {
  TestServer server;
  server.Get("/paced", [&](const ServerRequest&, ServerResponse& res) {
    res.set_content("ok", "text/plain");
  });
  std::atomic<int> warm_arrived{0};
  server.Get("/warm", [&](const ServerRequest&, ServerResponse&) {
    ++warm_arrived;
    EXPECT_TRUE(eventually([&] { return warm_arrived.load() >= 8; }));
  });
  server.start();
  constexpr double kRate = 40, kBurst = 5;
  constexpr int kN = 75;
  RateLimiter limiter(kRate, kBurst, SystemClock::instance());
  HttpClientOptions opt;
  opt.max_connections = 8;
  opt.limiter = &limiter;
  HttpClient client(opt);
  // Open every connection first: a connect costs a round trip the warm ones do not pay, which
  // would bunch arrivals up and blur what the limiter did.
  {
    std::promise<void> warmed;
    std::atomic<int> left{8};
    for (int i = 0; i < 8; ++i) {
      client.submit(get(server.url("/warm")), [&](HttpResponse&&) {
        if (--left == 0) warmed.set_value();
      });
    }
    ASSERT_EQ(warmed.get_future().wait_for(seconds(10)), std::future_status::ready);
  }
  std::promise<void> all;
  std::atomic<int> left{kN}, ok{0};
  for (int i = 0; i < kN; ++i) {
    client.submit(get(server.url("/paced")), [&](HttpResponse&& r) {
      if (r.status == 200) ++ok;
      if (--left == 0) all.set_value();
    });
  }
  ASSERT_EQ(all.get_future().wait_for(seconds(10)), std::future_status::ready);
  EXPECT_EQ(ok.load(), kN);
  auto hits = server.hits("/paced");
  ASSERT_EQ(hits.size(), static_cast<size_t>(kN));
  std::vector<Wall::time_point> at;
  for (const auto& h : hits) at.push_back(h.at);
  std::sort(at.begin(), at.end());
  size_t worst = 0;
  for (size_t i = 0, j = 0; i < at.size(); ++i) {
    while (j < at.size() && at[j] - at[i] < seconds(1)) ++j;
    worst = std::max(worst, j - i);
  }
  EXPECT_LE(worst, static_cast<size_t>(kRate + kBurst));
  // And over the whole run: burst, then no faster than the rate (a bound, not a speed target).
  EXPECT_GE(at.back() - at.front(),
            milliseconds(static_cast<int64_t>((kN - kBurst - 1) / kRate * 1000) - 50));
}

TEST(SourceHttpClient, DestructorCancelsPendingRequestsExactlyOnce) {
  TestServer server;
  server.Get("/one", [&](const ServerRequest&, ServerResponse& res) {
    res.set_content("ok", "text/plain");
  });
  server.start();
  RateLimiter limiter(0.1, 1, SystemClock::instance());  // the second token is 10 s away
  std::mutex mu;
  std::vector<std::string> errors;
  std::atomic<int> calls{0};
  {
    HttpClientOptions opt;
    opt.limiter = &limiter;
    HttpClient client(opt);
    for (int i = 0; i < 3; ++i) {
      client.submit(get(server.url("/one")), [&](HttpResponse&& r) {
        ++calls;
        std::lock_guard lock(mu);
        errors.push_back(r.error);
      });
    }
    EXPECT_TRUE(eventually([&] { return client.in_flight() == 2; }));
  }
  EXPECT_EQ(calls.load(), 3);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(std::count(errors.begin(), errors.end(), "cancelled"), 2);
  EXPECT_EQ(std::count(errors.begin(), errors.end(), ""), 1);
}

TEST(SourceHttpClient, CallbacksMaySubmitFollowUpRequests) {
  TestServer server;
  server.Get("/page/", [&](const ServerRequest& req, ServerResponse& res) {
    res.set_content(req.param, "text/plain");
  });
  server.start();
  HttpClient client(HttpClientOptions{});
  std::promise<int> last;
  std::function<void(HttpResponse &&)> next = [&](HttpResponse&& r) {
    int page = std::stoi(r.body);
    if (page == 5) {
      last.set_value(page);
      return;
    }
    client.submit(get(server.url("/page/" + std::to_string(page + 1))), next);
  };
  client.submit(get(server.url("/page/1")), next);
  auto f = last.get_future();
  ASSERT_EQ(f.wait_for(seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get(), 5);
  EXPECT_EQ(server.hits().size(), 5u);
}

}  // namespace
}  // namespace cascade
