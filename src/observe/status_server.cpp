#include "observe/status_server.h"

// Debian's httplib.h is the split build: the implementation is in libcpp-httplib.so, compiled
// with OpenSSL, zlib and brotli support, and the header's class layouts depend on those
// macros. They come from pkg-config (PkgConfig::HTTPLIB, private to this library), and this is
// the only file that includes the header, so no other translation unit can disagree on them.
#include <arpa/inet.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "core/json.h"

namespace cascade::observe {

namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

std::string json_error(std::string_view message) {
  std::string out = "{\"error\":";
  append_json_string(message, out);
  out += '}';
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The token of an "Authorization: Bearer <token>" header; empty when absent or another scheme.
std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer";
  if (header.size() <= scheme.size() || !iequals(header.substr(0, scheme.size()), scheme) ||
      header[scheme.size()] != ' ')
    return {};
  header.remove_prefix(scheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return header;
}

// httplib keeps the sockets it accepted to itself and serves each until its client goes quiet for
// a timeout, so a client sending a byte now and then would hold stop() indefinitely. The
// process's own descriptors tell which sockets were accepted on our port: their local port is
// ours and they have a peer (a client of ours in this process has ours as its peer port, not its
// local one). Shutting them down makes their threads read end of stream at once; shutdown()
// never closes a descriptor, so httplib still owns and closes each.
void shutdown_accepted(int port) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int fd = -1;
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc()) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
    int local_port = -1;
    if (local.ss_family == AF_INET)
      local_port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    else if (local.ss_family == AF_INET6)
      local_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    if (local_port != port) continue;
    sockaddr_storage peer{};
    len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;  // a listener
    ::shutdown(fd, SHUT_RDWR);
  }
}

}  // namespace

bool is_loopback_address(const std::string& address) {
  if (address == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is visited, whatever differs first.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

struct StatusServer::Impl {
  StatusContent content;
  StatusOptions options;
  std::string token;  // empty: no authentication
  httplib::Server server;
  std::atomic<int> port{0};
  bool started = false;  // owner thread only
  std::atomic<bool> stopped{false};

  // The gate keeps callbacks from running once stop() returned: a handler enters before
  // touching content and stop() closes the gate, then waits for handlers inside to leave.
  std::mutex gate_mutex;
  std::condition_variable gate_cv;
  int active = 0;
  bool closed = false;

  // Set by the listening thread when it ends.
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;

  bool enter() {
    std::lock_guard lock(gate_mutex);
    if (closed) return false;
    ++active;
    return true;
  }
  void leave() {
    std::lock_guard lock(gate_mutex);
    if (--active == 0) gate_cv.notify_all();
  }
  void close_gate() {
    std::unique_lock lock(gate_mutex);
    closed = true;
    gate_cv.wait(lock, [this] { return active == 0; });
  }

  // Runs body inside the gate; answers 503 when stopping and a bare 500 when body throws (the
  // exception's text could hold anything, so it goes to the log only).
  template <class F>
  void guarded(httplib::Response& res, F&& body) {
    if (!enter()) {
      res.status = 503;
      res.set_content(json_error("stopping"), kJson);
      return;
    }
    try {
      body();
    } catch (const std::exception& e) {
      spdlog::warn("status server: handler failed: {}", e.what());
      res.status = 500;
      res.set_content(json_error("internal error"), kJson);
    }
    leave();
  }

  bool authorized(const httplib::Request& req) const {
    if (token.empty()) return true;
    return constant_time_equal(bearer_token(req.get_header_value("Authorization")), token);
  }

  void routes() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req)) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"cascade\"");
        res.set_header("Connection", "close");
        res.set_content(json_error("unauthorized"), kJson);
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.method != "GET" && req.method != "HEAD") {
        res.status = 405;
        res.set_header("Allow", "GET, HEAD");
        // The request body, if any, is left unread: the connection cannot be reused.
        res.set_header("Connection", "close");
        res.set_content(json_error("method not allowed: this endpoint is read-only"), kJson);
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });

    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] {
        if (!content.registry) return not_found(res);
        res.set_content(content.registry->expose(), kMetricsType);
      });
    });
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] {
        std::optional<std::string> reason;
        if (content.health) reason = content.health();
        if (!reason) return res.set_content("{\"status\":\"ok\"}", kJson);
        std::string body = "{\"status\":\"unhealthy\",\"reason\":";
        append_json_string(*reason, body);
        body += '}';
        res.status = 503;
        res.set_content(body, kJson);
      });
    });
    server.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] {
        if (!content.status) return not_found(res);
        res.set_content(content.status(), kJson);
      });
    });
    server.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      if (content.page.empty()) return not_found(res);
      res.set_content(content.page, "text/html; charset=utf-8");
    });
    server.Get("/assets/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
      auto it = content.assets.find(req.matches[1].str());
      if (it == content.assets.end()) return not_found(res);
      res.set_content(it->second.body, it->second.content_type);
    });
    server.Get(".*", [](const httplib::Request&, httplib::Response& res) { not_found(res); });
  }

  static void not_found(httplib::Response& res) {
    res.status = 404;
    res.set_content(json_error("not found"), kJson);
  }
};

