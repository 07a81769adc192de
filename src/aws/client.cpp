#include "aws/client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "core/json.h"
#include "core/tls.h"

namespace cascade::aws {

AwsError::AwsError(std::string c, const std::string& message, long status, bool retry)
    : std::runtime_error(message), code(std::move(c)), http_status(status), retryable(retry) {}

const std::string* RestResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// One section of an INI-style AWS file: key -> value (keys lower-case).
using Section = std::map<std::string, std::string>;

struct ProfileFile {
  std::string path;
  bool found = false;
  std::map<std::string, Section> sections;  // by the name in brackets, trimmed
};

// The AWS shared-file format: "[name]" sections, "key = value" lines, '#' and ';' comments,
// indented lines continuing a key with an empty value (nested settings such as "s3 =", which
// cascade does not use and skips). A line that is none of these is an error naming its place,
// never its content (it may hold a secret).
ProfileFile read_profile_file(const std::string& path) {
  ProfileFile file;
  file.path = path;
  std::ifstream in(path);
  if (!in) return file;
  file.found = true;
  std::string line;
  int lineno = 0;
  Section* current = nullptr;
  bool nested = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    bool indented = std::isspace(static_cast<unsigned char>(line.front()));
    if (indented && nested) continue;
    if (t.front() == '[') {
      size_t close = t.find(']');
      if (close == std::string_view::npos) {
        throw std::runtime_error(path + ":" + std::to_string(lineno) + ":" +
                                 std::to_string(line.find('[') + 1) +
                                 ": expected a section name closed by ']'");
      }
      current = &file.sections[std::string(trim(t.substr(1, close - 1)))];
      nested = false;
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string_view::npos || trim(t.substr(0, eq)).empty()) {
      size_t col =
          line.size() - std::string_view(line).substr(line.find_first_not_of(" \t")).size();
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ":" + std::to_string(col + 1) +
                               ": expected `[section]` or `key = value`");
    }
    if (!current) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) +
                               ":1: expected a `[section]` before the first `key = value`");
    }
    std::string value(trim(t.substr(eq + 1)));
    nested = value.empty();
    (*current)[lower(trim(t.substr(0, eq)))] = std::move(value);
  }
  return file;
}

const Section* find_section(const ProfileFile& f, const std::string& name) {
  auto it = f.sections.find(name);
  return it == f.sections.end() ? nullptr : &it->second;
}

// In the config file a profile is "[profile NAME]"; "default" may be "[default]" or
// "[profile default]".
const Section* find_config_profile(const ProfileFile& f, const std::string& name) {
  for (const auto& [section, values] : f.sections) {
    std::string_view s = section;
    if (s.starts_with("profile ") || s.starts_with("profile\t")) {
      if (trim(s.substr(8)) == name) return &values;
    }
  }
  if (name == "default") return find_section(f, "default");
  return nullptr;
}

std::string get(const Section* s, const char* key) {
  if (!s) return "";
  auto it = s->find(key);
  return it == s->end() ? "" : it->second;
}

std::string env_str(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  return v ? std::string(trim(v)) : std::string();
}

std::string home_file(const EnvLookup& env, const char* var, const char* rel) {
  std::string v = env_str(env, var);
  if (!v.empty()) {
    if (v.starts_with("~/")) v = env_str(env, "HOME") + v.substr(1);
    return v;
  }
  return env_str(env, "HOME") + "/" + rel;
}

bool retryable_code(std::string_view code) {
  static constexpr std::string_view kCodes[] = {"ThrottlingException",
                                                "ProvisionedThroughputExceededException",
                                                "RequestLimitExceeded",
                                                "RequestThrottled",
                                                "TooManyRequestsException",
                                                "RequestThrottledException",
                                                "ThrottledException",
                                                "SlowDown",
                                                "Throttling",
                                                "ServiceUnavailable",
                                                "InternalError",
                                                "InternalFailure",
                                                "InternalServerError",
                                                "TransactionInProgressException",
                                                "RequestTimeout",
                                                "RequestTimeoutException",
                                                "PriorRequestNotComplete",
                                                "EC2ThrottledException",
                                                "LimitExceededException"};
  return std::find(std::begin(kCodes), std::end(kCodes), code) != std::end(kCodes);
}

