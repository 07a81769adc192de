#include "lambda/lambda.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "config/loader.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "engine/runtime.h"
#include "lambda/runtime_api.h"
#include "source/http_client.h"
#include "source/quota.h"
#include "source/rate_limiter.h"
#include "store/store.h"

namespace cascade::lambda {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<Engine*> g_engine{nullptr};

extern "C" void on_signal(int) {
  g_stop = true;
  if (Engine* e = g_engine.load()) e->request_stop();
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// What one function needs for its whole life: opened once, at init, reused by every event.
struct Function {
  std::unique_ptr<Runtime> rt;
  const CompiledStage* stage = nullptr;  // null for the warehouse loader (CASCADE_FUNCTION)
};

std::unique_ptr<Function> open_function() {
  auto f = std::make_unique<Function>();
  const std::string file = env_or("CASCADE_PIPELINE", "/var/task/pipeline.yaml");
  PipelineSpec spec = load_pipeline_file(file);
  if (const char* storage = std::getenv("CASCADE_STORAGE"); storage && *storage)
    spec.storage = storage;
  // Many instances of many functions share the queues: none may claim them.
  auto open = [](const std::string& storage) {
    return open_store(storage, SystemClock::instance(), StoreOptions{});
  };
  const std::string role = env_or("CASCADE_FUNCTION", "stage");
  if (role == "warehouse") {
    // The warehouse loader: no stage, no vendor; every event brings the warehouse up to date
    // with what the stage functions committed (Store::settle(): on aws:, the tables' streams).
    f->rt = std::make_unique<Runtime>();
    f->rt->spec = std::move(spec);
    f->rt->plan = std::make_unique<Plan>(f->rt->spec);
    f->rt->store = open(f->rt->plan->spec().storage);
    return f;
  }
  if (role != "stage")
    throw std::invalid_argument(fmt::format(
        "CASCADE_FUNCTION '{}' is unknown: 'stage' (the default) or 'warehouse'", role));
  const std::string stage = env_or("CASCADE_STAGE", "");
  if (stage.empty())
    throw std::invalid_argument("CASCADE_STAGE is not set: it names this function's stage");
  // The stage is checked before anything is opened: an unknown one is an init error at once.
  if (std::none_of(spec.stages.begin(), spec.stages.end(),
                   [&](const StageSpec& s) { return s.name == stage; }))
    throw std::invalid_argument(fmt::format("CASCADE_STAGE '{}' is no stage of {}", stage, file));
  f->rt = open_runtime(std::move(spec), open);
  f->stage = f->rt->plan->find(stage);
  return f;
}

bool is_schedule(const Value& event) {
  if (!event.is_object()) return false;
  const Value* source = event.find("source");
  const Value* type = event.find("detail-type");
  return (source && source->is_string() && source->as_string() == "aws.events") ||
         (type && type->is_string() && type->as_string() == "Scheduled Event");
}

bool is_sqs(const Value& event) {
  if (!event.is_object()) return false;
  const Value* records = event.find("Records");
  if (!records || !records->is_array() || records->as_array().empty()) return false;
  const Value* src = records->as_array().front().find("eventSource");
  return src && src->is_string() && src->as_string() == "aws:sqs";
}

// One CloudWatch embedded-metric-format line (stdout): CloudWatch Logs turns it into metrics
// without any PutMetricData call or permission.
void emit_metrics(const Function& f, const RunSummary& s, uint64_t failed) {
  StageCounters t = s.total();
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::string line = fmt::format(
      R"({{"_aws":{{"Timestamp":{},"CloudWatchMetrics":[{{"Namespace":"cascade","Dimensions":[["Pipeline"],["Pipeline","Stage"]],"Metrics":[{{"Name":"errors","Unit":"Count"}},{{"Name":"throttles","Unit":"Count"}},{{"Name":"requests","Unit":"Count"}},{{"Name":"records_new","Unit":"Count"}},{{"Name":"records_changed","Unit":"Count"}},{{"Name":"records_deleted","Unit":"Count"}}]}}]}},"Pipeline":)",
      now_ms);
  append_json_string(f.rt->spec.name, line);
  line += ",\"Stage\":";
  append_json_string(f.stage->name, line);
  line += fmt::format(
      R"(,"errors":{},"throttles":{},"requests":{},"records_new":{},"records_changed":{},"records_deleted":{}}})",
      std::max<uint64_t>(failed, t.dead_lettered), t.throttled, t.requests, t.new_rows, t.changed,
      t.gone);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

// Handles one event; returns the response JSON. Throws on a failure of the whole invocation.
std::string handle(Function& f, const Value& event) {
  if (!f.stage) {
    auto t0 = std::chrono::steady_clock::now();
    f.rt->store->settle();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("warehouse: brought up to date in {:.3f}s", secs);
    return to_json(Value(Object{{"function", Value("warehouse")}, {"seconds", Value(secs)}}));
  }
  const CompiledStage& st = *f.stage;
  if (is_schedule(event)) {
    if (!st.root)
      throw DataError(fmt::format("stage {} is no root stage: a schedule cannot seed it", st.name));
    const Value* detail = event.find("detail");
    const bool has_detail = detail && detail->is_object() && !detail->as_object().empty();
    std::vector<std::string> bodies;
    for (const auto& m : f.rt->plan->root_messages(st, has_detail ? detail : nullptr))
      bodies.push_back(canonical_json(m));
    Store& store = *f.rt->store;
    store.begin();
    size_t sent = 0;
    try {
      sent = store.queue().send(st.queue, bodies);
      store.commit();
    } catch (...) {
      store.rollback();
      throw;
    }
    spdlog::info("{}: schedule seeded {} message(s) ({} already waiting)", st.name, sent,
                 bodies.size() - sent);
    emit_metrics(f, RunSummary{}, 0);
    return to_json(Value(Object{{"stage", Value(st.name)},
                                {"seeded", Value(static_cast<int64_t>(sent))},
                                {"messages", Value(static_cast<int64_t>(bodies.size()))}}));
  }
  if (is_sqs(event)) {
    std::vector<std::string> ids;
    std::vector<Value> messages;
    std::vector<std::string> failed_ids;
    for (const auto& r : event.find("Records")->as_array()) {
      const Value* id = r.find("messageId");
      const Value* body = r.find("body");
      if (!id || !id->is_string())
        throw DataError("an SQS record without a string messageId cannot be answered for");
      std::string why;
      Value m;
      if (!body || !body->is_string()) {
        why = "no string 'body'";
      } else {
        try {
          m = parse_json(body->as_string());
          if (!m.is_object()) why = "its body is no JSON object";
        } catch (const JsonError& e) {
          why = fmt::format("its body is not valid JSON: {}", e.what());
        }
      }
      if (!why.empty()) {
        spdlog::error("{}: SQS message {}: {}", st.name, id->as_string(), why);
        failed_ids.push_back(id->as_string());
        continue;
      }
      ids.push_back(id->as_string());
      messages.push_back(std::move(m));
    }
    std::vector<size_t> failed;
    RunSummary s = f.rt->engine->invoke_messages(st, std::move(messages), &failed);
    for (size_t i : failed) failed_ids.push_back(ids[i]);
    emit_metrics(f, s, failed_ids.size());
    Array items;
    for (const auto& id : failed_ids) items.emplace_back(Object{{"itemIdentifier", Value(id)}});
    return to_json(Value(Object{{"batchItemFailures", Value(std::move(items))}}));
  }
  std::vector<size_t> failed;
  std::vector<Value> messages =
      st.root ? f.rt->plan->root_messages(st, &event) : event_messages(event);
  const size_t n = messages.size();
  RunSummary s = f.rt->engine->invoke_messages(st, std::move(messages), &failed);
  emit_metrics(f, s, failed.size());
  StageCounters t = s.total();
  return to_json(Value(Object{{"stage", Value(st.name)},
                              {"messages", Value(static_cast<int64_t>(n))},
                              {"failed", Value(static_cast<int64_t>(failed.size()))},
                              {"records_new", Value(static_cast<int64_t>(t.new_rows))},
                              {"records_changed", Value(static_cast<int64_t>(t.changed))},
                              {"children", Value(static_cast<int64_t>(t.children))}}));
}

}  // namespace

int run_lambda(size_t max_invocations) {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const std::string endpoint = env_or("AWS_LAMBDA_RUNTIME_API", "");
  if (endpoint.empty()) {
    spdlog::error(
        "AWS_LAMBDA_RUNTIME_API is not set: cascade lambda runs inside Lambda (or "
        "against a server speaking the Runtime API)");
    return 2;
  }
  RuntimeApi api(endpoint, &g_stop);
  std::unique_ptr<Function> f;
  try {
    f = open_function();
  } catch (const std::exception& e) {
    spdlog::error("lambda init failed: {}", e.what());
    try {
      api.init_error(
          dynamic_cast<const ConfigError*>(&e) ? "Runtime.ConfigError" : "Runtime.InitError",
          e.what());
    } catch (const std::exception& e2) {
      spdlog::error("{}", e2.what());
    }
    return 2;
  }
  g_engine = f->rt->engine.get();
  if (g_stop && f->rt->engine) f->rt->engine->request_stop();  // the loader has none
  spdlog::info("lambda ready: pipeline {}, {}", f->rt->spec.name,
               f->stage ? "stage " + f->stage->name : std::string("warehouse loader"));
  size_t handled = 0;
  try {
    while (!g_stop && (max_invocations == 0 || handled < max_invocations)) {
      std::optional<Invocation> inv = api.next();
      ++handled;
      if (!inv) break;
      Value event;
      try {
        event = parse_json(inv->event);
      } catch (const JsonError& e) {
        api.fail(inv->request_id, "Runtime.InvalidEvent",
                 fmt::format("the event is not valid JSON: {}", e.what()));
        continue;
      }
      try {
        std::string answer = handle(*f, event);
        api.respond(inv->request_id, answer);
      } catch (const DataError& e) {
        spdlog::error("{}: invalid event: {}", f->stage->name, e.what());
        api.fail(inv->request_id, "Runtime.InvalidEvent", e.what());
      } catch (const std::runtime_error& e) {
        // The storage or the engine failed: nothing of this event is known applied, so SQS
        // retries all of it.
        spdlog::error("{}: invocation failed: {}", f->stage->name, e.what());
        api.fail(inv->request_id, "Runtime.HandlerError", e.what());
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("lambda runtime: {}", e.what());
    g_engine = nullptr;
    return 1;
  }
  g_engine = nullptr;
  return 0;
}

}  // namespace cascade::lambda