StatusServer::StatusServer(StatusContent content, StatusOptions options)
    : impl_(std::make_shared<Impl>()) {
  impl_->content = std::move(content);
  impl_->options = std::move(options);
}

StatusServer::~StatusServer() {
  stop();
}

void StatusServer::start(const std::string& address, int port) {
  Impl& s = *impl_;
  if (s.started) throw std::logic_error("StatusServer::start called twice");
  s.started = true;
  if (port < 0 || port > 65535)
    throw StatusServerError("status server: port " + std::to_string(port) +
                            " is not a TCP port (0-65535)");
  if (address.empty()) throw StatusServerError("status server: empty listen address");

  const char* env = std::getenv(s.options.token_env.c_str());
  const std::string token = env ? env : "";
  const bool loopback = is_loopback_address(address);
  if (token.empty() && s.options.require_token)
    throw StatusServerError("status server: a token is required but " + s.options.token_env +
                            " is not set");
  if (token.empty() && !loopback && !s.options.allow_unauthenticated)
    throw StatusServerError(
        "status server: refusing to serve " + address +
        ", which is not a loopback address, without authentication: set " + s.options.token_env +
        " to a secret that clients send as 'Authorization: Bearer <token>', or opt out "
        "explicitly with allow_unauthenticated");
  if (!loopback || s.options.require_token) s.token = token;

  const auto timeout = s.options.io_timeout;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  s.server.set_read_timeout(secs.count(), usecs.count());
  s.server.set_write_timeout(secs.count(), usecs.count());
  s.server.set_keep_alive_timeout(std::max<time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(timeout + std::chrono::milliseconds(999))
             .count()));
  s.server.set_payload_max_length(64 * 1024);
  // httplib's default sets SO_REUSEPORT, which lets a second server (another `cascade run`)
  // bind the same port and silently take half the scrapes. SO_REUSEADDR alone still allows a
  // restart while old connections linger in TIME_WAIT.
  s.server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const size_t threads = static_cast<size_t>(std::max(1, s.options.threads));
  s.server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.server.set_default_headers({{"Cache-Control", "no-store"},
                                {"X-Content-Type-Options", "nosniff"},
                                {"X-Frame-Options", "DENY"},
                                {"Referrer-Policy", "no-referrer"}});
  // httplib's default answer to an exception puts its text in a response header.
  s.server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(json_error("internal error"), kJson);
      });
  s.routes();

  int bound = port;
  if (port == 0)
    bound = s.server.bind_to_any_port(address);
  else if (!s.server.bind_to_port(address, port))
    bound = -1;
  if (bound <= 0)
    throw StatusServerError("status server: cannot listen on " + address + ":" +
                            std::to_string(port) +
                            " (port in use, or not an address of this machine)");
  s.port = bound;

  thread_ = std::thread([impl = impl_] {
    impl->server.listen_after_bind();
    std::lock_guard lock(impl->done_mutex);
    impl->done = true;
    impl->done_cv.notify_all();
  });
  // stop() only works once the listening loop runs; until then it would be a no-op.
  while (!s.server.is_running()) {
    {
      std::lock_guard lock(s.done_mutex);
      if (s.done) {
        thread_.join();
        throw StatusServerError("status server: listening on " + address + " failed");
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("status server listening on {}:{}{}", address, bound,
               s.token.empty() ? "" : " (bearer token required)");
}

void StatusServer::stop() {
  if (!thread_.joinable()) return;
  Impl& s = *impl_;
  s.stopped = true;
  s.close_gate();
  s.server.stop();  // closes the listening socket: nothing new is accepted after this
  shutdown_accepted(s.port);
  // Every connection thread now ends at once. Should one not (no /proc), its timeouts end it
  // within about io_timeout, and the daemon's shutdown does not wait longer than that for it.
  const auto grace = s.options.io_timeout + std::chrono::milliseconds(500);
  bool done;
  {
    std::unique_lock lock(s.done_mutex);
    done = s.done_cv.wait_for(lock, grace, [&] { return s.done; });
  }
  if (done) {
    thread_.join();
  } else {
    spdlog::warn("status server: a client connection is still open; leaving it to time out");
    thread_.detach();  // it holds impl_ alive until it ends
  }
}

int StatusServer::port() const {
  return impl_->port.load();
}

bool StatusServer::running() const {
  return !impl_->stopped && impl_->server.is_running();
}

}  // namespace cascade::observe
