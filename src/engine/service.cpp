#include "engine/service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "core/json.h"
#include "observe/status_page.h"

namespace cascade {

namespace {

// Records per minute are kept this long, for the page's chart.
constexpr int64_t kMinutesKept = 6 * 60;

Value time_or_null(std::optional<TimePoint> t) {
  return t ? Value(format_time(*t)) : Value();
}

uint64_t records_of(const std::vector<StageCounters>& v) {
  uint64_t n = 0;
  for (const auto& c : v) n += c.records;
  return n;
}

}  // namespace

Service::Service(const Plan& plan, Engine& engine, Store& store, Clock& clock, QuotaLedger* quota,
                 ServiceOptions options)
    : plan_(plan),
      engine_(engine),
      store_(store),
      clock_(clock),
      quota_(quota),
      options_(std::move(options)),
      started_(clock.now()),
      done_totals_(plan.stages().size()),
      queues_(plan.stages().size()) {
  observe::register_process_metrics(registry_, options_.version);
  metrics_ = std::make_unique<observe::CascadeMetrics>(registry_);
  for (const auto& st : plan_.stages()) stage_metrics_.push_back(metrics_->stage(st.name));
  monitor_ = std::make_unique<Monitor>(plan_, store_, clock_);

  DaemonOptions d;
  d.idle_poll = options_.idle_poll;
  d.on_run = [this](const DaemonRun& run, const RunSummary& s) { on_run(run, s); };
  d.on_idle = [this] { on_tick(); };
  daemon_ = std::make_unique<Daemon>(plan_, engine_, store_, clock_, d);
  engine_.set_observer([this](size_t stage, Duration elapsed) { on_message(stage, elapsed); },
                       [this] { on_tick(); });

  // Gauges are read at scrape time from what the last tick saw: the store is not the server
  // threads' to touch.
  registry_.add_collector([this] {
    std::lock_guard lock(mu_);
    for (const auto& st : plan_.stages()) {
      const QueueStats& q = queues_[st.index];
      metrics_->queue_depth.with({st.name}).set(static_cast<double>(q.depth));
      metrics_->in_flight.with({st.name}).set(static_cast<double>(q.in_flight));
      metrics_->dlq_depth.with({st.name}).set(static_cast<double>(q.dlq_depth));
      metrics_->oldest_message_age_seconds.with({st.name}).set(
          static_cast<double>(q.oldest_age_ms) / 1000.0);
    }
    TimePoint now = clock_.now();
    for (const auto& r : daemon_->schedules()) {
      std::optional<TimePoint> done = daemon_->last_complete_run(r.stage);
      metrics_->seconds_since_last_complete_run.with({r.stage}).set(
          std::chrono::duration<double>(now - (done ? *done : started_)).count());
    }
    if (quota_) {
      for (const auto& w : quota_->windows()) {
        std::string window = fmt::format("{} per {}", w.requests, format_duration(w.per));
        metrics_->quota_used.with({window}).set(static_cast<double>(w.used));
        metrics_->quota_left.with({window}).set(
            static_cast<double>(std::max<int64_t>(0, w.requests - w.used)));
      }
    }
  });

  if (options_.serve) {
    observe::StatusContent content;
    content.registry = &registry_;
    observe::StatusPage page = observe::status_page();
    content.page = std::move(page.page);
    content.assets = std::move(page.assets);
    content.status = [this] { return status_json(); };
    content.health = [this]() -> std::optional<std::string> {
      if (daemon_->stopping()) return std::string("stopping");
      return std::nullopt;
    };
    observe::StatusOptions so;
    so.allow_unauthenticated = options_.allow_unauthenticated;
    server_ = std::make_unique<observe::StatusServer>(std::move(content), so);
    server_->start(options_.listen_address, options_.listen_port);
  }
}

Service::~Service() {
  if (server_) server_->stop();
  engine_.set_observer(nullptr, nullptr);
  if (monitor_) monitor_->stop();
}

int Service::port() const {
  return server_ ? server_->port() : 0;
}

void Service::run() {
  daemon_->run();
}

void Service::request_stop() {
  daemon_->request_stop();
}

void Service::on_message(size_t stage, Duration elapsed) {
  double seconds = std::chrono::duration<double>(elapsed).count();
  stage_metrics_[stage].message_duration_seconds.observe(seconds);
  monitor_->on_message(plan_.stages()[stage].name, seconds);
}

void Service::on_run(const DaemonRun& run, const RunSummary& s) {
  monitor_->on_run(run, s);
  for (size_t i = 0; i < s.stages.size() && i < stage_metrics_.size(); ++i) {
    const StageCounters& c = s.stages[i].second;
    auto& m = stage_metrics_[i];
    m.messages.inc(static_cast<double>(c.messages));
    m.requests_2xx.inc(static_cast<double>(c.responses[0]));
    m.requests_3xx.inc(static_cast<double>(c.responses[1]));
    m.requests_4xx.inc(static_cast<double>(c.responses[2]));
    m.requests_5xx.inc(static_cast<double>(c.responses[3]));
    m.requests_transport.inc(static_cast<double>(c.responses[4]));
    m.records_new.inc(static_cast<double>(c.new_rows));
    m.records_changed.inc(static_cast<double>(c.changed));
    m.records_unchanged.inc(static_cast<double>(c.unchanged));
    m.records_deleted.inc(static_cast<double>(c.gone));
    m.errors.inc(static_cast<double>(c.dead_lettered + c.retried));
    m.throttles.inc(static_cast<double>(c.throttled));
  }
  for (const auto& root : run.roots)
    metrics_->run_duration_seconds.with({root}).observe(run.seconds);
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < s.stages.size() && i < done_totals_.size(); ++i) {
    StageCounters& t = done_totals_[i];
    const StageCounters& c = s.stages[i].second;
    t.messages += c.messages;
    t.requests += c.requests;
    t.records += c.records;
    t.new_rows += c.new_rows;
    t.changed += c.changed;
    t.unchanged += c.unchanged;
    t.gone += c.gone;
    t.retried += c.retried;
    t.dead_lettered += c.dead_lettered;
    t.throttled += c.throttled;
    t.discarded_fields += c.discarded_fields;
  }
}

