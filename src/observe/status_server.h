// StatusServer: the read-only HTTP endpoint of `cascade run` (cpp-httplib on its own threads).
//
//   GET /metrics         the registry in the Prometheus text format 0.0.4
//   GET /healthz         200 {"status":"ok"}, or 503 {"status":"unhealthy","reason":...}
//   GET /status          the JSON document the status callback returns
//   GET /                the HTML page given in StatusContent::page
//   GET /assets/NAME     StatusContent::assets[NAME]
//
// HEAD works wherever GET does; any other method is 405, an unknown path 404. Every response
// carries `Cache-Control: no-store` (a status is only true when read) and
// `X-Content-Type-Options: nosniff`.
//
// Security. The default address is 127.0.0.1. On any address that is not loopback every request
// must carry `Authorization: Bearer <token>`, the token being the value of the environment
// variable CASCADE_STATUS_TOKEN (read once, by start()); when it is unset or empty, start()
// refuses before binding unless StatusOptions::allow_unauthenticated opts out explicitly.
// Tokens are compared in constant time and never logged or echoed; requests are not logged.
//
// Thread-safety. start(), stop() and the destructor are for the owning thread. port() and
// running() may be called from any thread. The callbacks in StatusContent run on the server's
// threads, concurrently with each other and with the rest of the program, so they must be
// thread-safe and quick (a scrape waits for them); they are never called once stop() returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "observe/metrics.h"

namespace cascade::observe {

// start() cannot serve as asked: refused for security, or the address cannot be bound.
class StatusServerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StatusAsset {
  std::string content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string body;
};

// What the server serves. Fixed at construction; callbacks may be empty.
struct StatusContent {
  // /metrics; nullptr: 404. Must outlive the server.
  const Registry* registry = nullptr;
  // /healthz: nullopt when healthy, else the reason it is not (shown to the caller).
  std::function<std::optional<std::string>()> health;
  // /status: a complete JSON document. Empty callback: 404.
  std::function<std::string()> status;
  // / (text/html; charset=utf-8). Empty: 404.
  std::string page;
  // /assets/NAME, keyed by NAME ("app.js", "css/site.css").
  std::map<std::string, StatusAsset> assets;
};

struct StatusOptions {
  // Serve a non-loopback address without a token. Anyone who can reach the port then reads
  // the pipeline's state: only for networks where that is acceptable.
  bool allow_unauthenticated = false;
  // Require the token on loopback too (a shared machine; tests of the token check).
  bool require_token = false;
  // The environment variable holding the token.
  std::string token_env = "CASCADE_STATUS_TOKEN";
  // Connection-serving threads; a keep-alive connection holds one while it is open.
  int threads = 4;
  // Read, write and keep-alive idle timeout of a connection. Bounds how long stop() waits for
  // a connected client (whole seconds for keep-alive, at least 1).
  std::chrono::milliseconds io_timeout{1000};
};

class StatusServer {
 public:
  explicit StatusServer(StatusContent content, StatusOptions options = {});
  ~StatusServer();  // stop()
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Checks the security rules, binds address:port (port 0: any free port, see port()) and
  // serves on background threads; returns once the server accepts connections. Throws
  // StatusServerError when refused (no token for a non-loopback address) or when the address
  // cannot be bound, std::logic_error when called twice. A StatusServer serves at most once.
  void start(const std::string& address = "127.0.0.1", int port = 0);

  // Stops accepting, waits for callbacks in progress to return, closes every connection (idle,
  // half-sent or slow clients included) and joins the server's threads; returns in milliseconds.
  // Should a connection thread not end (no /proc to find its socket), it is left to end on its
  // timeout and stop() returns after at most io_timeout + 0.5 s. No callback runs after stop()
  // returned. Idempotent.
  void stop();

  // The bound port (0 before start()).
  int port() const;
  bool running() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the listening thread, which may outlive stop()
  std::thread thread_;
};

// True if address is a loopback address: 127.0.0.0/8, ::1, an IPv4-mapped 127.x, or
// "localhost".
bool is_loopback_address(const std::string& address);

// Compares two secrets in time that depends only on their lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace cascade::observe
