// Logging: JSON lines on stderr (one object per event: time, level, msg), set up once per
// process. Thread-safe (spdlog). Messages never carry secrets: callers pass none in.
#pragma once

#include <string>

namespace cascade {

// Level: trace, debug, info, warn, error, off. Format: "json" (default) or "text".
// Throws std::invalid_argument on an unknown level or format.
void setup_logging(const std::string& level, const std::string& format = "json");

}  // namespace cascade