void Service::on_tick() {
  std::vector<QueueStats> q;
  for (const auto& st : plan_.stages()) q.push_back(store_.queue().stats(st.queue));
  std::vector<StageCounters> live = engine_.live_counters();
  TimePoint now = clock_.now();
  {
    std::lock_guard lock(mu_);
    queues_ = std::move(q);
    uint64_t total = records_of(done_totals_) + records_of(live);
    if (total < records_seen_) total = records_seen_;
    uint64_t delta = total - records_seen_;
    records_seen_ = total;
    int64_t minute = to_millis(now) / 60'000;
    if (per_minute_.empty() || per_minute_.back().first != minute)
      per_minute_.emplace_back(minute, 0);
    per_minute_.back().second += delta;
    while (!per_minute_.empty() && per_minute_.front().first < minute - kMinutesKept)
      per_minute_.pop_front();
  }
  monitor_->sample(daemon_->schedules(),
                   [this](const std::string& root) { return daemon_->last_complete_run(root); });
}

std::string Service::status_json() const {
  Object doc;
  doc.emplace_back("pipeline", Value(plan_.spec().name));
  doc.emplace_back("version", Value(options_.version));
  doc.emplace_back("now", Value(format_time(clock_.now())));
  doc.emplace_back("started", Value(format_time(started_)));
  doc.emplace_back("paused_until", time_or_null(daemon_->paused_until()));

  std::vector<StageCounters> live = engine_.live_counters();
  Array stages;
  {
    std::lock_guard lock(mu_);
    for (const auto& st : plan_.stages()) {
      Object o;
      o.emplace_back("name", Value(st.name));
      Value parent;
      Array children;
      for (const auto& other : plan_.stages())
        for (const auto& e : other.emit)
          if (e.child == st.index) parent = Value(other.name);
      for (const auto& e : st.emit) children.push_back(Value(plan_.stages()[e.child].name));
      o.emplace_back("parent", parent);
      o.emplace_back("children", Value(std::move(children)));
      o.emplace_back("table", Value(st.table));
      const QueueStats& q = queues_[st.index];
      o.emplace_back("queue_depth", Value(q.depth));
      o.emplace_back("in_flight", Value(q.in_flight));
      o.emplace_back("dlq_depth", Value(q.dlq_depth));
      o.emplace_back("oldest_age_seconds", Value(static_cast<double>(q.oldest_age_ms) / 1000.0));
      StageCounters c = done_totals_[st.index];
      // The run under way adds what it did so far.
      if (st.index < live.size()) {
        const StageCounters& l = live[st.index];
        c.messages += l.messages;
        c.records += l.records;
        c.new_rows += l.new_rows;
        c.changed += l.changed;
        c.gone += l.gone;
        c.dead_lettered += l.dead_lettered;
        c.retried += l.retried;
        c.throttled += l.throttled;
      }
      o.emplace_back("messages", Value(static_cast<int64_t>(c.messages)));
      o.emplace_back("records", Value(static_cast<int64_t>(c.records)));
      o.emplace_back("new", Value(static_cast<int64_t>(c.new_rows)));
      o.emplace_back("changed", Value(static_cast<int64_t>(c.changed)));
      o.emplace_back("gone", Value(static_cast<int64_t>(c.gone)));
      o.emplace_back("errors", Value(static_cast<int64_t>(c.dead_lettered + c.retried)));
      o.emplace_back("throttles", Value(static_cast<int64_t>(c.throttled)));
      stages.push_back(Value(std::move(o)));
    }
  }
  doc.emplace_back("stages", Value(std::move(stages)));

  Array runs;
  for (const auto& r : daemon_->recent_runs()) {
    Object o;
    o.emplace_back("run_id", Value(r.run_id));
    Array roots;
    for (const auto& x : r.roots) roots.push_back(Value(x));
    o.emplace_back("roots", Value(std::move(roots)));
    o.emplace_back("started", Value(format_time(r.started)));
    o.emplace_back("seconds", Value(r.seconds));
    o.emplace_back("outcome", Value(r.outcome));
    o.emplace_back("records", Value(static_cast<int64_t>(r.records)));
    o.emplace_back("new", Value(static_cast<int64_t>(r.new_rows)));
    o.emplace_back("changed", Value(static_cast<int64_t>(r.changed)));
    o.emplace_back("gone", Value(static_cast<int64_t>(r.gone)));
    o.emplace_back("dead_lettered", Value(static_cast<int64_t>(r.dead_lettered)));
    runs.push_back(Value(std::move(o)));
  }
  doc.emplace_back("runs", Value(std::move(runs)));

  Array per_minute;
  {
    std::lock_guard lock(mu_);
    for (const auto& [minute, n] : per_minute_) {
      Object o;
      o.emplace_back("minute", Value(format_time(from_millis(minute * 60'000))));
      o.emplace_back("records", Value(static_cast<int64_t>(n)));
      per_minute.push_back(Value(std::move(o)));
    }
  }
  doc.emplace_back("records_per_minute", Value(std::move(per_minute)));

  Array alarms;
  for (const auto& a : monitor_->alarms()) alarms.push_back(alarm_value(a));
  doc.emplace_back("alarms", Value(std::move(alarms)));

  Array quota;
  if (quota_) {
    for (const auto& w : quota_->windows()) {
      Object o;
      o.emplace_back("window", Value(fmt::format("{} per {}", w.requests, format_duration(w.per))));
      o.emplace_back("used", Value(w.used));
      o.emplace_back("left", Value(std::max<int64_t>(0, w.requests - w.used)));
      o.emplace_back("resets", Value(format_time(w.ends)));
      quota.push_back(Value(std::move(o)));
    }
  }
  doc.emplace_back("quota", Value(std::move(quota)));

  Array schedules;
  for (const auto& r : daemon_->schedules()) {
    Object o;
    o.emplace_back("stage", Value(r.stage));
    o.emplace_back("expression", Value(r.expression));
    o.emplace_back("timezone", Value(r.timezone));
    o.emplace_back("next_fire", time_or_null(r.next_fire));
    o.emplace_back("last_fire", time_or_null(r.last_fire));
    o.emplace_back("fired", Value(static_cast<int64_t>(r.fired)));
    o.emplace_back("coalesced", Value(static_cast<int64_t>(r.coalesced)));
    o.emplace_back("missed", Value(static_cast<int64_t>(r.missed)));
    schedules.push_back(Value(std::move(o)));
  }
  doc.emplace_back("schedules", Value(std::move(schedules)));
  return to_json(Value(std::move(doc)));
}

}  // namespace cascade
