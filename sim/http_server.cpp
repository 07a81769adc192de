#include "sim/http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace cascade::sim {
namespace {

constexpr size_t kMaxHeader = 64 * 1024;
constexpr size_t kMaxBody = 1024 * 1024;

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Conn {
  int fd;
  std::string in;
  size_t in_off = 0;
  std::string out;
  size_t out_off = 0;
  std::function<bool(std::string&)> stream;
  std::function<void()> on_done;
  std::string chunk;
  bool close_after = false;
  bool want_write = false;
  bool hung = false;  // a response that never comes: read nothing more, send nothing
  bool rst = false;   // close abortively
  bool held = false;  // output waits for hold_until (a timer entry exists)
  std::chrono::steady_clock::time_point hold_until;

  ~Conn() {
    if (on_done) on_done();
  }
};

// Sentinels stored in epoll data to tell the listening socket and the stop event from clients.
char listen_tag, stop_tag;

}  // namespace

const std::string* HttpRequest::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return &v;
  return nullptr;
}

const std::string* HttpRequest::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return &v;
  return nullptr;
}

std::string url_decode(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      r += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      r += static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      r += s[i];
    }
  }
  return r;
}

HttpServer::HttpServer(HttpHandler handler, int threads)
    : handler_(std::move(handler)), threads_(threads < 1 ? 1 : threads) {}

