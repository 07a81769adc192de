#include "engine/runtime.h"

#include "engine/source_clients.h"

namespace cascade {

std::unique_ptr<Runtime> open_runtime(PipelineSpec spec, const OpenStorage& open) {
  auto rt = std::make_unique<Runtime>();
  rt->spec = std::move(spec);
  rt->plan = std::make_unique<Plan>(rt->spec);
  SourceClients clients = make_source_clients(rt->plan->spec().source, rt->plan->quota_reserve(),
                                              SystemClock::instance());
  rt->limiter = std::move(clients.limiter);
  rt->quota = std::move(clients.quota);
  rt->http = std::move(clients.http);
  rt->store = open(rt->plan->spec().storage);
  EngineOptions eo;
  eo.quota = rt->quota.get();
  eo.limiter = rt->limiter.get();
  rt->engine =
      std::make_unique<Engine>(*rt->plan, *rt->store, *rt->http, SystemClock::instance(), eo);
  rt->engine->prepare();
  return rt;
}

}  // namespace cascade
