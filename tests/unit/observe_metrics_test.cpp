// The metrics registry: exact exposition text, validation, escaping, concurrency, collectors,
// the process metrics and the metric set of `cascade run`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <vector>

#include "observe/metrics.h"
#include "observe/status_server.h"
#include "support/prometheus.h"

namespace cascade::observe {
namespace {

using testing::parse_prometheus;
using testing::prom_value;

TEST(Metrics, ExactExpositionText) {
  Registry r;
  auto& jobs = r.counter("jobs_total", "Jobs done.", {"stage"});
  jobs.with({"sales"}).inc();
  jobs.with({"sales"}).inc(2);
  jobs.with({"a\"b\\c\nd"}).inc(0.5);
  r.gauge("depth", "Queue depth.\nSecond line \\ here, \"quoted\".").with().set(-3.25);
  auto& lat = r.histogram("latency_seconds", "Latency.", {0.5, 1}, {"stage", "class"});
  Histogram& h = lat.with({"x", "2xx"});
  h.observe(0.25);
  h.observe(0.5);  // bounds are inclusive
  h.observe(4);
  r.histogram("idle_seconds", "Never observed.", {1}).with();
  r.gauge("empty", "A labelled family with no child yet.", {"stage"});
  r.gauge("big", "Large and small values.", {"k"}).with({"a"}).set(1e21);
  r.gauge("big", "Large and small values.", {"k"}).with({"b"}).set(0.1);
  r.gauge("big", "Large and small values.", {"k"}).with({"c"}).set(-INFINITY);

  EXPECT_EQ(r.expose(),
            "# HELP big Large and small values.\n"
            "# TYPE big gauge\n"
            "big{k=\"a\"} 1e+21\n"
            "big{k=\"b\"} 0.1\n"
            "big{k=\"c\"} -Inf\n"
            "# HELP depth Queue depth.\\nSecond line \\\\ here, \"quoted\".\n"
            "# TYPE depth gauge\n"
            "depth -3.25\n"
            "# HELP empty A labelled family with no child yet.\n"
            "# TYPE empty gauge\n"
            "# HELP idle_seconds Never observed.\n"
            "# TYPE idle_seconds histogram\n"
            "idle_seconds_bucket{le=\"1\"} 0\n"
            "idle_seconds_bucket{le=\"+Inf\"} 0\n"
            "idle_seconds_sum 0\n"
            "idle_seconds_count 0\n"
            "# HELP jobs_total Jobs done.\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{stage=\"a\\\"b\\\\c\\nd\"} 0.5\n"
            "jobs_total{stage=\"sales\"} 3\n"
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{stage=\"x\",class=\"2xx\",le=\"0.5\"} 2\n"
            "latency_seconds_bucket{stage=\"x\",class=\"2xx\",le=\"1\"} 2\n"
            "latency_seconds_bucket{stage=\"x\",class=\"2xx\",le=\"+Inf\"} 3\n"
            "latency_seconds_sum{stage=\"x\",class=\"2xx\"} 4.75\n"
            "latency_seconds_count{stage=\"x\",class=\"2xx\"} 3\n");

  // The strict parser reads the same text back, escapes undone.
  const auto families = parse_prometheus(r.expose());
  EXPECT_EQ(families.at("depth").help, "Queue depth.\nSecond line \\ here, \"quoted\".");
  EXPECT_EQ(prom_value(families, "jobs_total", {{"stage", "a\"b\\c\nd"}}), 0.5);
}

TEST(Metrics, EmptyRegistryIsEmptyText) {
  EXPECT_EQ(Registry().expose(), "");
}

TEST(Metrics, NamesAreValidated) {
  EXPECT_TRUE(valid_metric_name("a"));
  EXPECT_TRUE(valid_metric_name(":ns:metric_1"));
  EXPECT_TRUE(valid_metric_name("_x"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_FALSE(valid_metric_name("1abc"));
  EXPECT_FALSE(valid_metric_name("a-b"));
  EXPECT_FALSE(valid_metric_name("a b"));
  EXPECT_FALSE(valid_metric_name("é"));
  EXPECT_TRUE(valid_label_name("stage"));
  EXPECT_TRUE(valid_label_name("_x1"));
  EXPECT_FALSE(valid_label_name("__name__"));
  EXPECT_FALSE(valid_label_name("a:b"));
  EXPECT_FALSE(valid_label_name("0a"));
  EXPECT_FALSE(valid_label_name(""));

  Registry r;
  EXPECT_THROW(r.gauge("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("requests", "no _total suffix"), std::invalid_argument);
  EXPECT_THROW(r.gauge("g", "x", {"bad label"}), std::invalid_argument);
  EXPECT_THROW(r.gauge("g", "x", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.gauge("g", "x", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {1, 1}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {2, 1}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {NAN}), std::invalid_argument);
  EXPECT_EQ(r.expose(), "") << "nothing half-registered";
}

TEST(Metrics, ReRegistrationReturnsTheSameFamilyOrThrows) {
  Registry r;
  auto& a = r.counter("x_total", "x", {"stage"});
  EXPECT_EQ(&a, &r.counter("x_total", "x", {"stage"}));
  EXPECT_THROW(r.counter("x_total", "x", {"other"}), std::invalid_argument);
  EXPECT_THROW(r.gauge("x_total", "x", {"stage"}), std::invalid_argument);
  auto& h = r.histogram("h", "x", {1, 2});
  EXPECT_EQ(&h, &r.histogram("h", "x", {1, 2, INFINITY}));  // +Inf is implicit either way
  EXPECT_THROW(r.histogram("h", "x", {1, 3}), std::invalid_argument);
}

TEST(Metrics, ChildrenAreStableHandles) {
  Registry r;
  auto& f = r.counter("c_total", "c", {"a", "b"});
  Counter& one = f.with({"1", "2"});
  for (int i = 0; i < 100; ++i) f.with({std::to_string(i), "x"});
  EXPECT_EQ(&one, &f.with({"1", "2"}));
  EXPECT_EQ(&one, &f.with(std::vector<std::string>{"1", "2"}));
  EXPECT_THROW(f.with({"1"}), std::invalid_argument);
  EXPECT_THROW(f.with({"1", "2", "3"}), std::invalid_argument);
}

TEST(Metrics, CountersOnlyGoUpGaugesBothWays) {
  Counter c;
  c.inc(2);
  c.inc(-1);
  c.inc(NAN);
  EXPECT_EQ(c.value(), 2);
  Gauge g;
  g.inc(5);
  g.dec(7);
  EXPECT_EQ(g.value(), -2);
  g.set(0.5);
  EXPECT_EQ(g.value(), 0.5);
}

TEST(Metrics, HistogramBuckets) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.0, 0.1, 0.2, 1.0, 9.99, 10.0, 10.01, -5.0, double(INFINITY)}) h.observe(v);
  h.observe(NAN);  // ignored
  EXPECT_EQ(h.bucket_counts(), (std::vector<uint64_t>{3, 2, 2, 2}));
  EXPECT_EQ(h.count(), 9u);
  EXPECT_TRUE(std::isinf(h.sum()));
}

TEST(Metrics, ValueFormatting) {
  auto fmt = [](double v) {
    std::string s;
    append_sample_value(v, s);
    return s;
  };
  EXPECT_EQ(fmt(0), "0");
  EXPECT_EQ(fmt(3), "3");
  EXPECT_EQ(fmt(-2.5), "-2.5");
  EXPECT_EQ(fmt(0.005), "0.005");
  EXPECT_EQ(fmt(1234567890123.0), "1234567890123");
  EXPECT_EQ(fmt(INFINITY), "+Inf");
  EXPECT_EQ(fmt(-INFINITY), "-Inf");
  EXPECT_EQ(fmt(NAN), "NaN");
  std::string esc;
  append_escaped_label_value("a\\b\"c\nd\te", esc);
  EXPECT_EQ(esc, "a\\\\b\\\"c\\nd\te");
}

TEST(Metrics, ConcurrentIncrementsSumExactly) {
  Registry r;
  auto& family = r.counter("events_total", "e", {"stage"});
  auto& hist = r.histogram("d_seconds", "d", {0.5, 1.5});
  Gauge& gauge = r.gauge("level", "l").with();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& c = family.with({"s"});  // the same child from every thread
      Counter& own = family.with({"t" + std::to_string(t)});
      Histogram& h = hist.with();
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        own.inc(0.5);
        h.observe(i % 3);  // 0, 1, 2
        gauge.inc();
        gauge.dec();
      }
    });
  }
  go = true;
  // Scrapes while the workers run must stay well-formed (+Inf == _count at every instant).
  for (int i = 0; i < 20; ++i) parse_prometheus(r.expose());
  for (auto& t : threads) t.join();

