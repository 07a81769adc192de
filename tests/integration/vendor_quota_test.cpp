// The vendor's own quota pauses a sync, never fails it: a 429 or 503 that asks for a wait longer
// than quota.max_wait (Retry-After, or RateLimit-Reset with nothing remaining) ends the run with
// exit 3 within seconds, the messages stay queued without a receive counted against them however
// many runs meet the block, and the first run after the vendor recovers completes the warehouse.
// In a Lambda, whose messages SQS delivers and counts, a refused message is sent to its queue
// again, delayed as the vendor asked, and its delivery is not reported failed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "sim/http_server.h"
#include "support/cascade.h"
#include "support/runtime_api.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;
using Steady = std::chrono::steady_clock;

namespace {

// Two item groups of three items each; every item has two sales.
constexpr int kItems = 6;
constexpr int kSalesRows = 2 * kItems;

// How /sales answers while the vendor blocks; a 200 carries the sales all the same.
struct Block {
  int status = 429;
  std::vector<std::pair<std::string, std::string>> headers;
};

// A vendor whose /sales endpoint blocks until told otherwise; /items always answers.
class Vendor {
 public:
  explicit Vendor(Block block)
      : block_(std::move(block)),
        server_([this](const sim::HttpRequest& req, sim::HttpResponse& res) { serve(req, res); }) {}

  std::string url() const { return server_.url(); }
  void recover() { blocked_ = false; }
  // Lets the next `n` /sales requests be blocked, then answers normally.
  void block_next(int n) {
    budget_ = n;
    blocked_ = true;
  }
  int sales_requests() const { return sales_requests_.load(); }
  // Waits until /sales has been answered at least once; false after `timeout`.
  bool wait_for_sales(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return sales_requests_.load() > 0; });
  }

 private:
  void serve(const sim::HttpRequest& req, sim::HttpResponse& res) {
    if (req.path == "/items") {
      const std::string* g = req.param("group");
      int first = g && *g == "b" ? 4 : 1;
      res.body = "{\"result\":[";
      for (int i = first; i < first + 3; ++i)
        res.body += (i > first ? "," : "") + std::string("{\"id\":") + std::to_string(i) + "}";
      res.body += "]}";
      return;
    }
    if (req.path != "/sales") {
      res.status = 404;
      return;
    }
    const std::string* item = req.param("item_id");
    bool block = blocked_.load() && budget_.fetch_sub(1) > 0;
    int id = item ? std::stoi(*item) : 0;
    res.body = "{\"result\":[{\"id\":" + std::to_string(id * 10 + 1) +
               "},{\"id\":" + std::to_string(id * 10 + 2) + "}]}";
    if (block) {
      res.status = block_.status;
      res.headers = block_.headers;
      if (res.status != 200) res.body = R"({"error":"quota"})";
    }
    {
      std::lock_guard lock(mu_);
      ++sales_requests_;
    }
    cv_.notify_all();
  }

  Block block_;
  std::atomic<bool> blocked_{true};
  std::atomic<int> budget_{1 << 30};  // blocked answers left
  std::atomic<int> sales_requests_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  CannedServer server_;
};

// A pipeline with no quota of its own unless `quota` declares one.
std::string write_pipeline(const std::string& dir, const std::string& url, const std::string& db,
                           int max_receive_count, const std::string& quota = "") {
  std::string path = dir + "/pipeline.yaml";
  std::ofstream(path) << "name: vq\nenv: t\n"
                         "source:\n"
                         "  base_url: "
                      << url << "\n"
                      << (quota.empty() ? "" : "  quota: " + quota + "\n")
                      << "  timeout: 5s\n"
                         "  retry: { attempts: 2, backoff: 1ms..5ms }\n"
                         "storage: sqlite:"
                      << db
                      << "\n"
                         "queues: { visibility_timeout: 10m, max_receive_count: "
                      << max_receive_count
                      << " }\n"
                         "stages:\n"
                         "  items:\n"
                         "    inputs: { group: [a, b] }\n"
                         "    request: GET /items?group={group}\n"
                         "    records: result\n"
                         "    key: { item_id: id }\n"
                         "    emit: { sales: { item_id: \"{record.id}\" } }\n"
                         "  sales:\n"
                         "    request: GET /sales?item_id={item_id}\n"
                         "    records: result\n"
                         "    key: { sale_id: id }\n"
                         "    concurrency: 2\n";
  return path;
}

