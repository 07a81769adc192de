#include "support/sim.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/json.h"
#include "support/http.h"

namespace cascade::testing {

#ifndef CASCADE_SIM_BIN
#define CASCADE_SIM_BIN "cascade-sim"
#endif

namespace {
std::vector<std::string> sim_argv(std::vector<std::string> flags) {
  std::vector<std::string> argv = {CASCADE_SIM_BIN, "--port", "0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}
}  // namespace

SimServer::SimServer(std::vector<std::string> flags)
    : proc_(Subprocess::start(sim_argv(std::move(flags)))) {
  const std::string line = proc_.read_line(std::chrono::seconds(10));
  const std::string prefix = "listening on http://127.0.0.1:";
  if (line.rfind(prefix, 0) != 0)
    throw std::runtime_error("cascade-sim did not start (first line: '" + line + "')");
  port_ = std::stoi(line.substr(prefix.size()));
}

SimServer::~SimServer() {
  if (!proc_.running()) return;
  proc_.signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (proc_.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // ~Subprocess kills it if it is still running.
}

std::string SimServer::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

cascade::Value SimServer::truth() {
  long status = 0;
  const std::string body = http_get(url() + "/admin/truth", &status);
  if (status != 200) throw std::runtime_error("GET /admin/truth: HTTP " + std::to_string(status));
  return parse_json(body);
}

cascade::Value SimServer::advance(int ticks) {
  long status = 0;
  const std::string body =
      http_post(url() + "/admin/advance?ticks=" + std::to_string(ticks), "", &status);
  if (status != 200)
    throw std::runtime_error("POST /admin/advance: HTTP " + std::to_string(status) + " " + body);
  return parse_json(body);
}

cascade::Value SimServer::set_faults(const std::string& plan_json) {
  long status = 0;
  const std::string body = http_post(url() + "/admin/faults", plan_json, &status);
  if (status != 200)
    throw std::runtime_error("POST /admin/faults: HTTP " + std::to_string(status) + " " + body);
  return parse_json(body);
}

void SimServer::clear_faults() {
  // support/http.h has no DELETE; a bare easy handle is enough for one admin call.
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw std::runtime_error("curl_easy_init failed");
  const std::string target = url() + "/admin/faults";
  curl_easy_setopt(curl.get(), CURLOPT_URL, target.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, "DELETE");
  curl_easy_setopt(curl.get(), CURLOPT_NOBODY, 0L);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION,
      +[](char*, size_t size, size_t n, void*) { return size * n; });
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl.get());
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK || status != 200)
    throw std::runtime_error(
        std::string("DELETE /admin/faults failed: ") +
        (rc != CURLE_OK ? curl_easy_strerror(rc) : ("HTTP " + std::to_string(status)).c_str()));
}

namespace {
std::mutex g_dirs_mu;
std::vector<std::string>* g_dirs = nullptr;

void remove_dirs() {
  std::lock_guard lock(g_dirs_mu);
  if (!g_dirs) return;
  std::error_code ec;
  for (const auto& d : *g_dirs) std::filesystem::remove_all(d, ec);
}
}  // namespace

std::string temp_dir() {
  std::string tmpl = "/tmp/cascade-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  std::lock_guard lock(g_dirs_mu);
  if (!g_dirs) {
    g_dirs = new std::vector<std::string>();  // never freed: used by the atexit hook
    std::atexit(remove_dirs);
  }
  g_dirs->push_back(tmpl);
  return tmpl;
}

}  // namespace cascade::testing
