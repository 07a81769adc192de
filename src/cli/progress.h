// Live progress of a `cascade sync` for people: on a terminal, one line per stage redrawn in
// place (messages done and pending, records/s, elapsed); otherwise a plain line per stage every
// `plain_every`, so a log of a long run shows it moving. Driven by the engine's tick on the
// writer thread (the store's only user); not thread-safe.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/plan.h"
#include "store/store.h"

namespace cascade::cli {

class Progress {
 public:
  Progress(const Plan& plan, Store& store, Engine& engine, std::FILE* out, bool terminal,
           std::chrono::seconds plain_every = std::chrono::seconds(10));
  // One tick: redraws (terminal) or prints when due (plain).
  void tick();
  // Clears the live lines before the summary is printed.
  void finish();

 private:
  std::vector<std::string> lines();

  const Plan& plan_;
  Store& store_;
  Engine& engine_;
  std::FILE* out_;
  bool terminal_;
  std::chrono::seconds plain_every_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_plain_;
  size_t drawn_ = 0;  // lines on screen to move back over
};

}  // namespace cascade::cli
