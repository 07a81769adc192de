// SimServer: the real cascade-sim binary (CASCADE_SIM_BIN) started on a free port for one test,
// plus temp_dir(). Not thread-safe to construct/destroy concurrently with use.
#pragma once

#include <string>
#include <vector>

#include "core/value.h"
#include "support/subprocess.h"

namespace cascade::testing {

class SimServer {
 public:
  // Starts `cascade-sim --port 0 <flags>` and waits (10 s) for its "listening on" line.
  // Throws std::runtime_error if it does not come up.
  explicit SimServer(std::vector<std::string> flags = {});
  // SIGTERM, then SIGKILL if it has not exited within 5 s.
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"
  // GET /admin/truth, parsed. Throws on a non-200 answer or bad JSON.
  cascade::Value truth();
  // POST /admin/advance?ticks=N: the summary of what happened. Throws on a non-200 answer.
  cascade::Value advance(int ticks);
  // POST /admin/faults: replaces the fault plan (JSON as `cascade-sim --faults`); returns the plan
  // now in force. Throws std::runtime_error on a non-200 answer (e.g. a bad plan).
  cascade::Value set_faults(const std::string& plan_json);
  // DELETE /admin/faults. Throws std::runtime_error on a non-200 answer.
  void clear_faults();
  Subprocess& process() { return proc_; }

 private:
  Subprocess proc_;
  int port_ = 0;
};

// A fresh directory under /tmp, removed (with its content) when the test process exits.
std::string temp_dir();

}  // namespace cascade::testing
