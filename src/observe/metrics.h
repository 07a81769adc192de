// Prometheus metrics: a registry of metric families rendered in the text exposition format
// 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), and the metric set of
// `cascade run` (CascadeMetrics, process metrics).
//
// Model. A Registry owns families; a family has a name, a help text, a type (counter, gauge,
// histogram) and fixed label names; each distinct tuple of label values is a child (Counter,
// Gauge or Histogram) created on first lookup. A child is looked up once and the reference kept:
// it stays valid, at the same address, for the registry's lifetime, and updating it is a few
// relaxed atomic operations, with no lock and no allocation, so it belongs on hot paths.
//
// Thread-safety. Everything here is safe to call from any thread at any time: updates of a child
// are atomic; registration and child lookup take a mutex (call them at setup, not per event);
// expose() may run concurrently with updates and with other expose() calls (collectors run one
// scrape at a time).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::observe {

// A monotonically increasing value: a count of events or a total of seconds or bytes. Resets
// only when the process restarts, which is what Prometheus' rate() expects.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds v. A negative or NaN v is ignored: a counter that went down would read as a restart
  // to rate() and invent a spike.
  void inc(double v = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down: a depth, an age, a number of bytes.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1.0);
  void dec(double v = 1.0) { inc(-v); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into buckets with fixed upper bounds (inclusive, "le"), plus their sum
// and count. Rendered cumulatively with a final "+Inf" bucket that always equals _count, even
// while other threads observe: _count is derived from the buckets at render time.
class Histogram {
 public:
  // bounds: finite, strictly increasing upper bounds (without +Inf, which is implicit).
  // Throws std::invalid_argument otherwise.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records v. NaN is ignored: it would turn _sum into NaN for the rest of the process.
  void observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket counts, not cumulative; one more than bounds(): the last is the +Inf bucket.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

enum class MetricType { counter, gauge, histogram };

// One family: its children by label values. Obtained from Registry; never destroyed before it.
template <class T>
class Family {
 public:
  // The child for these label values (one per label name, in the order the family declared
  // them), created at zero on first use. Throws std::invalid_argument on a wrong number of
  // values. Takes the family's mutex: look up once, keep the reference.
  T& with(std::initializer_list<std::string_view> values = {});
  T& with(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);
  void render(std::string& out) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// The set of families one /metrics endpoint exposes.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the existing one when the same name was registered with the
  // same type, label names (and bounds). Throws std::invalid_argument when the name or a label
  // name is not valid Prometheus ([a-zA-Z_:][a-zA-Z0-9_:]* for metrics, [a-zA-Z_][a-zA-Z0-9_]*
  // without a leading "__" for labels), when a counter's name does not end in "_total", when a
  // histogram declares a label "le", or when the name is taken by a different family.
  CounterFamily& counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             std::vector<double> bounds, std::vector<std::string> label_names = {});

  // Adds a callback run at the start of every expose(), before anything is rendered, to set
  // values that are cheaper to read when scraped than to track (queue depths, quota left, ages).
  // Collectors run on the scraping thread, one scrape at a time, in the order added; one that
  // throws is logged and skipped, and the scrape goes on. A collector must not call expose().
  void add_collector(std::function<void()> collector);

  // The text exposition format 0.0.4: families sorted by name, each with # HELP and # TYPE,
  // then its samples with children sorted by label values. A labelled family with no child yet
  // shows only its HELP and TYPE lines; an unlabelled one always shows its single sample.
  std::string expose() const;

 private:
  struct Entry;
  template <class T>
  Family<T>& add(MetricType type, const std::string& name, const std::string& help,
                 std::vector<std::string> label_names, std::vector<double> bounds);

  mutable std::mutex mutex_;         // families_ and collectors_
  mutable std::mutex scrape_mutex_;  // one expose() at a time runs collectors
  std::map<std::string, std::unique_ptr<Entry>> families_;
  std::vector<std::function<void()>> collectors_;
};

// True if name matches [a-zA-Z_:][a-zA-Z0-9_:]*.
bool valid_metric_name(std::string_view name);
// True if name matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__" (reserved).
bool valid_label_name(std::string_view name);
// Appends a label value escaped for the text format: backslash, double quote and newline.
void append_escaped_label_value(std::string_view value, std::string& out);
// Appends a sample value: shortest round-trip decimal, "+Inf", "-Inf" or "NaN".
void append_sample_value(double v, std::string& out);

// Registers the process metrics, read from /proc when scraped:
//   cascade_build_info{version}          gauge, always 1: the running version as a label
//   process_start_time_seconds           gauge, Unix time the process started, seconds
//   process_cpu_seconds_total            counter, user + system CPU time, seconds
//   process_resident_memory_bytes        gauge, resident set size, bytes
//   process_virtual_memory_bytes         gauge, virtual memory size, bytes
//   process_open_fds                     gauge, open file descriptors
//   process_max_fds                      gauge, the soft limit on open file descriptors
// A value /proc cannot give (not Linux, no /proc) stays at its last value, 0 at first.
void register_process_metrics(Registry& registry, const std::string& version);

// The metrics of `cascade run`, registered on construction. Units are base units (seconds,
// messages, requests, records); "stage" is the pipeline stage's name. The daemon updates the
// event metrics from its workers through a Stage handle and sets the state gauges from a
// collector (Registry::add_collector) when /metrics is scraped.
struct CascadeMetrics {
  explicit CascadeMetrics(Registry& registry);

  // Messages a stage finished processing, acked or failed. {stage}
  CounterFamily& messages;
  // HTTP requests sent to the source, by outcome: 2xx, 3xx, 4xx, 5xx, or "transport" when no
  // response arrived (refused, reset, timed out). Retries count each. {stage, class}
  CounterFamily& requests;
  // Records selected from responses, by what staging made of them: new, changed, unchanged,
  // or deleted (gone from a complete listing). {stage, kind}
  CounterFamily& records;
  // Failed message attempts (the message is retried or dead-lettered). {stage}
  CounterFamily& errors;
  // Responses that told cascade to slow down (429, or 503 with Retry-After). {stage}
  CounterFamily& throttles;
  // Time workers spent waiting for the shared rate limiter, seconds. {stage}
  CounterFamily& limiter_wait_seconds;
  // Wall time from receiving a message to its ack or failure, seconds. {stage}
  HistogramFamily& message_duration_seconds;
  // Wall time of a run, from its root message to the last message it cascaded into, seconds.
  // {stage}: the root stage.
  HistogramFamily& run_duration_seconds;
  // Messages waiting in a stage's queue (visible, not in flight). {stage}
  GaugeFamily& queue_depth;
  // Messages received and not yet acked or returned. {stage}
  GaugeFamily& in_flight;
  // Age of the oldest message in a stage's queue, seconds; 0 when empty. {stage}
  GaugeFamily& oldest_message_age_seconds;
  // Messages in a stage's dead-letter queue. {stage}
  GaugeFamily& dlq_depth;
  // Requests counted against the source's quota in the current window, and what is left of it.
  // {window}: the quota window as the pipeline names it ("1m", "1d", ...); the quota is shared
  // by every stage, hence no stage label.
  GaugeFamily& quota_used;
  GaugeFamily& quota_left;
  // Seconds since a run of this root stage last completed (every message it cascaded into
  // processed); absent until one has. {stage}: the root stage.
  GaugeFamily& seconds_since_last_complete_run;

  // Buckets of message_duration_seconds and run_duration_seconds, seconds.
  static const std::vector<double>& message_duration_bounds();
  static const std::vector<double>& run_duration_bounds();

  // The event metrics of one stage, resolved once so that workers update them lock-free.
  struct Stage {
    Counter& messages;
    Counter& requests_2xx;
    Counter& requests_3xx;
    Counter& requests_4xx;
    Counter& requests_5xx;
    Counter& requests_transport;
    Counter& records_new;
    Counter& records_changed;
    Counter& records_unchanged;
    Counter& records_deleted;
    Counter& errors;
    Counter& throttles;
    Counter& limiter_wait_seconds;
    Histogram& message_duration_seconds;

    // The requests counter for an HTTP status: 200-599 by class; 0 (no response) and anything
    // else (not a final HTTP status) as "transport".
    Counter& request(int http_status) const;
  };
  // Resolves (creating at zero) the event metrics of a stage; the result stays valid for the
  // registry's lifetime. Takes family mutexes: call once per stage at startup.
  Stage stage(const std::string& name);
};

}  // namespace cascade::observe