bool retryable_status(long status) {
  return status == 429 || status >= 500;
}

// Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)].
std::chrono::milliseconds backoff(int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  long cap = std::min<long>(20'000, 100L << std::min(attempt, 10));
  return std::chrono::milliseconds(std::uniform_int_distribution<long>(cap / 4, cap)(rng));
}

bool stopped(const std::atomic<bool>* stop) {
  return stop && stop->load(std::memory_order_relaxed);
}

AwsError stopped_error() {
  return AwsError("Stopped", "AWS request stopped", 0, false);
}

// Sleeps `d` in slices, ending early when the stop flag is raised; false when stopped.
bool sleep_unless_stopped(std::chrono::milliseconds d, const std::atomic<bool>* stop) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (stopped(stop)) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(100)));
  }
  return !stopped(stop);
}

// The text between <Tag> and </Tag> in an XML error body.
std::string xml_text(std::string_view xml, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t a = xml.find(open);
  if (a == std::string_view::npos) return "";
  a += open.size();
  size_t b = xml.find(close, a);
  if (b == std::string_view::npos) return "";
  return std::string(xml.substr(a, b - a));
}

std::string clip(std::string s) {
  if (s.size() > 500) {
    s.resize(500);
    s += "...";
  }
  return s;
}

std::string signing_name(std::string_view service) {
  size_t dot = service.rfind('.');
  return std::string(dot == std::string_view::npos ? service : service.substr(dot + 1));
}

