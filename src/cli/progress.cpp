#include "cli/progress.h"

#include <fmt/format.h>

namespace cascade::cli {

Progress::Progress(const Plan& plan, Store& store, Engine& engine, std::FILE* out, bool terminal,
                   std::chrono::seconds plain_every)
    : plan_(plan),
      store_(store),
      engine_(engine),
      out_(out),
      terminal_(terminal),
      plain_every_(plain_every),
      started_(std::chrono::steady_clock::now()),
      last_plain_(started_) {}

std::vector<std::string> Progress::lines() {
  std::vector<StageCounters> live = engine_.live_counters();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  int elapsed = static_cast<int>(secs);
  std::vector<std::string> out;
  for (const auto& st : plan_.stages()) {
    QueueStats q = store_.queue().stats(st.queue);
    StageCounters c = st.index < live.size() ? live[st.index] : StageCounters{};
    double rate = secs > 0 ? static_cast<double>(c.records) / secs : 0;
    out.push_back(
        fmt::format("{:<16} {:>8} done {:>8} pending {:>10.0f} records/s {:>6} DLQ  "
                    "{:02}:{:02}:{:02}",
                    st.name, c.messages, q.depth + q.in_flight, rate, q.dlq_depth, elapsed / 3600,
                    elapsed / 60 % 60, elapsed % 60));
  }
  return out;
}

void Progress::tick() {
  auto now = std::chrono::steady_clock::now();
  if (!terminal_) {
    if (plain_every_.count() <= 0 || now - last_plain_ < plain_every_) return;
    last_plain_ = now;
    for (const auto& l : lines()) fmt::print(out_, "progress: {}\n", l);
    std::fflush(out_);
    return;
  }
  std::string frame;
  if (drawn_) frame += fmt::format("\x1b[{}F", drawn_);  // back to the first line drawn
  std::vector<std::string> ls = lines();
  for (const auto& l : ls) frame += "\x1b[2K" + l + "\n";
  drawn_ = ls.size();
  std::fputs(frame.c_str(), out_);
  std::fflush(out_);
}

void Progress::finish() {
  if (!terminal_ || !drawn_) return;
  std::string frame = fmt::format("\x1b[{}F", drawn_);
  for (size_t i = 0; i < drawn_; ++i) frame += "\x1b[2K\n";
  frame += fmt::format("\x1b[{}F", drawn_);
  std::fputs(frame.c_str(), out_);
  std::fflush(out_);
  drawn_ = 0;
}

}  // namespace cascade::cli
