#include "observe/notify.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/duration.h"
#include "core/json.h"
#include "core/tls.h"
#include "core/value.h"

extern char** environ;

namespace cascade {

namespace {

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Slack's mrkdwn gives &, < and > meaning: https://api.slack.com/reference/surfaces/formatting
std::string slack_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out += c;
  }
  return out;
}

std::string describe(const AlarmChange& c) {
  return "alarm '" + c.alarm + "'" + (c.stage.empty() ? "" : " (stage " + c.stage + ")");
}

// RAII for a libcurl easy handle and its header list.
struct CurlEasy {
  CURL* h = curl_easy_init();
  curl_slist* headers = nullptr;
  ~CurlEasy() {
    curl_slist_free_all(headers);
    if (h) curl_easy_cleanup(h);
  }
};

struct Transfer {
  const std::atomic<bool>* aborting;
  std::optional<Duration> retry_after;
};

size_t discard_body(char*, size_t size, size_t n, void*) {
  return size * n;
}

size_t read_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == kName) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      int64_t secs = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
      if (ec == std::errc() && p != v.data() && secs >= 0)
        t->retry_after = std::chrono::seconds(std::min<int64_t>(secs, 3600));
    }
  }
  return size * n;
}

int progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->aborting->load() ? 1 : 0;
}

bool retryable(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return false;
    default:
      return true;
  }
}

// A pipe whose ends close on exec; the child gets its end through dup2 in the spawn actions.
struct Pipe {
  int r = -1, w = -1;
  bool open() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    r = fds[0];
    w = fds[1];
    return true;
  }
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ~Pipe() {
    close_fd(r);
    close_fd(w);
  }
};

// A write to a command that no longer reads raises SIGPIPE for this thread, where it is blocked:
// take it off the pending set so it is never delivered.
void consume_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  timespec zero{0, 0};
  while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
  }
}

}  // namespace

std::string redact_url(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return "(invalid URL)";
  std::string_view rest = url.substr(scheme_end + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  return std::string(url.substr(0, scheme_end)) + "://" + std::string(authority);
}

std::string webhook_payload(const AlarmChange& change, std::string_view pipeline) {
  const std::string from(alarm_state_name(change.from)), to(alarm_state_name(change.to));
  const std::string where = change.stage.empty() ? "the pipeline" : "stage " + change.stage;
  const std::string prefix = pipeline.empty() ? "" : "[" + std::string(pipeline) + "] ";
  std::string text = slack_escape(prefix + "Alarm " + change.alarm + " (" + where + "): " + from +
                                  " → " + to + ": " + change.reason);
  std::string md =
      "*" + slack_escape(prefix + "Alarm " + change.alarm) + "* on " +
      (change.stage.empty() ? "the pipeline" : "stage `" + slack_escape(change.stage) + "`") +
      "\n*" + from + "* → *" + to + "*\n" + slack_escape(change.reason) + "\n_" +
      slack_escape(change.condition) + "_\n" + format_time(change.time);
  Object section_text{{"type", "mrkdwn"}, {"text", md}};
  Object section{{"type", "section"}, {"text", Value(std::move(section_text))}};
  Object body;
  body.emplace_back("text", text);
  body.emplace_back("blocks", Array{Value(std::move(section))});
  body.emplace_back("alarm", parse_json(change.to_json()));
  return to_json(Value(std::move(body)));
}

Notifier::Notifier(std::vector<NotifySpec> sinks, NotifierOptions options)
    : sinks_([&] {
        std::vector<Sink> out;
        for (NotifySpec& s : sinks)
          if (!(s.type == "webhook" && s.url.empty())) out.push_back(Sink{std::move(s)});
        return out;
      }()),
      options_(std::move(options)) {
  init_curl_once();
  thread_ = std::thread([this] { run(); });
}

Notifier::~Notifier() {
  stop();
}

void Notifier::notify(const AlarmChange& change) {
  std::lock_guard lock(mu_);
  if (stopping_) {
    ++stats_.dropped;
    return;
  }
  if (queue_.size() >= std::max<size_t>(1, options_.queue_capacity)) {
    const AlarmChange& oldest = queue_.front();
    ++stats_.dropped;
    spdlog::warn(
        "notifier queue full ({} changes): dropped the oldest, {} {} -> {} at {} ({} "
        "dropped so far)",
        queue_.size(), describe(oldest), alarm_state_name(oldest.from), alarm_state_name(oldest.to),
        format_time(oldest.time), stats_.dropped);
    queue_.pop_front();
  }
  queue_.push_back(change);
  ++stats_.queued;
  cv_.notify_all();
}

void Notifier::stop() {
  std::call_once(stop_once_, [this] {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, options_.stop_grace, [this] { return queue_.empty() && !busy_; });
    if (!queue_.empty()) {
      spdlog::warn("notifier stopping: {} alarm changes not delivered", queue_.size());
      stats_.dropped += queue_.size();
      queue_.clear();
    }
    aborting_ = true;
    cv_.notify_all();
    lock.unlock();
    thread_.join();
  });
}

