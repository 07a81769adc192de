#include "engine/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "core/json.h"
#include "observe/log.h"

namespace cascade {

namespace {

std::string meta_key(const std::string& stage) {
  return "schedule:" + stage;
}

// Bounds the walk over ticks that passed during a long run or downtime: past this many, the
// count is what it is and the daemon moves on from `now`.
constexpr int kMaxTicksCounted = 100'000;

}  // namespace

Daemon::Daemon(const Plan& plan, Engine& engine, Store& store, Clock& clock, DaemonOptions options)
    : plan_(plan), engine_(engine), store_(store), clock_(clock), options_(std::move(options)) {
  for (const auto& st : plan_.stages()) {
    if (!st.root || !st.spec->schedule) continue;
    Root r{RootSchedule{}, parse_schedule(*st.spec->schedule),
           st.spec->timezone ? TimeZone::load(*st.spec->timezone) : TimeZone::utc(), TimePoint{}};
    r.view.stage = st.name;
    r.view.expression = *st.spec->schedule;
    r.view.timezone = st.spec->timezone ? *st.spec->timezone : "UTC";
    roots_.push_back(std::move(r));
  }
}

std::optional<TimePoint> Daemon::next_after(const Root& r, TimePoint after) const {
  return next_fire(r.schedule, after, r.zone, r.anchor);
}

void Daemon::load_state() {
  TimePoint now = clock_.now();
  store_.begin();
  try {
    std::lock_guard lock(mu_);
    for (auto& r : roots_) {
      std::optional<std::string> saved = store_.get_meta(meta_key(r.view.stage));
      Value v = saved ? parse_json(*saved) : Value(Object{});
      const Value* expr = v.find("expression");
      bool same = expr && expr->is_string() && expr->as_string() == r.view.expression;
      auto num = [&](const char* k) -> int64_t {
        const Value* x = v.find(k);
        return x && x->is_int() ? x->as_int() : 0;
      };
      if (same) {
        r.anchor = from_millis(num("anchor"));
        if (int64_t lf = num("last_fire")) r.view.last_fire = from_millis(lf);
        r.view.fired = static_cast<uint64_t>(num("fired"));
        r.view.coalesced = static_cast<uint64_t>(num("coalesced"));
        r.view.missed = static_cast<uint64_t>(num("missed"));
      } else {
        // A new or edited schedule starts now: a rate() fires at once, then every period.
        r.anchor = now;
      }
      if (!r.view.last_fire) {
        r.view.next_fire = std::holds_alternative<RateSchedule>(r.schedule.when)
                               ? std::optional<TimePoint>(r.anchor)
                               : next_after(r, now);
      } else {
        // Ticks missed while down fire once, at start.
        std::optional<TimePoint> next = next_after(r, *r.view.last_fire);
        uint64_t missed = 0;
        std::optional<TimePoint> t = next;
        for (int i = 0; t && *t <= now && i < kMaxTicksCounted; ++i) {
          ++missed;
          t = next_after(r, *t);
        }
        if (missed > 1) r.view.missed += missed - 1;
        r.view.next_fire = next && *next <= now ? std::optional<TimePoint>(now) : next;
      }
      save_state(r);
    }
    store_.commit();
  } catch (...) {
    store_.rollback();
    throw;
  }
}

// Inside a transaction; mu_ held.
void Daemon::save_state(const Root& r) {
  Object o;
  o.emplace_back("expression", Value(r.view.expression));
  o.emplace_back("anchor", Value(to_millis(r.anchor)));
  o.emplace_back("last_fire", Value(r.view.last_fire ? to_millis(*r.view.last_fire) : 0));
  o.emplace_back("fired", Value(static_cast<int64_t>(r.view.fired)));
  o.emplace_back("coalesced", Value(static_cast<int64_t>(r.view.coalesced)));
  o.emplace_back("missed", Value(static_cast<int64_t>(r.view.missed)));
  store_.set_meta(meta_key(r.view.stage), canonical_json(Value(std::move(o))));
}

bool Daemon::leads() {
  Coordination* c = store_.coordination();
  if (!c) return true;
  auto now = std::chrono::steady_clock::now();
  if (last_lead_check_ == decltype(now){} || now - last_lead_check_ >= options_.idle_poll) {
    last_lead_check_ = now;
    bool lead = c->lead(daemon_leader_role(plan_.spec().name));
    if (lead && !leader_) {
      spdlog::info("this daemon now fires the schedules");
      load_state();  // the last leader's fires, not what this one saw at start
    }
    leader_ = lead;
  }
  return leader_;
}

void Daemon::claim_ticks(std::vector<std::string>& due) {
  Coordination* c = store_.coordination();
  if (!c) return;
  std::string role = daemon_leader_role(plan_.spec().name);
  std::vector<std::string> taken;
  std::lock_guard lock(mu_);
  for (auto& r : roots_) {
    if (std::find(due.begin(), due.end(), r.view.stage) == due.end() || !r.view.next_fire) continue;
    std::string key = "tick:" + role + ":" + r.view.stage;
    if (c->advance(key, to_millis(*r.view.next_fire))) continue;
    // Fired by another leader (its state may not have reached the meta table): that tick is
    // done; the next one follows it.
    TimePoint fired = from_millis(c->marker(key).value_or(to_millis(*r.view.next_fire)));
    spdlog::info("{}: tick of {} already fired by another daemon", r.view.stage,
                 format_time(fired));
    r.view.last_fire = fired;
    r.view.next_fire = next_after(r, std::max(fired, *r.view.next_fire));
    taken.push_back(r.view.stage);
  }
  if (taken.empty()) return;
  store_.begin();
  try {
    for (const auto& r : roots_)
      if (std::find(taken.begin(), taken.end(), r.view.stage) != taken.end()) save_state(r);
    store_.commit();
  } catch (...) {
    store_.rollback();
    throw;
  }
  std::erase_if(due, [&](const std::string& st) {
    return std::find(taken.begin(), taken.end(), st) != taken.end();
  });
}

bool Daemon::work_queued() {
  for (const auto& st : plan_.stages()) {
    QueueStats qs = store_.queue().stats(st.queue);
    if (qs.depth > 0 || qs.in_flight > 0) return true;
  }
  return false;
}

void Daemon::wait_until(TimePoint until) {
  // Short real-time steps: a stop, or a clock moved by hand in tests, is seen at once.
  while (!stop_.load() && clock_.now() < until) {
    auto left = until - clock_.now();
    std::this_thread::sleep_for(std::min<Duration>(left, std::chrono::milliseconds(100)));
  }
}

void Daemon::execute(const std::vector<std::string>& roots) {
  TimePoint started = clock_.now();
  if (!roots.empty()) {
    std::lock_guard lock(mu_);
    store_.begin();
    try {
      for (auto& r : roots_) {
        if (std::find(roots.begin(), roots.end(), r.view.stage) == roots.end()) continue;
        r.view.last_fire = started;
        ++r.view.fired;
        r.view.next_fire = next_after(r, started);
        save_state(r);
      }
      store_.commit();
    } catch (...) {
      store_.rollback();
      throw;
    }
    spdlog::info("run of {} started by its schedule", fmt::join(roots, ", "));
  }
  RunSummary s =
      roots.empty() ? engine_.sync(nullptr, /*seed_roots=*/false) : engine_.sync_roots(roots);
  TimePoint ended = clock_.now();

  DaemonRun run;
  run.run_id = s.run_id;
  run.roots = roots;
  run.started = started;
  run.seconds = s.seconds;
  run.outcome = s.quota_exhausted_until ? "paused" : s.completed ? "completed" : "stopped";
  StageCounters t = s.total();
  run.records = t.records;
  run.new_rows = t.new_rows;
  run.changed = t.changed;
  run.gone = t.gone;
  run.dead_lettered = t.dead_lettered;
  {
    std::lock_guard lock(mu_);
    // Ticks that came while this run cascaded are coalesced into it.
    bool changed = false;
    for (auto& r : roots_) {
      int n = 0;
      while (r.view.next_fire && *r.view.next_fire <= ended && n < kMaxTicksCounted) {
        // A tick already due when the run began is this run's own (a missed one fired late).
        if (*r.view.next_fire > started) ++r.view.coalesced, ++n;
        r.view.next_fire = next_after(r, *r.view.next_fire);
      }
      if (n) {
        changed = true;
        spdlog::info("{}: {} tick{} came while the run still cascaded; coalesced", r.view.stage, n,
                     n == 1 ? "" : "s");
      }
    }
    if (changed) {
      store_.begin();
      try {
        for (const auto& r : roots_) save_state(r);
        store_.commit();
      } catch (...) {
        store_.rollback();
        throw;
      }
    }
    // A run cut short is finished by later drains: its roots complete with them.
    std::vector<std::string> finished = roots;
    finished.insert(finished.end(), pending_.begin(), pending_.end());
    std::sort(finished.begin(), finished.end());
    finished.erase(std::unique(finished.begin(), finished.end()), finished.end());
    if (s.completed) {
      pending_.clear();
    } else {
      pending_ = finished;
    }
    if (s.completed)
      for (const auto& root : finished) {
        auto it = std::find_if(last_complete_.begin(), last_complete_.end(),
                               [&](const auto& p) { return p.first == root; });
        if (it == last_complete_.end())
          last_complete_.emplace_back(root, ended);
        else
          it->second = ended;
      }
    runs_.push_back(run);
    while (runs_.size() > options_.runs_kept) runs_.pop_front();
    paused_until_ = s.quota_exhausted_until;
  }
  LogScope scope({run.run_id, {}, {}, run.seconds});
  if (options_.on_run) options_.on_run(run, s);
  // Between ticks the daemon is idle: a bulk sync's checkpoint threshold would otherwise let the
  // write-ahead log grow for dozens of ticks and be replayed after a crash.
  if (!store_.in_transaction()) store_.compact();
  if (options_.on_idle) options_.on_idle();
  spdlog::info("run {} {} in {:.3f}s: {} records, {} new, {} changed, {} gone, {} dead-lettered",
               run.run_id, run.outcome, run.seconds, run.records, run.new_rows, run.changed,
               run.gone, run.dead_lettered);
  if (s.quota_exhausted_until && !stop_.load()) {
    spdlog::warn("the {} is spent until {}; paused", s.quota_by_vendor ? "vendor's quota" : "quota",
                 format_time(*s.quota_exhausted_until));
    wait_until(*s.quota_exhausted_until);
    std::lock_guard lock(mu_);
    paused_until_.reset();
  }
}

void Daemon::run() {
  load_state();
  for (const auto& r : schedules())
    spdlog::info("{}: schedule {} ({}), next run {}", r.stage, r.expression, r.timezone,
                 r.next_fire ? format_time(*r.next_fire) : std::string("never"));
  if (on_started_) on_started_(schedules());
  TimePoint last_look{};
  TimePoint last_idle{};
  while (!stop_.load()) {
    TimePoint now = clock_.now();
    if (options_.on_idle && now - last_idle >= options_.idle_poll) {
      last_idle = now;
      options_.on_idle();
    }
    std::vector<std::string> due;
    std::optional<TimePoint> soonest;
    if (leads()) {
      std::lock_guard lock(mu_);
      for (const auto& r : roots_) {
        if (!r.view.next_fire) continue;
        if (*r.view.next_fire <= now)
          due.push_back(r.view.stage);
        else if (!soonest || *r.view.next_fire < *soonest)
          soonest = r.view.next_fire;
      }
    }
    claim_ticks(due);
    if (!due.empty()) {
      if (work_queued()) {
        // The previous run still cascades (paused by a quota, or cut short by a stop before a
        // restart): the tick joins it instead of starting a second one.
        std::lock_guard lock(mu_);
        store_.begin();
        try {
          for (auto& r : roots_) {
            if (std::find(due.begin(), due.end(), r.view.stage) == due.end()) continue;
            ++r.view.coalesced;
            r.view.next_fire = next_after(r, now);
            save_state(r);
          }
          store_.commit();
        } catch (...) {
          store_.rollback();
          throw;
        }
        spdlog::info("{}: tick coalesced into the run still cascading", fmt::join(due, ", "));
        pending_.insert(pending_.end(), due.begin(), due.end());
        execute({});
      } else {
        execute(due);
      }
      continue;
    }
    if (now - last_look >= options_.idle_poll) {
      last_look = now;
      if (work_queued()) {
        // Retries coming due, redriven dead letters, a run a stop or quota cut short.
        execute({});
        continue;
      }
    }
    TimePoint until = now + options_.idle_poll;
    if (soonest && *soonest < until) until = *soonest;
    wait_until(until);
  }
}

void Daemon::request_stop() {
  stop_.store(true);
  engine_.request_stop();
}

std::vector<RootSchedule> Daemon::schedules() const {
  std::lock_guard lock(mu_);
  std::vector<RootSchedule> out;
  for (const auto& r : roots_) out.push_back(r.view);
  return out;
}

std::vector<DaemonRun> Daemon::recent_runs() const {
  std::lock_guard lock(mu_);
  return {runs_.begin(), runs_.end()};
}

std::optional<TimePoint> Daemon::paused_until() const {
  std::lock_guard lock(mu_);
  return paused_until_;
}

std::optional<TimePoint> Daemon::last_complete_run(const std::string& root) const {
  std::lock_guard lock(mu_);
  for (const auto& [name, t] : last_complete_)
    if (name == root) return t;
  return std::nullopt;
}

}  // namespace cascade
