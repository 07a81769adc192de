// `cascade run`, the long-running mode, driven as a user runs it: the real binary against a
// canned vendor, schedules on the real clock. A rate() schedule fires at first start; a
// restart keeps the next fire time; ticks missed while down fire once; SIGTERM exits 0 within
// seconds; a second daemon on the same database is refused.
#include "engine/daemon.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "config/loader.h"
#include "core/clock.h"
#include "core/json.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "source/http_client.h"
#include "store/store.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

struct Fixture {
  std::string dir = temp_dir();
  std::string db = dir + "/items.db";
  std::string pipeline = dir + "/items.yaml";
  std::atomic<int> requests{0};
  CannedServer server{[this](const sim::HttpRequest& req, sim::HttpResponse& res) {
    ++requests;
    const std::string* x = req.param("x");
    res.body = R"({"result":[{"id":)" + (x ? *x : std::string("0")) + R"(,"v":"a"}]})";
  }};

  Fixture() {
    std::ofstream(pipeline) << "name: items\n"
                               "source:\n"
                               "  base_url: "
                            << server.url()
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
                               "    key: { item_id: id }\n";
  }

  Value schedule_state() const {
    auto r = query_db(db, "SELECT value FROM cascade_meta WHERE key = 'schedule:items'");
    if (r.rows.empty()) return Value();
    return parse_json(r.rows[0][0].to_text());
  }
  int64_t rows() const {
    try {
      return query_db(db, "SELECT count(*) FROM items").rows[0][0].as_int();
    } catch (const std::exception&) {
      return 0;  // the table does not exist yet
    }
  }
  // Starts `cascade run` and reads stdout up to its "running" line; returns the lines before.
  Subprocess start(std::vector<std::string>& lines) const {
    Subprocess p = Subprocess::start({CASCADE_BIN, "run", pipeline, "--listen", "127.0.0.1:0"});
    for (int i = 0; i < 10; ++i) {
      std::string line = p.read_line(std::chrono::seconds(30));
      if (line.empty() || line == "running") break;
      if (line.rfind("listening on http://127.0.0.1:", 0) == 0) continue;
      lines.push_back(line);
    }
    return p;
  }
};

int stop(Subprocess& p, double& seconds) {
  auto t0 = std::chrono::steady_clock::now();
  p.signal(SIGTERM);
  int code = p.wait();
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return code;
}

}  // namespace

TEST(Daemon, ARateScheduleFiresAtFirstStartARestartKeepsTheNextTickAndSigtermExitsZero) {
  Fixture fx;
  std::vector<std::string> lines;
  Subprocess p = fx.start(lines);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("items: rate(1 hour) (UTC), next run "), std::string::npos) << lines[0];
  ASSERT_TRUE(eventually([&] { return fx.rows() == 3; })) << "the first tick never cascaded";
  ASSERT_TRUE(eventually([&] { return fx.schedule_state().find("fired") != nullptr; }));
  double secs = 0;
  EXPECT_EQ(stop(p, secs), 0);
  EXPECT_LT(secs, 5.0);
  EXPECT_EQ(fx.requests.load(), 3);

  Value st = fx.schedule_state();
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st.find("fired")->as_int(), 1);
  int64_t last_fire = st.find("last_fire")->as_int();
  int64_t anchor = st.find("anchor")->as_int();
  EXPECT_GE(last_fire, anchor);
  EXPECT_LT(last_fire - anchor, 60'000);

  // A restart within the hour: the next tick is an hour after the schedule's start, nothing
  // fires.
  lines.clear();
  Subprocess again = fx.start(lines);
  ASSERT_EQ(lines.size(), 1u);
  std::string expected_next = format_time(from_millis(anchor) + std::chrono::hours(1));
  EXPECT_NE(lines[0].find("next run " + expected_next), std::string::npos)
      << lines[0] << " vs " << expected_next;
  EXPECT_EQ(stop(again, secs), 0);
  EXPECT_LT(secs, 5.0);
  EXPECT_EQ(fx.requests.load(), 3);
  EXPECT_EQ(fx.schedule_state().find("fired")->as_int(), 1);
}

