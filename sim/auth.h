// SimAuth: the credentials cascade-sim demands of vendor requests (`--auth KIND:...`), and its
// OAuth2 token endpoint (POST /oauth/token, client credentials grant) issuing tokens that expire
// after --token-ttl. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "sim/http_server.h"

namespace cascade::sim {

struct SimAuthConfig {
  enum class Kind { None, Bearer, Basic, ApiKeyHeader, ApiKeyQuery, OAuth2 };
  Kind kind = Kind::None;
  std::string a, b;  // token | user, password | name, key | client id, client secret
  Duration token_ttl = std::chrono::hours(1);  // how long an issued token is honoured
  // What the token answer's expires_in says (seconds), when it should differ from the truth:
  // a server that lies makes the client meet 401s. nullopt: the truth. 0: no expires_in at all.
  std::optional<Duration> reported_ttl;
};

// Parses an --auth value: bearer:TOKEN, basic:USER:PASS, api_key_header:NAME:KEY,
// api_key_query:NAME:KEY or oauth2:CLIENT_ID:SECRET (the last field may hold ':').
// Throws std::invalid_argument naming what is wrong (never echoing the secret).
SimAuthConfig parse_sim_auth(std::string_view spec);

// Standard base64 with padding, written here independently of cascade's own.
std::string sim_base64(std::string_view bytes);

class SimAuth {
 public:
  SimAuth(SimAuthConfig cfg, const Clock& clock);
  bool enabled() const { return cfg_.kind != SimAuthConfig::Kind::None; }
  // True when the request carries the credential; otherwise fills res with a 401 (a JSON error
  // naming what is wrong, never the credential) and returns false.
  bool admit(const HttpRequest& req, HttpResponse& res);
  // POST /oauth/token: form body with grant_type=client_credentials, the client credentials as
  // HTTP Basic or as client_id/client_secret form fields. 401 on wrong credentials, 400 on a bad
  // grant, 404 when the simulator is not in oauth2 mode.
  void token_endpoint(const HttpRequest& req, HttpResponse& res);
  // {"kind":"oauth2","tokens_issued":N,"rejected":N}
  std::string stats_json() const;

 private:
  SimAuthConfig cfg_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::map<std::string, TimePoint> tokens_;  // live tokens and when they expire
  uint64_t issued_ = 0, rejected_ = 0;
};

}  // namespace cascade::sim
