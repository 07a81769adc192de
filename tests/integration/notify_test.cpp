// Notifier against real receivers: an HTTP server on 127.0.0.1 for webhooks (in order, the
// payload's shape, retries, a receiver that hangs) and real /bin/sh commands.
#include "observe/notify.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>

#include "core/json.h"
#include "sim/http_server.h"

using namespace cascade;

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

struct Received {
  std::string method;
  std::string path;
  Value body;
};

// A webhook receiver on an ephemeral port of 127.0.0.1. `answer` decides each response from the
// number of requests before it; every request is recorded, waited for with a deadline.
class Receiver {
 public:
  using Answer = std::function<void(size_t index, sim::HttpResponse&)>;

  explicit Receiver(Answer answer = {})
      : answer_(std::move(answer)),
        server_([this](const sim::HttpRequest& req, sim::HttpResponse& res) { handle(req, res); },
                2) {
    port_ = server_.listen("127.0.0.1", 0);
    server_.start();
  }
  ~Receiver() {
    server_.stop();
    server_.wait();
  }

  // The path carries the secret part of the URL, as Slack's /services/T…/B…/XXXX does.
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/services/T01/B02/s3cr3tT0k3n";
  }
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Waits until `n` requests have arrived or `timeout` passed; returns what arrived.
  std::vector<Received> wait_for(size_t n, milliseconds timeout = milliseconds(10'000)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return got_.size() >= n; });
    return got_;
  }

 private:
  void handle(const sim::HttpRequest& req, sim::HttpResponse& res) {
    size_t index;
    {
      std::lock_guard lock(mu_);
      Value body;
      try {
        body = parse_json(req.body);
      } catch (const JsonError&) {
        body = Value("(not JSON) " + req.body);
      }
      index = got_.size();
      got_.push_back(Received{req.method, req.path, std::move(body)});
      cv_.notify_all();
    }
    res.content_type = "text/plain";
    res.body = "ok";
    if (answer_) answer_(index, res);
  }

  Answer answer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> got_;
  sim::HttpServer server_;
  int port_ = 0;
};

// Routes spdlog to a string for the duration of a test.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  // Read once the notifier's thread has stopped writing (after stop() or wait_idle()).
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

AlarmChange change(std::string alarm, std::string stage, AlarmState from, AlarmState to,
                   int64_t ms) {
  return AlarmChange{alarm,
                     "errors",
                     std::move(stage),
                     "Sum of errors >= 1 for 1 of 1 periods of 5m",
                     from,
                     to,
                     "Threshold Crossed: 1 out of the last 1 datapoint [3] was greater than or "
                     "equal to the threshold (1) <a&b>",
                     from_millis(ms)};
}

NotifySpec webhook(const std::string& url) {
  return NotifySpec{"webhook", url, "", {}};
}

NotifierOptions fast_retries() {
  NotifierOptions o;
  o.pipeline = "dunder-mifflin";
  o.backoff_initial = milliseconds(10);
  o.backoff_max = milliseconds(40);
  return o;
}

std::string alarm_of(const Received& r) {
  return r.body.find("alarm")->find("alarm")->as_string();
}

}  // namespace

