#include "observe/metrics.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <type_traits>

namespace cascade::observe {

namespace {

bool is_word_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

void append_help(std::string_view help, std::string& out) {
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

// `name{a="x",b="y"` + extra + `}`, or just the name when there are no labels at all.
void append_series(std::string_view name, const std::vector<std::string>& label_names,
                   const std::vector<std::string>& values, std::string_view extra_name,
                   std::string_view extra_value, std::string& out) {
  out += name;
  if (label_names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += label_names[i];
    out += "=\"";
    append_escaped_label_value(values[i], out);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    append_escaped_label_value(extra_value, out);
    out += '"';
  }
  out += '}';
}

void append_uint(uint64_t v, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

template <class T>
constexpr const char* type_name() {
  if constexpr (std::is_same_v<T, Counter>)
    return "counter";
  else if constexpr (std::is_same_v<T, Gauge>)
    return "gauge";
  else
    return "histogram";
}

template <class T>
constexpr MetricType type_of() {
  if constexpr (std::is_same_v<T, Counter>)
    return MetricType::counter;
  else if constexpr (std::is_same_v<T, Gauge>)
    return MetricType::gauge;
  else
    return MetricType::histogram;
}

void add_double(std::atomic<double>& a, double v) {
  // fetch_add on atomic<double> is a compare-exchange loop too; spelled out to stay relaxed
  // on every standard library.
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  if (!is_word_start(name[0]) && name[0] != ':') return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_word_start(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !is_word_start(name[0])) return false;
  if (name.starts_with("__")) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_word_start(c) || is_digit(c); });
}

void append_escaped_label_value(std::string_view value, std::string& out) {
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_sample_value(double v, std::string& out) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
  }
}

// ---- children ----

void Counter::inc(double v) {
  if (!(v >= 0)) return;  // also false for NaN
  add_double(value_, v);
}

void Gauge::inc(double v) {
  add_double(value_, v);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]))
      throw std::invalid_argument("histogram bucket bounds must be finite (+Inf is implicit)");
    if (i > 0 && !(bounds_[i - 1] < bounds_[i]))
      throw std::invalid_argument("histogram bucket bounds must be strictly increasing");
  }
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  // Upper bounds are inclusive: v lands in the first bucket whose bound is >= v.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  add_double(sum_, v);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i].load(std::memory_order_relaxed);
  return n;
}

// ---- families ----

template <class T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
  // The one series of an unlabelled family exists from the start, so a scrape shows 0 rather
  // than nothing before the first event.
  if (label_names_.empty()) with();
}

template <class T>
T& Family<T>::with(std::initializer_list<std::string_view> values) {
  return with(std::vector<std::string>(values.begin(), values.end()));
}

template <class T>
T& Family<T>::with(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size())
    throw std::invalid_argument("metric " + name_ + " takes " +
                                std::to_string(label_names_.size()) + " label values, got " +
                                std::to_string(values.size()));
  std::lock_guard lock(mutex_);
  auto it = children_.find(values);
  if (it != children_.end()) return *it->second;
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>)
    child = std::make_unique<Histogram>(bounds_);
  else
    child = std::make_unique<T>();
  return *children_.emplace(values, std::move(child)).first->second;
}

