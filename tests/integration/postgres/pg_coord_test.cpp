// What many workers on one PostgreSQL database share (store/coordination.h, PgCoordination), on a
// real PostgreSQL 15, each worker on its own connection as separate processes would be: the
// request budget (slots leased over four connections, and four RateLimiters drawing from it,
// never exceed the vendor's limit in any window), a vendor limit one worker learnt reaching the
// others, the leader handed over when its connection is terminated or closed, markers raised by
// exactly one racer, and a scheduled tick fired once across two daemons, also after the leader
// died.
#include "store/postgres/pg_coord.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "config/loader.h"
#include "core/json.h"
#include "engine/daemon.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "source/http_client.h"
#include "source/quota.h"
#include "source/rate_limiter.h"
#include "store/store.h"
#include "support/cascade.h"
#include "support/http.h"
#include "support/postgres.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

using namespace cascade;
using namespace std::chrono_literals;
using cascade::pg::PgCoordination;

namespace {

std::string test_db_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string("c_") + info->test_suite_name() + "_" + info->name();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  return name.substr(0, 60);
}

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The most events of `times` (ms, any order) inside any half-open window of `window_ms`.
size_t max_in_window(std::vector<double> times, double window_ms) {
  std::sort(times.begin(), times.end());
  size_t best = 0, lo = 0;
  for (size_t hi = 0; hi < times.size(); ++hi) {
    while (times[hi] - times[lo] >= window_ms) ++lo;
    best = std::max(best, hi - lo + 1);
  }
  return best;
}

// What the engine's SharedBudget does, over one PgCoordination: the limiter's view of it.
class Rate : public SharedRate {
 public:
  Rate(Coordination& c, std::string budget) : c_(c), budget_(std::move(budget)) {}
  Grant lease(int want, double interval_ms, double tolerance_ms, double horizon_ms) override {
    auto g = c_.lease_rate(budget_, {want, interval_ms, tolerance_ms, horizon_ms});
    return {g.first_ms, g.interval_ms, g.count, g.now_ms, g.vendor_limit, g.vendor_window_ms};
  }
  void publish_vendor_limit(double limit, int64_t window_ms) override {
    c_.publish_vendor_limit(budget_, limit, window_ms);
  }
  void pause(int64_t until_ms) override { c_.pause_rate(budget_, until_ms); }

 private:
  Coordination& c_;
  std::string budget_;
};

class PgCoordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    db_ = test_db_name();
    url_ = server_->create_database(db_);
  }
  cascade::testing::PostgresServer* server_ = nullptr;
  std::string db_, url_;
};

}  // namespace

TEST_F(PgCoordTest, SlotsLeasedOverFourConnectionsNeverExceedTheLimitInAnyWindow) {
  // 20 per second, a send up to 20 ms after its slot: slots spaced (1000 + 20) / 20.
  const double interval = (1000.0 + 20.0) / 20.0 * 1.005;
  std::mutex mu;
  std::vector<double> slots;
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      PgCoordination c(url_);
      auto end = std::chrono::steady_clock::now() + 3s;
      while (std::chrono::steady_clock::now() < end) {
        try {
          auto g = c.lease_rate("rate:t", {2, interval, 0, 200});
          std::lock_guard lock(mu);
          for (int i = 0; i < g.count; ++i) slots.push_back(g.first_ms + i * g.interval_ms);
        } catch (const std::exception&) {
          ++failures;
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  for (auto& t : workers) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::sort(slots.begin(), slots.end());
  for (size_t i = 1; i < slots.size(); ++i)
    ASSERT_GE(slots[i] - slots[i - 1], interval - 1e-3) << "slot " << i;  // float8 at 1e12 ms
  EXPECT_LE(max_in_window(slots, 1000.0 + 20.0), 20u);
  // Three seconds at ~19.5 a second (plus at most the horizon ahead): the budget is used.
  EXPECT_GE(slots.size(), 50u);
  EXPECT_LE(slots.size(), 64u);
}

TEST_F(PgCoordTest, FourRateLimitersSharingOneBudgetHoldTheVendorLimitTogether) {
  // Each limiter alone would send 20 a second (98% of it); together they must too.
  std::mutex mu;
  std::vector<double> sends;
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      PgCoordination c(url_);
      RateLimiter limiter(50, 50, SystemClock::instance());
      limiter.set_vendor_limit(20, 1s);  // as every run restores it from the shared meta
      limiter.share(std::make_shared<Rate>(c, "rate:v"));
      auto end = std::chrono::steady_clock::now() + 3s;
      while (std::chrono::steady_clock::now() < end) {
        auto at = limiter.try_acquire();
        if (!at) {
          std::lock_guard lock(mu);
          sends.push_back(static_cast<double>(steady_ms()));
          continue;
        }
        auto wait = *at - SystemClock::instance().now();
        std::this_thread::sleep_for(std::clamp<Duration>(wait, 1ms, 50ms));
      }
      limiter.share(nullptr);
    });
  for (auto& t : workers) t.join();
  EXPECT_LE(max_in_window(sends, 1000.0), 20u);
  EXPECT_GE(sends.size(), 45u) << "four workers kept to one budget, not starved";
}