HttpServer::~HttpServer() {
  stop();
  wait();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

int HttpServer::listen(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0)
    throw std::runtime_error(fmt::format("cannot resolve {}: {}", host, gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(err)));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  listen_fd_ = fd;
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void HttpServer::start() {
  if (listen_fd_ < 0) throw std::logic_error("HttpServer::start before listen");
  for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void HttpServer::stop() {
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
  }
}

void HttpServer::wait() {
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

void HttpServer::worker_loop() {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  // EPOLLEXCLUSIVE: one worker wakes per new connection instead of all of them.
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.ptr = &listen_tag;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.events = EPOLLIN;
  ev.data.ptr = &stop_tag;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd_, &ev);
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns;
  // Delayed responses of this worker, earliest first; epoll_wait sleeps until the first is due.
  using SteadyTime = std::chrono::steady_clock::time_point;
  std::set<std::pair<SteadyTime, Conn*>> timers;

  auto close_conn = [&](Conn* c) {
    if (c->held) timers.erase({c->hold_until, c});
    if (c->rst) {
      linger lg{};
      lg.l_onoff = 1;
      lg.l_linger = 0;  // close() then sends RST and drops anything unsent
      ::setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    ::epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
    conns.erase(c);
  };
  auto set_write = [&](Conn* c, bool on) {
    if (c->want_write == on) return;
    c->want_write = on;
    epoll_event e{};
    e.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
    e.data.ptr = c;
    ::epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
  };
  auto queue_response = [&](Conn* c, HttpResponse& res, bool head_only) {
    const size_t start = c->out.size();
    fmt::format_to(std::back_inserter(c->out), "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", res.status,
                   reason(res.status), res.content_type);
    for (const auto& [k, v] : res.headers)
      fmt::format_to(std::back_inserter(c->out), "{}: {}\r\n", k, v);
    c->out += c->close_after ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
    if (res.stream && !head_only) {
      c->out += "Transfer-Encoding: chunked\r\n\r\n";
      c->stream = std::move(res.stream);
    } else {
      fmt::format_to(std::back_inserter(c->out), "Content-Length: {}\r\n\r\n", res.body.size());
      if (!head_only) c->out += res.body;
      if (res.truncate_body >= 0 && !head_only && !res.body.empty()) {
        const size_t keep = std::min(static_cast<size_t>(res.truncate_body), res.body.size() - 1);
        c->out.resize(c->out.size() - res.body.size() + keep);
        c->close_after = true;
      }
    }
    c->on_done = std::move(res.on_done);
    if (res.hang) {
      c->out.resize(start);
      c->stream = nullptr;
      c->hung = true;
      return;
    }
    if (res.reset_after >= 0) {
      const size_t len = c->out.size() - start;
      c->out.resize(start + std::min(static_cast<size_t>(res.reset_after), len > 0 ? len - 1 : 0));
      c->stream = nullptr;
      c->rst = true;
      c->close_after = true;
    }
    if (res.delay.count() > 0) {
      c->held = true;
      c->hold_until = std::chrono::steady_clock::now() + res.delay;
      timers.emplace(c->hold_until, c);
    }
  };
  auto error_response = [&](Conn* c, int status, std::string_view msg) {
    HttpResponse res;
    res.status = status;
    res.body = fmt::format("{{\"error\":\"{}\"}}", msg);
    c->close_after = true;
    queue_response(c, res, false);
  };
  // Parses and answers buffered requests until one is incomplete or output is pending.
  // Returns false if the connection must be closed now.
  auto process = [&](Conn* c) -> bool {
    while (c->out_off >= c->out.size() && !c->stream && !c->close_after && !c->hung) {
      std::string_view buf(c->in);
      buf.remove_prefix(c->in_off);
      const size_t hend = buf.find("\r\n\r\n");
      if (hend == std::string_view::npos) {
        if (buf.size() > kMaxHeader) error_response(c, 431, "request header too large");
        break;
      }
      std::string_view head = buf.substr(0, hend);
      const size_t eol = head.find("\r\n");
      std::string_view line = head.substr(0, eol);
      std::string_view rest =
          eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
      const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 == sp1) {
        error_response(c, 400, "malformed request line");
        break;
      }
      HttpRequest req;
      req.method = std::string(line.substr(0, sp1));
      std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      const std::string_view version = line.substr(sp2 + 1);
      bool keep_alive = version != "HTTP/1.0";
      size_t content_length = 0;
      bool chunked = false;
      while (!rest.empty()) {
        const size_t e = rest.find("\r\n");
        std::string_view h = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
        const size_t colon = h.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view name = h.substr(0, colon), value = trim(h.substr(colon + 1));
        if (req.headers.size() < 100) {
          std::string lower(trim(name));
          for (char& ch : lower)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          req.headers.emplace_back(std::move(lower), std::string(value));
        }
        if (iequals(name, "content-length")) {
          content_length = 0;
          for (char ch : value) {
            if (ch < '0' || ch > '9' || content_length > kMaxBody) {
              content_length = kMaxBody + 1;
              break;
            }
            content_length = content_length * 10 + static_cast<size_t>(ch - '0');
          }
        } else if (iequals(name, "transfer-encoding")) {
          chunked = true;
        } else if (iequals(name, "connection")) {
          if (iequals(value, "close")) keep_alive = false;
          if (iequals(value, "keep-alive")) keep_alive = true;
        }
      }
      if (chunked) {
        error_response(c, 501, "chunked request bodies are not supported");
        break;
      }
      if (content_length > kMaxBody) {
        error_response(c, 413, "request body too large");
        break;
      }
      if (buf.size() < hend + 4 + content_length) break;  // body not complete yet
      req.body = std::string(buf.substr(hend + 4, content_length));
      c->in_off += hend + 4 + content_length;

      const size_t q = target.find('?');
      req.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos) {
        std::string_view qs = target.substr(q + 1);
        while (!qs.empty()) {
          const size_t amp = qs.find('&');
          const std::string_view kv = qs.substr(0, amp);
          qs = amp == std::string_view::npos ? std::string_view() : qs.substr(amp + 1);
          if (kv.empty()) continue;
          const size_t eq = kv.find('=');
          req.params.emplace_back(
              url_decode(kv.substr(0, eq)),
              eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1)));
        }
      }
      HttpResponse res;
      try {
        handler_(req, res);
      } catch (const std::exception& e) {
        res = HttpResponse();
        res.status = 500;
        res.body = R"({"error":"internal error"})";
      }
      c->close_after = !keep_alive;
      queue_response(c, res, req.method == "HEAD");
    }
    if (c->in_off > 0 && c->in_off == c->in.size()) {
      c->in.clear();
      c->in_off = 0;
    } else if (c->in_off > 64 * 1024) {
      c->in.erase(0, c->in_off);
      c->in_off = 0;
    }
    return true;
  };
  // Writes pending output (pulling stream chunks); returns false if the connection is done.
  auto flush = [&](Conn* c) -> bool {
    if (c->hung || c->held) {
      set_write(c, false);
      return true;
    }
    for (;;) {
      while (c->out_off < c->out.size()) {
        const ssize_t n =
            ::send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            set_write(c, true);
            return true;
          }
          if (errno == EINTR) continue;
          return false;
        }
        c->out_off += static_cast<size_t>(n);
      }
      c->out.clear();
      c->out_off = 0;
      if (c->stream) {
        c->chunk.clear();
        bool more;
        try {
          more = c->stream(c->chunk);
        } catch (const std::exception&) {
          return false;  // the status line is gone: a cut connection is the only honest signal
        }
        if (!c->chunk.empty())
          fmt::format_to(std::back_inserter(c->out), "{:x}\r\n{}\r\n", c->chunk.size(), c->chunk);
        if (!more) {
          c->out += "0\r\n\r\n";
          c->stream = nullptr;
        }
        continue;
      }
      if (c->on_done) {
        auto done = std::move(c->on_done);
        c->on_done = nullptr;
        done();
      }
      if (c->close_after) return false;
      set_write(c, false);
      if (c->in_off < c->in.size()) {  // pipelined requests waiting
        if (!process(c)) return false;
        if (c->out_off < c->out.size() || c->stream) continue;
      }
      return true;
    }
  };

  std::vector<epoll_event> events(128);
  char rbuf[64 * 1024];
  bool stopping = false;
  while (!stopping) {
    int timeout_ms = -1;
    if (!timers.empty()) {
      const auto wait = timers.begin()->first - std::chrono::steady_clock::now();
      // Rounded up: waking a little early would spin until the deadline.
      timeout_ms = static_cast<int>(
          std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    }
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &stop_tag) {
        stopping = true;
        break;
      }
      if (tag == &listen_tag) {
        for (;;) {
          const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto conn = std::make_unique<Conn>();
          conn->fd = fd;
          Conn* c = conn.get();
          conns.emplace(c, std::move(conn));
          epoll_event e{};
          e.events = EPOLLIN | EPOLLRDHUP;
          e.data.ptr = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      Conn* c = static_cast<Conn*>(tag);
      if (!conns.count(c)) continue;  // closed earlier in this batch
      bool alive = true;
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        bool eof = false;
        for (;;) {
          const ssize_t r = ::recv(c->fd, rbuf, sizeof rbuf, 0);
          if (r > 0) {
            c->in.append(rbuf, static_cast<size_t>(r));
            if (static_cast<size_t>(r) < sizeof rbuf) break;
            continue;
          }
          if (r == 0)
            eof = true;
          else if (errno == EINTR)
            continue;
          else if (errno != EAGAIN && errno != EWOULDBLOCK)
            eof = true;
          break;
        }
        if (eof)
          alive = false;  // the client is gone or half-closed: nothing left to answer
        else
          alive = process(c);
      }
      if (alive) alive = flush(c);
      if (!alive) close_conn(c);
    }
    const SteadyTime now = std::chrono::steady_clock::now();
    while (!stopping && !timers.empty() && timers.begin()->first <= now) {
      Conn* c = timers.begin()->second;
      timers.erase(timers.begin());
      c->held = false;
      if (!flush(c)) close_conn(c);
    }
  }
  for (auto& [p, c] : conns) ::close(c->fd);
  conns.clear();
  ::close(ep);
}

}  // namespace cascade::sim
