#include "lambda/runtime_api.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <stdexcept>

#include "core/json.h"
#include "core/value.h"

namespace cascade::lambda {

namespace {

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  auto* inv = static_cast<Invocation*>(user);
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name;
  for (char ch : line.substr(0, colon))
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  if (name == "lambda-runtime-aws-request-id") inv->request_id = value;
  if (name == "lambda-runtime-deadline-ms") inv->deadline_ms = value;
  if (name == "lambda-runtime-trace-id") inv->trace_id = value;
  return size * n;
}

// Called about once a second during a transfer: a set stop flag aborts it.
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* stop = static_cast<const std::atomic<bool>*>(user);
  return stop && stop->load() ? 1 : 0;
}

}  // namespace

RuntimeApi::RuntimeApi(std::string endpoint, const std::atomic<bool>* stop)
    : base_("http://" + std::move(endpoint) + "/2018-06-01/runtime"), stop_(stop) {
  curl_ = curl_easy_init();
  if (!curl_) throw std::runtime_error("cannot initialize libcurl");
}

RuntimeApi::~RuntimeApi() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::optional<Invocation> RuntimeApi::next() {
  CURL* c = static_cast<CURL*>(curl_);
  Invocation inv;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, (base_ + "/invocation/next").c_str());
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &inv.event);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &inv);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  // The long poll has no end of its own (Lambda freezes the process between events); the stop
  // flag is its way out.
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 0L);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(stop_));
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_ABORTED_BY_CALLBACK || (stop_ && stop_->load())) return std::nullopt;
  if (rc != CURLE_OK)
    throw std::runtime_error(
        fmt::format("Runtime API: next invocation: {}", curl_easy_strerror(rc)));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    throw std::runtime_error(fmt::format("Runtime API: next invocation answered {}", status));
  if (inv.request_id.empty())
    throw std::runtime_error("Runtime API: next invocation without Lambda-Runtime-Aws-Request-Id");
  return inv;
}

long RuntimeApi::post(const std::string& path, const std::string& body,
                      const std::string& error_type) {
  CURL* c = static_cast<CURL*>(curl_);
  std::string answer;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, (base_ + path).c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!error_type.empty())
    headers =
        curl_slist_append(headers, ("Lambda-Runtime-Function-Error-Type: " + error_type).c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK)
    throw std::runtime_error(fmt::format("Runtime API: POST {}: {}", path, curl_easy_strerror(rc)));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

void RuntimeApi::respond(const std::string& request_id, const std::string& json) {
  long status = post("/invocation/" + request_id + "/response", json, {});
  if (status != 202)
    throw std::runtime_error(fmt::format("Runtime API: response refused with {}", status));
}

static std::string error_body(const std::string& type, const std::string& message) {
  return to_json(Value(Object{{"errorMessage", Value(message)}, {"errorType", Value(type)}}));
}

void RuntimeApi::fail(const std::string& request_id, const std::string& type,
                      const std::string& message) {
  long status = post("/invocation/" + request_id + "/error", error_body(type, message), type);
  if (status != 202)
    throw std::runtime_error(fmt::format("Runtime API: error report refused with {}", status));
}

void RuntimeApi::init_error(const std::string& type, const std::string& message) {
  post("/init/error", error_body(type, message), type);
}

}  // namespace cascade::lambda