bool Notifier::wait_idle(Duration timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return queue_.empty() && !busy_; });
}

NotifierStats Notifier::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool Notifier::pause(Duration d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return aborting_.load(); });
}

void Notifier::run() {
  // Writes to a command that exits without reading must fail with EPIPE, not kill the process.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  for (;;) {
    AlarmChange change;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty() || stopping_ || aborting_; });
      if (aborting_ || queue_.empty()) return;
      change = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    bool aborted = false;
    for (const Sink& sink : sinks_) {
      Outcome o = aborting_ ? Outcome::Aborted : deliver(sink, change);
      std::lock_guard lock(mu_);
      if (o == Outcome::Delivered) ++stats_.delivered;
      if (o == Outcome::Failed) ++stats_.failed;
      aborted = aborted || o == Outcome::Aborted;
    }
    std::lock_guard lock(mu_);
    if (aborted) ++stats_.dropped;
    busy_ = false;
    cv_.notify_all();
  }
}

Notifier::Outcome Notifier::deliver(const Sink& sink, const AlarmChange& change) {
  if (sink.spec.type == "webhook") return deliver_webhook(sink, change);
  if (sink.spec.type == "command") return deliver_command(sink, change);
  std::string line = "alarm " + change.to_json();
  if (change.to == AlarmState::Alarm)
    spdlog::warn("{}", line);
  else
    spdlog::info("{}", line);
  return Outcome::Delivered;
}

