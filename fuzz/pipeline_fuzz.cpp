// libFuzzer target: arbitrary bytes as a pipeline file. The loader's contract is that anything
// it cannot use is a ConfigError; any other exception, a crash or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.h"
#include "core/error.h"

namespace {

// A fixed environment so a run is reproducible whatever the shell exports; one secret-looking
// variable lets the fuzzer reach interpolation with a value present.
std::optional<std::string> fuzz_env(std::string_view name) {
  if (name == "DM_API_TOKEN") return std::string("fuzz-token");
  if (name == "EMPTY") return std::string();
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    cascade::PipelineSpec spec = cascade::load_pipeline_text(text, "fuzz.yaml", fuzz_env);
    // A spec that loaded must be internally consistent: every emit names a known stage.
    for (const auto& st : spec.stages)
      for (const auto& e : st.emit)
        if (!spec.stage(e.stage)) {
          std::fprintf(stderr, "loaded spec emits to unknown stage '%s'\n", e.stage.c_str());
          std::abort();
        }
  } catch (const cascade::ConfigError&) {
    // The documented way to refuse a file.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception (not ConfigError): %s\n", e.what());
    std::abort();
  }
  return 0;
}
