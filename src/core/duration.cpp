#include "core/duration.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

namespace cascade {

std::optional<Duration> parse_duration(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  size_t i = 0;
  double value = 0;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    value = value * 10 + (s[i] - '0');
    ++i;
    digits = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      value += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
      digits = true;
    }
  }
  if (!digits) return std::nullopt;
  while (i < s.size() && s[i] == ' ') ++i;
  std::string unit(s.substr(i));
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double ms;
  if (unit == "ms" || unit == "millisecond" || unit == "milliseconds")
    ms = 1;
  else if (unit == "s" || unit == "sec" || unit == "second" || unit == "seconds")
    ms = 1e3;
  else if (unit == "m" || unit == "min" || unit == "minute" || unit == "minutes")
    ms = 60e3;
  else if (unit == "h" || unit == "hour" || unit == "hours")
    ms = 3600e3;
  else if (unit == "d" || unit == "day" || unit == "days")
    ms = 86400e3;
  else if (unit == "w" || unit == "week" || unit == "weeks")
    ms = 7 * 86400e3;
  else
    return std::nullopt;
  double total = value * ms;
  if (total > 9.0e15) return std::nullopt;
  return Duration(static_cast<int64_t>(std::llround(total)));
}

std::string format_duration(Duration d) {
  int64_t ms = d.count();
  struct Unit {
    int64_t ms;
    const char* name;
  };
  static const Unit units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  if (ms == 0) return "0s";
  for (const auto& u : units)
    if (ms % u.ms == 0) return fmt::format("{}{}", ms / u.ms, u.name);
  return fmt::format("{}ms", ms);
}

}  // namespace cascade