Notifier::Outcome Notifier::deliver_webhook(const Sink& sink, const AlarmChange& change) {
  const std::string where = "webhook " + redact_url(sink.spec.url);
  const std::string body = webhook_payload(change, options_.pipeline);
  const int attempts = std::max(1, options_.webhook_attempts);
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (aborting_) return Outcome::Aborted;
    CurlEasy easy;
    if (!easy.h) {
      spdlog::error("{}: cannot create a transfer for {}", where, describe(change));
      return Outcome::Failed;
    }
    Transfer t{&aborting_, std::nullopt};
    easy.headers = curl_slist_append(easy.headers, "Content-Type: application/json");
    curl_easy_setopt(easy.h, CURLOPT_URL, sink.spec.url.c_str());
    if (const char* ca = ca_bundle_override()) curl_easy_setopt(easy.h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(easy.h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy.h, CURLOPT_HTTPHEADER, easy.headers);
    curl_easy_setopt(easy.h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(easy.h, CURLOPT_USERAGENT, "cascade");
    curl_easy_setopt(easy.h, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(options_.webhook_timeout.count()));
    curl_easy_setopt(easy.h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.webhook_timeout.count()));
    curl_easy_setopt(easy.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy.h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(easy.h, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(easy.h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(easy.h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy.h, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(easy.h, CURLOPT_XFERINFODATA, &t);
    CURLcode rc = curl_easy_perform(easy.h);
    long status = 0;
    curl_easy_getinfo(easy.h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_ABORTED_BY_CALLBACK || aborting_) return Outcome::Aborted;
    if (rc == CURLE_OK && status >= 200 && status < 300) return Outcome::Delivered;
    // curl_easy_strerror names the failure without the URL, which the error buffer may hold.
    const std::string what =
        rc != CURLE_OK ? std::string(curl_easy_strerror(rc)) : "HTTP " + std::to_string(status);
    const bool again = rc != CURLE_OK ? retryable(rc) : (status >= 500 || status == 429);
    if (!again || attempt == attempts) {
      spdlog::error("{}: {} not delivered: {}{}", where, describe(change), what,
                    again ? " (after " + std::to_string(attempts) + " attempts)" : "");
      return Outcome::Failed;
    }
    Duration wait = std::min(options_.backoff_max,
                             options_.backoff_initial * (int64_t{1} << std::min(attempt - 1, 20)));
    if (t.retry_after) wait = std::max(wait, std::min(options_.backoff_max, *t.retry_after));
    spdlog::warn("{}: attempt {}/{} for {} failed: {}; retrying in {}", where, attempt, attempts,
                 describe(change), what, format_duration(wait));
    if (!pause(wait)) return Outcome::Aborted;
  }
  return Outcome::Failed;
}

Notifier::Outcome Notifier::deliver_command(const Sink& sink, const AlarmChange& change) {
  const std::string input = change.to_json() + "\n";
  Pipe in, out;
  if (!in.open() || !out.open()) {
    spdlog::error("notify command: cannot create pipes: {}", std::strerror(errno));
    return Outcome::Failed;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.r, 0);
  posix_spawn_file_actions_adddup2(&actions, out.w, 1);
  posix_spawn_file_actions_adddup2(&actions, out.w, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a timeout kills what the shell started too; default signals,
  // since this thread blocks SIGPIPE and a child would inherit that.
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe_only);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = sink.spec.command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = -1;
  int err = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    spdlog::error("notify command: cannot start /bin/sh: {}", std::strerror(err));
    return Outcome::Failed;
  }
  Pipe::close_fd(in.r);
  Pipe::close_fd(out.w);
  fcntl(in.w, F_SETFL, O_NONBLOCK);
  fcntl(out.r, F_SETFL, O_NONBLOCK);

  const auto deadline = std::chrono::steady_clock::now() + options_.command_timeout;
  size_t written = 0;
  std::string output;  // the first bytes, for the log when it fails
  int status = 0;
  bool exited = false, aborted = false, timed_out = false;
  while (!exited) {
    if (aborting_) {
      aborted = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    pollfd fds[2];
    nfds_t nfds = 0;
    if (out.r >= 0) fds[nfds++] = pollfd{out.r, POLLIN, 0};
    if (in.w >= 0) fds[nfds++] = pollfd{in.w, POLLOUT, 0};
    // Short waits: the exit of the shell is seen by waitpid, not by poll.
    poll(fds, nfds, 20);
    if (in.w >= 0) {
      ssize_t n = ::write(in.w, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno == EPIPE) consume_sigpipe();
      if (written == input.size() || (n < 0 && errno != EAGAIN && errno != EINTR))
        Pipe::close_fd(in.w);
    }
    if (out.r >= 0) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(out.r, buf, sizeof buf)) > 0)
        if (output.size() < 1000)
          output.append(buf, static_cast<size_t>(std::min<ssize_t>(n, 1000)));
      if (n == 0) Pipe::close_fd(out.r);
    }
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) exited = true;
  }
  if (!exited) {
    // The group id is safe to signal until the shell is reaped: its zombie holds the number.
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  if (aborted) return Outcome::Aborted;
  output.resize(std::min<size_t>(output.size(), 1000));
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  if (timed_out) {
    spdlog::error("notify command for {}: killed after {}{}{}", describe(change),
                  format_duration(options_.command_timeout),
                  output.empty() ? "" : "; output: ", output);
    return Outcome::Failed;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Outcome::Delivered;
  spdlog::error("notify command for {}: {}{}{}", describe(change),
                WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                  : "killed by signal " + std::to_string(WTERMSIG(status)),
                output.empty() ? "" : "; output: ", output);
  return Outcome::Failed;
}

}  // namespace cascade