TEST_F(PgCoordTest, AVendorLimitOneWorkerLearntPacesTheOthers) {
  PgCoordination ca(url_), cb(url_);
  RateLimiter a(50, 50, SystemClock::instance()), b(50, 50, SystemClock::instance());
  a.share(std::make_shared<Rate>(ca, "rate:p"));
  b.share(std::make_shared<Rate>(cb, "rate:p"));
  a.set_vendor_limit(7, 2s);  // learnt from the vendor's RateLimit headers by worker a
  bool learnt = cascade::testing::eventually(
      [&] {
        (void)b.try_acquire();
        return b.vendor_limit().has_value();
      },
      10s);
  ASSERT_TRUE(learnt);
  EXPECT_EQ(b.vendor_limit()->limit, 7);
  EXPECT_EQ(b.vendor_limit()->window, Duration(2000));
  a.share(nullptr);
  b.share(nullptr);
}

TEST_F(PgCoordTest, APauseOneWorkerWasToldHoldsEveryWorker) {
  PgCoordination ca(url_), cb(url_);
  auto g = ca.lease_rate("rate:z", {1, 10, 0, 100});
  ASSERT_EQ(g.count, 1);
  ca.pause_rate("rate:z", g.now_ms + 1500);
  auto h = cb.lease_rate("rate:z", {1, 10, 0, 100});
  EXPECT_EQ(h.count, 0) << "no slot during the vendor's pause";
  EXPECT_GE(h.first_ms, static_cast<double>(g.now_ms + 1500));
}

TEST_F(PgCoordTest, AQuotaWindowGrantsWhatIsLeftThenNothingUntilTheNextWindow) {
  PgCoordination c(url_), d(url_);
  const int64_t day = 86'400'000, start = 1'800'000'000'000 / day * day;
  EXPECT_EQ(c.take_quota("quota:q", day, start, 5, 3), 3);
  EXPECT_EQ(d.take_quota("quota:q", day, start, 5, 3), 2) << "what is left";
  EXPECT_EQ(c.take_quota("quota:q", day, start, 5, 3), 0) << "spent";
  EXPECT_EQ(c.take_quota("quota:q", 1000, start, 5, 1), 1) << "another window length counts apart";
  EXPECT_EQ(d.take_quota("quota:q", day, start + day, 5, 3), 3) << "the next window starts over";
  EXPECT_EQ(c.take_quota("quota:q", day, start, 5, 3), 0) << "a window that has ended grants none";
}

namespace {

class Quota : public SharedQuota {
 public:
  explicit Quota(Coordination& c) : c_(c) {}
  int64_t take(int64_t per_ms, int64_t start_ms, int64_t requests, int64_t want) override {
    return c_.take_quota("quota:p", per_ms, start_ms, requests, want);
  }

