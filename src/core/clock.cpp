#include "core/clock.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace cascade {

std::string format_time(TimePoint t) {
  int64_t ms = to_millis(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", tm, static_cast<int>(ms % 1000));
}

}  // namespace cascade