// Every waiting sales message: (body, receive count), by body. Bodies, not ids: a run that
// re-emits a waiting message coalesces the two, and either may survive.
std::vector<std::pair<std::string, int64_t>> sales_messages(const std::string& db) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& r : query_db(db,
                                "SELECT m.body, m.receive_count FROM cascade_messages m JOIN "
                                "cascade_queues q ON q.id = m.queue WHERE q.name = 'sales-t' "
                                "ORDER BY m.body")
                           .rows)
    out.emplace_back(r[0].as_string(), r[1].as_int());
  return out;
}

int64_t scalar(const std::string& db, const std::string& sql) {
  return query_db(db, sql).rows.at(0).at(0).as_int();
}

// Seconds from now to a summary time ("2024-05-01T12:00:00.000Z").
double seconds_ahead(const std::string& when) {
  std::tm tm{};
  EXPECT_NE(strptime(when.c_str(), "%Y-%m-%dT%H:%M:%S", &tm), nullptr) << when;
  return std::difftime(timegm(&tm), std::time(nullptr));
}

struct Timed {
  RunResult r;
  double seconds;
};

Timed timed_run(const std::vector<std::string>& argv) {
  auto t0 = Steady::now();
  RunResult r = run(argv, {}, std::chrono::seconds(60));
  return {r, std::chrono::duration<double>(Steady::now() - t0).count()};
}

// A blocked vendor, many runs, then recovery: the scenario every long vendor wait must pass.
void expect_block_pauses_every_run(const Block& block) {
  Vendor vendor(block);
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = write_pipeline(dir, vendor.url(), db, /*max_receive_count=*/3);

  Timed first = timed_run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(first.r.exit_code, 3) << first.r.out << first.r.err;
  EXPECT_LT(first.seconds, 15) << "a vendor block of hours ends the run, it does not wait";
  Value s = parse_json(first.r.out);
  EXPECT_FALSE(s.find("completed")->as_bool());
  ASSERT_NE(s.find("quota_exhausted_until"), nullptr) << first.r.out;
  EXPECT_NEAR(seconds_ahead(s.find("quota_exhausted_until")->as_string()), 7200, 120);
  EXPECT_EQ(s.find("quota_exhausted_by")->as_string(), "vendor");
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_GT(vendor.sales_requests(), 0) << "the block came from the vendor's answers";

  auto before = sales_messages(db);
  ASSERT_EQ(static_cast<int>(before.size()), kItems)
      << "every sales message waits: " << first.r.out << first.r.err;
  for (const auto& [body, count] : before) EXPECT_EQ(count, 0) << body;

  // More runs than max_receive_count, each meeting the block again.
  for (int i = 0; i < 12; ++i) {
    Timed again = timed_run({CASCADE_BIN, "sync", pipeline, "--json"});
    ASSERT_EQ(again.r.exit_code, 3) << "run " << i << ": " << again.r.out << again.r.err;
    EXPECT_LT(again.seconds, 15) << "run " << i;
    Value sa = parse_json(again.r.out);
    EXPECT_NEAR(seconds_ahead(sa.find("quota_exhausted_until")->as_string()), 7200, 120);
    EXPECT_EQ(sa.find("total")->find("dead_lettered")->as_int(), 0) << "run " << i;
    EXPECT_EQ(sales_messages(db), before) << "run " << i << ": same messages, no receive counted";
  }
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_dead_letters"), 0);
  RunResult dlq = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"});
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  EXPECT_EQ(parse_json(dlq.out).as_array().size(), 0u);
  RunResult text = run({CASCADE_BIN, "sync", pipeline});
  EXPECT_EQ(text.exit_code, 3);
  EXPECT_NE(text.out.find("the vendor's quota"), std::string::npos) << text.out;

  vendor.recover();
  Timed last = timed_run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(last.r.exit_code, 0) << last.r.out << last.r.err;
  Value sl = parse_json(last.r.out);
  EXPECT_TRUE(sl.find("completed")->as_bool());
  EXPECT_EQ(sl.find("quota_exhausted_until"), nullptr);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sales"), kSalesRows);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM items"), kItems);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_messages"), 0);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_dead_letters"), 0);
}

}  // namespace