 private:
  Coordination& c_;
};

}  // namespace

TEST_F(PgCoordTest, FourQuotaLedgersSharingOneBudgetSpendItExactlyOnce) {
  // 30 requests a day for the four of them together, whatever each one counts alone.
  std::atomic<int64_t> sent{0};
  std::atomic<int> saw_spent{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      PgCoordination c(url_);
      QuotaLedger ledger(30, std::chrono::hours(24), SystemClock::instance());
      ledger.share(std::make_shared<Quota>(c));
      auto end = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < end) {
        auto until = ledger.try_take(0);
        if (!until) {
          ++sent;
          continue;
        }
        if (*until > SystemClock::instance().now() + 1min) {  // the window's end: spent
          ++saw_spent;
          break;
        }
        std::this_thread::sleep_for(1ms);
      }
      ledger.share(nullptr);
    });
  for (auto& t : workers) t.join();
  EXPECT_EQ(sent.load(), 30);
  EXPECT_EQ(saw_spent.load(), 4) << "every worker learnt the day's quota is spent";
}

TEST_F(PgCoordTest, LeadershipMovesWhenTheLeadersConnectionIsTerminated) {
  PgCoordination c1(url_), c2(url_), c3(url_);
  ASSERT_TRUE(c1.lead("daemon:x"));
  EXPECT_FALSE(c2.lead("daemon:x"));
  EXPECT_FALSE(c3.lead("daemon:x"));
  EXPECT_TRUE(c1.lead("daemon:x")) << "a leader stays one";
  EXPECT_TRUE(c2.lead("daemon:other")) << "roles are independent";
  int pid = c1.backend_pid();
  ASSERT_GT(pid, 0);
  server_->exec(db_, "SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  auto t0 = std::chrono::steady_clock::now();
  int leaders = 0;
  bool c1_led = false;
  while (std::chrono::steady_clock::now() - t0 < 10s) {
    c1_led = c1.lead("daemon:x") || c1_led;
    leaders = int(c2.lead("daemon:x")) + int(c3.lead("daemon:x"));
    if (leaders) break;
    std::this_thread::sleep_for(100ms);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(leaders, 1) << "exactly one successor";
  EXPECT_LT(secs, 3.0);
  EXPECT_FALSE(c1_led) << "the old leader lost it with its connection";
  EXPECT_FALSE(c1.leading("daemon:x"));
  // The old leader came back (new connection) and is a follower now.
  std::this_thread::sleep_for(PgCoordination::kLeaderBackoff);
  EXPECT_FALSE(c1.lead("daemon:x"));
}

TEST_F(PgCoordTest, LeadershipMovesWhenTheLeaderCloses) {
  auto c1 = std::make_unique<PgCoordination>(url_);
  PgCoordination c2(url_);
  ASSERT_TRUE(c1->lead("daemon:y"));
  EXPECT_FALSE(c2.lead("daemon:y"));
  c1.reset();  // the process exits (or is killed: its connection closes either way)
  EXPECT_TRUE(cascade::testing::eventually([&] { return c2.lead("daemon:y"); }, 5s));
}

TEST_F(PgCoordTest, AMarkerIsRaisedByExactlyOneOfManyRacers) {
  std::atomic<int> won{0};
  std::vector<std::thread> racers;
  for (int i = 0; i < 4; ++i)
    racers.emplace_back([&] {
      PgCoordination c(url_);
      if (c.advance("tick:a", 1000)) ++won;
    });
  for (auto& t : racers) t.join();
  EXPECT_EQ(won.load(), 1);
  PgCoordination c(url_);
  EXPECT_FALSE(c.advance("tick:a", 999));
  EXPECT_FALSE(c.advance("tick:a", 1000));
  EXPECT_TRUE(c.advance("tick:a", 1001));
  EXPECT_EQ(c.marker("tick:a"), 1001);
  EXPECT_EQ(c.marker("tick:none"), std::nullopt);
}

namespace {

// A daemon's own SQLite store (its queues, meta) with the shared PostgreSQL coordination: what
// only the coordination decides is then all the two daemons share.
class CoordinatedStore : public Store {
 public:
  CoordinatedStore(std::unique_ptr<Store> s, std::unique_ptr<Coordination> c)
      : s_(std::move(s)), c_(std::move(c)) {}
  Queue& queue() override { return s_->queue(); }
  Staging& staging() override { return s_->staging(); }
  ChangeLog& change_log() override { return s_->change_log(); }
  Warehouse& warehouse() override { return s_->warehouse(); }
  void begin() override { s_->begin(); }
  void commit() override { s_->commit(); }
  void rollback() override { s_->rollback(); }
  bool in_transaction() const override { return s_->in_transaction(); }
  void savepoint() override { s_->savepoint(); }
  void release_savepoint() override { s_->release_savepoint(); }
  void rollback_to_savepoint() override { s_->rollback_to_savepoint(); }
  void set_stop_flag(const std::atomic<bool>* f) override { s_->set_stop_flag(f); }
  std::optional<std::string> get_meta(std::string_view k) override { return s_->get_meta(k); }
  void set_meta(std::string_view k, std::string_view v) override { s_->set_meta(k, v); }
  bool claim_consumer() override { return s_->claim_consumer(); }
  bool compact() override { return s_->compact(); }
  std::string describe() const override { return s_->describe(); }
  Coordination* coordination() override { return c_.get(); }
  void drop_coordination() { c_.reset(); }

 private:
  std::unique_ptr<Store> s_;
  std::unique_ptr<Coordination> c_;
};

struct DaemonUnderTest {
  std::unique_ptr<CoordinatedStore> store;
  std::unique_ptr<HttpClient> http;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Daemon> daemon;
  std::thread thread;
  DaemonUnderTest(const Plan& plan, const std::string& db, const std::string& url, Clock& clock) {
    store = std::make_unique<CoordinatedStore>(open_store("sqlite:" + db, clock),
                                               std::make_unique<PgCoordination>(url));
    http = std::make_unique<HttpClient>(HttpClientOptions{}, clock);
    engine = std::make_unique<Engine>(plan, *store, *http, clock);
    engine->prepare();
    DaemonOptions o;
    o.idle_poll = 50ms;
    daemon = std::make_unique<Daemon>(plan, *engine, *store, clock, o);
    thread = std::thread([this] { daemon->run(); });
  }
  uint64_t fired() const { return daemon->schedules()[0].fired; }
  void stop() {
    if (!thread.joinable()) return;
    daemon->request_stop();
    thread.join();
  }
  ~DaemonUnderTest() { stop(); }
};

}  // namespace

TEST_F(PgCoordTest, ATickFiresOnceAcrossTwoDaemonsAndOnceMoreAfterTheLeaderDies) {
  std::string dir = cascade::testing::temp_dir();
  std::atomic<int> requests{0};
  cascade::testing::CannedServer vendor([&](const sim::HttpRequest&, sim::HttpResponse& res) {
    ++requests;
    res.body = R"({"result":[{"id":1,"v":"a"}]})";
  });
  std::string pipeline = dir + "/p.yaml";
  std::ofstream(pipeline) << "name: items\nsource:\n  base_url: " << vendor.url()
                          << "\n  retry: { attempts: 1, backoff: 1ms..2ms }\nstorage: sqlite:"
                          << dir << "/unused.db\nstages:\n  items:\n    schedule: rate(1 hour)\n"
                          << "    inputs: { x: [1] }\n    request: GET /items?x={x}\n"
                          << "    records: result\n    key: { item_id: id }\n";
  PipelineSpec spec = load_pipeline_file(pipeline, process_env());
  Plan plan(spec);
  ManualClock clock(TimePoint(Duration(1'800'000'000'000)));

  auto a = std::make_unique<DaemonUnderTest>(plan, dir + "/a.db", url_, clock);
  auto b = std::make_unique<DaemonUnderTest>(plan, dir + "/b.db", url_, clock);
  // The rate() schedule fires at first start: once, by whichever daemon leads.
  ASSERT_TRUE(cascade::testing::eventually([&] { return a->fired() + b->fired() == 1; }, 10s));
  std::this_thread::sleep_for(500ms);  // both looked at the tick several times meanwhile
  EXPECT_EQ(a->fired() + b->fired(), 1u);
  EXPECT_EQ(requests.load(), 1);
  bool a_leads = a->fired() == 1;
  auto& leader = a_leads ? a : b;
  auto& follower = a_leads ? b : a;

  clock.advance(1h);
  ASSERT_TRUE(cascade::testing::eventually([&] { return leader->fired() == 2; }, 10s));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(follower->fired(), 0u);

  // The leader dies. Its successor's own state knows nothing of those fires (another store), only
  // the shared marker does: the tick the leader fired last is not fired again.
  leader->stop();
  leader->store->drop_coordination();
  int before = requests.load();
  // The daemon loop waits on its (hand-moved) clock: seconds pass while the follower takes over
  // and meets the marker.
  Coordination* fc = follower->store->coordination();
  auto took_over = [&] {
    clock.advance(1s);
    return fc->leading(daemon_leader_role("items"));
  };
  ASSERT_TRUE(cascade::testing::eventually(took_over, 10s));
  for (int i = 0; i < 10; ++i) {
    clock.advance(1s);
    std::this_thread::sleep_for(60ms);
  }
  EXPECT_EQ(follower->fired(), 0u);
  EXPECT_EQ(requests.load(), before);
  clock.advance(1h);
  ASSERT_TRUE(cascade::testing::eventually([&] { return follower->fired() == 1; }, 10s));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(follower->fired(), 1u);
  EXPECT_EQ(requests.load(), before + 1);
  follower->stop();
}

namespace {

// Responses the simulator served with `status`, over the vendor paths.
int64_t served_with(cascade::testing::SimServer& sim, const std::string& status) {
  Value stats = parse_json(cascade::testing::http_get(sim.url() + "/admin/stats"));
  int64_t n = 0;
  for (const auto& [path, by_status] : stats.find("requests")->as_object())
    if (by_status.is_object())
      for (const auto& [st, count] : by_status.as_object())
        if (st == status) n += count.as_int();
  return n;
}

}  // namespace

// Four `cascade sync` processes on one database against a simulator that allows 20 requests in
// any second (a sliding window, refusing with 429 whatever would exceed it). Each alone paces to
// 98% of that limit, so four without a shared budget would send four times it; together, drawing
// from the database's budget, no window is above the limit: the simulator refuses nothing.
TEST_F(PgCoordTest, FourSyncWorkersHoldTheVendorsRateLimitTogether) {
  using namespace cascade::testing;
  SimServer sim({"--seed", "41", "--employees-per-branch", "10", "--sales-per-salesperson", "5",
                 "--quota", "20/1s", "--quota-window", "sliding"});
  std::string dir = temp_dir();
  std::string pipeline = example_pipeline(dir);  // rate_limit: 50/s, burst 50
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", url_}};
  // A first run learns the vendor's limit from its RateLimit headers and keeps it in the database
  // (the burst it sent before knowing it may draw a 429 or two).
  RunResult first = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto saved = query_storage(url_, "SELECT value FROM cascade_meta WHERE key = 'vendor_rate'");
  ASSERT_EQ(saved.rows.size(), 1u);
  EXPECT_EQ(saved.rows[0][0].as_string(), "20 1000");
  int64_t refused_before = served_with(sim, "429");
  int64_t served_before = served_with(sim, "200");

  auto t0 = std::chrono::steady_clock::now();
  std::vector<Subprocess> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(Subprocess::start({CASCADE_BIN, "sync", pipeline, "--json"}, env));
  int64_t requests = 0;
  for (auto& w : workers) {
    std::string out;
    for (std::string line; !(line = w.read_line(120s)).empty();) out += line;
    EXPECT_EQ(w.wait(), 0);
    Value s = parse_json(out);
    requests += s.find("total")->find("requests")->as_int();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t served = served_with(sim, "200") - served_before;
  EXPECT_GT(served, 100) << "enough requests to cross several windows";
  EXPECT_EQ(served_with(sim, "429") - refused_before, 0)
      << "a window above the limit: " << requests << " requests in " << secs << " s";
  // The budget was used, not wasted: at least 70% of the vendor's rate over the whole run.
  EXPECT_GE(static_cast<double>(served) / secs, 14.0) << served << " in " << secs << " s";
  EXPECT_EQ(compare_warehouse(url_, expected_from(sim.truth())), 0);
}

// Two `cascade run` daemons on one database: the rate() schedule's first tick fires once between
// them (three requests for three inputs, not six), and when the leader is killed with -9 another
// daemon takes over without firing that tick again.
TEST_F(PgCoordTest, TwoCascadeRunDaemonsFireATickOnceAndAKillDoesNotRefireIt) {
  using namespace cascade::testing;
  std::atomic<int> requests{0};
  CannedServer vendor([&](const sim::HttpRequest& req, sim::HttpResponse& res) {
    ++requests;
    const std::string* x = req.param("x");
    res.body = R"({"result":[{"id":)" + (x ? *x : std::string("0")) + R"(,"v":"a"}]})";
  });
  std::string dir = temp_dir(), pipeline = dir + "/items.yaml";
  std::ofstream(pipeline) << "name: items\nsource:\n  base_url: " << vendor.url()
                          << "\n  retry: { attempts: 1, backoff: 1ms..2ms }\nstorage: " << url_
                          << "\nstages:\n  items:\n    schedule: rate(1 hour)\n"
                             "    inputs: { x: [1, 2, 3] }\n    request: GET /items?x={x}\n"
                             "    records: result\n    key: { item_id: id }\n";
  auto start = [&] {
    Subprocess p = Subprocess::start({CASCADE_BIN, "run", pipeline, "--listen", "127.0.0.1:0"});
    for (int i = 0; i < 10; ++i) {
      std::string line = p.read_line(30s);
      if (line.empty() || line == "running") break;
    }
    return p;
  };
  Subprocess a = start();
  Subprocess b = start();
  ASSERT_TRUE(eventually([&] { return requests.load() >= 3; }, 20s));
  std::this_thread::sleep_for(3s);  // both have looked at the tick many times
  EXPECT_EQ(requests.load(), 3) << "the first tick fired once, not once per daemon";
  EXPECT_EQ(query_storage(url_, "SELECT count(*) FROM items").rows[0][0].as_int(), 3);

  // Both first daemons die by -9 (one of them led), a third one started between the kills is
  // left: it leads within seconds and knows the tick was fired.
  a.signal(SIGKILL);
  a.wait();
  Subprocess c = start();
  b.signal(SIGKILL);
  b.wait();
  auto leaders = [&] {
    return query_storage(url_,
                         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                         "granted")
        .rows[0][0]
        .as_int();
  };
  EXPECT_TRUE(eventually([&] { return leaders() == 1; }, 10s)) << "the survivor leads";
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(requests.load(), 3) << "a new leader fired the same tick again";
  // One tick marker (the crawl markers of the orphan sweep aside).
  EXPECT_EQ(
      query_storage(url_, "SELECT count(*) FROM cascade_coord_marker WHERE key NOT LIKE 'crawl%'")
          .rows[0][0]
          .as_int(),
      1);
  c.signal(SIGTERM);
  EXPECT_EQ(c.wait(), 0);
}
