#include "support/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

extern char** environ;

namespace cascade::testing {
namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Forks and execs argv with stdout/stderr redirected to the given fds (-1: inherit).
// Everything the child needs is prepared before fork: only async-signal-safe calls after it.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            int out_w, int err_w, int close_a, int close_b, const std::string& cwd = {}) {
  if (argv.empty()) throw std::runtime_error("spawn: empty argv");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    const std::string key = s.substr(0, s.find('='));
    if (!env.count(key)) env_strings.push_back(std::move(s));
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    if (out_w >= 0) ::dup2(out_w, 1);
    if (err_w >= 0) ::dup2(err_w, 2);
    if (close_a >= 0) ::close(close_a);
    if (close_b >= 0) ::close(close_b);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      const char msg[] = "chdir failed\n";
      [[maybe_unused]] ssize_t n = ::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    ::execvpe(args[0], args.data(), envp.data());
    const char msg[] = "exec failed\n";
    [[maybe_unused]] ssize_t n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  return pid;
}

}  // namespace

RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
              std::chrono::seconds timeout) {
  RunOptions opts;
  opts.env = env;
  opts.timeout = timeout;
  return run(argv, opts);
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& opts) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::runtime_error("pipe failed");
  }
  pid_t pid;
  try {
    pid = spawn(argv, opts.env, out[1], err[1], -1, -1, opts.cwd);
  } catch (...) {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    throw;
  }
  ::close(out[1]);
  ::close(err[1]);
  RunResult r{};
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  bool killed = false;
  char buf[65536];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      // A polite SIGTERM first lets the child flush what it has to say about where it was.
      if (!r.timed_out && opts.term_grace.count() > 0) {
        r.timed_out = true;
        ::kill(pid, SIGTERM);
        deadline = std::chrono::steady_clock::now() + opts.term_grace;
        continue;
      }
      r.timed_out = true;
      killed = true;
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  if (killed) ::kill(pid, SIGKILL);
  if (r.timed_out && opts.fail_test_on_timeout)
    ADD_FAILURE() << "timed out after " << opts.timeout.count() << "ms: " << argv[0];
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = decode_status(status);
  return r;
}

Subprocess Subprocess::start(const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& env) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  Subprocess p;
  try {
    p.pid_ = spawn(argv, env, out[1], -1, -1, -1);
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  ::close(out[1]);
  p.out_fd_ = out[0];
  return p;
}

Subprocess::Subprocess(Subprocess&& o) noexcept {
  *this = std::move(o);
}

Subprocess& Subprocess::operator=(Subprocess&& o) noexcept {
  if (this != &o) {
    reset();
    pid_ = o.pid_;
    out_fd_ = o.out_fd_;
    buf_ = std::move(o.buf_);
    exited_ = o.exited_;
    code_ = o.code_;
    o.pid_ = -1;
    o.out_fd_ = -1;
  }
  return *this;
}

Subprocess::~Subprocess() {
  reset();
}

void Subprocess::reset() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  pid_ = -1;
  out_fd_ = -1;
  exited_ = false;
}

std::string Subprocess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    if (out_fd_ < 0) return "";
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd pfd{out_fd_, POLLIN, 0};
    const int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    char buf[4096];
    const ssize_t got = ::read(out_fd_, buf, sizeof buf);
    if (got > 0) {
      buf_.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
  }
}

void Subprocess::signal(int sig) {
  if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

int Subprocess::wait() {
  if (pid_ <= 0 || exited_) return code_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
  code_ = decode_status(status);
  return code_;
}

bool Subprocess::running() {
  if (pid_ <= 0 || exited_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    code_ = decode_status(status);
    return false;
  }
  return true;
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    if (end > start) {
      std::string candidate = p.substr(start, end - start) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return "";
}

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind to 127.0.0.1:0 failed");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string tail_of(const std::string& file) {
  std::ifstream in(file);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

}  // namespace cascade::testing