TEST(Daemon, TicksMissedWhileDownFireOnceAtStart) {
  Fixture fx;
  std::vector<std::string> lines;
  Subprocess p = fx.start(lines);
  ASSERT_TRUE(eventually([&] { return fx.rows() == 3; }));
  ASSERT_TRUE(eventually([&] { return fx.schedule_state().find("fired") != nullptr; }));
  double secs = 0;
  ASSERT_EQ(stop(p, secs), 0);

  // Down for three and a half hours: three ticks passed.
  Value st = fx.schedule_state();
  int64_t anchor = st.find("anchor")->as_int();
  int64_t shift = 3 * 3600 * 1000 + 1800 * 1000;
  {
    Object o;
    o.emplace_back("anchor", Value(anchor - shift));
    o.emplace_back("coalesced", Value(int64_t{0}));
    o.emplace_back("expression", Value(std::string("rate(1 hour)")));
    o.emplace_back("fired", Value(int64_t{1}));
    o.emplace_back("last_fire", Value(st.find("last_fire")->as_int() - shift));
    o.emplace_back("missed", Value(int64_t{0}));
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(fx.db.c_str(), &db), SQLITE_OK);
    std::string sql = "UPDATE cascade_meta SET value = '" + canonical_json(Value(std::move(o))) +
                      "' WHERE key = 'schedule:items'";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  lines.clear();
  Subprocess again = fx.start(lines);
  ASSERT_TRUE(eventually([&] {
    Value s = fx.schedule_state();
    return s.find("fired") && s.find("fired")->as_int() == 2;
  }));
  ASSERT_TRUE(eventually([&] { return fx.requests.load() == 6; }));
  EXPECT_EQ(stop(again, secs), 0);
  EXPECT_EQ(fx.requests.load(), 6) << "three missed ticks fire once";
  Value after = fx.schedule_state();
  EXPECT_EQ(after.find("fired")->as_int(), 2);
  EXPECT_EQ(after.find("missed")->as_int(), 2);
}

TEST(Daemon, ASecondDaemonOnTheSameDatabaseIsRefusedClearly) {
  Fixture fx;
  std::vector<std::string> lines;
  Subprocess first = fx.start(lines);
  ASSERT_EQ(lines.size(), 1u);
  RunResult second = run({CASCADE_BIN, "run", fx.pipeline, "--listen", "127.0.0.1:0"}, {},
                         std::chrono::seconds(30));
  EXPECT_EQ(second.exit_code, 1) << second.out << second.err;
  EXPECT_NE(second.err.find(std::to_string(first.pid())), std::string::npos) << second.err;
  double secs = 0;
  EXPECT_EQ(stop(first, secs), 0);
}