  EXPECT_EQ(family.with({"s"}).value(), double(kThreads) * kPerThread);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(family.with({"t" + std::to_string(t)}).value(), kPerThread * 0.5);
  Histogram& h = hist.with();
  EXPECT_EQ(h.count(), uint64_t(kThreads) * kPerThread);
  const auto counts = h.bucket_counts();
  EXPECT_EQ(counts[0] + counts[1] + counts[2], h.count());
  EXPECT_EQ(gauge.value(), 0);
  const auto families = parse_prometheus(r.expose());
  EXPECT_EQ(prom_value(families, "events_total", {{"stage", "s"}}), double(kThreads) * kPerThread);
  EXPECT_EQ(prom_value(families, "d_seconds_count"), double(kThreads) * kPerThread);
}

TEST(Metrics, CollectorsRunAtScrapeTimeAndFailuresAreSkipped) {
  Registry r;
  Gauge& depth = r.gauge("depth", "d").with();
  int calls = 0;
  r.add_collector([&] { depth.set(++calls * 10); });
  r.add_collector([] { throw std::runtime_error("queue unreadable"); });
  // A collector may create children and families while the scrape runs.
  r.add_collector([&] { r.gauge("late", "registered by a collector", {"k"}).with({"v"}).set(7); });
  EXPECT_EQ(calls, 0);
  auto families = parse_prometheus(r.expose());
  EXPECT_EQ(prom_value(families, "depth"), 10);
  EXPECT_EQ(prom_value(families, "late", {{"k", "v"}}), 7);
  families = parse_prometheus(r.expose());
  EXPECT_EQ(prom_value(families, "depth"), 20);
  EXPECT_EQ(calls, 2);
}

TEST(Metrics, ProcessMetricsFromProc) {
  Registry r;
  register_process_metrics(r, "1.2.3");
  // Spend CPU until the kernel's accounting (in clock ticks of 10 ms) must show some: a fixed
  // loop could finish within one tick on a fast or busy machine and read 0.
  volatile double x = 0;
  const std::clock_t cpu0 = std::clock();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::clock() - cpu0 < CLOCKS_PER_SEC / 20 && std::chrono::steady_clock::now() < deadline)
    for (int i = 0; i < 100000; ++i) x = x + std::sqrt(double(i));
  const auto families = parse_prometheus(r.expose());
  EXPECT_EQ(prom_value(families, "cascade_build_info", {{"version", "1.2.3"}}), 1);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double start = prom_value(families, "process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600) << "this test process started within the hour";
  EXPECT_GT(prom_value(families, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(prom_value(families, "process_virtual_memory_bytes"),
            prom_value(families, "process_resident_memory_bytes"));
  EXPECT_GE(prom_value(families, "process_open_fds"), 3);
  EXPECT_GT(prom_value(families, "process_max_fds"), 0);
  const double cpu = prom_value(families, "process_cpu_seconds_total");
  EXPECT_GT(cpu, 0);
  EXPECT_GE(prom_value(parse_prometheus(r.expose()), "process_cpu_seconds_total"), cpu);
}

TEST(Metrics, CascadeMetricSet) {
  Registry r;
  CascadeMetrics m(r);
  register_process_metrics(r, "0.1.0");
  CascadeMetrics::Stage sales = m.stage("sales");
  sales.messages.inc();
  sales.request(200).inc();
  sales.request(204).inc();
  sales.request(304).inc();
  sales.request(429).inc();
  sales.request(503).inc();
  sales.request(0).inc();
  sales.request(101).inc();
  sales.records_new.inc(3);
  sales.records_unchanged.inc(2);
  sales.throttles.inc();
  sales.limiter_wait_seconds.inc(0.25);
  sales.message_duration_seconds.observe(0.07);
  m.run_duration_seconds.with({"branches"}).observe(42);
  r.add_collector([&] {
    m.queue_depth.with({"sales"}).set(12);
    m.in_flight.with({"sales"}).set(2);
    m.oldest_message_age_seconds.with({"sales"}).set(3.5);
    m.dlq_depth.with({"sales"}).set(1);
    m.quota_used.with({"1d"}).set(900);
    m.quota_left.with({"1d"}).set(100);
    m.seconds_since_last_complete_run.with({"branches"}).set(60);
  });
  EXPECT_EQ(&m.stage("sales").messages, &sales.messages);

  const auto f = parse_prometheus(r.expose());
  for (const char* name :
       {"cascade_messages_total", "cascade_requests_total", "cascade_records_total",
        "cascade_errors_total", "cascade_throttles_total", "cascade_limiter_wait_seconds_total",
        "cascade_message_duration_seconds", "cascade_run_duration_seconds", "cascade_queue_depth",
        "cascade_in_flight", "cascade_oldest_message_age_seconds", "cascade_dlq_depth",
        "cascade_quota_used", "cascade_quota_left", "cascade_seconds_since_last_complete_run",
        "cascade_build_info", "process_resident_memory_bytes", "process_open_fds",
        "process_start_time_seconds"}) {
    ASSERT_TRUE(f.count(name)) << name;
    EXPECT_FALSE(f.at(name).help.empty()) << name;
  }
  EXPECT_EQ(f.at("cascade_message_duration_seconds").type, "histogram");
  EXPECT_EQ(f.at("cascade_queue_depth").type, "gauge");
  EXPECT_EQ(prom_value(f, "cascade_requests_total", {{"stage", "sales"}, {"class", "2xx"}}), 2);
  EXPECT_EQ(prom_value(f, "cascade_requests_total", {{"stage", "sales"}, {"class", "3xx"}}), 1);
  EXPECT_EQ(prom_value(f, "cascade_requests_total", {{"stage", "sales"}, {"class", "4xx"}}), 1);
  EXPECT_EQ(prom_value(f, "cascade_requests_total", {{"stage", "sales"}, {"class", "5xx"}}), 1);
  EXPECT_EQ(prom_value(f, "cascade_requests_total", {{"stage", "sales"}, {"class", "transport"}}),
            2);
  EXPECT_EQ(prom_value(f, "cascade_records_total", {{"stage", "sales"}, {"kind", "new"}}), 3);
  EXPECT_EQ(prom_value(f, "cascade_records_total", {{"stage", "sales"}, {"kind", "deleted"}}), 0)
      << "every kind is present from the start, at zero";
  EXPECT_EQ(prom_value(f, "cascade_errors_total", {{"stage", "sales"}}), 0);
  EXPECT_EQ(prom_value(f, "cascade_limiter_wait_seconds_total", {{"stage", "sales"}}), 0.25);
  EXPECT_EQ(prom_value(f, "cascade_message_duration_seconds_bucket",
                       {{"stage", "sales"}, {"le", "0.05"}}),
            0);
  EXPECT_EQ(
      prom_value(f, "cascade_message_duration_seconds_bucket", {{"stage", "sales"}, {"le", "0.1"}}),
      1);
  EXPECT_EQ(prom_value(f, "cascade_run_duration_seconds_count", {{"stage", "branches"}}), 1);
  EXPECT_EQ(prom_value(f, "cascade_queue_depth", {{"stage", "sales"}}), 12);
  EXPECT_EQ(prom_value(f, "cascade_oldest_message_age_seconds", {{"stage", "sales"}}), 3.5);
  EXPECT_EQ(prom_value(f, "cascade_quota_left", {{"window", "1d"}}), 100);
  EXPECT_EQ(prom_value(f, "cascade_seconds_since_last_complete_run", {{"stage", "branches"}}), 60);
}

TEST(StatusServerRules, LoopbackAddresses) {
  for (const char* a : {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "localhost"})
    EXPECT_TRUE(is_loopback_address(a)) << a;
  for (const char* a : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "128.0.0.1", "::ffff:10.0.0.1",
                        "example.com", "", "127.0.0.1 "})
    EXPECT_FALSE(is_loopback_address(a)) << a;
}

TEST(StatusServerRules, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("s3cret", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cret", "s3creT"));
  EXPECT_FALSE(constant_time_equal("s3cret", "s3cre"));
  EXPECT_FALSE(constant_time_equal("s3cre", "s3cret"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));
}

}  // namespace
}  // namespace cascade::observe
