// Logging: JSON lines on stderr (one object per event: time, level, msg), set up once per
// process. Thread-safe (spdlog). Messages never carry secrets: callers pass none in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cascade {

// Level: trace, debug, info, warn, error, off. Format: "json" (default) or "text".
// Throws std::invalid_argument on an unknown level or format.
void setup_logging(const std::string& level, const std::string& format = "json");

// Fields every JSON log line of the current thread carries while an instance lives: "run",
// "stage", "message" and "seconds" (a duration), each only when set. Scopes nest: an inner one
// adds to and overrides the outer fields, and its end restores them. The views must outlive the
// scope. Cheap: a few thread-local assignments, nothing formatted unless a line is written.
class LogScope {
 public:
  struct Fields {
    int64_t run = 0;           // 0: not set
    std::string_view stage;    // empty: not set
    std::string_view message;  // empty: not set
    double seconds = -1;       // < 0: not set
  };
  explicit LogScope(const Fields& f);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  Fields saved_;
};

}  // namespace cascade