TEST(Notify, WebhookDeliversEveryChangeInOrderAsSlackJson) {
  Receiver receiver;
  LogCapture logs;
  Notifier notifier({webhook(receiver.url())}, fast_retries());
  const std::vector<AlarmChange> changes = {
      change("errors", "sales", AlarmState::InsufficientData, AlarmState::Ok, 1'700'000'000'000),
      change("errors", "sales", AlarmState::Ok, AlarmState::Alarm, 1'700'000'300'000),
      change("throttles", "", AlarmState::InsufficientData, AlarmState::Alarm, 1'700'000'300'001),
      change("errors", "sales", AlarmState::Alarm, AlarmState::Ok, 1'700'000'600'000),
      change("backlog", "branches", AlarmState::Ok, AlarmState::InsufficientData,
             1'700'000'900'000),
  };
  for (const AlarmChange& c : changes) notifier.notify(c);
  std::vector<Received> got = receiver.wait_for(changes.size());
  ASSERT_EQ(got.size(), changes.size());
  ASSERT_TRUE(notifier.wait_idle(seconds(10)));
  for (size_t i = 0; i < changes.size(); ++i) {
    SCOPED_TRACE("change " + std::to_string(i));
    const AlarmChange& c = changes[i];
    const Received& r = got[i];
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/services/T01/B02/s3cr3tT0k3n");
    ASSERT_TRUE(r.body.is_object()) << r.body.to_text();
    const std::string from(alarm_state_name(c.from)), to(alarm_state_name(c.to));
    // Slack: `text`, and `blocks` with one mrkdwn section; &, < and > escaped.
    const Value* text = r.body.find("text");
    ASSERT_TRUE(text && text->is_string());
    EXPECT_NE(text->as_string().find("Alarm " + c.alarm), std::string::npos) << text->as_string();
    EXPECT_NE(text->as_string().find(from + " → " + to), std::string::npos);
    EXPECT_NE(text->as_string().find("[dunder-mifflin]"), std::string::npos);
    const Value* blocks = r.body.find("blocks");
    ASSERT_TRUE(blocks && blocks->is_array());
    ASSERT_EQ(blocks->as_array().size(), 1u);
    const Value& section = blocks->as_array()[0];
    EXPECT_EQ(section.find("type")->as_string(), "section");
    EXPECT_EQ(section.find_path("text.type")->as_string(), "mrkdwn");
    const std::string md = section.find_path("text.text")->as_string();
    EXPECT_NE(md.find("*[dunder-mifflin] Alarm " + c.alarm + "*"), std::string::npos) << md;
    EXPECT_NE(md.find(c.stage.empty() ? "the pipeline" : "stage `" + c.stage + "`"),
              std::string::npos)
        << md;
    EXPECT_NE(md.find("*" + from + "* → *" + to + "*"), std::string::npos) << md;
    EXPECT_NE(md.find("the threshold (1) &lt;a&amp;b&gt;"), std::string::npos) << md;
    EXPECT_NE(md.find(format_time(c.time)), std::string::npos) << md;
    // The change itself, for receivers that are not Slack.
    const Value* alarm = r.body.find("alarm");
    ASSERT_TRUE(alarm && alarm->is_object());
    EXPECT_EQ(alarm->find("alarm")->as_string(), c.alarm);
    EXPECT_EQ(alarm->find("from")->as_string(), from);
    EXPECT_EQ(alarm->find("to")->as_string(), to);
    EXPECT_EQ(alarm->find("reason")->as_string(), c.reason);
    EXPECT_EQ(alarm->find("timestamp_ms")->as_int(), to_millis(c.time));
    if (c.stage.empty())
      EXPECT_TRUE(alarm->find("stage")->is_null());
    else
      EXPECT_EQ(alarm->find("stage")->as_string(), c.stage);
  }
  notifier.stop();
  NotifierStats s = notifier.stats();
  EXPECT_EQ(s.queued, 5u);
  EXPECT_EQ(s.delivered, 5u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(receiver.wait_for(6, milliseconds(0)).size(), 5u);  // nothing twice
  EXPECT_EQ(logs.text().find("s3cr3t"), std::string::npos) << logs.text();
}

TEST(Notify, WebhookRetriesServerErrorsInOrder) {
  // The first change meets 500 twice, then 200; the second must come only after it.
  Receiver receiver([](size_t i, sim::HttpResponse& res) {
    if (i < 2) res.status = 500;
  });
  LogCapture logs;
  Notifier notifier({webhook(receiver.url())}, fast_retries());
  notifier.notify(change("first", "sales", AlarmState::Ok, AlarmState::Alarm, 1000));
  notifier.notify(change("second", "sales", AlarmState::Alarm, AlarmState::Ok, 2000));
  std::vector<Received> got = receiver.wait_for(4);
  ASSERT_EQ(got.size(), 4u);
  ASSERT_TRUE(notifier.wait_idle(seconds(10)));
  EXPECT_EQ(alarm_of(got[0]), "first");
  EXPECT_EQ(alarm_of(got[1]), "first");
  EXPECT_EQ(alarm_of(got[2]), "first");
  EXPECT_EQ(alarm_of(got[3]), "second");
  EXPECT_EQ(got[0].body, got[2].body);  // the same payload, resent
  notifier.stop();
  EXPECT_EQ(notifier.stats().delivered, 2u);
  EXPECT_EQ(notifier.stats().failed, 0u);
  EXPECT_EQ(receiver.wait_for(5, milliseconds(0)).size(), 4u);
  // Each retry is logged with the receiver's origin only: never the secret path.
  const std::string log = logs.text();
  EXPECT_NE(log.find("webhook " + receiver.origin() +
                     ": attempt 1/5 for alarm 'first' (stage "
                     "sales) failed: HTTP 500; retrying in 10ms"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("attempt 2/5"), std::string::npos) << log;
  EXPECT_EQ(log.find("attempt 3/5"), std::string::npos) << log;
  EXPECT_EQ(log.find("/services"), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cr3t"), std::string::npos) << log;
}

TEST(Notify, WebhookGivesUpAfterItsAttemptsAndOnClientErrors) {
  Receiver receiver([](size_t i, sim::HttpResponse& res) {
    if (i < 5) res.status = 503;   // every attempt of the first change
    if (i == 5) res.status = 429;  // the second: throttled once, then accepted
    if (i == 6) res.headers.emplace_back("Retry-After", "0");
    if (i == 6) res.status = 429;
    if (i == 8) res.status = 404;  // the third: not retried
  });
  LogCapture logs;
  Notifier notifier({webhook(receiver.url())}, fast_retries());
  notifier.notify(change("a", "", AlarmState::Ok, AlarmState::Alarm, 1000));
  notifier.notify(change("b", "", AlarmState::Ok, AlarmState::Alarm, 2000));
  notifier.notify(change("c", "", AlarmState::Ok, AlarmState::Alarm, 3000));
  std::vector<Received> got = receiver.wait_for(9);
  ASSERT_TRUE(notifier.wait_idle(seconds(10)));
  ASSERT_EQ(got.size(), 9u);
  const std::vector<std::string> order = {"a", "a", "a", "a", "a", "b", "b", "b", "c"};
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(alarm_of(got[i]), order[i]) << i;
  notifier.stop();
  EXPECT_EQ(receiver.wait_for(10, milliseconds(0)).size(), 9u);
  EXPECT_EQ(notifier.stats().delivered, 1u);
  EXPECT_EQ(notifier.stats().failed, 2u);
  const std::string log = logs.text();
  EXPECT_NE(log.find("alarm 'a' not delivered: HTTP 503 (after 5 attempts)"), std::string::npos)
      << log;
  EXPECT_NE(log.find("alarm 'c' not delivered: HTTP 404"), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cr3t"), std::string::npos) << log;
}

TEST(Notify, StopReturnsPromptlyWhileAWebhookHangs) {
  Receiver receiver([](size_t, sim::HttpResponse& res) { res.hang = true; });
  LogCapture logs;
  NotifierOptions options;  // the real timeouts: 5 s per attempt, 2 s of grace
  options.queue_capacity = 3;
  auto notifier =
      std::make_unique<Notifier>(std::vector<NotifySpec>{webhook(receiver.url())}, options);
  notifier->notify(change("stuck", "", AlarmState::Ok, AlarmState::Alarm, 1000));
  ASSERT_EQ(receiver.wait_for(1).size(), 1u);  // in flight, and hanging
  // The caller is never held up: a full queue drops its oldest change instead.
  const auto before = Steady::now();
  for (int i = 0; i < 9; ++i)
    notifier->notify(change("more" + std::to_string(i), "", AlarmState::Ok, AlarmState::Alarm, i));
  EXPECT_LT(Steady::now() - before, milliseconds(500));
  EXPECT_EQ(notifier->stats().dropped, 6u);
  EXPECT_EQ(notifier->stats().queued, 10u);

  const auto stop_start = Steady::now();
  notifier->stop();
  const auto took = Steady::now() - stop_start;
  EXPECT_LT(took, seconds(5));
  // The three still queued and the one in flight are dropped too.
  EXPECT_EQ(notifier->stats().dropped, 10u);
  EXPECT_EQ(notifier->stats().delivered, 0u);
  notifier.reset();
  const std::string log = logs.text();
  EXPECT_NE(log.find("notifier queue full (3 changes): dropped the oldest, alarm 'more0'"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("s3cr3t"), std::string::npos) << log;
}

class NotifyCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cascade-notify-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  static std::string read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string dir_;
};

TEST_F(NotifyCommand, WritesTheChangeAsJsonOnStdin) {
  LogCapture logs;
  const std::string out = path("alarm.json");
  Notifier notifier({NotifySpec{"command", "", "cat > '" + out + "'", {}}}, fast_retries());
  AlarmChange c = change("errors", "sales", AlarmState::Ok, AlarmState::Alarm, 1'700'000'000'123);
  notifier.notify(c);
  ASSERT_TRUE(notifier.wait_idle(seconds(10)));
  EXPECT_EQ(notifier.stats().delivered, 1u);
  const std::string text = read(out);
  EXPECT_EQ(text, c.to_json() + "\n");
  Value v = parse_json(text);
  EXPECT_EQ(v.find("alarm")->as_string(), "errors");
  EXPECT_EQ(v.find("metric")->as_string(), "errors");
  EXPECT_EQ(v.find("stage")->as_string(), "sales");
  EXPECT_EQ(v.find("from")->as_string(), "OK");
  EXPECT_EQ(v.find("to")->as_string(), "ALARM");
  EXPECT_EQ(v.find("reason")->as_string(), c.reason);
  EXPECT_EQ(v.find("condition")->as_string(), c.condition);
  EXPECT_EQ(v.find("time")->as_string(), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(v.find("timestamp_ms")->as_int(), 1'700'000'000'123);
}

TEST_F(NotifyCommand, FailuresAndHangsAreReportedAndBounded) {
  LogCapture logs;
  NotifierOptions options = fast_retries();
  options.command_timeout = milliseconds(300);
  const std::string marker = path("after");
  // In order: a command that fails with output, one that never ends (its own child too), one
  // that exits without reading its input, and one that works.
  std::vector<NotifySpec> sinks = {
      {"command", "", "echo 'no route to pager' >&2; exit 3", {}},
      {"command", "", "sleep 30 & sleep 30", {}},
      {"command", "", "exit 0", {}},
      {"command", "", "cat > /dev/null && touch '" + marker + "'", {}},
  };
  Notifier notifier(sinks, options);
  const auto start = Steady::now();
  notifier.notify(change("errors", "", AlarmState::Ok, AlarmState::Alarm, 1000));
  ASSERT_TRUE(notifier.wait_idle(seconds(10)));
  EXPECT_LT(Steady::now() - start, seconds(5));
  EXPECT_EQ(notifier.stats().failed, 2u);
  EXPECT_EQ(notifier.stats().delivered, 2u);
  EXPECT_TRUE(std::filesystem::exists(marker));
  notifier.stop();
  const std::string log = logs.text();
  EXPECT_NE(log.find("notify command for alarm 'errors': exit status 3; output: no route to pager"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("notify command for alarm 'errors': killed after 300ms"), std::string::npos)
      << log;
}

TEST(Notify, LogSinkWritesTheChange) {
  LogCapture logs;
  Notifier notifier({NotifySpec{"log", "", "", {}}, webhook("")}, fast_retries());
  notifier.notify(change("errors", "sales", AlarmState::Ok, AlarmState::Alarm, 1000));
  notifier.notify(change("errors", "sales", AlarmState::Alarm, AlarmState::Ok, 2000));
  ASSERT_TRUE(notifier.wait_idle(seconds(10)));
  notifier.stop();
  EXPECT_EQ(notifier.stats().delivered, 2u);  // the webhook without a url is disabled
  const std::string log = logs.text();
  EXPECT_NE(log.find("[warning] alarm {\"alarm\":\"errors\",\"metric\":\"errors\",\"stage\":"
                     "\"sales\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("[info] alarm {\"alarm\":\"errors\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"from\":\"ALARM\",\"to\":\"OK\""), std::string::npos) << log;
}

TEST(Notify, RedactUrlKeepsOnlySchemeAndHost) {
  EXPECT_EQ(redact_url("https://hooks.slack.com/services/T0/B0/XYZ"), "https://hooks.slack.com");
  EXPECT_EQ(redact_url("http://user:pw@127.0.0.1:8080/x?token=1"), "http://127.0.0.1:8080");
  EXPECT_EQ(redact_url("https://h?k=v"), "https://h");
  EXPECT_EQ(redact_url("hooks.slack.com/x"), "(invalid URL)");
}
