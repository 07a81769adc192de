#include "cli/commands.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "aws/aws_store.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "config/loader.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/daemon.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "engine/runtime.h"
#include "engine/service.h"
#include "observe/status_server.h"
#include "source/http_client.h"
#include "source/rate_limiter.h"
#include "store/store.h"

namespace cascade::cli {

namespace {

std::atomic<Engine*> g_engine{nullptr};
std::atomic<Daemon*> g_daemon{nullptr};
std::atomic<bool> g_stop_requested{false};

extern "C" void on_stop_signal(int) {
  g_stop_requested = true;
  if (Daemon* d = g_daemon.load()) d->request_stop();
  if (Engine* e = g_engine.load()) e->request_stop();
}

// Installs SIGINT/SIGTERM handlers that stop the engine cleanly for as long as it lives.
struct StopOnSignal {
  explicit StopOnSignal(Engine& e) {
    g_engine = &e;
    // A signal that came while the run was being set up still stops it.
    if (g_stop_requested) e.request_stop();
  }
  ~StopOnSignal() { g_engine = nullptr; }
};

}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

const std::atomic<bool>* stop_flag() {
  return &g_stop_requested;
}

namespace {

EnvLookup env_with(const std::map<std::string, std::string>& extra) {
  EnvLookup base = process_env();
  return [extra, base](std::string_view name) -> std::optional<std::string> {
    if (auto it = extra.find(std::string(name)); it != extra.end()) return it->second;
    return base(name);
  };
}

// Loads a pipeline; prints a ConfigError as file:line:column and returns nullopt.
std::optional<PipelineSpec> load(const std::string& file, const EnvLookup& env) {
  try {
    return load_pipeline_file(file, env);
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return std::nullopt;
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The run's runtime, storage as --storage overrides it. The CLI's process is the queues' one
// consumer: it claims them.
std::unique_ptr<Runtime> open_runtime(PipelineSpec spec, const std::string& storage_override) {
  if (!storage_override.empty()) spec.storage = storage_override;
  return cascade::open_runtime(std::move(spec), [](const std::string& storage) {
    StoreOptions so;
    so.claim_consumer = true;
    return open_store(storage, SystemClock::instance(), so);
  });
}

// `sync --full-refresh`: before the run, in one unit of work.
void reset_cursors(Engine& engine) {
  size_t n = engine.reset_cursors();
  spdlog::info("full refresh: {} incremental cursor{} reset", n, n == 1 ? "" : "s");
}

}  // namespace

std::optional<PipelineSpec> load_pipeline_or_report(const std::string& file) {
  return load(file, process_env());
}

int cmd_validate(const Common& c) {
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  try {
    Plan plan(*spec);
    std::string flow;
    for (const auto& st : plan.stages()) {
      flow += fmt::format("  {}: {} {}", st.name, st.method, st.spec->request.text);
      // Names only: a parameter's value may come from the environment.
      if (!st.params.empty()) {
        std::vector<std::string> names;
        for (const auto& p : st.params) names.push_back(p.first);
        flow += fmt::format(" (params: {})", fmt::join(names, ", "));
      }
      if (st.body) flow += " (JSON body)";
      if (st.spec->paginate.kind != PaginateOptions::Kind::None)
        flow += fmt::format(" (paginate: {})", paginate_kind_name(st.spec->paginate.kind));
      if (const auto& inc = st.spec->incremental)
        flow += fmt::format(" (incremental: {} -> {})", inc->cursor_path, inc->param);
      std::vector<std::string> kids;
      for (const auto& e : st.emit) kids.push_back(plan.stages()[e.child].name);
      if (!kids.empty()) flow += fmt::format(" -> {}", fmt::join(kids, ", "));
      flow += st.root ? "  (root)\n" : "\n";
    }
    if (spec->source.auth.kind != AuthSpec::Kind::None)
      flow = fmt::format("  auth: {}\n", spec->source.auth.kind_name()) + flow;
    fmt::print("{}: ok: pipeline '{}', {} stage{}, storage {}\n{}", c.pipeline, spec->name,
               spec->stages.size(), spec->stages.size() == 1 ? "" : "s",
               redact_storage_url(spec->storage), flow);
    return 0;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}

int run_sync(const std::string& pipeline_file, const std::map<std::string, std::string>& env,
             bool json, const std::string& storage_override, bool drain_only,
             std::chrono::seconds progress_every, bool full_refresh) {
  auto spec = load(pipeline_file, env_with(env));
  if (!spec) return 2;
  std::string name = spec->name;
  try {
    auto rt = open_runtime(std::move(*spec), storage_override);
    if (full_refresh) reset_cursors(*rt->engine);
    RunSummary s;
    {
      std::optional<Progress> progress;
      if (!json) {
        progress.emplace(*rt->plan, *rt->store, *rt->engine, stdout, isatty(STDOUT_FILENO) == 1,
                         progress_every);
        rt->engine->set_observer(nullptr, [&] { progress->tick(); });
      }
      StopOnSignal guard(*rt->engine);
      s = rt->engine->sync(nullptr, /*seed_roots=*/!drain_only);
      if (progress) progress->finish();
    }
    fmt::print("{}", json ? summary_json(name, s) : summary_text(name, s, "sync"));
    std::fflush(stdout);
    if (s.quota_exhausted_until) return 3;
    return s.completed ? 0 : 130;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const StorageError& e) {
    // Nothing half-done was committed: the messages of the unfinished batch are still queued.
    if (g_stop_requested) {
      fmt::print(stderr, "stopped: {}\n", e.what());
      return 130;
    }
    fmt::print(stderr,
               "error: the storage failed, so the run stopped: {}\nNothing of the unfinished "
               "work was committed; the next run takes it up again.\n",
               e.what());
    return 1;
  }
}

int cmd_run(const Common& c, const RunOptions& o) {
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  std::string address = "127.0.0.1";
  int port = 9464;
  if (!o.listen.empty()) {
    size_t colon = o.listen.rfind(':');
    char* end = nullptr;
    long p = colon == std::string::npos ? -1 : std::strtol(o.listen.c_str() + colon + 1, &end, 10);
    if (colon == std::string::npos || colon == 0 || !end || *end != '\0' || p < 0 || p > 65535) {
      fmt::print(stderr, "error: --listen expects ADDRESS:PORT (e.g. 127.0.0.1:9464), found '{}'\n",
                 o.listen);
      return 2;
    }
    address = o.listen.substr(0, colon);
    if (address.size() > 2 && address.front() == '[' && address.back() == ']')
      address = address.substr(1, address.size() - 2);
    port = static_cast<int>(p);
  }
  try {
    auto rt = open_runtime(std::move(*spec), c.storage);
    ServiceOptions so;
    so.listen_address = address;
    so.listen_port = port;
    so.serve = !o.no_listen;
    so.allow_unauthenticated = o.allow_unauthenticated;
    so.idle_poll = o.idle_poll;
    so.version = kCascadeVersion;
    Service service(*rt->plan, *rt->engine, *rt->store, SystemClock::instance(), rt->quota.get(),
                    so);
    StopOnSignal guard(*rt->engine);
    g_daemon = &service.daemon();
    if (g_stop_requested) service.request_stop();
    struct Clear {
      ~Clear() { g_daemon = nullptr; }
    } clear;
    int bound = service.port();
    service.daemon().on_started([bound, &address](const std::vector<RootSchedule>& roots) {
      // One line per schedule on stdout, for people and for scripts waiting for the start.
      for (const auto& r : roots)
        fmt::print("{}: {} ({}), next run {}\n", r.stage, r.expression, r.timezone,
                   r.next_fire ? format_time(*r.next_fire) : std::string("never"));
      if (bound) {
        std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
        fmt::print("listening on http://{}:{}/\n", host, bound);
      }
      fmt::print("running\n");
      std::fflush(stdout);
    });
    service.run();
    fmt::print(stderr, "cascade run: stopped\n");
    return 0;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const observe::StatusServerError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const StorageError& e) {
    fmt::print(stderr, "error: the storage failed, so cascade run stopped: {}\n", e.what());
    return 1;
  }
}

int cmd_sync(const Common& c, const std::string& event_file, bool drain_only,
             std::chrono::seconds progress_every, bool full_refresh) {
  if (event_file.empty())
    return run_sync(c.pipeline, {}, c.json, c.storage, drain_only, progress_every, full_refresh);
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  std::string name = spec->name;
  // Inline JSON or the file holding it ("-": standard input).
  size_t first = event_file.find_first_not_of(" \t\n");
  bool inline_json = first != std::string::npos && event_file[first] == '{';
  Value event;
  try {
    event =
        parse_json(inline_json         ? event_file
                   : event_file == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {})
                                       : read_file(event_file));
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: --event: {}\n", e.what());
    return 2;
  }
  auto rt = open_runtime(std::move(*spec), c.storage);
  if (full_refresh) reset_cursors(*rt->engine);
  RunSummary s;
  {
    StopOnSignal guard(*rt->engine);
    s = rt->engine->sync(&event);
  }
  fmt::print("{}", c.json ? summary_json(name, s) : summary_text(name, s, "sync"));
  return s.completed ? 0 : 130;
}

int cmd_invoke(const Common& c, const std::string& stage, const std::string& event_file) {
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  std::string name = spec->name;
  Value event;
  try {
    event = parse_json(event_file == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {})
                                         : read_file(event_file));
  } catch (const JsonError& e) {
    fmt::print(stderr, "error: {}: not valid JSON: {}\n", event_file, e.what());
    return 2;
  }
  auto rt = open_runtime(std::move(*spec), c.storage);
  const CompiledStage* st = rt->plan->find(stage);
  if (!st) {
    std::vector<std::string> names;
    for (const auto& s : rt->plan->stages()) names.push_back(s.name);
    fmt::print(stderr, "error: no stage '{}' in {} (stages: {})\n", stage, c.pipeline,
               fmt::join(names, ", "));
    return 2;
  }
  RunSummary s;
  try {
    StopOnSignal guard(*rt->engine);
    s = rt->engine->invoke(*st, event);
  } catch (const DataError& e) {
    fmt::print(stderr, "error: {}: {}\n", event_file, e.what());
    return 2;
  }
  fmt::print("{}", c.json ? summary_json(name, s) : summary_text(name, s, "invoke " + stage));
  return s.completed ? 0 : 1;
}

std::string storage_of(const Common& c) {
  if (!c.storage.empty()) return c.storage;
  auto spec = load(c.pipeline, process_env());
  if (!spec)
    throw ConfigError({c.pipeline, 0, 0}, "cannot load the pipeline file to find its storage");
  return spec->storage;
}

std::unique_ptr<Store> open_for_reading(const Common& c) {
  std::string storage;
  try {
    storage = storage_of(c);
  } catch (const ConfigError&) {
    return nullptr;
  }
  StoreOptions opts;
  opts.read_only = true;
  return open_store(storage, SystemClock::instance(), opts);
}

int cmd_sql(const Common& c, const std::string& query, const SqlOptions& o) {
  auto store = open_for_reading(c);
  if (!store) return 2;
  std::string format = o.format;
  if (format.empty()) format = isatty(STDOUT_FILENO) == 1 ? "table" : "csv";
  std::string out;
  try {
    if (format == "table") {
      // Streamed, so a large result costs only the rows shown.
      TablePrinter printer({o.limit, o.max_width, o.null});
      store->warehouse().query_rows(query, printer);
      out = printer.render();
    } else {
      out = format_result(store->warehouse().query(query), format);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  fmt::print("{}", out);
  return 0;
}

int cmd_alarms(const Common& c, size_t history) {
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  if (!c.storage.empty()) spec->storage = c.storage;
  StoreOptions opts;
  opts.read_only = true;
  auto store = open_store(spec->storage, SystemClock::instance(), opts);
  std::vector<AlarmView> alarms = saved_alarms(*spec, *store);
  if (c.json) {
    Array out;
    for (const auto& a : alarms) out.push_back(alarm_value(a, history));
    fmt::print("{}\n", to_json(Value(std::move(out))));
    return 0;
  }
  if (alarms.empty()) fmt::print("no alarms in {}\n", c.pipeline);
  for (const auto& a : alarms) {
    fmt::print("{:<18} {:<17} {}{}\n", a.name, alarm_state_name(a.state), a.condition,
               a.stage.empty() ? "" : " [" + a.stage + "]");
    if (a.state != AlarmState::InsufficientData || !a.history.empty())
      fmt::print("{:<18} {}\n", "", a.reason);
    size_t from = a.history.size() > history ? a.history.size() - history : 0;
    for (size_t i = from; i < a.history.size(); ++i)
      fmt::print("{:<18} {} {} -> {}\n", "", format_time(a.history[i].time),
                 alarm_state_name(a.history[i].from), alarm_state_name(a.history[i].to));
  }
  return 0;
}

int cmd_queues(const Common& c) {
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  if (!c.storage.empty()) spec->storage = c.storage;
  Plan plan(*spec);
  StoreOptions opts;
  opts.read_only = true;
  auto store = open_store(spec->storage, SystemClock::instance(), opts);
  std::vector<std::vector<std::string>> rows;
  std::string json = "[";
  for (const auto& st : plan.stages()) {
    QueueStats q{};
    try {
      q = store->queue().stats(st.queue);
    } catch (const std::exception&) {
      // A queue that was never created (no run yet) is empty.
    }
    rows.push_back({st.name, st.queue, std::to_string(q.depth), std::to_string(q.in_flight),
                    fmt::format("{:.1f}s", static_cast<double>(q.oldest_age_ms) / 1000.0),
                    std::to_string(q.dlq_depth)});
    if (json.size() > 1) json += ",";
    json += fmt::format(
        "{{\"stage\":\"{}\",\"queue\":\"{}\",\"depth\":{},\"in_flight\":{},\"oldest_age_ms\":{},"
        "\"dlq_depth\":{}}}",
        st.name, st.queue, q.depth, q.in_flight, q.oldest_age_ms, q.dlq_depth);
  }
  json += "]\n";
  if (c.json)
    fmt::print("{}", json);
  else
    fmt::print("{}", format_table({"stage", "queue", "depth", "in flight", "oldest", "dlq"}, rows));
  return 0;
}

int cmd_streams(const Common& c, int batch) {
  auto spec = load(c.pipeline, process_env());
  if (!spec) return 2;
  if (!c.storage.empty()) spec->storage = c.storage;
  if (!spec->storage.starts_with("aws:")) {
    fmt::print(stderr,
               "error: storage {} has no streams: `cascade streams` is for an aws: storage\n",
               redact_storage_url(spec->storage));
    return 2;
  }
  auto store = open_store(spec->storage, SystemClock::instance(), {});
  aws::StreamReadOptions o;
  o.limit = batch;
  o.stop = &g_stop_requested;
  size_t n = aws::settle_aws_store(*store, o);
  if (c.json)
    fmt::print("{{\"records\":{}}}\n", n);
  else
    fmt::print("{} stream records applied to the warehouse\n", n);
  return 0;
}

}  // namespace cascade::cli
