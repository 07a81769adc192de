#include "source/quota.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace cascade {

QuotaLedger::QuotaLedger(int64_t requests, Duration per, Clock& clock, std::vector<double> reserve)
    : clock_(clock), shares_(std::move(reserve)) {
  double total = 0;
  for (double r : shares_) {
    if (r < 0 || r >= 1) throw std::invalid_argument("quota: a reserved share must be in [0, 1)");
    total += r;
  }
  if (total >= 1) throw std::invalid_argument("quota: reserved shares must add up to less than 1");
  add_window(requests, per);
}

void QuotaLedger::add_window(int64_t requests, Duration per) {
  if (requests < 1) throw std::invalid_argument("quota: requests must be at least 1");
  if (per.count() <= 0) throw std::invalid_argument("quota: the window must be positive");
  Window w;
  w.requests = requests;
  w.per_ms = per.count();
  for (double r : shares_)
    w.reserved.push_back(static_cast<int64_t>(std::floor(r * static_cast<double>(requests))));
  w.used_by_class.assign(w.reserved.size(), 0);
  w.start_ms = -1;
  w.roll(clock_.now());
  std::lock_guard lock(mu_);
  windows_.push_back(std::move(w));
}

void QuotaLedger::Window::roll(TimePoint now) {
  int64_t ms = to_millis(now);
  int64_t start = ms - (ms % per_ms);
  if (start != start_ms) {
    start_ms = start;
    used = 0;
    std::fill(used_by_class.begin(), used_by_class.end(), 0);
    leased = 0;  // what was leased of the last window is spent with it
    spent = false;
  }
}

std::optional<TimePoint> QuotaLedger::Window::check(size_t cls, TimePoint now) {
  roll(now);
  // Requests still owed to other classes' reserves are not ours to spend.
  int64_t held_for_others = 0;
  for (size_t c = 0; c < reserved.size(); ++c)
    if (c != cls) held_for_others += std::max<int64_t>(0, reserved[c] - used_by_class[c]);
  if (used + 1 + held_for_others <= requests) return std::nullopt;
  return from_millis(start_ms + per_ms);
}

std::optional<TimePoint> QuotaLedger::check(size_t cls) const {
  std::lock_guard lock(mu_);
  TimePoint now = clock_.now();
  std::optional<TimePoint> until;
  for (auto& w : windows_)
    if (auto u = w.check(cls, now); u && (!until || *u > *until)) until = u;
  if (until) return until;
  return shared_check_locked(now);
}

std::optional<TimePoint> QuotaLedger::try_take(size_t cls) {
  std::lock_guard lock(mu_);
  TimePoint now = clock_.now();
  std::optional<TimePoint> until;
  for (auto& w : windows_)
    if (auto u = w.check(cls, now); u && (!until || *u > *until)) until = u;
  if (until) return until;
  if (auto u = shared_check_locked(now)) return u;
  for (auto& w : windows_) {
    if (link_) --w.leased;
    ++w.used;
    if (cls < w.used_by_class.size()) ++w.used_by_class[cls];
  }
  return std::nullopt;
}

struct QuotaLedger::Link {
  QuotaLedger& ledger;
  std::shared_ptr<SharedQuota> keeper;
  std::condition_variable cv;  // with ledger.mu_
  bool stop = false;
  std::thread thread;

  Link(QuotaLedger& l, std::shared_ptr<SharedQuota> k) : ledger(l), keeper(std::move(k)) {
    thread = std::thread([this] { run(); });
  }