template <class T>
void Family<T>::render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_help(help_, out);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type_name<T>();
  out += '\n';
  std::lock_guard lock(mutex_);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const auto counts = child->bucket_counts();
      const std::string bucket = name_ + "_bucket";
      std::string le;
      uint64_t cumulative = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        le.clear();
        append_sample_value(i < bounds_.size() ? bounds_[i] : INFINITY, le);
        append_series(bucket, label_names_, values, "le", le, out);
        out += ' ';
        append_uint(cumulative, out);
        out += '\n';
      }
      append_series(name_ + "_sum", label_names_, values, {}, {}, out);
      out += ' ';
      append_sample_value(child->sum(), out);
      out += '\n';
      append_series(name_ + "_count", label_names_, values, {}, {}, out);
      out += ' ';
      append_uint(cumulative, out);
      out += '\n';
    } else {
      append_series(name_, label_names_, values, {}, {}, out);
      out += ' ';
      append_sample_value(child->value(), out);
      out += '\n';
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- registry ----

struct Registry::Entry {
  MetricType type;
  std::unique_ptr<CounterFamily> counter;
  std::unique_ptr<GaugeFamily> gauge;
  std::unique_ptr<HistogramFamily> histogram;

  void render(std::string& out) const {
    if (counter) counter->render(out);
    if (gauge) gauge->render(out);
    if (histogram) histogram->render(out);
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

template <class T>
Family<T>& Registry::add(MetricType type, const std::string& name, const std::string& help,
                         std::vector<std::string> label_names, std::vector<double> bounds) {
  if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name '" + name + "'");
  if (type == MetricType::counter && !name.ends_with("_total"))
    throw std::invalid_argument("counter name '" + name + "' must end in _total");
  for (size_t i = 0; i < label_names.size(); ++i) {
    const auto& l = label_names[i];
    if (!valid_label_name(l))
      throw std::invalid_argument("metric " + name + ": invalid label name '" + l + "'");
    if (type == MetricType::histogram && l == "le")
      throw std::invalid_argument("histogram " + name + ": label 'le' is reserved");
    if (std::find(label_names.begin(), label_names.begin() + i, l) != label_names.begin() + i)
      throw std::invalid_argument("metric " + name + ": label '" + l + "' declared twice");
  }
  if (type == MetricType::histogram) bounds = Histogram(bounds).bounds();  // validates

  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    Family<T>* existing = nullptr;
    if constexpr (std::is_same_v<T, Counter>)
      existing = it->second->counter.get();
    else if constexpr (std::is_same_v<T, Gauge>)
      existing = it->second->gauge.get();
    else
      existing = it->second->histogram.get();
    if (!existing || existing->label_names_ != label_names || existing->bounds_ != bounds)
      throw std::invalid_argument("metric " + name + " is already registered differently");
    return *existing;
  }
  auto entry = std::make_unique<Entry>();
  entry->type = type;
  std::unique_ptr<Family<T>> family(
      new Family<T>(name, help, std::move(label_names), std::move(bounds)));
  Family<T>& ref = *family;
  if constexpr (std::is_same_v<T, Counter>)
    entry->counter = std::move(family);
  else if constexpr (std::is_same_v<T, Gauge>)
    entry->gauge = std::move(family);
  else
    entry->histogram = std::move(family);
  families_.emplace(name, std::move(entry));
  return ref;
}

CounterFamily& Registry::counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> label_names) {
  return add<Counter>(MetricType::counter, name, help, std::move(label_names), {});
}

GaugeFamily& Registry::gauge(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names) {
  return add<Gauge>(MetricType::gauge, name, help, std::move(label_names), {});
}

HistogramFamily& Registry::histogram(const std::string& name, const std::string& help,
                                     std::vector<double> bounds,
                                     std::vector<std::string> label_names) {
  return add<Histogram>(MetricType::histogram, name, help, std::move(label_names),
                        std::move(bounds));
}

void Registry::add_collector(std::function<void()> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::expose() const {
  std::lock_guard scrape(scrape_mutex_);
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mutex_);
    collectors = collectors_;
  }
  // Outside mutex_: a collector may register families or look up children.
  for (const auto& collect : collectors) {
    try {
      collect();
    } catch (const std::exception& e) {
      spdlog::warn("metrics collector failed: {}", e.what());
    }
  }
  std::vector<const Entry*> entries;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(families_.size());
    for (const auto& [name, entry] : families_) entries.push_back(entry.get());
  }
  // Entries are never removed, so rendering them after releasing mutex_ is safe and keeps
  // registration from waiting on a scrape.
  std::string out;
  for (const Entry* e : entries) e->render(out);
  return out;
}

// ---- process metrics ----

namespace {

struct ProcStat {
  double cpu_seconds = 0;
  double start_ticks = 0;
  double vsize = 0;
  double rss_pages = 0;
  bool ok = false;
};

// /proc/self/stat: the command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
ProcStat read_proc_stat() {
  ProcStat st;
  std::ifstream f("/proc/self/stat");
  std::string line;
  if (!std::getline(f, line)) return st;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return st;
  std::istringstream in(line.substr(close + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  for (std::string s; in >> s;) fields.push_back(s);
  if (fields.size() < 22) return st;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  try {
    st.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // utime, stime
    st.start_ticks = std::stod(fields[19]);                                    // starttime
    st.vsize = std::stod(fields[20]);
    st.rss_pages = std::stod(fields[21]);
    st.ok = true;
  } catch (const std::exception&) {
  }
  return st;
}

double boot_time_seconds() {
  std::ifstream f("/proc/stat");
  for (std::string line; std::getline(f, line);) {
    if (line.starts_with("btime ")) return std::stod(line.substr(6));
  }
  return 0;
}

}  // namespace

void register_process_metrics(Registry& registry, const std::string& version) {
  registry
      .gauge("cascade_build_info", "The running cascade's version, as a label; always 1.",
             {"version"})
      .with({version})
      .set(1);
  Gauge& start = registry
                     .gauge("process_start_time_seconds",
                            "Start time of the process since the Unix epoch, in seconds.")
                     .with();
  Counter& cpu =
      registry.counter("process_cpu_seconds_total", "Total user and system CPU time, in seconds.")
          .with();
  Gauge& rss =
      registry.gauge("process_resident_memory_bytes", "Resident memory size, in bytes.").with();
  Gauge& vsize =
      registry.gauge("process_virtual_memory_bytes", "Virtual memory size, in bytes.").with();
  Gauge& fds = registry.gauge("process_open_fds", "Number of open file descriptors.").with();
  Gauge& max_fds =
      registry.gauge("process_max_fds", "Maximum number of open file descriptors.").with();

  // The start time does not change: computed once.
  if (const ProcStat st = read_proc_stat(); st.ok) {
    const double btime = boot_time_seconds();
    if (btime > 0) start.set(btime + st.start_ticks / static_cast<double>(sysconf(_SC_CLK_TCK)));
  }

  registry.add_collector([&cpu, &rss, &vsize, &fds, &max_fds] {
    if (const ProcStat st = read_proc_stat(); st.ok) {
      // A counter only goes up: add what was spent since the previous scrape.
      if (st.cpu_seconds > cpu.value()) cpu.inc(st.cpu_seconds - cpu.value());
      rss.set(st.rss_pages * static_cast<double>(sysconf(_SC_PAGESIZE)));
      vsize.set(st.vsize);
    }
    std::error_code ec;
    size_t n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec))
      ++n;
    if (!ec) fds.set(static_cast<double>(n));
    if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      max_fds.set(static_cast<double>(rl.rlim_cur));
  });
}

