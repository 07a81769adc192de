#include "source/auth.h"

#include <algorithm>
#include <stdexcept>

#include "core/json.h"
#include "core/template.h"

namespace cascade {

std::vector<std::string> AuthSpec::secrets() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& s) {
    if (s.size() >= 4) out.push_back(s);
  };
  switch (kind) {
    case Kind::None:
      break;
    case Kind::Bearer:
      add(token);
      break;
    case Kind::HttpBasic:
      add(password);
      if (!username.empty() || !password.empty()) add(base64_encode(username + ":" + password));
      break;
    case Kind::ApiKey:
      add(api_key);
      break;
    case Kind::OAuth2ClientCredentials:
      add(client_secret);
      add(base64_encode(client_id + ":" + client_secret));
      for (const auto& [k, v] : token_request_data) add(v);
      break;
  }
  return out;
}

const char* AuthSpec::kind_name() const {
  switch (kind) {
    case Kind::Bearer:
      return "bearer";
    case Kind::HttpBasic:
      return "http_basic";
    case Kind::ApiKey:
      return "api_key";
    case Kind::OAuth2ClientCredentials:
      return "oauth2_client_credentials";
    case Kind::None:
      break;
  }
  return "none";
}

std::string auth_header_name(const AuthSpec& auth) {
  switch (auth.kind) {
    case AuthSpec::Kind::Bearer:
    case AuthSpec::Kind::HttpBasic:
    case AuthSpec::Kind::OAuth2ClientCredentials:
      return "Authorization";
    case AuthSpec::Kind::ApiKey:
      return auth.in_query ? std::string() : auth.name;
    case AuthSpec::Kind::None:
      break;
  }
  return {};
}

std::string auth_header_value(const AuthSpec& auth, std::string_view oauth_token) {
  switch (auth.kind) {
    case AuthSpec::Kind::Bearer:
      return "Bearer " + auth.token;
    case AuthSpec::Kind::HttpBasic:
      return "Basic " + base64_encode(auth.username + ":" + auth.password);
    case AuthSpec::Kind::ApiKey:
      return auth.api_key;
    case AuthSpec::Kind::OAuth2ClientCredentials:
      return "Bearer " + std::string(oauth_token);
    case AuthSpec::Kind::None:
      break;
  }
  return {};
}

std::string add_query_param(std::string_view url, std::string_view name, std::string_view value) {
  size_t hash = url.find('#');
  std::string_view head = url.substr(0, hash);
  std::string out(head);
  if (head.find('?') == std::string_view::npos)
    out += '?';
  else if (!head.ends_with('?') && !head.ends_with('&'))
    out += '&';
  append_url_encoded(out, name);
  out += '=';
  append_url_encoded(out, value);
  if (hash != std::string_view::npos) out += url.substr(hash);
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                 (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                 static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string token_request_body(const AuthSpec& auth) {
  std::string out;
  auto field = [&](std::string_view k, std::string_view v) {
    if (!out.empty()) out += '&';
    append_url_encoded(out, k);
    out += '=';
    append_url_encoded(out, v);
  };
  bool grant_given = std::any_of(auth.token_request_data.begin(), auth.token_request_data.end(),
                                 [](const auto& kv) { return kv.first == "grant_type"; });
  if (!grant_given) field("grant_type", "client_credentials");
  if (auth.client_auth_in_body) {
    field("client_id", auth.client_id);
    field("client_secret", auth.client_secret);
  }
  if (!auth.scope.empty()) field("scope", auth.scope);
  if (!auth.audience.empty()) field("audience", auth.audience);
  for (const auto& [k, v] : auth.token_request_data) field(k, v);
  return out;
}

std::vector<std::pair<std::string, std::string>> token_request_headers(const AuthSpec& auth) {
  std::vector<std::pair<std::string, std::string>> out = {
      {"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  if (!auth.client_auth_in_body)
    out.emplace_back("Authorization",
                     "Basic " + base64_encode(auth.client_id + ":" + auth.client_secret));
  return out;
}

OAuthToken parse_token_response(std::string_view body) {
  Value v;
  try {
    v = parse_json(body);
  } catch (const std::exception&) {
    throw std::runtime_error("the token endpoint's answer is not JSON");
  }
  if (!v.is_object()) throw std::runtime_error("the token endpoint's answer is not a JSON object");
  const Value* token = v.find("access_token");
  if (!token || !token->is_string() || token->as_string().empty())
    throw std::runtime_error("the token endpoint's answer has no access_token string");
  OAuthToken out;
  out.access_token = token->as_string();
  if (const Value* exp = v.find("expires_in"); exp && !exp->is_null()) {
    double secs = -1;
    // Some servers quote it.
    if (exp->is_number() || exp->is_string()) {
      std::string text = exp->is_string() ? exp->as_string() : exp->to_text();
      try {
        size_t used = 0;
        secs = std::stod(text, &used);
        if (used != text.size()) secs = -1;
      } catch (const std::exception&) {
        secs = -1;
      }
    }
    if (!(secs >= 0) || secs > 1e9)
      throw std::runtime_error(
          "the token endpoint's expires_in is not a number of seconds between 0 and 1e9");
    out.expires_in = Duration(static_cast<int64_t>(secs * 1000));
  }
  return out;
}

Duration token_refresh_after(Duration lifetime) {
  if (lifetime <= Duration::zero()) return Duration::zero();
  Duration early = std::min<Duration>(lifetime / 10, std::chrono::seconds(30));
  return lifetime - early;
}

std::string mask_secrets(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (s.empty()) continue;
    for (size_t p = 0; (p = text.find(s, p)) != std::string::npos;) {
      text.replace(p, s.size(), "***");
      p += 3;
    }
  }
  return text;
}

}  // namespace cascade
