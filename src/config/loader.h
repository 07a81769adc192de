// Pipeline file loading: YAML -> ${ENV} interpolation -> validation -> PipelineSpec.
// Stateless free functions; safe to call from several threads if the EnvLookup is.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "config/pipeline.h"
#include "config/schedule.h"  // check_schedule, for callers that validate a schedule alone

namespace cascade {

// Looks up an environment variable by name; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// The process environment (getenv).
EnvLookup process_env();

// Reads, interpolates and validates a pipeline file. `${NAME}` and `${NAME:-default}` are
// replaced inside scalar values (an empty variable takes the default, as in the shell; `$${`
// is a literal `${`). Throws ConfigError at file:line:column (1-based) of the offending node
// saying what was found and what was expected; header values and webhook URLs never appear
// in errors. An unreadable file is a ConfigError with the path and no position.
PipelineSpec load_pipeline_file(const std::string& path, const EnvLookup& env = process_env());

// Same, from text; `file_name` is used in positions and stored in PipelineSpec::file.
PipelineSpec load_pipeline_text(std::string_view yaml, const std::string& file_name,
                                const EnvLookup& env = process_env());

}  // namespace cascade