// ---- the metrics of `cascade run` ----

const std::vector<double>& CascadeMetrics::message_duration_bounds() {
  static const std::vector<double> b{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,  5,     10,   30,  60,   120};
  return b;
}

const std::vector<double>& CascadeMetrics::run_duration_bounds() {
  static const std::vector<double> b{1,   5,    10,   30,   60,   120,   300,
                                     600, 1200, 1800, 3600, 7200, 14400, 28800};
  return b;
}

CascadeMetrics::CascadeMetrics(Registry& r)
    : messages(r.counter("cascade_messages_total",
                         "Messages a stage finished processing, acked or failed.", {"stage"})),
      requests(r.counter("cascade_requests_total",
                         "HTTP requests sent to the source, by status class (2xx, 3xx, 4xx, 5xx) "
                         "or transport when no response arrived.",
                         {"stage", "class"})),
      records(r.counter("cascade_records_total",
                        "Records selected from responses, by kind: new, changed, unchanged, "
                        "deleted.",
                        {"stage", "kind"})),
      errors(r.counter("cascade_errors_total",
                       "Failed message attempts (retried or dead-lettered).", {"stage"})),
      throttles(r.counter("cascade_throttles_total",
                          "Responses that told cascade to slow down (429, 503 with Retry-After).",
                          {"stage"})),
      limiter_wait_seconds(r.counter("cascade_limiter_wait_seconds_total",
                                     "Time spent waiting for the shared rate limiter, in seconds.",
                                     {"stage"})),
      message_duration_seconds(
          r.histogram("cascade_message_duration_seconds",
                      "Time from receiving a message to its ack or failure, in seconds.",
                      message_duration_bounds(), {"stage"})),
      run_duration_seconds(r.histogram(
          "cascade_run_duration_seconds",
          "Time of a run of a root stage, until every message it cascaded into is processed, "
          "in seconds.",
          run_duration_bounds(), {"stage"})),
      queue_depth(
          r.gauge("cascade_queue_depth", "Messages waiting in a stage's queue.", {"stage"})),
      in_flight(r.gauge("cascade_in_flight", "Messages received and not yet acked or returned.",
                        {"stage"})),
      oldest_message_age_seconds(r.gauge(
          "cascade_oldest_message_age_seconds",
          "Age of the oldest message in a stage's queue, in seconds (0 when empty).", {"stage"})),
      dlq_depth(
          r.gauge("cascade_dlq_depth", "Messages in a stage's dead-letter queue.", {"stage"})),
      quota_used(r.gauge("cascade_quota_used",
                         "Requests counted against the source's quota in the current window.",
                         {"window"})),
      quota_left(r.gauge("cascade_quota_left",
                         "Requests left in the source's quota for the current window.",
                         {"window"})),
      seconds_since_last_complete_run(
          r.gauge("cascade_seconds_since_last_complete_run",
                  "Seconds since a run of this root stage last completed.", {"stage"})) {}

CascadeMetrics::Stage CascadeMetrics::stage(const std::string& name) {
  return Stage{
      .messages = messages.with({name}),
      .requests_2xx = requests.with({name, "2xx"}),
      .requests_3xx = requests.with({name, "3xx"}),
      .requests_4xx = requests.with({name, "4xx"}),
      .requests_5xx = requests.with({name, "5xx"}),
      .requests_transport = requests.with({name, "transport"}),
      .records_new = records.with({name, "new"}),
      .records_changed = records.with({name, "changed"}),
      .records_unchanged = records.with({name, "unchanged"}),
      .records_deleted = records.with({name, "deleted"}),
      .errors = errors.with({name}),
      .throttles = throttles.with({name}),
      .limiter_wait_seconds = limiter_wait_seconds.with({name}),
      .message_duration_seconds = message_duration_seconds.with({name}),
  };
}

Counter& CascadeMetrics::Stage::request(int http_status) const {
  if (http_status >= 200 && http_status < 300) return requests_2xx;
  if (http_status >= 300 && http_status < 400) return requests_3xx;
  if (http_status >= 400 && http_status < 500) return requests_4xx;
  if (http_status >= 500 && http_status < 600) return requests_5xx;
  return requests_transport;
}

}  // namespace cascade::observe
