// Fault injection of the real cascade-sim binary, observed by libcurl over real sockets: quota
// 429s and headers, 5xx rates, truncation, resets, hangs, slow responses on the event loop,
// malformed, wrong-shaped, HTML and huge bodies, flags, determinism and the admin endpoint.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "core/json.h"
#include "support/http.h"
#include "support/sim.h"

namespace cascade::testing {
namespace {

const std::vector<std::string> kSmall = {"--seed", "5", "--branches", "3", "--employees-per-branch",
                                         "10"};

std::vector<std::string> flags(std::vector<std::string> extra) {
  std::vector<std::string> f = kSmall;
  f.insert(f.end(), extra.begin(), extra.end());
  return f;
}

struct Reply {
  CURLcode rc = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  curl_off_t content_length = -1;
  double seconds = 0;
  const std::string* header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? nullptr : &it->second;
  }
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->body.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    static_cast<Reply*>(user)->headers[name] = value;
  }
  return size * n;
}

// One GET on a fresh connection, whatever happens; a transport failure is in rc.
Reply fetch(const std::string& url, long timeout_ms = 5000) {
  Reply r;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  const auto t0 = std::chrono::steady_clock::now();
  r.rc = curl_easy_perform(curl.get());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r.content_length);
  return r;
}

bool valid_json(const std::string& s) {
  try {
    parse_json(s);
    return true;
  } catch (const JsonError&) {
    return false;
  }
}

Value stats(SimServer& sim) {
  return parse_json(http_get(sim.url() + "/admin/stats"));
}

TEST(SimFaultServer, QuotaThen429ThenReopens) {
  SimServer sim(flags({"--quota", "5/1s"}));
  const std::string url = sim.url() + "/branches?branch=Scranton";
  for (int i = 0; i < 5; ++i) {
    const Reply r = fetch(url);
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_EQ(*r.header("ratelimit-limit"), "5");
    EXPECT_EQ(*r.header("ratelimit-remaining"), std::to_string(4 - i));
    EXPECT_EQ(*r.header("x-ratelimit-limit"), "5");
    EXPECT_EQ(*r.header("x-ratelimit-remaining"), std::to_string(4 - i));
    ASSERT_NE(r.header("ratelimit-reset"), nullptr);
  }
  const Reply over = fetch(url);
  const auto rejected_at = std::chrono::steady_clock::now();
  ASSERT_EQ(over.status, 429);
  ASSERT_NE(over.header("retry-after"), nullptr);
  const int retry_after = std::stoi(*over.header("retry-after"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 1);  // a 1 s window never asks for more than 1 s
  EXPECT_EQ(*over.header("ratelimit-remaining"), "0");
  EXPECT_EQ(*over.header("ratelimit-reset"), std::to_string(retry_after));
  const long long reset_epoch = std::stoll(*over.header("x-ratelimit-reset"));
  const long long now_epoch = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  EXPECT_NEAR(reset_epoch, now_epoch, 2);
  // Admin and health endpoints are outside the quota, and carry none of its headers.
  const Reply health = fetch(sim.url() + "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.header("ratelimit-limit"), nullptr);
  EXPECT_EQ(fetch(url).status, 429);  // 429s do not reopen or extend anything

  // Poll until the window reopens: it must within Retry-After (plus scheduling slack).
  Reply again;
  int rejected = 2;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    again = fetch(url);
    if (again.status == 429) ++rejected;
  } while (again.status == 429 &&
           std::chrono::steady_clock::now() - rejected_at < std::chrono::seconds(3));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - rejected_at).count();
  ASSERT_EQ(again.status, 200);
  EXPECT_LE(waited, retry_after + 0.5);
  EXPECT_EQ(*again.header("ratelimit-remaining"), "4");  // the 429s did not count
  EXPECT_EQ(stats(sim).find_path("faults.kinds.quota")->find("/branches")->as_int(), rejected);
}