// Query parameters in SigV4's canonical order (by name, then value): libcurl 7.88 signs the
// query as given, so requests must carry it already sorted.
std::string canonical_path_and_query(std::string_view pq) {
  size_t q = pq.find('?');
  if (q == std::string_view::npos) return std::string(pq);
  std::vector<std::string> params;
  std::string_view query = pq.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string p(query.substr(0, amp));
    if (!p.empty()) {
      if (p.find('=') == std::string::npos) p += '=';
      params.push_back(std::move(p));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  std::sort(params.begin(), params.end());
  std::string out(pq.substr(0, q));
  for (size_t i = 0; i < params.size(); ++i) out += (i ? "&" : "?") + params[i];
  return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string json_error_code(std::string_view body, std::string_view error_type_header) {
  std::string code;
  if (!body.empty()) {
    try {
      Value v = parse_json(body);
      for (const char* key : {"__type", "code", "Code"}) {
        if (const Value* t = v.find(key); t && t->is_string() && !t->as_string().empty()) {
          code = t->as_string();
          break;
        }
      }
    } catch (const std::exception&) {
      // Not JSON (a proxy's page): the header, or the caller's "HTTP <status>".
    }
  }
  if (code.empty()) code = std::string(error_type_header);
  if (size_t hash = code.rfind('#'); hash != std::string::npos) code = code.substr(hash + 1);
  if (size_t colon = code.find(':'); colon != std::string::npos) code = code.substr(0, colon);
  return std::string(trim(code));
}

AwsConfig AwsConfig::from_environment(std::string_view profile) {
  return from_environment(profile, [](const char* name) { return std::getenv(name); });
}

AwsConfig AwsConfig::from_environment(std::string_view profile_arg, const EnvLookup& env) {
  AwsConfig cfg;
  std::string cred_path = home_file(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  std::string conf_path = home_file(env, "AWS_CONFIG_FILE", ".aws/config");
  std::string env_profile = env_str(env, "AWS_PROFILE");
  bool named = !profile_arg.empty() || !env_profile.empty();
  std::string profile = !profile_arg.empty()   ? std::string(profile_arg)
                        : !env_profile.empty() ? env_profile
                                               : std::string("default");
  // Read lazily: a machine with the variables set needs no files, and a broken file it does not
  // use must not stop it.
  std::optional<ProfileFile> cred_file, conf_file;
  auto creds_section = [&]() -> const Section* {
    if (!cred_file) cred_file = read_profile_file(cred_path);
    return find_section(*cred_file, profile);
  };
  auto conf_section = [&]() -> const Section* {
    if (!conf_file) conf_file = read_profile_file(conf_path);
    return find_config_profile(*conf_file, profile);
  };
  auto require_profile = [&]() {
    if (named && !creds_section() && !conf_section()) {
      throw std::runtime_error("AWS profile '" + profile + "' not found in " + cred_path + " or " +
                               conf_path);
    }
  };

  std::string env_key = env_str(env, "AWS_ACCESS_KEY_ID");
  std::string env_secret = env_str(env, "AWS_SECRET_ACCESS_KEY");
  if (profile_arg.empty() && (!env_key.empty() || !env_secret.empty())) {
    if (env_key.empty())
      throw std::runtime_error("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    if (env_secret.empty())
      throw std::runtime_error("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    cfg.credentials = {env_key, env_secret, env_str(env, "AWS_SESSION_TOKEN")};
  } else {
    require_profile();
    for (const Section* s : {creds_section(), conf_section()}) {
      std::string key = get(s, "aws_access_key_id");
      std::string secret = get(s, "aws_secret_access_key");
      if (key.empty() && secret.empty()) continue;
      std::string where = s == creds_section() ? cred_path : conf_path;
      if (key.empty() || secret.empty()) {
        throw std::runtime_error("AWS profile '" + profile + "' in " + where + " has " +
                                 (key.empty() ? "aws_secret_access_key but no aws_access_key_id"
                                              : "aws_access_key_id but no aws_secret_access_key"));
      }
      cfg.credentials = {key, secret, get(s, "aws_session_token")};
      break;
    }
    if (cfg.credentials.access_key_id.empty()) {
      throw std::runtime_error(
          "AWS credentials not found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a "
          "profile (AWS_PROFILE, now '" +
          profile + "') with aws_access_key_id and aws_secret_access_key in " + cred_path + " or " +
          conf_path);
    }
  }

  cfg.region = env_str(env, "AWS_REGION");
  if (cfg.region.empty()) cfg.region = env_str(env, "AWS_DEFAULT_REGION");
  if (cfg.region.empty()) {
    cfg.region = get(conf_section(), "region");
    if (cfg.region.empty()) cfg.region = get(creds_section(), "region");
  }
  if (cfg.region.empty()) {
    throw std::runtime_error(
        "AWS region not set: set AWS_REGION (or AWS_DEFAULT_REGION), or "
        "`region` in profile '" +
        profile + "' of " + conf_path);
  }

  cfg.endpoint_url = env_str(env, "AWS_ENDPOINT_URL");
  if (cfg.endpoint_url.empty()) cfg.endpoint_url = get(conf_section(), "endpoint_url");
  static const std::pair<const char*, const char*> kServices[] = {
      {"AWS_ENDPOINT_URL_SQS", "sqs"},
      {"AWS_ENDPOINT_URL_DYNAMODB", "dynamodb"},
      {"AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "streams.dynamodb"},
      {"AWS_ENDPOINT_URL_S3", "s3"},
      {"AWS_ENDPOINT_URL_LAMBDA", "lambda"},
      {"AWS_ENDPOINT_URL_SNS", "sns"},
      {"AWS_ENDPOINT_URL_CLOUDWATCH", "monitoring"},
      {"AWS_ENDPOINT_URL_EVENTS", "events"},
      {"AWS_ENDPOINT_URL_LOGS", "logs"},
      {"AWS_ENDPOINT_URL_STS", "sts"}};
  for (const auto& [var, service] : kServices) {
    std::string url = env_str(env, var);
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (!url.empty()) cfg.service_endpoints[service] = url;
  }
  while (!cfg.endpoint_url.empty() && cfg.endpoint_url.back() == '/') cfg.endpoint_url.pop_back();

  if (std::string attempts = env_str(env, "AWS_MAX_ATTEMPTS"); !attempts.empty()) {
    char* end = nullptr;
    long n = std::strtol(attempts.c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 100) {
      throw std::runtime_error("AWS_MAX_ATTEMPTS: expected a whole number from 1 to 100");
    }
    cfg.max_attempts = static_cast<int>(n);
  }
  return cfg;
}

std::string AwsConfig::endpoint_for(std::string_view service) const {
  if (auto it = service_endpoints.find(std::string(service)); it != service_endpoints.end())
    return it->second;
  if (!endpoint_url.empty()) return endpoint_url;
  std::string suffix = region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  return "https://" + std::string(service) + "." + region + suffix;
}

// One curl easy handle with the buffers of its current request.
struct Client::Handle {
  CURL* curl = nullptr;
  curl_slist* headers = nullptr;
  std::string response;
  std::map<std::string, std::string> response_headers;
  char error[CURL_ERROR_SIZE] = {0};
  const std::atomic<bool>* stop = nullptr;
  // json_many's bookkeeping.
  size_t index = 0;

  Handle() {
    curl = curl_easy_init();
    if (!curl) throw std::runtime_error("curl_easy_init failed");
  }
  ~Handle() {
    if (headers) curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
  }

  static size_t on_body(char* p, size_t size, size_t n, void* self) {
    static_cast<Handle*>(self)->response.append(p, size * n);
    return size * n;
  }
  static size_t on_header(char* p, size_t size, size_t n, void* self) {
    std::string_view line(p, size * n);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      static_cast<Handle*>(self)->response_headers[lower(trim(line.substr(0, colon)))] =
          std::string(trim(line.substr(colon + 1)));
    }
    return size * n;
  }
  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return stopped(static_cast<Handle*>(self)->stop) ? 1 : 0;
  }

  // Sets up one request; `body` must outlive the transfer.
  void prepare(const AwsConfig& cfg, std::string_view service, std::string_view method,
               const std::string& url, const std::vector<std::string>& extra_headers,
               std::string_view body, bool json_protocol) {
    curl_easy_reset(curl);
    if (const char* ca = ca_bundle_override()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
    if (headers) curl_slist_free_all(headers);
    headers = nullptr;
    response.clear();
    response_headers.clear();
    error[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Handle::on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Handle::on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &Handle::on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, cfg.connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cfg.request_timeout_ms);
    if (json_protocol) {
      curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    } else {
      // S3 objects come back as stored (a .json.gz stays gzip), whatever Content-Encoding says.
      curl_easy_setopt(curl, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    }
    std::string sigv4 = "aws:amz:" + cfg.region + ":" + signing_name(service);
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, cfg.credentials.access_key_id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, cfg.credentials.secret_access_key.c_str());
    for (const auto& h : extra_headers) headers = curl_slist_append(headers, h.c_str());
    if (!cfg.credentials.session_token.empty()) {
      headers = curl_slist_append(
          headers, ("X-Amz-Security-Token: " + cfg.credentials.session_token).c_str());
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (method == "GET") {
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      // A null POSTFIELDS would make libcurl read the body from a callback.
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      if (method != "POST") {
        std::string m(method);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, m.c_str());
      }
    }
  }

  long status() const {
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
};

namespace {

// The error of a finished transfer, or nullopt when it succeeded (2xx). `xml`: S3's error body.
std::optional<AwsError> classify(CURLcode rc, const char* curl_error, long status,
                                 const std::string& body,
                                 const std::map<std::string, std::string>& headers, bool xml,
                                 std::string_view what, const std::atomic<bool>* stop) {
  if (rc == CURLE_ABORTED_BY_CALLBACK && stopped(stop)) return stopped_error();
  if (rc != CURLE_OK) {
    std::string detail = curl_error && *curl_error ? curl_error : curl_easy_strerror(rc);
    return AwsError("Transport", std::string(what) + ": " + detail, 0, true);
  }
  if (status >= 200 && status < 300) return std::nullopt;
  std::string code, message;
  if (xml) {
    code = xml_text(body, "Code");
    message = xml_text(body, "Message");
  } else {
    auto it = headers.find("x-amzn-errortype");
    code = json_error_code(body, it == headers.end() ? "" : it->second);
    try {
      Value v = parse_json(body);
      for (const char* key : {"message", "Message"}) {
        if (const Value* m = v.find(key); m && m->is_string()) {
          message = m->as_string();
          break;
        }
      }
    } catch (const std::exception&) {
    }
  }
  if (code.empty()) code = "HTTP " + std::to_string(status);
  bool retry = retryable_code(code) || retryable_status(status);
  std::string text = std::string(what) + ": " + code + " (HTTP " + std::to_string(status) + ")";
  if (!message.empty()) text += ": " + clip(message);
  return AwsError(code, text, status, retry);
}

}  // namespace

Client::Client(AwsConfig config) : config_(std::move(config)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  single_ = std::make_unique<Handle>();
}

Client::~Client() {
  pool_.clear();
  if (multi_) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

std::string Client::json(std::string_view service, std::string_view target, std::string_view body) {
  std::string url = config_.endpoint_for(service) + "/";
  std::vector<std::string> headers = {"Content-Type: application/x-amz-json-1.0",
                                      "X-Amz-Target: " + std::string(target)};
  std::string what = std::string(target);
  for (int attempt = 0;; ++attempt) {
    if (stopped(stop_transfers_)) throw stopped_error();
    single_->stop = stop_transfers_;
    single_->prepare(config_, service, "POST", url, headers, body, true);
    CURLcode rc = curl_easy_perform(single_->curl);
    auto err = classify(rc, single_->error, single_->status(), single_->response,
                        single_->response_headers, false, what, stop_transfers_);
    if (!err) return std::move(single_->response);
    if (!err->retryable || attempt + 1 >= config_.max_attempts) throw *err;
    spdlog::debug("{} retried after: {}", what, err->what());
    if (!sleep_unless_stopped(backoff(attempt), stop_)) throw stopped_error();
  }
}

std::vector<Outcome> Client::json_many(std::string_view service, std::string_view target,
                                       std::span<const std::string> bodies, size_t parallel) {
  if (parallel == 0) throw std::invalid_argument("json_many: parallel must be at least 1");
  std::vector<Outcome> out(bodies.size());
  if (bodies.empty()) return out;
  if (!multi_) multi_ = curl_multi_init();
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
  CURLM* multi = static_cast<CURLM*>(multi_);
  while (pool_.size() < std::min(parallel, bodies.size()))
    pool_.push_back(std::make_unique<Handle>());

  std::string url = config_.endpoint_for(service) + "/";
  std::vector<std::string> headers = {"Content-Type: application/x-amz-json-1.0",
                                      "X-Amz-Target: " + std::string(target)};
  std::string what(target);
  using Clock = std::chrono::steady_clock;
  struct Pending {
    size_t index;
    int attempt;
    Clock::time_point not_before;
  };
  std::deque<Pending> waiting;
  for (size_t i = 0; i < bodies.size(); ++i) waiting.push_back({i, 0, Clock::now()});
  std::vector<Handle*> idle;
  for (size_t i = 0; i < std::min(parallel, bodies.size()); ++i) idle.push_back(pool_[i].get());
  std::map<Handle*, Pending> running;

  while (!waiting.empty() || !running.empty()) {
    if (stopped(stop_transfers_)) break;
    // Under a stop that ends waits only: what is left is retries waiting out their backoff.
    if (stopped(stop_) && running.empty() &&
        std::all_of(waiting.begin(), waiting.end(), [](const Pending& p) { return p.attempt > 0; }))
      break;
    // Start what is due, up to `parallel` at a time.
    auto now = Clock::now();
    for (auto it = waiting.begin(); it != waiting.end() && !idle.empty();) {
      if (it->not_before > now) {
        ++it;
        continue;
      }
      Handle* h = idle.back();
      idle.pop_back();
      h->stop = stop_transfers_;
      h->prepare(config_, service, "POST", url, headers, bodies[it->index], true);
      curl_multi_add_handle(multi, h->curl);
      running.emplace(h, *it);
      it = waiting.erase(it);
    }
    int still = 0;
    curl_multi_perform(multi, &still);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Handle* h = nullptr;
      for (auto& [handle, p] : running) {
        if (handle->curl == msg->easy_handle) h = handle;
      }
      CURLcode rc = msg->data.result;
      curl_multi_remove_handle(multi, msg->easy_handle);
      if (!h) continue;
      Pending p = running[h];
      running.erase(h);
      idle.push_back(h);
      auto err = classify(rc, h->error, h->status(), h->response, h->response_headers, false, what,
                          stop_transfers_);
      if (!err) {
        out[p.index].body = std::move(h->response);
      } else if (err->retryable && p.attempt + 1 < config_.max_attempts && err->code != "Stopped") {
        waiting.push_back({p.index, p.attempt + 1, Clock::now() + backoff(p.attempt)});
      } else {
        out[p.index].error = std::move(*err);
      }
    }
    if (waiting.empty() && running.empty()) break;
    // Wait for traffic, or until the next retry is due, in slices short enough for the stop flag.
    int wait_ms = 100;
    if (running.empty() && !waiting.empty()) {
      auto next = std::min_element(waiting.begin(), waiting.end(), [](auto& a, auto& b) {
                    return a.not_before < b.not_before;
                  })->not_before;
      auto d = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<long>(d, 0, 100));
    }
    curl_multi_poll(multi, nullptr, 0, wait_ms, nullptr);
  }
  // Stopped: whatever did not finish says so.
  for (auto& [h, p] : running) {
    curl_multi_remove_handle(multi, h->curl);
    out[p.index].error = stopped_error();
  }
  for (auto& p : waiting) out[p.index].error = stopped_error();
  return out;
}

RestResponse Client::rest(std::string_view service, std::string_view method,
                          std::string_view path_and_query,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body) {
  std::string pq = canonical_path_and_query(path_and_query);
  if (pq.empty() || pq.front() != '/') pq.insert(pq.begin(), '/');
  std::string url = config_.endpoint_for(service) + pq;
  std::vector<std::string> lines;
  bool has_sha = false, has_type = false;
  for (const auto& [name, value] : headers) {
    std::string n = lower(name);
    has_sha |= n == "x-amz-content-sha256";
    has_type |= n == "content-type";
    lines.push_back(name + ": " + value);
  }
  if (!has_sha) lines.push_back("x-amz-content-sha256: UNSIGNED-PAYLOAD");
  // libcurl would send form encoding for a body without a type.
  if (!has_type && !body.empty()) lines.push_back("Content-Type: application/octet-stream");
  std::string what = std::string(method) + " " + std::string(service) + " " +
                     std::string(path_and_query.substr(0, path_and_query.find('?')));
  for (int attempt = 0;; ++attempt) {
    if (stopped(stop_transfers_)) throw stopped_error();
    single_->stop = stop_transfers_;
    single_->prepare(config_, service, method, url, lines, body, false);
    CURLcode rc = curl_easy_perform(single_->curl);
    long status = single_->status();
    auto err = classify(rc, single_->error, status, single_->response, single_->response_headers,
                        true, what, stop_transfers_);
    if (!err) {
      RestResponse r;
      r.status = status;
      r.headers = std::move(single_->response_headers);
      r.body = std::move(single_->response);
      return r;
    }
    if (!err->retryable || attempt + 1 >= config_.max_attempts) throw *err;
    spdlog::debug("{} retried after: {}", what, err->what());
    if (!sleep_unless_stopped(backoff(attempt), stop_)) throw stopped_error();
  }
}

}  // namespace cascade::aws
