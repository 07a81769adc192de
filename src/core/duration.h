// Human durations as pipeline files write them: "200ms", "10s", "15m", "1h", "14d", "1 hour".
// Thread-safe, pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace cascade {

// Parses "<number><unit>" (ms, s, m, h, d, w; also "1 hour", "5 minutes"); nullopt if malformed.
std::optional<Duration> parse_duration(std::string_view text);
// Shortest exact spelling: 900000ms -> "15m".
std::string format_duration(Duration d);

}  // namespace cascade