// Ticks that come while a run still cascades are coalesced into it: counted, never started
// twice. The daemon in-process on a clock the test moves, against a vendor that holds one
// answer until the clock has passed three more ticks.
TEST(Daemon, TicksDuringALongRunAreCoalescedNotStartedTwice) {
  Fixture fx;
  std::ofstream(fx.pipeline, std::ios::trunc)
      << "name: items\nsource:\n  base_url: " << fx.server.url()
      << "\n  timeout: 60s\n  retry: { attempts: 1, backoff: 1ms..2ms }\nstorage: sqlite:" << fx.db
      << "\nstages:\n  items:\n    schedule: rate(1 minute)\n    inputs: { x: [1, 2, 3] }\n"
         "    request: GET /items?x={x}\n    records: result\n    key: { item_id: id }\n";
  PipelineSpec spec = load_pipeline_file(fx.pipeline, process_env());
  Plan plan(spec);
  ManualClock clock(TimePoint(Duration(1'800'000'000'000)));
  auto store = open_store(spec.storage, clock, StoreOptions{false, true});
  HttpClient http(HttpClientOptions{}, clock);
  Engine engine(plan, *store, http, clock);
  engine.prepare();

  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int held = 0;
  CannedServer slow([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    const std::string* x = req.param("x");
    if (x && *x == "1") {
      std::unique_lock lock(mu);
      ++held;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return release; });
    }
    res.body = R"({"result":[{"id":)" + (x ? *x : std::string("0")) + R"(,"v":"a"}]})";
  });
  // The engine asks the slow vendor: same pipeline, its URL.
  PipelineSpec slow_spec = spec;
  slow_spec.source.base_url = slow.url();
  Plan slow_plan(slow_spec);
  Engine slow_engine(slow_plan, *store, http, clock);
  DaemonOptions opts;
  opts.idle_poll = std::chrono::milliseconds(50);
  Daemon daemon(slow_plan, slow_engine, *store, clock, opts);
  std::thread t([&] { daemon.run(); });

  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return held == 1; }));
  }
  clock.advance(std::chrono::seconds(210));  // ticks at +1, +2 and +3 minutes pass meanwhile
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  auto done = [&] {
    auto s = daemon.schedules();
    return !s.empty() && s[0].coalesced == 3 && !daemon.recent_runs().empty();
  };
  ASSERT_TRUE(eventually(done));
  std::vector<RootSchedule> s = daemon.schedules();
  EXPECT_EQ(s[0].fired, 1u);
  ASSERT_TRUE(s[0].next_fire);
  EXPECT_EQ(*s[0].next_fire, TimePoint(Duration(1'800'000'000'000)) + std::chrono::minutes(4));

  // The next tick starts one run again.
  clock.advance(std::chrono::seconds(31));
  ASSERT_TRUE(eventually([&] { return daemon.schedules()[0].fired == 2; }));
  ASSERT_TRUE(eventually([&] { return daemon.recent_runs().size() == 2; }));
  daemon.request_stop();
  t.join();
  EXPECT_EQ(daemon.schedules()[0].coalesced, 3u);
  EXPECT_EQ(daemon.recent_runs()[0].outcome, "completed");
}

// The vendor's spent quota pauses `cascade run` (shown in /status), never ends it; a stop during
// the pause exits 0 within seconds.
TEST(Daemon, ASpentVendorQuotaPausesTheDaemonAndAStopStillEndsIt) {
  std::string dir = temp_dir();
  std::string db = dir + "/items.db";
  std::string pipeline = dir + "/items.yaml";
  std::atomic<int> requests{0};
  CannedServer vendor([&](const sim::HttpRequest&, sim::HttpResponse& res) {
    ++requests;
    res.status = 429;
    res.headers.emplace_back("Retry-After", "7200");
    res.body = R"({"error":"daily quota spent"})";
  });
  std::ofstream(pipeline)
      << "name: items\nsource:\n  base_url: " << vendor.url()
      << "\n  retry: { attempts: 1, backoff: 1ms..2ms }\n  quota: { max_wait: 1s }"
         "\nstorage: sqlite:"
      << db
      << "\nstages:\n  items:\n    schedule: rate(1 hour)\n    inputs: { x: [1] }\n"
         "    request: GET /items?x={x}\n    records: result\n"
         "    key: { item_id: id }\n";
  Subprocess p = Subprocess::start({CASCADE_BIN, "run", pipeline, "--listen", "127.0.0.1:0"});
  std::string base;
  for (int i = 0; i < 5 && base.empty(); ++i) {
    std::string line = p.read_line(std::chrono::seconds(30));
    if (line.rfind("listening on ", 0) == 0) base = line.substr(13);
  }
  ASSERT_FALSE(base.empty());
  Value st;
  ASSERT_TRUE(eventually([&] {
    st = parse_json(http_get(base + "status"));
    return st.find("paused_until") && !st.find("paused_until")->is_null();
  })) << to_json(st);
  EXPECT_TRUE(p.running()) << "a spent quota must not end the daemon";
  EXPECT_EQ(st.find("runs")->as_array().at(0).find("outcome")->as_string(), "paused");
  int seen = requests.load();
  double secs = 0;
  EXPECT_EQ(stop(p, secs), 0);
  EXPECT_LT(secs, 5.0);
  EXPECT_EQ(requests.load(), seen) << "nothing is asked while paused";
  auto dlq = query_db(db, "SELECT count(*) FROM cascade_dead_letters");
  EXPECT_EQ(dlq.rows[0][0].as_int(), 0);
}
