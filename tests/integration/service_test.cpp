// `cascade run` as an owner watches it: /metrics parses and agrees with the warehouse, /status
// describes the cascade, /healthz answers, and a dead letter drives an alarm OK -> ALARM -> OK
// whose changes reach a webhook, exactly and in order. The real binary, a canned vendor and a
// webhook receiver on real sockets.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/prometheus.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

struct Webhook {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Value> received;
  CannedServer server{[this](const sim::HttpRequest& req, sim::HttpResponse& res) {
    std::lock_guard lock(mu);
    received.push_back(parse_json(req.body));
    cv.notify_all();
    res.body = "ok";
  }};
  bool wait_for(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return received.size() >= n; });
  }
};

}  // namespace

TEST(Service, MetricsAgreeWithTheWarehouseAndADeadLetterRaisesAnAlarmThatReachesTheWebhook) {
  std::string dir = temp_dir();
  std::string db = dir + "/items.db";
  std::string pipeline = dir + "/items.yaml";
  CannedServer vendor([](const sim::HttpRequest& req, sim::HttpResponse& res) {
    const std::string* x = req.param("x");
    if (x && *x == "2") {
      res.status = 404;
      res.body = R"({"error":"no such item"})";
      return;
    }
    res.body = R"({"result":[{"id":)" + (x ? *x : std::string("0")) + R"(,"v":"a"}]})";
  });
  Webhook hook;
  std::ofstream(pipeline) << "name: items\n"
                             "source:\n"
                             "  base_url: "
                          << vendor.url()
                          << "\n"
                             "  retry: { attempts: 1, backoff: 1ms..2ms }\n"
                             "storage: sqlite:"
                          << db
                          << "\n"
                             "stages:\n"
                             "  items:\n"
                             "    schedule: rate(1 hour)\n"
                             "    inputs: { x: [1, 2, 3] }\n"
                             "    request: GET /items?x={x}\n"
                             "    records: result\n"
                             "    key: { item_id: id }\n"
                             "alarms:\n"
                             "  - { name: dlq, metric: dlq_depth, statistic: Maximum, threshold: "
                             "\">= 1\", period: 1s, treat_missing_data: ignore }\n"
                             "notify:\n"
                             "  - { type: webhook, url: \""
                          << hook.server.url() << "/hook\" }\n";

  Subprocess p = Subprocess::start(
      {CASCADE_BIN, "run", pipeline, "--listen", "127.0.0.1:0", "--poll", "200ms"});
  std::string base;
  for (int i = 0; i < 5 && base.empty(); ++i) {
    std::string line = p.read_line(std::chrono::seconds(30));
    if (line.rfind("listening on ", 0) == 0) base = line.substr(13);
  }
  ASSERT_FALSE(base.empty()) << "no listening line";
  ASSERT_EQ(base.back(), '/');

  // The dead letter turns the alarm to ALARM, and the webhook hears it.
  ASSERT_TRUE(hook.wait_for(1)) << "no notification";
  {
    std::lock_guard lock(hook.mu);
    const Value& first = hook.received[0];
    ASSERT_NE(first.find("alarm"), nullptr) << to_json(first);
    EXPECT_EQ(first.find("alarm")->find("alarm")->as_string(), "dlq");
    EXPECT_EQ(first.find("alarm")->find("to")->as_string(), "ALARM");
    EXPECT_NE(first.find("text"), nullptr);
    EXPECT_NE(first.find("blocks"), nullptr);
  }

  // /metrics parses strictly and agrees with the warehouse.
  long status = 0;
  std::string metrics = http_get(base + "metrics", &status);
  ASSERT_EQ(status, 200);
  auto families = parse_prometheus(metrics);
  auto rows = query_db(db, "SELECT count(*) FROM items").rows[0][0].as_int();
  EXPECT_EQ(rows, 2);
  EXPECT_EQ(prom_value(families, "cascade_records_total", {{"stage", "items"}, {"kind", "new"}}),
            static_cast<double>(rows));
  EXPECT_EQ(prom_value(families, "cascade_requests_total", {{"stage", "items"}, {"class", "2xx"}}),
            2.0);
  EXPECT_EQ(prom_value(families, "cascade_requests_total", {{"stage", "items"}, {"class", "4xx"}}),
            1.0);
  EXPECT_EQ(prom_value(families, "cascade_dlq_depth", {{"stage", "items"}}), 1.0);
  EXPECT_EQ(prom_value(families, "cascade_messages_total", {{"stage", "items"}}), 2.0);
  EXPECT_EQ(prom_value(families, "cascade_run_duration_seconds_count", {{"stage", "items"}}), 1.0);

  // /status describes the cascade; /healthz is healthy.
  std::string status_text = http_get(base + "status", &status);
  ASSERT_EQ(status, 200);
  Value st = parse_json(status_text);
  EXPECT_EQ(st.find("pipeline")->as_string(), "items");
  const Value& stage = st.find("stages")->as_array().at(0);
  EXPECT_EQ(stage.find("name")->as_string(), "items");
  EXPECT_EQ(stage.find("dlq_depth")->as_int(), 1);
  EXPECT_EQ(stage.find("new")->as_int(), 2);
  EXPECT_EQ(st.find("runs")->as_array().size(), 1u);
  EXPECT_EQ(st.find("schedules")->as_array().at(0).find("fired")->as_int(), 1);
  EXPECT_EQ(st.find("alarms")->as_array().at(0).find("state")->as_string(), "ALARM");
  http_get(base + "healthz", &status);
  EXPECT_EQ(status, 200);

  // The owner deals with the dead letter: the alarm returns to OK, and says so once.
  RunResult purge =
      run({CASCADE_BIN, "dlq", "purge", "-p", pipeline}, {}, std::chrono::seconds(30));
  ASSERT_EQ(purge.exit_code, 0) << purge.err;
  ASSERT_TRUE(hook.wait_for(2)) << "no OK notification";
  {
    std::lock_guard lock(hook.mu);
    EXPECT_EQ(hook.received[1].find("alarm")->find("from")->as_string(), "ALARM");
    EXPECT_EQ(hook.received[1].find("alarm")->find("to")->as_string(), "OK");
  }

  auto t0 = std::chrono::steady_clock::now();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(), 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  {
    std::lock_guard lock(hook.mu);
    EXPECT_EQ(hook.received.size(), 2u) << "exactly one ALARM and one OK";
  }

  // The states survive: `cascade alarms` reads them after the daemon is gone.
  RunResult alarms =
      run({CASCADE_BIN, "alarms", "-p", pipeline, "--json"}, {}, std::chrono::seconds(30));
  ASSERT_EQ(alarms.exit_code, 0) << alarms.err;
  Value a = parse_json(alarms.out);
  ASSERT_EQ(a.as_array().size(), 1u);
  EXPECT_EQ(a.as_array()[0].find("state")->as_string(), "OK");
  size_t history = a.as_array()[0].find("history")->as_array().size();
  EXPECT_GE(history, 2u);

  // A restarted daemon resumes the alarm where it was, history and all; nothing is re-sent.
  Subprocess again = Subprocess::start(
      {CASCADE_BIN, "run", pipeline, "--listen", "127.0.0.1:0", "--poll", "200ms"});
  std::string base2;
  for (int i = 0; i < 5 && base2.empty(); ++i) {
    std::string line = again.read_line(std::chrono::seconds(30));
    if (line.rfind("listening on ", 0) == 0) base2 = line.substr(13);
  }
  ASSERT_FALSE(base2.empty());
  Value restored = parse_json(http_get(base2 + "status", &status));
  const Value& alarm = restored.find("alarms")->as_array().at(0);
  EXPECT_EQ(alarm.find("state")->as_string(), "OK");
  EXPECT_EQ(alarm.find("history")->as_array().size(), history);
  again.signal(SIGTERM);
  EXPECT_EQ(again.wait(), 0);
  std::lock_guard lock(hook.mu);
  EXPECT_EQ(hook.received.size(), 2u);
}
