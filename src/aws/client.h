// The AWS client of the aws part: configuration from the standard environment variables and
// shared files, and signed requests (SigV4, done by libcurl's CURLOPT_AWS_SIGV4) in the two
// protocols cascade needs: JSON 1.0 (SQS, DynamoDB, DynamoDB Streams) and REST (S3).
//
// Service names are the endpoint prefixes: "sqs", "dynamodb", "s3", and "streams.dynamodb" for
// DynamoDB Streams (it signs as "dynamodb"; with an endpoint URL set it goes to that URL, as moto
// serves every service on one port). The signing name of a service is the part after its last
// dot.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cascade::aws {

struct Credentials {
  std::string access_key_id, secret_access_key, session_token;
};

// Reads an environment variable: null when unset. The default is std::getenv.
using EnvLookup = std::function<const char*(const char*)>;

struct AwsConfig {
  std::string region;
  Credentials credentials;
  // Every service's endpoint when set (AWS_ENDPOINT_URL), e.g. "http://127.0.0.1:5000".
  std::string endpoint_url;
  // Per service, by service name ("sqs", "dynamodb", "streams.dynamodb", "s3"); wins over
  // endpoint_url.
  std::map<std::string, std::string> service_endpoints;
  int max_attempts = 8;  // tries per request, including the first (throttling, 5xx, transport)
  long connect_timeout_ms = 10'000;
  long request_timeout_ms = 60'000;  // per try; SQS long polls take up to 20 s

  // The standard sources, in the SDKs' order:
  // - credentials: a non-empty `profile` argument names the profile to use and wins over the
  //   variables. Else AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN). Else the
  //   profile AWS_PROFILE (or "default") from AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials),
  //   then from AWS_CONFIG_FILE (~/.aws/config, sections "[profile NAME]", "[default]").
  // - region: AWS_REGION, AWS_DEFAULT_REGION, else the profile's `region` in the config file.
  // - endpoints: AWS_ENDPOINT_URL (else the profile's `endpoint_url`), and
  //   AWS_ENDPOINT_URL_<SERVICE> (SQS, DYNAMODB, DYNAMODB_STREAMS, S3, LAMBDA, SNS, CLOUDWATCH,
  //   EVENTS, LOGS, STS).
  // - AWS_MAX_ATTEMPTS overrides max_attempts.
  // Throws std::runtime_error saying what is missing (credentials, region, a named profile that
  // no file holds, one half of a key pair) or where a file is malformed (FILE:LINE:COLUMN and
  // what was expected). Messages never include a secret or a line's content.
  static AwsConfig from_environment(std::string_view profile = {});
  static AwsConfig from_environment(std::string_view profile, const EnvLookup& env);

  // The URL requests to `service` go to (no trailing slash): its own endpoint, else endpoint_url,
  // else https://SERVICE.REGION.amazonaws.com (.com.cn in China regions).
  std::string endpoint_for(std::string_view service) const;
};

// A request that failed for good: the service's error code ("QueueDoesNotExist",
// "ConditionalCheckFailedException", "NoSuchKey", ...) and message, or for a transport failure
// code "Transport" (http_status 0), or "Stopped" when the stop flag ended it.
class AwsError : public std::runtime_error {
 public:
  AwsError(std::string code, const std::string& message, long http_status, bool retryable);
  std::string code;
  long http_status = 0;
  bool retryable = false;  // the kind of error that is retried (all tries were used up)
};

// One request of json_many: its response body, or its error.
struct Outcome {
  std::string body;
  std::optional<AwsError> error;
  bool ok() const { return !error; }
};

struct RestResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  const std::string* header(const std::string& lower_name) const;
};

// Not thread-safe: one Client per thread. It keeps its curl handles (and so its connections)
// alive between calls.
class Client {
 public:
  explicit Client(AwsConfig config);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const AwsConfig& config() const { return config_; }

  // While *stop is true, backoff waits and transfers end within a second, throwing AwsError
  // "Stopped" (json_many: the unfinished requests get that error). With `waits_only`, only the
  // backoff waits end: requests are still made and finish (bounded by request_timeout_ms), as a
  // storage's unit of work needs them to, to apply or return what a stopping run holds. Null: no
  // stop flag.
  void set_stop_flag(const std::atomic<bool>* stop, bool waits_only = false) {
    stop_ = stop;
    stop_transfers_ = waits_only ? nullptr : stop;
  }

  // One AWS JSON 1.0 call: POST / with X-Amz-Target: `target` (e.g. "AmazonSQS.SendMessageBatch",
  // "DynamoDB_20120810.PutItem"). Returns the response body. Throttling, HTTP 429/5xx and
  // transport errors are retried with jittered exponential backoff up to max_attempts; anything
  // else throws AwsError with the service's code and message.
  std::string json(std::string_view service, std::string_view target, std::string_view body);

  // The same call with many bodies, up to `parallel` at a time on one curl multi handle; the
  // outcomes are in the order of `bodies`. Retryable failures are retried per request; a failure
  // of one request never affects another. Throws only for a misuse (parallel 0).
  std::vector<Outcome> json_many(std::string_view service, std::string_view target,
                                 std::span<const std::string> bodies, size_t parallel = 16);

  // One REST call (S3): `method` ("GET", "PUT", "HEAD", "DELETE", "POST") on `path_and_query`
  // ("/bucket/key?x=y", path-style, already percent-encoded; query parameters are put in the
  // canonical order here), with extra headers and a body. x-amz-content-sha256 is sent
  // (UNSIGNED-PAYLOAD unless the caller gives one). A 2xx response is returned; others are
  // retried like json() and then thrown as AwsError with the code from the XML error body (or
  // "HTTP <status>" when there is none, e.g. a HEAD).
  RestResponse rest(std::string_view service, std::string_view method,
                    std::string_view path_and_query,
                    const std::vector<std::pair<std::string, std::string>>& headers = {},
                    std::string_view body = {});

 private:
  struct Handle;
  AwsConfig config_;
  const std::atomic<bool>* stop_ = nullptr;            // ends backoff waits
  const std::atomic<bool>* stop_transfers_ = nullptr;  // also refuses and aborts requests
  std::unique_ptr<Handle> single_;
  std::vector<std::unique_ptr<Handle>> pool_;
  void* multi_ = nullptr;  // CURLM*
};

// Helpers shared by the aws part's users and tests.
// Percent-encodes per SigV4 (unreserved characters kept; '/' kept when keep_slash).
std::string uri_encode(std::string_view s, bool keep_slash);
// The error code of a JSON-protocol error body and its x-amzn-ErrorType header (either may be
// empty): "com.amazonaws.sqs#QueueDoesNotExist" -> "QueueDoesNotExist".
std::string json_error_code(std::string_view body, std::string_view error_type_header);

}  // namespace cascade::aws
