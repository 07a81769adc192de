// HttpServer: a small HTTP/1.1 server (keep-alive, pipelining, chunked streaming responses) on
// epoll, one event loop per worker thread. Thread-safe: the handler is called concurrently.
//
// Written for cascade-sim instead of using cpp-httplib: Debian ships httplib split into a .so
// built against OpenSSL/brotli (its header alone does not link), and owning the socket layer is
// what fault injection (resets, truncation, stalls) needs anyway.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace cascade::sim {

struct HttpRequest {
  std::string method;
  std::string path;                                         // without the query string, not decoded
  std::vector<std::pair<std::string, std::string>> params;  // query parameters, decoded
  std::string body;
  // Request headers as received, names lower-cased, values trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  // First value of a query parameter, nullptr if absent.
  const std::string* param(std::string_view name) const;
  // First value of a header (name in lower case), nullptr if absent.
  const std::string* header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  // When set, the body is streamed with chunked encoding: each call appends the next part to
  // its argument and returns false after the last part. Runs on the connection's worker thread.
  std::function<bool(std::string&)> stream;
  // Called once when the response is finished or abandoned (e.g. to release a lock).
  std::function<void()> on_done;

  // Misbehaviour, for fault injection. A delay is a timer on the connection's event loop: other
  // connections of that worker go on being served meanwhile.
  std::chrono::milliseconds delay{0};
  // Never answer: the connection stays open, reading nothing more, until the client closes it or
  // the server stops.
  bool hang = false;
  // Send this many bytes of the encoded response (status line onward, clamped below its size),
  // then close abortively (RST, SO_LINGER 0). -1: no reset.
  int64_t reset_after = -1;
  // Send the headers (Content-Length of the whole body) and only this many body bytes, then close.
  // -1: the whole body.
  int64_t truncate_body = -1;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

class HttpServer {
 public:
  HttpServer(HttpHandler handler, int threads);
  ~HttpServer();  // stops and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens on host:port (port 0 picks a free one); returns the bound port.
  // Throws std::runtime_error if the address cannot be used.
  int listen(const std::string& host, int port);
  // Starts the worker threads; requires listen() first.
  void start();
  // Asks every worker to finish and closes all connections; safe from any thread (not from a
  // signal handler). wait() returns once they are gone.
  void stop();
  void wait();

 private:
  void worker_loop();

  HttpHandler handler_;
  int threads_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: readable once stop() was called
  std::vector<std::thread> workers_;
};

// Percent-decodes a URL component ("+" is a space). Invalid escapes are kept as written.
std::string url_decode(std::string_view s);

}  // namespace cascade::sim