  void run() {
    TimePoint last_warning{};
    std::unique_lock lock(ledger.mu_);
    while (true) {
      cv.wait(lock, [&] {
        return stop || std::any_of(ledger.windows_.begin(), ledger.windows_.end(),
                                   [](const Window& w) { return w.pending; });
      });
      if (stop) return;
      for (auto& w : ledger.windows_) {
        if (!w.pending) continue;
        int64_t per = w.per_ms, start = w.start_ms, requests = w.requests;
        // A few at a time: what a worker leased and did not use is lost with its window.
        int64_t want = std::clamp<int64_t>(requests / 100, 1, 20);
        lock.unlock();
        int64_t got = -1;
        std::string failure;
        try {
          got = keeper->take(per, start, requests, want);
        } catch (const std::exception& e) {
          failure = e.what();
        }
        lock.lock();
        if (got < 0) {
          TimePoint now = ledger.clock_.now();
          if (now - last_warning >= std::chrono::seconds(10)) {
            last_warning = now;
            spdlog::warn("shared quota unavailable, requests wait: {}", failure);
          }
          // Nothing is sent on a budget nobody can vouch for; ask again in a second.
          cv.wait_for(lock, std::chrono::seconds(1), [&] { return stop; });
          if (stop) return;
        } else if (w.start_ms == start) {
          w.leased += got;
          w.spent = got == 0;
        }
        w.pending = false;
      }
    }
  }

  ~Link() {
    {
      std::lock_guard lock(ledger.mu_);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
};

QuotaLedger::~QuotaLedger() = default;

void QuotaLedger::share(std::shared_ptr<SharedQuota> shared) {
  link_.reset();  // joins its thread
  if (!shared) return;
  {
    std::lock_guard lock(mu_);
    for (auto& w : windows_) w.leased = 0, w.spent = false, w.pending = false;
  }
  link_ = std::make_unique<Link>(*this, std::move(shared));
}

std::optional<TimePoint> QuotaLedger::shared_check_locked(TimePoint now) const {
  if (!link_) return std::nullopt;
  std::optional<TimePoint> until;
  bool ask = false;
  for (auto& w : windows_) {
    w.roll(now);
    if (w.leased > 0) continue;
    TimePoint u = w.spent ? from_millis(w.start_ms + w.per_ms) : now + Duration(2);
    if (!w.spent && !w.pending) w.pending = ask = true;
    if (!until || u > *until) until = u;
  }
  if (ask) link_->cv.notify_all();
  return until;
}

std::vector<QuotaLedger::WindowState> QuotaLedger::windows() const {
  std::lock_guard lock(mu_);
  std::vector<WindowState> out;
  TimePoint now = clock_.now();
  for (auto& w : windows_) {
    w.roll(now);
    out.push_back({w.requests, std::chrono::milliseconds(w.per_ms), w.used,
                   from_millis(w.start_ms + w.per_ms)});
  }
  return out;
}

int64_t QuotaLedger::used() const {
  std::lock_guard lock(mu_);
  windows_.front().roll(clock_.now());
  return windows_.front().used;
}

int64_t QuotaLedger::limit() const {
  std::lock_guard lock(mu_);
  return windows_.front().requests;
}

TimePoint QuotaLedger::window_end() const {
  std::lock_guard lock(mu_);
  windows_.front().roll(clock_.now());
  return from_millis(windows_.front().start_ms + windows_.front().per_ms);
}

std::string QuotaLedger::serialize() const {
  std::lock_guard lock(mu_);
  std::ostringstream out;
  for (size_t i = 0; i < windows_.size(); ++i) {
    Window& w = windows_[i];
    w.roll(clock_.now());
    if (i) out << ';';
    out << w.start_ms << ' ' << w.used;
    for (int64_t u : w.used_by_class) out << ' ' << u;
  }
  return out.str();
}

void QuotaLedger::restore(std::string_view saved) {
  std::lock_guard lock(mu_);
  TimePoint now = clock_.now();
  size_t i = 0;
  while (!saved.empty() && i < windows_.size()) {
    size_t semi = saved.find(';');
    std::istringstream in{std::string(saved.substr(0, semi))};
    saved = semi == std::string_view::npos ? std::string_view{} : saved.substr(semi + 1);
    Window& w = windows_[i++];
    int64_t start = 0, used = 0;
    if (!(in >> start >> used) || used < 0) continue;
    std::vector<int64_t> by_class(w.used_by_class.size(), 0);
    for (auto& u : by_class)
      if (!(in >> u)) u = 0;
    w.roll(now);
    if (start != w.start_ms) continue;  // that window is over
    w.used = used;
    w.used_by_class = std::move(by_class);
  }
}

}  // namespace cascade