TEST(SimFaultServer, FiveHundredsAtTheConfiguredRateAndCounted) {
  SimServer sim(kSmall);
  sim.set_faults(R"({"5xx":0.3})");
  int errors = 0;
  for (int i = 0; i < 200; ++i) {
    const Reply r = fetch(sim.url() + "/employees?branch_id=1");
    ASSERT_EQ(r.rc, CURLE_OK);
    if (r.status != 200) {
      ++errors;
      EXPECT_TRUE(r.status == 500 || r.status == 502 || r.status == 503) << r.status;
      EXPECT_TRUE(valid_json(r.body));
    }
  }
  EXPECT_NEAR(errors, 60, 30);  // Binomial(200, 0.3): sd 6.5
  EXPECT_EQ(stats(sim).find_path("faults.kinds.5xx")->find("/employees")->as_int(), errors);
}

TEST(SimFaultServer, SameSeedSameFaults) {
  auto statuses = [](const std::string& seed) {
    SimServer sim({"--seed", seed, "--branches", "2", "--fault-5xx", "0.5"});
    std::string seq;
    for (int i = 0; i < 30; ++i)
      seq += std::to_string(fetch(sim.url() + "/employees?branch_id=1").status) + ",";
    return seq;
  };
  const std::string a = statuses("3");
  EXPECT_EQ(a, statuses("3"));
  EXPECT_NE(a, statuses("4"));
}

TEST(SimFaultServer, TruncatedBodyShorterThanContentLength) {
  SimServer sim(flags({"--fault-truncate", "1"}));
  const Reply r = fetch(sim.url() + "/employees?branch_id=1");
  EXPECT_EQ(r.rc, CURLE_PARTIAL_FILE);
  EXPECT_EQ(r.status, 200);
  ASSERT_GT(r.content_length, 0);
  EXPECT_LT(static_cast<curl_off_t>(r.body.size()), r.content_length);
  EXPECT_GT(r.body.size(), 0u);
}

TEST(SimFaultServer, ResetIsATransportError) {
  SimServer sim(flags({"--fault-reset", "1"}));
  for (int i = 0; i < 6; ++i) {  // both variants: before and in the middle of the response
    const Reply r = fetch(sim.url() + "/employees?branch_id=1");
    EXPECT_TRUE(r.rc == CURLE_RECV_ERROR || r.rc == CURLE_GOT_NOTHING) << curl_easy_strerror(r.rc);
    EXPECT_LT(r.seconds, 2.0);  // abrupt, not a timeout
  }
  EXPECT_EQ(stats(sim).find_path("faults.kinds.reset")->find("/employees")->as_int(), 6);
}

TEST(SimFaultServer, HangSeenAsClientTimeoutWhileOthersAreServed) {
  SimServer sim(flags({"--threads", "1"}));
  sim.set_faults(R"({"hang":{"p":1,"path":"/sales"}})");
  const Reply hung = fetch(sim.url() + "/sales?employee_id=1", 300);
  EXPECT_EQ(hung.rc, CURLE_OPERATION_TIMEDOUT);
  EXPECT_GE(hung.seconds, 0.29);
  // One event loop, and it still serves other paths while a connection hangs.
  std::thread t([&] {
    EXPECT_EQ(fetch(sim.url() + "/sales?employee_id=1", 400).rc, CURLE_OPERATION_TIMEDOUT);
  });
  const Reply other = fetch(sim.url() + "/employees?branch_id=1");
  EXPECT_EQ(other.status, 200);
  t.join();
}

TEST(SimFaultServer, SlowDoesNotBlockTheEventLoop) {
  SimServer sim(flags(
      {"--threads", "1", "--fault-slow", "1", "--slow-ms", "400..400", "--fault-path", "/sales"}));
  Reply slow;
  std::thread t([&] { slow = fetch(sim.url() + "/sales?employee_id=1"); });
  // Wait until the slow request is in (its counter shows in the stats), then time a fast one.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!stats(sim).find_path("faults.kinds.slow") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const Reply fast = fetch(sim.url() + "/employees?branch_id=1");
  t.join();
  EXPECT_EQ(fast.status, 200);
  EXPECT_LT(fast.seconds, 0.2);
  EXPECT_EQ(slow.status, 200);
  EXPECT_GE(slow.seconds, 0.39);
  EXPECT_TRUE(valid_json(slow.body));
}

