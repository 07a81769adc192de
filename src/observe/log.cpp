#include "observe/log.h"

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "core/clock.h"
#include "core/json.h"

namespace cascade {

namespace {

thread_local LogScope::Fields t_fields;

}  // namespace

LogScope::LogScope(const Fields& f) : saved_(t_fields) {
  if (f.run) t_fields.run = f.run;
  if (!f.stage.empty()) t_fields.stage = f.stage;
  if (!f.message.empty()) t_fields.message = f.message;
  if (f.seconds >= 0) t_fields.seconds = f.seconds;
}

LogScope::~LogScope() {
  t_fields = saved_;
}

namespace {

// spdlog's patterns cannot escape the message, so JSON lines are written by hand.
class JsonStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string line = "{\"time\":";
    append_json_string(format_time(std::chrono::time_point_cast<Duration>(msg.time)), line);
    line += ",\"level\":";
    auto lv = spdlog::level::to_string_view(msg.level);
    append_json_string(std::string_view(lv.data(), lv.size()), line);
    // The logger is synchronous: the sink runs on the thread that logged, with its fields.
    const LogScope::Fields& f = t_fields;
    if (f.run) line += fmt::format(",\"run\":{}", f.run);
    if (!f.stage.empty()) {
      line += ",\"stage\":";
      append_json_string(f.stage, line);
    }
    if (!f.message.empty()) {
      line += ",\"message\":";
      append_json_string(f.message, line);
    }
    if (f.seconds >= 0) line += fmt::format(",\"seconds\":{:.3f}", f.seconds);
    line += ",\"msg\":";
    append_json_string(std::string_view(msg.payload.data(), msg.payload.size()), line);
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void setup_logging(const std::string& level, const std::string& format) {
  auto lv = spdlog::level::from_str(level);
  if (lv == spdlog::level::off && level != "off")
    throw std::invalid_argument("unknown log level '" + level +
                                "' (expected trace, debug, info, warn, error, off)");
  std::shared_ptr<spdlog::logger> logger;
  if (format == "json") {
    logger = std::make_shared<spdlog::logger>("cascade", std::make_shared<JsonStderrSink>());
  } else if (format == "text") {
    logger = std::make_shared<spdlog::logger>("cascade",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  } else {
    throw std::invalid_argument("unknown log format '" + format + "' (expected json or text)");
  }
  logger->set_level(lv);
  spdlog::set_default_logger(logger);
}

}  // namespace cascade
