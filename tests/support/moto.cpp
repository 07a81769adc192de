#include "support/moto.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "support/http.h"
#include "support/subprocess.h"

namespace fs = std::filesystem;

namespace cascade::testing {
namespace {

std::string find_moto() {
  if (const char* explicit_bin = std::getenv("CASCADE_TEST_MOTO_SERVER"))
    return ::access(explicit_bin, X_OK) == 0 ? explicit_bin : "";
  return find_in_path("moto_server");
}

// Reaps the child if it has exited; true then.
bool exited(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

std::unique_ptr<MotoServer> MotoServer::start(std::string& why) {
  std::string bin = find_moto();
  if (bin.empty()) {
    why = std::getenv("CASCADE_TEST_MOTO_SERVER")
              ? "$CASCADE_TEST_MOTO_SERVER is not an executable"
              : "no moto_server in PATH (pip install 'moto[server]')";
    return nullptr;
  }
  std::unique_ptr<MotoServer> s(new MotoServer());
  char tmpl[] = "/tmp/cascade-moto-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  s->dir_ = tmpl;
  s->log_ = s->dir_ + "/moto.log";
  std::string failure;
  // Another process may take the port between free_port() and moto's bind: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    s->port_ = free_loopback_port();
    std::string port = std::to_string(s->port_);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int fd = ::open(s->log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
      ::execl(bin.c_str(), bin.c_str(), "-H", "127.0.0.1", "-p", port.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    s->pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool up = false, died = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited(pid)) {
        died = true;
        break;
      }
      try {
        long status = 0;
        http_get(s->endpoint() + "/moto-api/data.json", &status);
        if (status == 200) {
          up = true;
          break;
        }
      } catch (const std::exception&) {
        // Not listening yet.
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (up) return s;
    if (!died) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    s->pid_ = -1;
    failure = died ? "moto_server exited" : "moto_server did not answer within 60 s";
  }
  std::string log = tail_of(s->log_);
  throw std::runtime_error(failure + " (" + bin + "); its log:\n" + log);
}

MotoServer::~MotoServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool gone = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited(pid_)) {
        gone = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string MotoServer::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::map<std::string, std::string> MotoServer::env() const {
  return {{"AWS_ENDPOINT_URL", endpoint()},
          {"AWS_ACCESS_KEY_ID", kAccessKeyId},
          {"AWS_SECRET_ACCESS_KEY", kSecretAccessKey},
          {"AWS_REGION", kRegion},
          {"AWS_DEFAULT_REGION", kRegion}};
}

aws::AwsConfig MotoServer::config() const {
  aws::AwsConfig c;
  c.region = kRegion;
  c.credentials = {kAccessKeyId, kSecretAccessKey, ""};
  c.endpoint_url = endpoint();
  c.max_attempts = 3;
  return c;
}

void MotoServer::reset() {
  long status = 0;
  http_post(endpoint() + "/moto-api/reset", "", &status);
  if (status != 200) throw std::runtime_error("moto reset answered HTTP " + std::to_string(status));
}

MotoServer* shared_moto(std::string& why) {
  static std::mutex mu;
  static std::unique_ptr<MotoServer> server;
  static std::string reason, failure;
  static bool tried = false;
  std::lock_guard lock(mu);
  // A server that failed to start fails every test that asks for it, not only the first.
  if (!failure.empty()) throw std::runtime_error(failure);
  if (!tried) {
    tried = true;
    try {
      server = MotoServer::start(reason);
    } catch (const std::exception& e) {
      failure = e.what();
      throw;
    }
    if (server) {
      for (const auto& [k, v] : server->env()) ::setenv(k.c_str(), v.c_str(), 1);
      ::unsetenv("AWS_PROFILE");
      ::unsetenv("AWS_SESSION_TOKEN");
    }
  }
  why = reason;
  return server.get();
}

}  // namespace cascade::testing
