// MotoServer: moto's server mode (`moto_server -H 127.0.0.1 -p PORT`, every AWS service on one
// port) for one test process, on a free loopback port, with fake credentials. Its output goes to
// a log file in a temporary directory (shown when it fails to come up). The child dies with the
// test process (PR_SET_PDEATHSIG), and the destructor stops it (SIGTERM, then SIGKILL after
// 5 s). The binary: $CASCADE_TEST_MOTO_SERVER when set, else `moto_server` in PATH.
// Not thread-safe to construct or destroy; the accessors may be called from any thread.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>

#include "aws/client.h"

namespace cascade::testing {

class MotoServer {
 public:
  // A started server, or null with `why` saying what is missing (moto_server not installed).
  // Throws std::runtime_error when the binary is there but the server does not answer within
  // 60 s (a real failure, never a skip).
  static std::unique_ptr<MotoServer> start(std::string& why);
  ~MotoServer();
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT".
  std::string endpoint() const;
  // The fake credentials moto accepts; the secret is distinctive so tests can look for it.
  static constexpr const char* kAccessKeyId = "AKIAMOTOTESTKEY00001";
  static constexpr const char* kSecretAccessKey = "moto-secret-DO-NOT-PRINT-8f3a1c";
  static constexpr const char* kRegion = "us-east-1";
  // What a child process (the cascade binary) needs to reach this server: AWS_ENDPOINT_URL,
  // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION.
  std::map<std::string, std::string> env() const;
  // A client configuration for this server (no files or variables read).
  aws::AwsConfig config() const;
  // Forgets every resource (POST /moto-api/reset). Throws std::runtime_error on failure.
  void reset();

 private:
  MotoServer() = default;
  std::string dir_, log_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// The server shared by every test of this process (started on first use, stopped at exit), or
// null with `why`. On first start it also sets the variables of env() in this process (and
// unsets AWS_PROFILE and AWS_SESSION_TOKEN), so AwsConfig::from_environment() reaches it.
MotoServer* shared_moto(std::string& why);

}  // namespace cascade::testing

// Skips the current test, with the reason, when moto_server is not installed here.
#define CASCADE_REQUIRE_MOTO(var)                                                   \
  std::string var##_why;                                                            \
  ::cascade::testing::MotoServer* var = ::cascade::testing::shared_moto(var##_why); \
  if (!var) GTEST_SKIP() << "moto_server not installed: " << var##_why