TEST(VendorQuota, A429WithAnHoursLongRetryAfterPausesEveryRunAndTheNextRunResumes) {
  expect_block_pauses_every_run({429, {{"Retry-After", "7200"}}});
}

TEST(VendorQuota, A429WithASpentRateLimitWindowPausesEveryRun) {
  expect_block_pauses_every_run({429, {{"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "7200"}}});
}

TEST(VendorQuota, A503WithAnHoursLongRetryAfterPausesEveryRun) {
  expect_block_pauses_every_run({503, {{"Retry-After", "7200"}}});
}

TEST(VendorQuota, ASuccessThatSpendsTheVendorsWindowEndsTheRunWithTheRestQueued) {
  // Every sales answer is a 200 saying it was the last of the vendor's window.
  Vendor vendor({200, {{"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "7200"}}});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = write_pipeline(dir, vendor.url(), db, 3);
  Timed r = timed_run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(r.r.exit_code, 3) << r.r.out << r.r.err;
  EXPECT_LT(r.seconds, 15);
  Value s = parse_json(r.r.out);
  EXPECT_NEAR(seconds_ahead(s.find("quota_exhausted_until")->as_string()), 7200, 120);
  EXPECT_EQ(s.find("quota_exhausted_by")->as_string(), "vendor");
  int64_t done = s.find("stages")->find("sales")->find("messages")->as_int();
  EXPECT_GT(done, 0) << "the answers that spent the window were used";
  EXPECT_LT(done, kItems) << "no request went out after the window was spent";
  auto waiting = sales_messages(db);
  EXPECT_EQ(static_cast<int64_t>(waiting.size()), kItems - done);
  for (const auto& [body, count] : waiting) EXPECT_EQ(count, 0) << body;

  vendor.recover();
  Timed last = timed_run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(last.r.exit_code, 0) << last.r.out << last.r.err;
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sales"), kSalesRows);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_dead_letters"), 0);
}

TEST(VendorQuota, AShortRetryAfterIsWaitedOutWithoutSpendingAReceive) {
  Vendor vendor({429, {{"Retry-After", "1"}}});
  vendor.block_next(4);  // more 429s than one message's tries (2)
  std::string dir = temp_dir(), db = dir + "/t.db";
  // One receive each: a 429 counted against a message would dead-letter it.
  std::string pipeline = write_pipeline(dir, vendor.url(), db, /*max_receive_count=*/1);
  Timed r = timed_run({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_EQ(r.r.exit_code, 0) << r.r.out << r.r.err;
  Value s = parse_json(r.r.out);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_EQ(s.find("quota_exhausted_until"), nullptr);
  EXPECT_EQ(s.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_EQ(s.find("total")->find("throttled")->as_int(), 4);
  EXPECT_EQ(s.find("total")->find("retried")->as_int(), 0) << "a 429 is no failed attempt";
  EXPECT_GE(r.seconds, 1.0) << "the vendor's Retry-After was honoured";
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sales"), kSalesRows);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_dead_letters"), 0);
}

TEST(VendorQuota, SigtermDuringALongVendorWaitEndsTheRunAndKeepsTheMessagesUncounted) {
  // A wait the run would sit out (within max_wait), interrupted by a stop.
  Vendor vendor({429, {{"Retry-After", "200"}}});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = write_pipeline(dir, vendor.url(), db, 3, "{ max_wait: 5m }");
  Subprocess p = Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"});
  ASSERT_TRUE(vendor.wait_for_sales(std::chrono::seconds(30)));
  ASSERT_TRUE(p.running()) << "a wait within max_wait does not end the run";
  auto t0 = Steady::now();
  p.signal(SIGTERM);
  int code = p.wait();
  double seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  EXPECT_EQ(code, 130);
  EXPECT_LT(seconds, 10) << "a stop does not wait for the vendor";
  auto msgs = sales_messages(db);
  EXPECT_EQ(static_cast<int>(msgs.size()), kItems);
  for (const auto& [body, count] : msgs) EXPECT_EQ(count, 0) << body;
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_dead_letters"), 0);
}

// An SQS batch for the sales function (`cascade lambda`) while the vendor refuses for two hours:
// SQS counts every delivery reported failed and dead-letters past max_receive_count, so nothing
// is reported failed. Each message waits in its own queue again, visible when the vendor said.
TEST(VendorQuota, ALambdaBatchTheVendorRefusesGoesBackToItsQueueAndIsNeverReportedFailed) {
  Vendor vendor({429, {{"Retry-After", "7200"}}});
  std::string dir = temp_dir(), db = dir + "/t.db";
  std::string pipeline = write_pipeline(dir, vendor.url(), db, /*max_receive_count=*/2);
  RuntimeApiServer api;
  auto record = [](const std::string& id, const std::string& body) {
    std::string out = R"({"messageId":")" + id + R"(","receiptHandle":"rh-)" + id + R"(","body":)";
    append_json_string(body, out);
    return out + R"(,"attributes":{"ApproximateReceiveCount":"1"},"eventSource":"aws:sqs"})";
  };
  std::string batch = R"({"Records":[)" + record("m-1", R"({"item_id":1})") + "," +
                      record("m-2", R"({"item_id":2})") + "]}";
  // SQS would not deliver them again (their deliveries succeeded); more deliveries than
  // max_receive_count show none of them counts.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(api.push(batch));
  Subprocess fn =
      Subprocess::start({CASCADE_BIN, "lambda"}, {{"AWS_LAMBDA_RUNTIME_API", api.endpoint()},
                                                  {"CASCADE_PIPELINE", pipeline},
                                                  {"CASCADE_STORAGE", "sqlite:" + db},
                                                  {"CASCADE_STAGE", "sales"}});
  for (const auto& id : ids) {
    auto a = api.wait_answer(id, std::chrono::seconds(60));
    ASSERT_TRUE(a) << "no answer to " << id;
    EXPECT_EQ(a->kind, "response") << a->body;
    EXPECT_EQ(a->body, R"({"batchItemFailures":[]})") << id;
  }
  fn.signal(SIGTERM);
  EXPECT_EQ(fn.wait(), 0);
  EXPECT_GT(vendor.sales_requests(), 0) << "the refusals came from the vendor's answers";
  auto waiting = sales_messages(db);
  ASSERT_EQ(waiting.size(), 2u) << "each message waits once (identical waiting bodies coalesce)";
  EXPECT_EQ(waiting[0].first, R"({"item_id":1})");
  EXPECT_EQ(waiting[1].first, R"({"item_id":2})");
  for (const auto& [body, count] : waiting) EXPECT_EQ(count, 0) << body;
  // Visible when the vendor takes requests again, not before.
  for (const auto& r : query_db(db,
                                "SELECT (m.visible_at - m.sent_at) / 1000 FROM cascade_messages m "
                                "JOIN cascade_queues q ON q.id = m.queue WHERE q.name = 'sales-t'")
                           .rows)
    EXPECT_NEAR(static_cast<double>(r[0].as_int()), 7200, 120);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM cascade_dead_letters"), 0);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'sales'"), 0)
      << "no sales were written";
}
