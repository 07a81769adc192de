// Runtime: everything a process needs to run one pipeline, opened together and in one order —
// the compiled plan, the vendor's clients (source_clients.h), the storage and an engine prepared
// on them. One definition for the CLI's commands and the Lambda runtime. The caller opens the
// storage (the engine knows no backend, and only the caller knows whether it is the queues'
// one consumer). Not thread-safe to build; the members are as thread-safe as their classes say.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "config/pipeline.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "source/http_client.h"
#include "source/quota.h"
#include "source/rate_limiter.h"
#include "store/store.h"

namespace cascade {

// Members in dependency order: each is destroyed before what it uses.
struct Runtime {
  PipelineSpec spec;
  std::unique_ptr<Plan> plan;
  std::unique_ptr<RateLimiter> limiter;
  std::unique_ptr<QuotaLedger> quota;  // null when the source has no quota
  std::unique_ptr<HttpClient> http;
  std::unique_ptr<Store> store;
  std::unique_ptr<Engine> engine;
};

// Opens the storage named by the plan's `storage:` (a URL such as sqlite:FILE).
using OpenStorage = std::function<std::unique_ptr<Store>(const std::string& storage)>;

// Compiles `spec`, builds the vendor's clients, opens the storage with `open` and prepares an
// engine on them (Engine::prepare()). Throws what each part throws: ConfigError for a plan that
// does not compile, StorageError / std::runtime_error for a storage that does not open.
std::unique_ptr<Runtime> open_runtime(PipelineSpec spec, const OpenStorage& open);

}  // namespace cascade