TEST(SimFaultServer, MalformedOnlyOnItsPath) {
  SimServer sim(flags({"--fault-malformed", "1", "--fault-path", "/employees"}));
  for (int i = 0; i < 4; ++i) {
    const Reply bad = fetch(sim.url() + "/employees?branch_id=1");
    EXPECT_EQ(bad.status, 200);
    EXPECT_FALSE(valid_json(bad.body)) << bad.body;
  }
  const Reply good = fetch(sim.url() + "/branches?branch=Akron");
  EXPECT_TRUE(valid_json(good.body));
  // The ground truth is never faulted.
  EXPECT_EQ(sim.truth().find("branches")->as_array().size(), 3u);
}

TEST(SimFaultServer, EachWrongShapeVariant) {
  SimServer sim(kSmall);
  const std::string url = sim.url() + "/employees?branch_id=1";
  auto shaped = [&](const char* variant) {
    sim.set_faults(std::string(R"({"wrong_shape":{"p":1,"variant":")") + variant + "\"}}");
    const Reply r = fetch(url);
    EXPECT_EQ(r.status, 200);
    return parse_json(r.body);  // valid JSON, always
  };
  Value v = shaped("id_string");
  EXPECT_TRUE(v.find_path("result.employees")->as_array().at(0).find("id")->is_string());
  v = shaped("result_missing");
  EXPECT_EQ(v.find("result"), nullptr);
  v = shaped("null_list");
  EXPECT_TRUE(v.find_path("result.employees")->is_null());
  v = shaped("number_record");
  EXPECT_TRUE(v.find_path("result.employees")->as_array().at(0).is_int());
}

TEST(SimFaultServer, HtmlErrorPage) {
  SimServer sim(flags({"--fault-html", "1"}));
  const Reply r = fetch(sim.url() + "/branches?branch=Scranton");
  EXPECT_TRUE(r.status == 502 || r.status == 503) << r.status;
  EXPECT_EQ(r.header("content-type")->rfind("text/html", 0), 0u);
  EXPECT_NE(r.body.find("<html>"), std::string::npos);
  EXPECT_FALSE(valid_json(r.body));
}

TEST(SimFaultServer, HugeStaysValid) {
  SimServer sim(kSmall);
  sim.set_faults(R"({"huge":{"p":1,"mb":4}})");
  const Reply r = fetch(sim.url() + "/employees?branch_id=1");
  ASSERT_EQ(r.rc, CURLE_OK);
  EXPECT_GE(r.body.size(), 4u * 1024 * 1024);
  const Value v = parse_json(r.body);
  EXPECT_EQ(v.find_path("result.employees")->as_array().size(), 10u);
}

TEST(SimFaultServer, AdminShowsReplacesAndClears) {
  SimServer sim(flags({"--faults", R"({"5xx":{"p":1,"path":"/branches"}})"}));
  Value plan = parse_json(http_get(sim.url() + "/admin/faults"));
  EXPECT_DOUBLE_EQ(plan.find_path("5xx.p")->as_number(), 1.0);
  EXPECT_EQ(plan.find_path("5xx.path")->as_string(), "/branches");
  EXPECT_GE(fetch(sim.url() + "/branches?branch=Scranton").status, 500);

  long status = 0;
  const std::string err = http_post(sim.url() + "/admin/faults", R"({"5xx":2})", &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(err.find("5xx.p"), std::string::npos);
  EXPECT_GE(fetch(sim.url() + "/branches?branch=Scranton").status, 500);  // unchanged

  sim.clear_faults();
  plan = parse_json(http_get(sim.url() + "/admin/faults"));
  EXPECT_EQ(plan.find("5xx"), nullptr);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fetch(sim.url() + "/branches?branch=Scranton").status, 200);
}

TEST(SimFaultServer, BadFlagsFailAtStart) {
  const RunResult r =
      run({CASCADE_SIM_BIN, "--port", "0", "--quota", "10/2d"}, {}, std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("window"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cascade::testing
