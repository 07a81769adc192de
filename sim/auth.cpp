#include "sim/auth.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/json.h"

namespace cascade::sim {

namespace {

void unauthorized(HttpResponse& res, std::string_view why, std::string_view challenge) {
  res.status = 401;
  res.body.clear();
  res.body += "{\"error\":";
  append_json_string(why, res.body);
  res.body += '}';
  res.headers.emplace_back("WWW-Authenticate", std::string(challenge));
}

// key=value pairs of a form body, decoded.
std::map<std::string, std::string> form_fields(std::string_view body) {
  std::map<std::string, std::string> out;
  while (!body.empty()) {
    size_t amp = body.find('&');
    std::string_view kv = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (kv.empty()) continue;
    size_t eq = kv.find('=');
    out.emplace(url_decode(kv.substr(0, eq)),
                eq == std::string_view::npos ? std::string() : url_decode(kv.substr(eq + 1)));
  }
  return out;
}

}  // namespace

std::string sim_base64(std::string_view bytes) {
  static const char* kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kChars[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kChars[(acc << (6 - bits)) & 63];
  while (out.size() % 4) out += '=';
  return out;
}

SimAuthConfig parse_sim_auth(std::string_view spec) {
  SimAuthConfig c;
  size_t colon = spec.find(':');
  std::string_view kind = spec.substr(0, colon);
  std::string_view rest =
      colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1);
  auto two = [&](const char* what) {
    size_t sep = rest.find(':');
    if (sep == std::string_view::npos || sep == 0 || sep + 1 >= rest.size())
      throw std::invalid_argument(fmt::format("--auth {}: expected {}", kind, what));
    c.a = std::string(rest.substr(0, sep));
    c.b = std::string(rest.substr(sep + 1));
  };
  if (kind == "bearer") {
    c.kind = SimAuthConfig::Kind::Bearer;
    if (rest.empty()) throw std::invalid_argument("--auth bearer: expected bearer:TOKEN");
    c.a = std::string(rest);
  } else if (kind == "basic") {
    c.kind = SimAuthConfig::Kind::Basic;
    two("basic:USER:PASS");
  } else if (kind == "api_key_header") {
    c.kind = SimAuthConfig::Kind::ApiKeyHeader;
    two("api_key_header:NAME:KEY");
    for (char& ch : c.a) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  } else if (kind == "api_key_query") {
    c.kind = SimAuthConfig::Kind::ApiKeyQuery;
    two("api_key_query:NAME:KEY");
  } else if (kind == "oauth2") {
    c.kind = SimAuthConfig::Kind::OAuth2;
    two("oauth2:CLIENT_ID:SECRET");
  } else {
    throw std::invalid_argument(
        "--auth: unknown kind (expected bearer, basic, api_key_header, api_key_query or oauth2)");
  }
  return c;
}

SimAuth::SimAuth(SimAuthConfig cfg, const Clock& clock) : cfg_(std::move(cfg)), clock_(clock) {}

bool SimAuth::admit(const HttpRequest& req, HttpResponse& res) {
  using K = SimAuthConfig::Kind;
  const std::string* authz = req.header("authorization");
  bool ok = false;
  std::string why = "missing or wrong credentials";
  std::string challenge = "Bearer realm=\"dunder-mifflin\"";
  switch (cfg_.kind) {
    case K::None:
      return true;
    case K::Bearer:
      ok = authz && *authz == "Bearer " + cfg_.a;
      break;
    case K::Basic:
      ok = authz && *authz == "Basic " + sim_base64(cfg_.a + ":" + cfg_.b);
      challenge = "Basic realm=\"dunder-mifflin\"";
      break;
    case K::ApiKeyHeader: {
      const std::string* key = req.header(cfg_.a);
      ok = key && *key == cfg_.b;
      challenge = "ApiKey";
      break;
    }
    case K::ApiKeyQuery: {
      const std::string* key = req.param(cfg_.a);
      ok = key && *key == cfg_.b;
      challenge = "ApiKey";
      break;
    }
    case K::OAuth2: {
      if (authz && authz->starts_with("Bearer ")) {
        std::string token = authz->substr(7);
        std::lock_guard lock(mu_);
        auto it = tokens_.find(token);
        if (it == tokens_.end()) {
          why = "unknown access token";
        } else if (clock_.now() >= it->second) {
          why = "access token expired";
        } else {
          ok = true;
        }
      }
      challenge = "Bearer error=\"invalid_token\"";
      break;
    }
  }
  if (!ok) {
    {
      std::lock_guard lock(mu_);
      ++rejected_;
    }
    unauthorized(res, why, challenge);
  }
  return ok;
}

void SimAuth::token_endpoint(const HttpRequest& req, HttpResponse& res) {
  if (cfg_.kind != SimAuthConfig::Kind::OAuth2) {
    res.status = 404;
    res.body =
        R"j({"error":"this simulator issues no tokens: start it with --auth oauth2:ID:SECRET"})j";
    return;
  }
  if (req.method != "POST") {
    res.status = 405;
    res.body = R"({"error":"use POST"})";
    return;
  }
  auto form = form_fields(req.body);
  if (form["grant_type"] != "client_credentials") {
    res.status = 400;
    res.body = R"({"error":"unsupported_grant_type"})";
    return;
  }
  bool ok = false;
  if (const std::string* authz = req.header("authorization"))
    ok = *authz == "Basic " + sim_base64(cfg_.a + ":" + cfg_.b);
  else
    ok = form["client_id"] == cfg_.a && form["client_secret"] == cfg_.b;
  if (!ok) {
    {
      std::lock_guard lock(mu_);
      ++rejected_;
    }
    res.status = 401;
    res.body = R"({"error":"invalid_client"})";
    return;
  }
  TimePoint now = clock_.now();
  std::string token;
  {
    std::lock_guard lock(mu_);
    for (auto it = tokens_.begin(); it != tokens_.end();)
      it = it->second <= now ? tokens_.erase(it) : std::next(it);
    ++issued_;
    token =
        fmt::format("simtok-{}-{:x}", issued_, static_cast<uint64_t>(to_millis(now)) * 2654435761u);
    tokens_[token] = now + cfg_.token_ttl;
  }
  Duration says = cfg_.reported_ttl.value_or(cfg_.token_ttl);
  res.body = "{\"access_token\":\"" + token + "\",\"token_type\":\"Bearer\"";
  if (!cfg_.reported_ttl || cfg_.reported_ttl->count() > 0)
    res.body += fmt::format(",\"expires_in\":{}", std::max<int64_t>(1, says.count() / 1000));
  res.body += "}";
}

std::string SimAuth::stats_json() const {
  static const char* kNames[] = {"none",           "bearer",        "basic",
                                 "api_key_header", "api_key_query", "oauth2"};
  std::lock_guard lock(mu_);
  return fmt::format("{{\"kind\":\"{}\",\"tokens_issued\":{},\"rejected\":{}}}",
                     kNames[static_cast<int>(cfg_.kind)], issued_, rejected_);
}

}  // namespace cascade::sim
