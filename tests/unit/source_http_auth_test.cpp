// HttpClient with credentials, bodies and redirects, against a real server on 127.0.0.1: one
// OAuth2 token shared by concurrent requests and fetched through the limiter, a 401 refreshing
// the token once, refused client credentials failing the waiting requests for good, and the
// method and body a redirect keeps or drops.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

#include "source/http_client.h"
#include "support/cascade.h"

using namespace cascade;
using namespace cascade::testing;
using namespace std::chrono;

namespace {

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

struct Recorder {
  std::mutex mu;
  std::vector<sim::HttpRequest> seen;
  void add(const sim::HttpRequest& r) {
    std::lock_guard lock(mu);
    seen.push_back(r);
  }
  std::vector<sim::HttpRequest> all() {
    std::lock_guard lock(mu);
    return seen;
  }
};

AuthSpec oauth(const std::string& url, const std::string& secret) {
  AuthSpec a;
  a.kind = AuthSpec::Kind::OAuth2ClientCredentials;
  a.access_token_url = url + "/token";
  a.client_id = "cid";
  a.client_secret = secret;
  a.scope = "read";
  return a;
}

HttpClientOptions options(const AuthSpec* auth, RateLimiter* limiter = nullptr) {
  HttpClientOptions o;
  o.retry = RetryPolicy{.attempts = 2, .min = milliseconds(1), .max = milliseconds(5)};
  o.auth = auth;
  o.limiter = limiter;
  return o;
}

}  // namespace

TEST(SourceHttpAuth, ConcurrentRequestsShareOneTokenFetchedThroughTheLimiter) {
  Recorder rec;
  std::atomic<int> issued{0};
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    rec.add(req);
    if (req.path == "/token") {
      ++issued;
      res.body = R"({"access_token":"tok-1","expires_in":3600})";
    } else {
      const std::string* a = req.header("authorization");
      res.status = a && *a == "Bearer tok-1" ? 200 : 401;
      res.body = "{}";
    }
  });
  AuthSpec auth = oauth(server.url(), "s3cret-value");
  RateLimiter limiter(1000, 1000, SystemClock::instance());
  HttpClient client(options(&auth, &limiter));
  std::vector<std::future<HttpResponse>> futures;
  for (int i = 0; i < 20; ++i) {
    auto p = std::make_shared<std::promise<HttpResponse>>();
    futures.push_back(p->get_future());
    HttpRequest q;
    q.url = server.url() + "/data?i=" + std::to_string(i);
    client.submit(std::move(q), [p](HttpResponse&& r) { p->set_value(std::move(r)); });
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(seconds(10)), std::future_status::ready);
    EXPECT_EQ(f.get().status, 200);
  }
  EXPECT_EQ(issued.load(), 1);
  EXPECT_EQ(client.stats().tokens, 1u);
  EXPECT_EQ(client.stats().requests, 21u) << "the token request is a request like any other";
  for (const auto& r : rec.all())
    if (r.path == "/token") {
      EXPECT_EQ(r.method, "POST");
      EXPECT_EQ(r.body, "grant_type=client_credentials&scope=read");
      ASSERT_NE(r.header("authorization"), nullptr);
      EXPECT_EQ(*r.header("authorization"), "Basic " + base64_encode("cid:s3cret-value"));
      EXPECT_EQ(*r.header("content-type"), "application/x-www-form-urlencoded");
    }
}

TEST(SourceHttpAuth, A401FetchesANewTokenAndTriesOnceMore) {
  std::atomic<int> issued{0};
  std::atomic<bool> refuse_all{false};
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    if (req.path == "/token") {
      int n = ++issued;
      res.body = R"({"access_token":"tok-)" + std::to_string(n) + R"("})";
      return;
    }
    const std::string* a = req.header("authorization");
    // Only the second token is good (the first was revoked), unless every token is refused.
    bool ok = !refuse_all && a && *a == "Bearer tok-2";
    res.status = ok ? 200 : 401;
    res.body = ok ? "{}" : R"({"error":"invalid_token"})";
  });
  AuthSpec auth = oauth(server.url(), "s3cret-value");
  HttpClient client(options(&auth));
  HttpRequest q;
  q.url = server.url() + "/data";
  HttpResponse r = fetch(client, q);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(issued.load(), 2);
  // A token refused again is the answer: refreshed once, not in a loop.
  refuse_all = true;
  r = fetch(client, q);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(issued.load(), 3);
}

TEST(SourceHttpAuth, RefusedClientCredentialsFailTheWaitingRequestsForGood) {
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    if (req.path == "/token") {
      res.status = 401;
      res.body = R"({"error":"invalid_client","got":")" + req.body + "\"}";
      return;
    }
    res.body = "{}";
  });
  AuthSpec auth = oauth(server.url(), "s3cret-value");
  auth.client_auth_in_body = true;
  HttpClient client(options(&auth));
  HttpRequest q;
  q.url = server.url() + "/data";
  HttpResponse r = fetch(client, q);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.permanent);
  EXPECT_NE(r.error.find("cannot get an OAuth2 access token from http://127.0.0.1:"),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("HTTP 401"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("s3cret-value"), std::string::npos) << r.error;
}

TEST(SourceHttpAuth, RedirectsKeepOrDropTheMethodAndBodyAsBrowsersDo) {
  Recorder rec;
  CannedServer server([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    rec.add(req);
    if (req.path == "/see-other") {
      res.status = 303;
      res.headers.emplace_back("Location", "/landing");
    } else if (req.path == "/temporary") {
      res.status = 307;
      res.headers.emplace_back("Location", "/landing");
    } else {
      res.body = R"({"method":")" + req.method + "\"}";
    }
  });
  HttpClient client(options(nullptr));
  for (const char* path : {"/see-other", "/temporary"}) {
    HttpRequest q;
    q.method = "POST";
    q.url = server.url() + path;
    q.body = R"({"q":1})";
    q.headers = {{"Content-Type", "application/json"}};
    HttpResponse r = fetch(client, q);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.attempts, 2) << path;
  }
  auto seen = rec.all();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[1].method, "GET");  // 303: a GET without the body
  EXPECT_EQ(seen[1].body, "");
  EXPECT_EQ(seen[3].method, "POST");  // 307: the same request again
  EXPECT_EQ(seen[3].body, R"({"q":1})");
  EXPECT_EQ(client.stats().redirects, 2u);
}
