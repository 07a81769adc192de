// Child processes for integration tests: run a command to completion, or keep one running and
// read its stdout line by line. Not thread-safe (one Subprocess per thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace cascade::testing {

struct RunResult {
  int exit_code;  // exit status, or 128+signal if killed
  std::string out;
  std::string err;
  bool timed_out = false;  // the timeout passed and the child was signalled
};

// How run() starts and bounds a child, for callers that need more than the plain overload.
struct RunOptions {
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited environment
  std::string cwd;                         // the child's working directory; empty: inherited
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  // After the timeout the child gets SIGTERM and this long to exit (reading its output meanwhile)
  // before SIGKILL; zero sends SIGKILL at once.
  std::chrono::milliseconds term_grace{0};
  // Report a timeout as a test failure (ADD_FAILURE); off for callers outside GoogleTest.
  bool fail_test_on_timeout = true;
};

// Runs argv to completion (fork/exec, no shell; argv[0] is searched in PATH), capturing stdout and
// stderr; env entries are added to (or replace in) the inherited environment. After `timeout` the
// child is killed, the test fails (ADD_FAILURE) and the result has exit code 128+SIGKILL.
// Throws std::runtime_error if the process cannot be started.
RunResult run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env = {},
              std::chrono::seconds timeout = std::chrono::seconds(120));
// The same with every knob of RunOptions. A cwd that cannot be entered makes the child exit 127.
RunResult run(const std::vector<std::string>& argv, const RunOptions& opts);

// Polls `pred` every 50 ms until it holds or `timeout` passes; its last value. For conditions
// another process brings about (a row in a database, a file), where nothing can be waited on.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// A running child whose stdout is a pipe read by read_line; its stderr is the test's stderr.
// Move-only; the destructor sends SIGKILL and reaps it if it is still running.
class Subprocess {
 public:
  // Throws std::runtime_error if the process cannot be started.
  static Subprocess start(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {});
  Subprocess(Subprocess&& o) noexcept;
  Subprocess& operator=(Subprocess&& o) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  // Next stdout line without its newline; "" on EOF or when timeout passes first.
  std::string read_line(std::chrono::milliseconds timeout);
  void signal(int sig);
  // Blocks until the child exits; its exit code, or 128+signal. Repeated calls return the same.
  int wait();
  pid_t pid() const { return pid_; }
  // False once the child has exited (it is then reaped).
  bool running();

 private:
  Subprocess() = default;
  void reset();
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  bool exited_ = false;
  int code_ = 0;
};

// The executable `name` in a directory of $PATH (the first one), or "" when there is none.
std::string find_in_path(const std::string& name);

// A TCP port on 127.0.0.1 that was free a moment ago (another process may take it before the
// caller binds: retry on failure).
int free_loopback_port();

// The last 2000 bytes of a file (a server's log, for a failure message); "" when unreadable.
std::string tail_of(const std::string& file);

}  // namespace cascade::testing
