// Auth: how requests to the source prove who sends them (`source.auth` in the pipeline file).
// AuthSpec is plain data; the functions here are pure and thread-safe. HttpClient applies the
// credential to every try (so retries and redirects carry a fresh one) and owns the OAuth2 token
// cache; see HttpClientOptions::auth.
//
// Every value in an AuthSpec except `name`, `location`, the URLs, scopes and audience is a secret:
// it must never be written to a log, an error, a dead letter, a metric or a database.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace cascade {

struct AuthSpec {
  enum class Kind { None, Bearer, HttpBasic, ApiKey, OAuth2ClientCredentials };
  Kind kind = Kind::None;

  std::string token;  // bearer: sent as `Authorization: Bearer TOKEN`

  std::string username, password;  // http_basic: `Authorization: Basic base64(user:pass)`

  // api_key: a header `name: api_key`, or a query parameter `name=api_key` on every request.
  std::string name = "Authorization";
  bool in_query = false;
  std::string api_key;

  // oauth2_client_credentials (RFC 6749 section 4.4): a form POST to access_token_url with
  // grant_type=client_credentials gives an access token, sent as a bearer token until shortly
  // before its expires_in ends (default_token_expiration when the answer has none).
  std::string access_token_url;
  std::string client_id, client_secret;
  // How the client credentials reach the token endpoint: HTTP Basic (client_secret_basic, what
  // RFC 6749 requires servers to take, and dlt's way) or form fields (client_secret_post).
  bool client_auth_in_body = false;
  std::string scope;     // space-separated scopes; sent as `scope` when not empty
  std::string audience;  // sent as `audience` when not empty (Auth0, Okta and friends)
  // Further form fields of the token request (dlt's access_token_request_data); may be secret.
  std::vector<std::pair<std::string, std::string>> token_request_data;
  Duration default_token_expiration = std::chrono::hours(1);

  // The values that must never be shown (empty strings and the ones shorter than 4 bytes are
  // left out: masking them would garble unrelated text).
  std::vector<std::string> secrets() const;
  // "bearer", "http_basic", "api_key", "oauth2_client_credentials", or "none".
  const char* kind_name() const;
};

// The name of the header an AuthSpec sets on each request, or empty if it sets none (none, or
// an api_key in the query). OAuth2 and bearer set Authorization.
std::string auth_header_name(const AuthSpec& auth);

// The value of that header. `oauth_token` is the current access token for OAuth2 (ignored by
// the other kinds).
std::string auth_header_value(const AuthSpec& auth, std::string_view oauth_token = {});

// `url` with `name=value` added to its query (both percent-encoded), before any fragment.
std::string add_query_param(std::string_view url, std::string_view name, std::string_view value);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

// application/x-www-form-urlencoded body of the OAuth2 token request.
std::string token_request_body(const AuthSpec& auth);

// The headers of the OAuth2 token request (content type, and Basic client credentials unless
// they go in the body).
std::vector<std::pair<std::string, std::string>> token_request_headers(const AuthSpec& auth);

struct OAuthToken {
  std::string access_token;
  std::optional<Duration> expires_in;  // as the server said; nullopt if it did not
};

// Reads a token endpoint's JSON answer. Throws std::runtime_error with a reason that quotes no
// value of the answer (it holds the token) when access_token is missing or not a string, or
// expires_in is present and not a non-negative number.
OAuthToken parse_token_response(std::string_view body);

// When to fetch the next token, counted from the moment the token arrived: a tenth of its
// lifetime early (at most 30 s early), so no request leaves with a token about to lapse.
Duration token_refresh_after(Duration lifetime);

// `text` with every occurrence of each secret replaced by "***".
std::string mask_secrets(std::string text, const std::vector<std::string>& secrets);

}  // namespace cascade
