#include "config/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "config/schedule.h"
#include "core/duration.h"
#include "core/expr.h"
#include "core/template.h"
#include "core/timezone.h"
#include "store/names.h"

namespace cascade {

namespace {

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  auto start = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!start(s[0])) return false;
  for (char c : s)
    if (!start(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

// A dotted record path: non-empty segments, no spaces or braces.
bool is_path(std::string_view s) {
  if (s.empty()) return false;
  size_t seg = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.') {
      if (i == seg) return false;
      seg = i + 1;
    } else if (s[i] == ' ' || s[i] == '\t' || s[i] == '{' || s[i] == '}') {
      return false;
    }
  }
  return true;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest(std::string_view word, const std::vector<std::string>& options) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& o : options) {
    size_t d = edit_distance(word, o);
    if (d < best_d) {
      best_d = d;
      best = o;
    }
  }
  return best;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string found(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing";
  }
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> to_double(std::string_view s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// SQLite compares identifiers ASCII case-insensitively: names are compared in this form.
std::string folded(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const char* const kReservedWhy =
    "names starting with cascade_ or sqlite_, in any case, belong to cascade's and SQLite's own "
    "tables";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Entry {
  std::string key;
  YAML::Node k, v;
};

using Entries = std::vector<Entry>;

const Entry* get(const Entries& es, std::string_view key) {
  for (const auto& e : es)
    if (e.key == key && !e.v.IsNull()) return &e;
  return nullptr;
}

// A message parameter used by a stage, with where it is used (for the "not provided" errors).
struct ParamUse {
  std::string param;
  SourcePos pos;
  std::string where;  // "request", "key 'x'", ...
};

struct StageAux {
  YAML::Node name_node;
  std::vector<ParamUse> params;
  std::vector<YAML::Node> emit_nodes;  // key nodes of emit entries, parallel to spec.emit
  // Their keys, if given.
  std::optional<YAML::Node> schedule_node, timezone_node, inputs_node, event_node;
};

class Loader {
 public:
  Loader(std::string_view text, std::string file, const EnvLookup& env)
      : text_(text), file_(std::move(file)), env_(env) {}

  PipelineSpec load() {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text_));
    } catch (const YAML::ParserException& e) {
      throw ConfigError(SourcePos{file_, e.mark.line + 1, e.mark.column + 1},
                        "invalid YAML: " + e.msg);
    }
    if (!root.IsDefined() || root.IsNull())
      throw ConfigError(SourcePos{file_, 1, 1},
                        "empty pipeline file (expected a map with name, "
                        "source and stages)");
    PipelineSpec spec;
    spec.file = file_;
    Entries top = entries(
        root, "the top level",
        {"name", "env", "source", "storage", "queues", "stages", "alarms", "notify", "views"});
    const Entry* e = require(top, root, "name", "the top level");
    spec.name = string(e->v, "a pipeline name");
    if (spec.name.empty() || !std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        }))
      fail(e->v, "pipeline name must be letters, digits, '_', '-' or '.'");
    if ((e = get(top, "env"))) {
      spec.env = string(e->v, "an environment name");
      if (!is_identifier(spec.env))
        fail(e->v, "env must be an identifier ([A-Za-z_][A-Za-z0-9_]*), found '" + spec.env + "'");
    } else if (std::optional<std::string> app_env = env_("APP_ENV"); app_env && !app_env->empty()) {
      // The old design's deployments named their queues by APP_ENV.
      if (!is_identifier(*app_env))
        throw ConfigError(SourcePos{file_, 1, 1},
                          "env is not set, and APP_ENV must be an identifier "
                          "([A-Za-z_][A-Za-z0-9_]*), found '" +
                              *app_env + "'");
      spec.env = *app_env;
    }
    e = require(top, root, "source", "the top level");
    parse_source(e->v, spec.source);
    if ((e = get(top, "storage"))) {
      spec.storage = string(e->v, "a storage URL");
      check_storage(e->v, spec.storage);
    }
    if ((e = get(top, "queues"))) parse_queue(e->v, spec.queues, "queues");
    e = require(top, root, "stages", "the top level");
    parse_stages(e->v, spec);
    if ((e = get(top, "alarms"))) parse_alarms(e->v, spec);
    if ((e = get(top, "notify"))) parse_notify(e->v, spec);
    if ((e = get(top, "views"))) parse_views(e->v, spec);
    check_warehouse_names(spec);
    return spec;
  }

 private:
  // ---- positions and errors ----

  SourcePos pos(const YAML::Node& n, size_t offset = 0) const {
    YAML::Mark m = n.Mark();
    if (m.is_null()) return SourcePos{file_, 0, 0};
    int quote = 0;
    if (offset > 0 && m.pos >= 0 && static_cast<size_t>(m.pos) < text_.size() &&
        (text_[static_cast<size_t>(m.pos)] == '"' || text_[static_cast<size_t>(m.pos)] == '\''))
      quote = 1;
    return SourcePos{file_, m.line + 1, m.column + 1 + quote + static_cast<int>(offset)};
  }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& msg, size_t offset = 0) const {
    throw ConfigError(pos(n, offset), msg);
  }

  // ---- typed access ----

  Entries entries(const YAML::Node& map, const std::string& what,
                  const std::vector<std::string>& allowed) {
    if (!map.IsMap()) fail(map, "expected a map for " + what + ", found " + found(map));
    Entries out;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) fail(it->first, "expected a plain key in " + what);
      std::string key = it->first.Scalar();
      for (const auto& prev : out)
        if (prev.key == key) fail(it->first, "duplicate key '" + key + "' in " + what);
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string hint = closest(key, allowed);
        fail(it->first, "unknown key '" + key + "' in " + what +
                            (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                            " (expected one of: " + join(allowed) + ")");
      }
      out.push_back(Entry{key, it->first, it->second});
    }
    return out;
  }

  const Entry* require(const Entries& es, const YAML::Node& map, std::string_view key,
                       const std::string& what) {
    const Entry* e = get(es, key);
    if (!e) fail(map, "missing required key '" + std::string(key) + "' in " + what);
    return e;
  }

  // The interpolated text of a scalar; `what` names what was expected.
  std::string string(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) fail(n, "expected " + what + ", found " + found(n));
    return interpolate(n);
  }

  std::string interpolate(const YAML::Node& n) {
    const std::string& raw = n.Scalar();
    if (raw.find('$') == std::string::npos) return raw;
    std::string out;
    for (size_t i = 0; i < raw.size();) {
      if (raw.compare(i, 3, "$${") == 0) {
        out += "${";
        i += 3;
      } else if (raw.compare(i, 2, "${") == 0) {
        size_t close = raw.find('}', i + 2);
        if (close == std::string::npos)
          fail(n, "unclosed '${' (write '$${' for a literal '${')", i);
        std::string_view body = std::string_view(raw).substr(i + 2, close - i - 2);
        std::optional<std::string> def;
        size_t sep = body.find(":-");
        std::string_view name = body;
        if (sep != std::string_view::npos) {
          name = body.substr(0, sep);
          def = std::string(body.substr(sep + 2));
        }
        if (!is_identifier(name))
          fail(n,
               "malformed variable '${" + std::string(name) +
                   "}' (expected ${NAME} or ${NAME:-default})",
               i);
        std::optional<std::string> val = env_(name);
        if (!val || (val->empty() && def)) {
          if (!def)
            fail(n,
                 "environment variable '" + std::string(name) +
                     "' is not set (set it, or write ${" + std::string(name) + ":-default})",
                 i);
          val = def;
        }
        out += *val;
        i = close + 1;
      } else {
        out += raw[i++];
      }
    }
    return out;
  }

  int64_t integer(const YAML::Node& n, const std::string& what, int64_t min, int64_t max) {
    std::string s = string(n, what);
    auto v = to_int(trim(s));
    if (!v) fail(n, "expected " + what + " (an integer), found '" + s + "'");
    if (*v < min || *v > max)
      fail(n, what + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
                  ", found " + std::to_string(*v));
    return *v;
  }

  double number(const YAML::Node& n, const std::string& what) {
    std::string s = string(n, what);
    auto v = to_double(trim(s));
    if (!v) fail(n, "expected " + what + " (a number), found '" + s + "'");
    return *v;
  }

  Duration duration(const YAML::Node& n, const std::string& what) {
    std::string s = string(n, what);
    auto d = parse_duration(s);
    if (!d)
      fail(n, "invalid duration '" + s + "' for " + what +
                  " (expected e.g. 200ms, 10s, 15m, 1h, 14d)");
    if (d->count() <= 0) fail(n, what + " must be positive, found '" + s + "'");
    return *d;
  }

  // Typed scalar for inputs: plain scalars are numbers/booleans/null when they look like it.
  Value scalar_value(const YAML::Node& n, const std::string& what) {
    std::string s = string(n, what);
    if (n.Tag() != "?") return Value(s);  // quoted: always a string
    if (auto i = to_int(s)) return Value(*i);
    if (!s.empty() &&
        (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.'))
      if (auto d = to_double(s)) return Value(*d);
    if (s == "true" || s == "True" || s == "TRUE") return Value(true);
    if (s == "false" || s == "False" || s == "FALSE") return Value(false);
    if (s == "null" || s == "~" || s == "Null" || s == "NULL") return Value();
    return Value(s);
  }

  // ---- sections ----

  void parse_source(const YAML::Node& n, SourceSpec& src) {
    Entries es = entries(n, "source",
                         {"base_url", "headers", "rate_limit", "quota", "timeout", "retry",
                          "max_connections", "auth"});
    const Entry* e = require(es, n, "base_url", "source");
    src.base_url = string(e->v, "a base URL");
    // Never echo the URL: it may carry credentials.
    if (!(src.base_url.starts_with("http://") || src.base_url.starts_with("https://")) ||
        src.base_url.find_first_of(" \t\r\n") != std::string::npos ||
        src.base_url.size() <= src.base_url.find("//") + 2)
      fail(e->v, "base_url must be an http:// or https:// URL");
    while (src.base_url.ends_with('/')) src.base_url.pop_back();
    if ((e = get(es, "headers"))) src.headers = parse_headers(e->v, "source.headers");
    if ((e = get(es, "auth"))) parse_auth(e->v, src.auth);
    if ((e = get(es, "rate_limit"))) {
      Entries rl = entries(e->v, "source.rate_limit", {"per_second", "burst"});
      const Entry* ps = require(rl, e->v, "per_second", "source.rate_limit");
      src.rate_limit.per_second = number(ps->v, "rate_limit.per_second");
      if (!(src.rate_limit.per_second > 0))
        fail(ps->v, "rate_limit.per_second must be greater than 0");
      src.rate_limit.burst = std::max(1.0, src.rate_limit.per_second);
      if (const Entry* b = get(rl, "burst")) {
        src.rate_limit.burst = number(b->v, "rate_limit.burst");
        if (!(src.rate_limit.burst >= 1)) fail(b->v, "rate_limit.burst must be at least 1");
      }
    }
    if ((e = get(es, "quota"))) {
      // One window as a map, or several (`[{requests: 10, per: 1s}, {requests: 100000, per: 1d}]`)
      // that must all allow each request.
      auto one = [&](const YAML::Node& n, bool first) {
        Entries q = entries(n, "source.quota", {"requests", "per", "reserve", "max_wait"});
        // `quota: { max_wait: 5m }` alone declares no budget of our own: it only says how long a
        // run waits for the vendor's.
        if (!get(q, "requests") && get(q, "max_wait") && !get(q, "per") && !get(q, "reserve") &&
            !e->v.IsSequence()) {
          src.quota.max_wait = duration(get(q, "max_wait")->v, "quota.max_wait");
          return;
        }
        const Entry* r = require(q, n, "requests", "source.quota");
        int64_t requests = integer(r->v, "quota.requests", 1, INT64_MAX);
        Duration per = std::chrono::hours(24);
        if (const Entry* p = get(q, "per")) per = duration(p->v, "quota.per");
        if (first) {
          src.quota.requests = requests;
          src.quota.per = per;
        } else {
          src.quota.more_windows.emplace_back(requests, per);
        }
        if (const Entry* w = get(q, "max_wait"))
          src.quota.max_wait = duration(w->v, "quota.max_wait");
        if (const Entry* rs = get(q, "reserve")) {
          if (!rs->v.IsMap()) fail(rs->v, "quota.reserve must be a map of stage: share (0..1)");
          double total = 0;
          for (auto it = rs->v.begin(); it != rs->v.end(); ++it) {
            double share = number(it->second, "a reserved share");
            if (!(share > 0 && share < 1))
              fail(it->second, "a reserved share must be between 0 and 1 (exclusive)");
            total += share;
            if (total >= 1) fail(it->second, "reserved shares must add up to less than 1");
            src.quota.reserve.emplace_back(it->first.as<std::string>(), share);
            src.quota.reserve_pos.push_back(pos(it->first));
          }
        }
      };
      if (e->v.IsSequence()) {
        if (e->v.size() == 0)
          fail(e->v, "source.quota needs at least one window: {requests: N, per: DURATION}");
        for (size_t i = 0; i < e->v.size(); ++i) one(e->v[i], i == 0);
      } else {
        one(e->v, true);
      }
    }
    if ((e = get(es, "timeout"))) src.timeout = duration(e->v, "source.timeout");
    if ((e = get(es, "retry"))) {
      Entries r = entries(e->v, "source.retry", {"attempts", "backoff"});
      if (const Entry* a = get(r, "attempts"))
        src.retry.attempts = static_cast<int>(integer(a->v, "retry.attempts", 1, 100));
      if (const Entry* b = get(r, "backoff")) {
        std::string s = string(b->v, "a backoff range");
        size_t dots = s.find("..");
        if (dots == std::string::npos)
          fail(b->v, "expected a backoff range MIN..MAX such as 200ms..30s, found '" + s + "'");
        auto lo = parse_duration(s.substr(0, dots));
        auto hi = parse_duration(s.substr(dots + 2));
        if (!lo || !hi || lo->count() <= 0 || hi->count() <= 0)
          fail(b->v,
               "expected a backoff range of positive durations MIN..MAX such as 200ms..30s, "
               "found '" +
                   s + "'");
        if (*lo > *hi) fail(b->v, "backoff minimum is greater than its maximum in '" + s + "'");
        src.retry.backoff_min = *lo;
        src.retry.backoff_max = *hi;
      }
    }
    if ((e = get(es, "max_connections")))
      src.max_connections = static_cast<int>(integer(e->v, "max_connections", 1, 1000));
  }

  static bool is_header_name(std::string_view name) {
    static constexpr std::string_view kTokenChars = "!#$%&'*+-.^_`|~";
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             kTokenChars.find(c) != std::string_view::npos;
    });
  }

  std::vector<std::pair<std::string, std::string>> parse_headers(const YAML::Node& n,
                                                                 const std::string& what) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const Entry& h : entries(n, what, {})) {
      if (!is_header_name(h.key)) fail(h.k, "invalid header name '" + h.key + "'");
      if (!h.v.IsScalar())
        fail(h.v, "expected a string value for header '" + h.key + "', found " + found(h.v));
      std::string value = interpolate(h.v);
      if (value.find_first_of("\r\n") != std::string::npos)
        fail(h.v, "the value of header '" + h.key + "' contains a line break");
      out.emplace_back(h.key, std::move(value));
    }
    return out;
  }

  // A secret value of source.auth: required, a string, not empty once interpolated. Errors name
  // the key and never the value.
  std::string secret(const Entries& es, const YAML::Node& map, const std::string& key,
                     const std::string& ctx) {
    const Entry* e = get(es, key);
    if (!e)
      fail(map, "missing required key '" + key + "' in " + ctx +
                    " (give it from the environment, as in " + key + ": ${MY_" + folded_upper(key) +
                    "})");
    if (!e->v.IsScalar())
      fail(e->v, "expected a string for " + ctx + "." + key + ", found " + found(e->v));
    std::string v = interpolate(e->v);
    if (v.empty())
      fail(e->v, ctx + "." + key + " is empty (is the environment variable it reads set?)");
    if (v.find_first_of("\r\n") != std::string::npos)
      fail(e->v, ctx + "." + key + " contains a line break");
    return v;
  }

  static std::string folded_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
  }

  void parse_auth(const YAML::Node& n, AuthSpec& auth) {
    const std::string ctx = "source.auth";
    if (!n.IsMap()) fail(n, "expected a map for source.auth, found " + found(n));
    static const std::vector<std::string> kKinds = {"bearer", "http_basic", "api_key",
                                                    "oauth2_client_credentials"};
    YAML::Node type_node = n["type"];
    if (!type_node.IsDefined() || type_node.IsNull())
      fail(n, "missing required key 'type' in source.auth (expected one of: " + join(kKinds) + ")");
    std::string type = string(type_node, "an auth type");
    std::vector<std::string> allowed;
    if (type == "bearer") {
      auth.kind = AuthSpec::Kind::Bearer;
      allowed = {"type", "token"};
    } else if (type == "http_basic") {
      auth.kind = AuthSpec::Kind::HttpBasic;
      allowed = {"type", "username", "password"};
    } else if (type == "api_key") {
      auth.kind = AuthSpec::Kind::ApiKey;
      allowed = {"type", "name", "location", "api_key"};
    } else if (type == "oauth2_client_credentials") {
      auth.kind = AuthSpec::Kind::OAuth2ClientCredentials;
      allowed = {"type",
                 "access_token_url",
                 "client_id",
                 "client_secret",
                 "scopes",
                 "audience",
                 "access_token_request_data",
                 "client_auth",
                 "default_token_expiration"};
    } else {
      std::string hint = closest(type, kKinds);
      fail(type_node, "unknown auth type '" + type + "'" +
                          (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                          " (expected one of: " + join(kKinds) + ")");
    }
    Entries es = entries(n, "source.auth of type " + type, allowed);
    const std::string what = "source.auth";
    switch (auth.kind) {
      case AuthSpec::Kind::Bearer:
        auth.token = secret(es, n, "token", what);
        break;
      case AuthSpec::Kind::HttpBasic: {
        const Entry* u = require(es, n, "username", what);
        auth.username = string(u->v, "a user name");
        if (auth.username.find(':') != std::string::npos)
          fail(u->v,
               "source.auth.username may not contain ':' (HTTP Basic separates the user "
               "name from the password with it)");
        if (auth.username.find_first_of("\r\n") != std::string::npos)
          fail(u->v, "source.auth.username contains a line break");
        auth.password = secret(es, n, "password", what);
        break;
      }
      case AuthSpec::Kind::ApiKey: {
        auth.api_key = secret(es, n, "api_key", what);
        if (const Entry* loc = get(es, "location")) {
          std::string l = string(loc->v, "header or query");
          if (l != "header" && l != "query")
            fail(loc->v, "source.auth.location must be header or query, found '" + l + "'");
          auth.in_query = l == "query";
        }
        if (const Entry* nm = get(es, "name")) {
          auth.name = string(nm->v, "a header or query parameter name");
          if (auth.name.empty()) fail(nm->v, "source.auth.name is empty");
          if (!auth.in_query && !is_header_name(auth.name))
            fail(nm->v, "invalid header name '" + auth.name + "' in source.auth.name");
        } else if (auth.in_query) {
          fail(n,
               "missing required key 'name' in source.auth (the query parameter that carries "
               "the key, e.g. name: api_key)");
        }
        break;
      }
      case AuthSpec::Kind::OAuth2ClientCredentials: {
        const Entry* u = require(es, n, "access_token_url", what);
        auth.access_token_url = string(u->v, "the token endpoint's URL");
        // Never echo the URL: it may carry credentials.
        if (!(auth.access_token_url.starts_with("http://") ||
              auth.access_token_url.starts_with("https://")) ||
            auth.access_token_url.find_first_of(" \t\r\n") != std::string::npos ||
            auth.access_token_url.size() <= auth.access_token_url.find("//") + 2)
          fail(u->v, "source.auth.access_token_url must be an http:// or https:// URL");
        const Entry* id = require(es, n, "client_id", what);
        auth.client_id = string(id->v, "a client id");
        if (auth.client_id.empty()) fail(id->v, "source.auth.client_id is empty");
        auth.client_secret = secret(es, n, "client_secret", what);
        if (const Entry* sc = get(es, "scopes")) {
          if (sc->v.IsSequence()) {
            for (const auto& item : sc->v) {
              std::string one = string(item, "a scope");
              if (!auth.scope.empty()) auth.scope += ' ';
              auth.scope += one;
            }
          } else {
            auth.scope = string(sc->v, "scopes (a list, or one space-separated string)");
          }
        }
        if (const Entry* a = get(es, "audience")) auth.audience = string(a->v, "an audience");
        if (const Entry* d = get(es, "access_token_request_data")) {
          for (const Entry& f : entries(d->v, "source.auth.access_token_request_data", {})) {
            if (!f.v.IsScalar())
              fail(f.v, "expected a string value for token request field '" + f.key + "', found " +
                            found(f.v));
            auth.token_request_data.emplace_back(f.key, interpolate(f.v));
          }
        }
        if (const Entry* ca = get(es, "client_auth")) {
          std::string v = string(ca->v, "basic or body");
          if (v != "basic" && v != "body")
            fail(ca->v,
                 "source.auth.client_auth must be basic (an HTTP Basic header) or body "
                 "(form fields), found '" +
                     v + "'");
          auth.client_auth_in_body = v == "body";
        }
        if (const Entry* x = get(es, "default_token_expiration")) {
          // dlt gives it in seconds, as a plain number.
          std::string text = string(x->v, "a duration");
          if (auto secs = to_int(trim(text))) {
            if (*secs <= 0 || *secs > 366 * 86400)
              fail(x->v, "default_token_expiration must be between 1 second and 366 days");
            auth.default_token_expiration = std::chrono::seconds(*secs);
          } else {
            auth.default_token_expiration = duration(x->v, "default_token_expiration");
          }
        }
        break;
      }
      case AuthSpec::Kind::None:
        break;
    }
  }

  void check_storage(const YAML::Node& n, const std::string& url) {
    size_t colon = url.find(':');
    std::string scheme = colon == std::string::npos ? std::string() : url.substr(0, colon);
    bool scheme_ok = !scheme.empty() && std::all_of(scheme.begin(), scheme.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
    });
    // Only the scheme is echoed: the rest may hold a password.
    if (!scheme_ok) fail(n, "expected a storage URL such as sqlite:cascade.db");
    // The rest of a PostgreSQL URL is libpq's to read (PG* variables fill what it leaves out).
    if (scheme == "postgres" || scheme == "postgresql") {
      if (url.compare(colon, 3, "://") != 0)
        fail(n, "expected a PostgreSQL URL such as postgresql://USER@HOST:5432/DB");
      return;
    }
    // The AWS storage keeps its warehouse in another storage: the AWS part reads the rest.
    if (scheme == "aws") {
      if (url.find("warehouse=") == std::string::npos)
        fail(n, "expected an AWS storage URL such as aws:?warehouse=sqlite:cascade.db");
      return;
    }
    if (scheme != "sqlite")
      fail(n, "storage scheme '" + scheme +
                  "' is not supported (expected sqlite:PATH, postgresql://USER@HOST:PORT/DB or "
                  "aws:?warehouse=URL)");
    if (colon + 1 >= url.size()) fail(n, "sqlite storage needs a path, as in sqlite:cascade.db");
  }

  void parse_queue(const YAML::Node& n, QueueOptions& q, const std::string& what) {
    Entries es = entries(n, what, {"visibility_timeout", "max_receive_count", "retention"});
    if (const Entry* e = get(es, "visibility_timeout")) {
      q.visibility_timeout = duration(e->v, "visibility_timeout");
      if (q.visibility_timeout > std::chrono::hours(12))
        fail(e->v, "visibility_timeout must be at most 12h (the SQS limit)");
    }
    if (const Entry* e = get(es, "max_receive_count"))
      q.max_receive_count = static_cast<int>(integer(e->v, "max_receive_count", 1, 1000));
    if (const Entry* e = get(es, "retention")) {
      q.retention = duration(e->v, "retention");
      if (q.retention < std::chrono::minutes(1) || q.retention > std::chrono::days(14))
        fail(e->v, "retention must be between 1m and 14d (the SQS limits)");
    }
  }

  // Parses a template scalar; errors point at the column inside the scalar.
  Template parse_template(const YAML::Node& n, const std::string& text, size_t base = 0) {
    try {
      return Template::parse(text);
    } catch (const TemplateError& e) {
      fail(n, std::string("invalid template: ") + e.what(), base + e.offset);
    }
  }

  void note_message_refs(const Template& t, const YAML::Node& n, size_t base,
                         const std::string& where, StageAux& aux) {
    for (const auto& r : t.refs())
      if (r.scope == Template::Ref::Scope::Message)
        aux.params.push_back(
            ParamUse{r.path.substr(0, r.path.find('.')), pos(n, base + r.offset), where});
  }

  std::vector<FieldSpec> parse_fields(const YAML::Node& n, const std::string& what, StageAux& aux) {
    std::vector<FieldSpec> out;
    for (const Entry& f : entries(n, what, {})) {
      if (!is_identifier(f.key))
        fail(f.k, "field name '" + f.key + "' in " + what +
                      " is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
      FieldSpec fs;
      fs.name = f.key;
      fs.pos = pos(f.k);
      std::string s = string(f.v, "a record path or a template for '" + f.key + "'");
      if (s.find('{') != std::string::npos || s.find('}') != std::string::npos) {
        Template t = parse_template(f.v, s);
        note_message_refs(t, f.v, 0, what + " '" + f.key + "'", aux);
        fs.is_template = true;
        fs.tmpl = TemplateSpec{s, pos(f.v)};
      } else {
        if (s.starts_with("record.")) s = s.substr(7);
        if (!is_path(s))
          fail(f.v,
               "expected a record path (such as id or address.city) or a template with "
               "braces for '" +
                   f.key + "' in " + what);
        fs.path = s;
      }
      out.push_back(std::move(fs));
    }
    return out;
  }

  // A body document: maps, lists and scalars as JSON. Plain scalars that look like numbers,
  // booleans or null are those; quoted ones are strings. Strings with braces are templates over
  // the message, checked here so an error points into the file.
  Value body_value(const YAML::Node& n, StageAux& aux) {
    if (n.IsMap()) {
      Object o;
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (!it->first.IsScalar()) fail(it->first, "expected a plain key in a request body");
        for (const auto& m : o)
          if (m.first == it->first.Scalar())
            fail(it->first, "duplicate key '" + m.first + "' in a request body");
        o.emplace_back(it->first.Scalar(), body_value(it->second, aux));
      }
      return Value(std::move(o));
    }
    if (n.IsSequence()) {
      Array a;
      for (const auto& item : n) a.push_back(body_value(item, aux));
      return Value(std::move(a));
    }
    if (!n.IsDefined() || n.IsNull()) return Value();
    std::string text = interpolate(n);
    if (text.find_first_of("{}") != std::string::npos) {
      Template t = parse_template(n, text);
      for (const auto& r : t.refs())
        if (r.scope == Template::Ref::Scope::Record)
          fail(n, "a request body may only use message parameters, found '{record." + r.path + "}'",
               r.offset);
      note_message_refs(t, n, 0, "body", aux);
      return Value(text);
    }
    return scalar_value(n, "a body value");
  }

  void parse_responses(const YAML::Node& n, const std::string& ctx,
                       std::vector<ResponseRule>& out) {
    if (!n.IsSequence())
      fail(n, "expected a list of rules such as [{status: 404, action: empty}] for " + ctx +
                  " responses, found " + found(n));
    static const std::vector<std::string> kActions = {"empty", "retry", "dead_letter"};
    for (const auto& item : n) {
      Entries es = entries(item, ctx + " responses entry", {"status", "action"});
      const Entry* st = require(es, item, "status", ctx + " responses entry");
      const Entry* ac = require(es, item, "action", ctx + " responses entry");
      std::string action = string(ac->v, "an action");
      ResponseRule::Action act;
      if (action == "empty") {
        act = ResponseRule::Action::Empty;
      } else if (action == "retry") {
        act = ResponseRule::Action::Retry;
      } else if (action == "dead_letter") {
        act = ResponseRule::Action::DeadLetter;
      } else {
        std::string hint = closest(action, kActions);
        fail(ac->v, "unknown response action '" + action + "'" +
                        (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                        " (expected one of: empty, retry, dead_letter)");
      }
      auto one = [&](const YAML::Node& s) {
        std::string text = string(s, "a status");
        std::string_view t = trim(text);
        ResponseRule r;
        r.action = act;
        r.pos = pos(s);
        if (t.size() == 3 && t[0] >= '1' && t[0] <= '5' && (t[1] == 'x' || t[1] == 'X') &&
            (t[2] == 'x' || t[2] == 'X')) {
          r.lo = (t[0] - '0') * 100;
          r.hi = r.lo + 99;
        } else if (auto v = to_int(t); v && *v >= 100 && *v <= 599) {
          r.lo = r.hi = static_cast<int>(*v);
        } else {
          fail(s,
               "expected an HTTP status (100..599) or a class such as 4xx, found '" + text + "'");
        }
        out.push_back(r);
      };
      if (st->v.IsSequence()) {
        if (st->v.size() == 0) fail(st->v, "status lists no status");
        for (const auto& s : st->v) one(s);
      } else {
        one(st->v);
      }
    }
  }

  void parse_stage(const Entry& se, const PipelineSpec& spec, StageSpec& st, StageAux& aux) {
    st.name = se.key;
    st.pos = pos(se.k);
    aux.name_node = se.k;
    if (!is_identifier(st.name))
      fail(se.k, "stage name '" + st.name + "' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
    if (is_reserved_table_name(st.name))
      fail(se.k, "stage name '" + st.name + "' is reserved: " + kReservedWhy);
    std::string ctx = "stage '" + st.name + "'";
    Entries es =
        entries(se.v, ctx, {"request", "records",     "where",    "key",         "attach",
                            "emit",    "concurrency", "schedule", "timezone",    "inputs",
                            "event",   "table",       "queue",    "deletions",   "effective",
                            "flatten", "contract",    "method",   "body",        "params",
                            "headers", "responses",   "paginate", "incremental", "records_from"});
    st.table = st.name;
    st.queue = spec.queues;
    const Entry* e = get(es, "records_from");
    if (e) {
      std::string field = string(e->v, "the message field holding the parent's list");
      if (!is_identifier(field))
        fail(e->v,
             "records_from must name a message field (an identifier such as lines) that "
             "the parent's emit sets to a list of its record");
      for (const char* k : {"request", "method", "body", "params", "headers", "responses",
                            "paginate", "incremental", "records"})
        if (const Entry* x = get(es, k))
          fail(x->k, std::string(k) + " has no meaning in " + ctx +
                         ": its records are the list in message field '" + field +
                         "' (records_from), and it sends no request");
      st.records_from = field;
      st.records_from_pos = pos(e->v);
      aux.params.push_back(ParamUse{field, pos(e->v), "records_from"});
    } else {
      e = require(es, se.v, "request", ctx);
      std::string req = string(e->v, "a request such as GET /path?x={x}");
      size_t base = 0;
      std::string_view rest = req;
      size_t sp = rest.find(' ');
      if (!rest.starts_with('/') && sp != std::string_view::npos) {
        std::string method(rest.substr(0, sp));
        static const std::vector<std::string> kMethods = {"GET",   "POST",   "PUT",
                                                          "PATCH", "DELETE", "HEAD"};
        if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end())
          fail(e->v,
               "unknown HTTP method '" + method + "' (expected one of: " + join(kMethods) + ")");
        st.method = method;
        base = sp;
        while (base < rest.size() && rest[base] == ' ') ++base;
        rest = rest.substr(base);
      }
      if (!rest.starts_with('/'))
        fail(e->v, "request path must start with '/' (it is appended to source.base_url)", base);
      Template t = parse_template(e->v, std::string(rest), base);
      for (const auto& r : t.refs())
        if (r.scope == Template::Ref::Scope::Record)
          fail(e->v, "request may only use message parameters, found '{record." + r.path + "}'",
               base + r.offset);
      note_message_refs(t, e->v, base, "request", aux);
      st.request = TemplateSpec{std::string(rest), pos(e->v, base)};
      if (const Entry* m = get(es, "method")) {
        std::string method = string(m->v, "an HTTP method");
        static const std::vector<std::string> kMethods = {"GET",   "POST",   "PUT",
                                                          "PATCH", "DELETE", "HEAD"};
        if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end())
          fail(m->v,
               "unknown HTTP method '" + method + "' (expected one of: " + join(kMethods) + ")");
        if (base > 0 && method != st.method)
          fail(m->v, "method " + method + " contradicts the request's own method " + st.method +
                         " (give it in one place)");
        st.method = method;
      }
    }
    if ((e = get(es, "params"))) {
      for (const Entry& p : entries(e->v, ctx + " params", {})) {
        if (p.key.empty()) fail(p.k, "empty query parameter name in " + ctx + " params");
        if (!p.v.IsScalar())
          fail(p.v, "expected a value or a template for query parameter '" + p.key + "', found " +
                        found(p.v));
        std::string text = interpolate(p.v);
        Template t = parse_template(p.v, text);
        for (const auto& r : t.refs())
          if (r.scope == Template::Ref::Scope::Record)
            fail(p.v, "params may only use message parameters, found '{record." + r.path + "}'",
                 r.offset);
        note_message_refs(t, p.v, 0, "params '" + p.key + "'", aux);
        st.params.emplace_back(p.key, TemplateSpec{text, pos(p.v)});
      }
    }
    if ((e = get(es, "body"))) {
      if (!e->v.IsMap() && !e->v.IsSequence())
        fail(e->v, "expected a JSON body as a map (or a list) for " + ctx + " body, found " +
                       found(e->v));
      st.body = body_value(e->v, aux);
      st.body_pos = pos(e->v);
      if (st.method == "GET" || st.method == "HEAD")
        fail(e->k, ctx + " has a body but its method is " + st.method +
                       " (write method: POST, or request: POST /path)");
    }
    if ((e = get(es, "headers"))) st.headers = parse_headers(e->v, ctx + " headers");
    if ((e = get(es, "responses"))) parse_responses(e->v, ctx, st.responses);
    if ((e = get(es, "records"))) {
      st.records_path = string(e->v, "a dotted path into the response");
      if (!st.records_path.empty() && !is_path(st.records_path))
        fail(e->v, "records must be a dotted path such as result.items");
    }
    if ((e = get(es, "where"))) {
      std::string w = string(e->v, "a filter expression");
      try {
        Expr x = Expr::parse(w);
        st.where = w;
        st.where_pos = pos(e->v);
        for (const auto& p : x.message_paths())
          aux.params.push_back(ParamUse{p.substr(0, p.find('.')), pos(e->v), "where"});
      } catch (const ExprError& err) {
        fail(e->v, std::string("invalid where expression: ") + err.what(), err.offset);
      }
    }
    e = require(es, se.v, "key", ctx);
    st.key = parse_fields(e->v, ctx + " key", aux);
    if (st.key.empty()) fail(e->v, "key of " + ctx + " is empty (expected at least one field)");
    if ((e = get(es, "attach"))) {
      st.attach = parse_fields(e->v, ctx + " attach", aux);
      for (const auto& a : st.attach)
        for (const auto& k : st.key)
          if (a.name == k.name)
            throw ConfigError(a.pos, "column '" + a.name + "' of " + ctx +
                                         " is both a key field and an attached field");
    }
    if ((e = get(es, "emit"))) {
      for (const Entry& em : entries(e->v, ctx + " emit", {})) {
        EmitSpec es2;
        es2.stage = em.key;
        es2.pos = pos(em.k);
        es2.fields = parse_fields(em.v, ctx + " emit to '" + em.key + "'", aux);
        st.emit.push_back(std::move(es2));
        aux.emit_nodes.push_back(em.k);
      }
    }
    if ((e = get(es, "concurrency")))
      st.concurrency = static_cast<int>(integer(e->v, "concurrency", 1, 1000));
    if ((e = get(es, "schedule"))) {
      std::string s = string(e->v, "a schedule such as rate(1 hour)");
      std::string why = check_schedule(s);
      if (!why.empty()) fail(e->v, why);
      st.schedule = s;
      st.schedule_pos = pos(e->v);
      aux.schedule_node = e->k;
    }
    if ((e = get(es, "timezone"))) {
      std::string tz = string(e->v, "an IANA time zone such as Europe/Berlin");
      try {
        TimeZone::load(tz);
      } catch (const TimeZoneError& err) {
        fail(e->v, err.what());
      }
      st.timezone = tz;
      st.timezone_pos = pos(e->v);
      aux.timezone_node = e->k;
    }
    if ((e = get(es, "inputs"))) {
      aux.inputs_node = e->k;
      for (const Entry& in : entries(e->v, ctx + " inputs", {})) {
        if (!is_identifier(in.key))
          fail(in.k, "input parameter '" + in.key + "' is not an identifier");
        std::vector<Value> values;
        if (in.v.IsSequence()) {
          for (const auto& item : in.v) {
            if (!item.IsScalar())
              fail(item,
                   "expected a scalar value for input '" + in.key + "', found " + found(item));
            values.push_back(scalar_value(item, "a value for input '" + in.key + "'"));
          }
        } else if (in.v.IsScalar()) {
          values.push_back(scalar_value(in.v, "a value for input '" + in.key + "'"));
        } else {
          fail(in.v, "expected a list of values for input '" + in.key + "', found " + found(in.v));
        }
        if (values.empty()) fail(in.v, "input '" + in.key + "' has no values");
        st.inputs.emplace_back(in.key, std::move(values));
      }
    }
    if ((e = get(es, "event"))) {
      aux.event_node = e->k;
      for (const Entry& ev : entries(e->v, ctx + " event", {})) {
        if (!is_identifier(ev.key)) fail(ev.k, "event field '" + ev.key + "' is not an identifier");
        std::string param = string(ev.v, "an input parameter name");
        if (!is_identifier(param))
          fail(ev.v, "expected an input parameter name, found '" + param + "'");
        if (!st.inputs.empty() && std::none_of(st.inputs.begin(), st.inputs.end(),
                                               [&](const auto& in) { return in.first == param; })) {
          std::vector<std::string> names;
          for (const auto& in : st.inputs) names.push_back(in.first);
          fail(ev.v, "event field '" + ev.key + "' maps to '" + param +
                         "', which is not an input of " + ctx + " (inputs: " + join(names) + ")");
        }
        st.event_fields[ev.key] = param;
      }
    }
    if ((e = get(es, "table"))) {
      st.table = string(e->v, "a table name");
      if (!is_identifier(st.table))
        fail(e->v, "table name '" + st.table + "' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
      if (is_reserved_table_name(st.table))
        fail(e->v, "table name '" + st.table + "' is reserved: " + kReservedWhy);
    }
    if ((e = get(es, "queue"))) parse_queue(e->v, st.queue, ctx + " queue");
    if ((e = get(es, "effective"))) {
      st.effective = string(e->v, "the name of the record field holding the effective date");
      if (st.effective->empty())
        fail(e->v, "effective names no field (expected e.g. branch_since)");
    }
    if ((e = get(es, "deletions"))) {
      Entries d = entries(e->v, ctx + " deletions", {"hold_above", "min_rows", "orphans"});
      if (const Entry* o = get(d, "orphans")) {
        std::string v = string(o->v, "keep or delete");
        if (v != "keep" && v != "delete")
          fail(o->v, "deletions.orphans must be keep or delete, found '" + v + "'");
        st.deletions.keep_orphans = v == "keep";
      }
      if (const Entry* h = get(d, "hold_above")) {
        st.deletions.hold_above = number(h->v, "deletions.hold_above");
        if (!(st.deletions.hold_above >= 0 && st.deletions.hold_above <= 1))
          fail(h->v,
               "deletions.hold_above must be a share between 0 and 1 (1 never holds a deletion)");
      }
      if (const Entry* m = get(d, "min_rows"))
        st.deletions.min_rows = integer(m->v, "deletions.min_rows", 1, 1'000'000'000);
    }
    if ((e = get(es, "flatten"))) {
      Entries f = entries(e->v, ctx + " flatten", {"depth", "lists"});
      if (const Entry* d = get(f, "depth"))
        st.schema.flatten_depth = static_cast<int>(integer(d->v, "flatten.depth", 0, 16));
      if (const Entry* l = get(f, "lists")) {
        std::string v = string(l->v, "tables or json");
        if (v != "tables" && v != "json")
          fail(l->v, "flatten.lists must be tables or json, found '" + v + "'");
        st.schema.list_tables = v == "tables";
      }
    }
    if ((e = get(es, "contract"))) {
      std::string v = string(e->v, "evolve, freeze or discard");
      if (v == "evolve")
        st.schema.contract = SchemaSpec::Contract::Evolve;
      else if (v == "freeze")
        st.schema.contract = SchemaSpec::Contract::Freeze;
      else if (v == "discard")
        st.schema.contract = SchemaSpec::Contract::Discard;
      else
        fail(e->v, "contract must be evolve, freeze or discard, found '" + v + "'");
    }
    if ((e = get(es, "paginate"))) parse_paginate(e->v, ctx, st.paginate);
    if ((e = get(es, "incremental"))) parse_incremental(*e, es, ctx, st);
  }

  // `paginate:` in dlt's words: a kind alone (`paginate: json_link`), or a map with `type:` and
  // the kind's parameters, each checked against what that kind takes.
  void parse_paginate(const YAML::Node& n, const std::string& ctx, PaginateOptions& p) {
    using K = PaginateOptions::Kind;
    static const std::vector<std::pair<std::string, K>> kKinds = {
        {"auto", K::Auto},          {"single_page", K::SinglePage},
        {"json_link", K::JsonLink}, {"header_link", K::HeaderLink},
        {"offset", K::Offset},      {"page_number", K::PageNumber},
        {"cursor", K::Cursor},      {"json_response", K::JsonLink}};
    static const std::vector<std::string> kNames = {
        "auto", "single_page", "json_link", "header_link", "offset", "page_number", "cursor"};
    std::string what = ctx + " paginate";
    auto kind_of = [&](const YAML::Node& t) {
      std::string name = string(t, "a paginator type");
      for (const auto& [k, v] : kKinds)
        if (k == name) return v;
      std::string hint = closest(name, kNames);
      fail(t, "unknown paginator type '" + name + "'" +
                  (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                  " (expected one of: " + join(kNames) + ")");
    };
    if (n.IsScalar()) {
      p.kind = kind_of(n);
      if (p.kind == K::Offset)
        fail(n, "the offset paginator needs a limit: write paginate: { type: offset, limit: 100 }");
      return;
    }
    if (!n.IsMap())
      fail(n,
           "expected a paginator type such as json_link, or a map such as { type: offset, limit: "
           "100 }, for " +
               what + ", found " + found(n));
    const YAML::Node type_node = n["type"];
    if (!type_node || type_node.IsNull())
      fail(n,
           "missing required key 'type' in " + what + " (expected one of: " + join(kNames) + ")");
    p.kind = kind_of(type_node);
    std::vector<std::string> allowed = {"type", "max_pages"};
    switch (p.kind) {
      case K::JsonLink:
        allowed.push_back("next_url_path");
        break;
      case K::HeaderLink:
        allowed.push_back("links_next_key");
        break;
      case K::Offset:
        allowed.insert(allowed.end(), {"limit", "offset", "offset_param", "limit_param",
                                       "total_path", "maximum_offset", "stop_after_empty_page"});
        break;
      case K::PageNumber:
        allowed.insert(allowed.end(), {"base_page", "page", "page_param", "total_path",
                                       "maximum_page", "stop_after_empty_page"});
        break;
      case K::Cursor:
        allowed.insert(allowed.end(), {"cursor_path", "cursor_param"});
        break;
      case K::Auto:
        allowed.push_back("cursor_param");
        break;
      default:
        break;
    }
    std::string kind_what = what + " (type " + std::string(paginate_kind_name(p.kind)) + ")";
    Entries es = entries(n, kind_what, allowed);
    auto path_of = [&](const Entry& e) {
      std::string s = string(e.v, "a dotted path into the response");
      if (s.starts_with("$.")) s = s.substr(2);
      if (!is_path(s))
        fail(e.v,
             "paginate." + e.key + " must be a dotted path such as links.next, found '" + s + "'");
      return s;
    };
    auto param_of = [&](const Entry& e) {
      std::string s = string(e.v, "a query parameter name");
      if (s.empty() || s.find_first_of("&=#?% \t\r\n") != std::string::npos)
        fail(e.v, "paginate." + e.key + " must be a query parameter name, found '" + s + "'");
      return s;
    };
    auto flag_of = [&](const Entry& e) {
      std::string s = string(e.v, "true or false");
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      fail(e.v, "paginate." + e.key + " must be true or false, found '" + s + "'");
    };
    const Entry* limit_entry = nullptr;
    bool has_maximum = false;
    for (const Entry& e : es) {
      const std::string& k = e.key;
      if (k == "type") continue;
      if (k == "total_path") {
        // `total_path: null` says the API gives no total, as in dlt.
        if (e.v.IsNull() || (e.v.IsScalar() && e.v.Tag() == "?" && e.v.Scalar() == "~")) {
          p.total_path.reset();
        } else {
          p.total_path = path_of(e);
          p.total_path_explicit = true;
        }
        continue;
      }
      if (e.v.IsNull()) fail(e.k, "paginate." + k + " has no value");
      if (k == "max_pages")
        p.max_pages = integer(e.v, "paginate.max_pages", 1, 1'000'000'000);
      else if (k == "next_url_path")
        p.next_url_path = path_of(e);
      else if (k == "links_next_key") {
        p.links_next_key = string(e.v, "a link relation such as next");
        if (p.links_next_key.empty() ||
            p.links_next_key.find_first_of(" \t\"") != std::string::npos)
          fail(e.v, "paginate.links_next_key must be one link relation such as next");
      } else if (k == "limit") {
        p.limit = integer(e.v, "paginate.limit", 1, 1'000'000'000);
        limit_entry = &e;
      } else if (k == "offset")
        p.offset = integer(e.v, "paginate.offset", 0, INT64_MAX / 4);
      else if (k == "offset_param")
        p.offset_param = param_of(e);
      else if (k == "limit_param")
        p.limit_param = param_of(e);
      else if (k == "maximum_offset") {
        p.maximum_offset = integer(e.v, "paginate.maximum_offset", 1, INT64_MAX / 4);
        has_maximum = true;
      } else if (k == "stop_after_empty_page")
        p.stop_after_empty_page = flag_of(e);
      else if (k == "base_page")
        p.base_page = integer(e.v, "paginate.base_page", 0, 1'000'000'000);
      else if (k == "page")
        p.page = integer(e.v, "paginate.page", 0, 1'000'000'000);
      else if (k == "page_param")
        p.page_param = param_of(e);
      else if (k == "maximum_page") {
        p.maximum_page = integer(e.v, "paginate.maximum_page", 1, 1'000'000'000);
        has_maximum = true;
      } else if (k == "cursor_path")
        p.cursor_path = path_of(e);
      else if (k == "cursor_param")
        p.cursor_param = param_of(e);
    }
    if (p.kind == K::Offset && !limit_entry)
      fail(n, "missing required key 'limit' in " + kind_what + " (the page size, e.g. limit: 100)");
    if (p.kind == K::Offset || p.kind == K::PageNumber) {
      if (p.page && *p.page < p.base_page) fail(n, "paginate.page must not be below base_page");
      if (!p.total_path && !has_maximum && !p.stop_after_empty_page)
        fail(n, "the " + std::string(paginate_kind_name(p.kind)) +
                    " paginator would never stop: give total_path, a " +
                    (p.kind == K::Offset ? "maximum_offset" : "maximum_page") +
                    ", or leave stop_after_empty_page true");
      // With nothing else to stop on, a missing total must be an error rather than endless pages.
      if (p.total_path && !has_maximum && !p.stop_after_empty_page) p.total_path_explicit = true;
    }
  }

  void parse_incremental(const Entry& e, const Entries& stage, const std::string& ctx,
                         StageSpec& st) {
    std::string what = ctx + " incremental";
    Entries es = entries(e.v, what, {"cursor_path", "param", "initial_value"});
    IncrementalSpec inc;
    inc.pos = pos(e.k);
    const Entry* c = require(es, e.v, "cursor_path", what + " (the record field to follow)");
    inc.cursor_path = string(c->v, "a record path such as updated_at");
    if (inc.cursor_path.starts_with("record.")) inc.cursor_path = inc.cursor_path.substr(7);
    if (!is_path(inc.cursor_path))
      fail(c->v,
           "incremental.cursor_path must be a record path such as updated_at or meta.updated");
    const Entry* p =
        require(es, e.v, "param", what + " (the query parameter the cursor goes into)");
    inc.param = string(p->v, "a query parameter name such as updated_since");
    if (inc.param.empty() || inc.param.find_first_of("\r\n") != std::string::npos)
      fail(p->v, "incremental.param must be a query parameter name such as updated_since");
    for (const auto& [name, value] : st.params)
      if (name == inc.param)
        fail(p->v, "incremental.param '" + inc.param + "' is also in " + ctx +
                       " params: the cursor would be sent twice");
    if (size_t q = st.request.text.find('?'); q != std::string::npos) {
      std::string_view query = std::string_view(st.request.text).substr(q + 1);
      for (size_t at = 0; at <= query.size();) {
        size_t amp = query.find('&', at);
        std::string_view part = query.substr(at, amp == std::string_view::npos ? amp : amp - at);
        if (part.substr(0, part.find('=')) == inc.param)
          fail(p->v, "incremental.param '" + inc.param + "' is also in the request of " + ctx +
                         ": the cursor would be sent twice");
        if (amp == std::string_view::npos) break;
        at = amp + 1;
      }
    }
    if (const Entry* i = get(es, "initial_value")) {
      if (!i->v.IsScalar())
        fail(i->v,
             "expected a string or a number for incremental.initial_value, found " + found(i->v));
      inc.initial_value = scalar_value(i->v, "a string or a number");
      if (!inc.initial_value.is_string() && !inc.initial_value.is_number())
        fail(i->v,
             "incremental.initial_value must be a string or a number, such as "
             "\"2020-01-01T00:00:00Z\" or 0");
    }
    // An incremental listing holds only what changed: nothing is ever inferred gone from it.
    if (const Entry* d = get(stage, "deletions"))
      fail(d->k, ctx +
                     " is incremental: its listings hold only what changed, so it never "
                     "infers deletions and takes no deletions settings");
    st.incremental = std::move(inc);
  }

  // Every stage table has a history table beside it, and views share the tables' namespace:
  // no two of these names may meet (SQLite names ignore case).
  static void check_warehouse_names(const PipelineSpec& spec) {
    std::map<std::string, std::string> taken;  // folded name -> what takes it
    for (const auto& st : spec.stages) {
      taken.emplace(folded(st.table), "the table of stage '" + st.name + "'");
      taken.emplace(folded(history_table_name(st.table)),
                    "the history table of stage '" + st.name + "'");
    }
    for (const auto& st : spec.stages) {
      std::string h = history_table_name(st.table);
      for (const auto& other : spec.stages)
        if (&other != &st && folded(other.table) == folded(h))
          throw ConfigError(other.pos, "stage '" + other.name + "' writes table '" + other.table +
                                           "', which is the history table of stage '" + st.name +
                                           "': rename one of the two tables");
    }
    for (const auto& v : spec.views) {
      if (auto it = taken.find(folded(v.name)); it != taken.end())
        throw ConfigError(
            v.pos, "view '" + v.name + "' has the name of " + it->second + ": rename the view");
      taken.emplace(folded(v.name), "view '" + v.name + "'");
    }
  }

  void parse_views(const YAML::Node& n, PipelineSpec& spec) {
    for (const Entry& v : entries(n, "views", {})) {
      ViewSpec view;
      view.name = v.key;
      view.pos = pos(v.k);
      if (!is_identifier(view.name))
        fail(v.k, "view name '" + view.name + "' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
      if (is_reserved_table_name(view.name))
        fail(v.k, "view name '" + view.name + "' is reserved: " + kReservedWhy);
      view.select = string(v.v, "a SELECT statement");
      std::string head = view.select.substr(0, view.select.find_first_of(" \t\n("));
      for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (head != "select" && head != "with")
        fail(v.v, "view '" + view.name + "' must be a SELECT (or WITH ... SELECT) statement");
      spec.views.push_back(std::move(view));
    }
  }

  void parse_stages(const YAML::Node& n, PipelineSpec& spec) {
    Entries es = entries(n, "stages", {});
    if (es.empty()) fail(n, "stages is empty (expected at least one stage)");
    std::vector<StageAux> aux(es.size());
    for (size_t i = 0; i < es.size(); ++i) {
      StageSpec st;
      parse_stage(es[i], spec, st, aux[i]);
      spec.stages.push_back(std::move(st));
    }
    std::vector<std::string> names;
    for (const auto& s : spec.stages) names.push_back(s.name);
    std::map<std::string, size_t> tables;  // folded name -> stage index
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      const StageSpec& st = spec.stages[i];
      if (auto [it, fresh] = tables.emplace(folded(st.table), i); !fresh) {
        const StageSpec& other = spec.stages[it->second];
        throw ConfigError(st.pos, "stage '" + st.name + "' writes table '" + st.table +
                                      "', which another stage writes too (stage '" + other.name +
                                      "' writes '" + other.table +
                                      "'; SQLite table names ignore case)");
      }
    }
    // Emit targets exist.
    for (size_t i = 0; i < spec.stages.size(); ++i)
      for (size_t j = 0; j < spec.stages[i].emit.size(); ++j) {
        const std::string& target = spec.stages[i].emit[j].stage;
        if (!spec.stage(target)) {
          std::string hint = closest(target, names);
          fail(aux[i].emit_nodes[j], "stage '" + spec.stages[i].name +
                                         "' emits to unknown stage '" + target + "'" +
                                         (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                                         " (stages: " + join(names) + ")");
        }
      }
    check_cycles(spec, aux);
    // Parents, roots and parameters.
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      const StageSpec& st = spec.stages[i];
      std::vector<std::pair<const StageSpec*, const EmitSpec*>> parents;
      for (const auto& p : spec.stages)
        for (const auto& em : p.emit)
          if (em.stage == st.name) parents.emplace_back(&p, &em);
      if (parents.empty()) {
        if (st.records_from)
          throw ConfigError(st.records_from_pos,
                            "stage '" + st.name + "' reads its records from message field '" +
                                *st.records_from +
                                "' of its parent (records_from), but no stage emits to it");
        if (aux[i].timezone_node && !st.schedule)
          fail(*aux[i].timezone_node, "timezone without a schedule in stage '" + st.name +
                                          "' (it names the zone whose wall clock the schedule "
                                          "follows; add schedule:)");
        if (st.inputs.empty() && st.event_fields.empty())
          fail(aux[i].name_node, "root stage '" + st.name +
                                     "' has no inputs and no event (no stage emits to it, so "
                                     "add inputs: or event: to say what its messages are)");
        std::vector<std::string> have;
        for (const auto& in : st.inputs) have.push_back(in.first);
        for (const auto& [field, param] : st.event_fields)
          if (std::find(have.begin(), have.end(), param) == have.end()) have.push_back(param);
        for (const auto& use : aux[i].params)
          if (std::find(have.begin(), have.end(), use.param) == have.end())
            throw ConfigError(use.pos, "parameter '" + use.param + "' used in the " + use.where +
                                           " of root stage '" + st.name +
                                           "' is not among its inputs (inputs: " + join(have) +
                                           ")");
      } else {
        const char* root_only = nullptr;
        const std::optional<YAML::Node>* where = nullptr;
        if (aux[i].schedule_node)
          root_only = "schedule", where = &aux[i].schedule_node;
        else if (aux[i].timezone_node)
          root_only = "timezone", where = &aux[i].timezone_node;
        else if (aux[i].inputs_node)
          root_only = "inputs", where = &aux[i].inputs_node;
        else if (aux[i].event_node)
          root_only = "event", where = &aux[i].event_node;
        if (root_only)
          fail(**where, std::string(root_only) + " is only allowed on root stages, and stage '" +
                            parents[0].first->name + "' emits to '" + st.name + "'");
        for (const auto& use : aux[i].params)
          for (const auto& [p, em] : parents) {
            bool given = std::any_of(em->fields.begin(), em->fields.end(),
                                     [&](const FieldSpec& f) { return f.name == use.param; });
            if (!given) {
              std::vector<std::string> gives;
              for (const auto& f : em->fields) gives.push_back(f.name);
              throw ConfigError(use.pos, "parameter '" + use.param + "' used in the " + use.where +
                                             " of stage '" + st.name +
                                             "' is not provided by the emit of stage '" + p->name +
                                             "' (it gives: " + join(gives) + ")");
            }
          }
      }
    }
  }

  void check_cycles(const PipelineSpec& spec, const std::vector<StageAux>& aux) {
    // 0 = unvisited, 1 = on the current path, 2 = done
    std::vector<int> state(spec.stages.size(), 0);
    std::vector<size_t> path;
    auto index = [&](const std::string& name) {
      for (size_t i = 0; i < spec.stages.size(); ++i)
        if (spec.stages[i].name == name) return i;
      return spec.stages.size();
    };
    std::function<void(size_t)> visit = [&](size_t i) {
      state[i] = 1;
      path.push_back(i);
      for (size_t j = 0; j < spec.stages[i].emit.size(); ++j) {
        size_t t = index(spec.stages[i].emit[j].stage);
        if (state[t] == 1) {
          std::string cycle;
          auto from = std::find(path.begin(), path.end(), t);
          for (auto it = from; it != path.end(); ++it) cycle += spec.stages[*it].name + " -> ";
          cycle += spec.stages[t].name;
          fail(aux[i].emit_nodes[j], "emits form a cycle: " + cycle);
        }
        if (state[t] == 0) visit(t);
      }
      path.pop_back();
      state[i] = 2;
    };
    for (size_t i = 0; i < spec.stages.size(); ++i)
      if (state[i] == 0) visit(i);
  }

  // A threshold value: a number, or a duration ("750s", "1h") in seconds. nullopt if neither.
  static std::optional<double> threshold_value(std::string_view text) {
    if (auto v = to_double(text); v && std::isfinite(*v)) return v;
    if (auto d = parse_duration(text)) return static_cast<double>(d->count()) / 1000.0;
    return std::nullopt;
  }

  void parse_alarms(const YAML::Node& n, PipelineSpec& spec) {
    if (!n.IsSequence()) fail(n, "expected a list of alarms, found " + found(n));
    std::vector<std::string> stage_names;
    for (const auto& s : spec.stages) stage_names.push_back(s.name);
    std::vector<std::string> metrics(kAlarmMetrics.begin(), kAlarmMetrics.end());
    for (const auto& item : n) {
      Entries es =
          entries(item, "alarm",
                  {"name", "metric", "stage", "statistic", "period", "evaluation_periods",
                   "datapoints_to_alarm", "comparison", "threshold", "treat_missing_data"});
      AlarmSpec a;
      a.pos = pos(item);
      const Entry* e = require(es, item, "name", "alarm");
      a.name = string(e->v, "an alarm name");
      if (!is_identifier(a.name)) fail(e->v, "alarm name '" + a.name + "' is not an identifier");
      for (const auto& other : spec.alarms)
        if (other.name == a.name) fail(e->v, "duplicate alarm name '" + a.name + "'");
      const std::string ctx = "alarm '" + a.name + "'";

      e = require(es, item, "metric", ctx);
      a.metric = string(e->v, "a metric name");
      // The original design's `duration_max` is CloudWatch's Maximum of Duration.
      const bool duration_max = a.metric == "duration_max";
      if (duration_max) {
        a.metric = "duration";
        a.statistic.kind = StatisticSpec::Kind::Maximum;
      } else if (std::find(metrics.begin(), metrics.end(), a.metric) == metrics.end()) {
        std::string hint = closest(a.metric, metrics);
        fail(e->v, "unknown metric '" + a.metric + "' in " + ctx +
                       (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                       " (expected one of: " + join(metrics) +
                       "; duration_max = duration with "
                       "statistic Maximum)");
      }

      if ((e = get(es, "stage"))) {
        a.stage = string(e->v, "a stage name");
        if (!spec.stage(a.stage)) {
          std::string hint = closest(a.stage, stage_names);
          fail(e->v, ctx + " watches unknown stage '" + a.stage + "'" +
                         (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                         " (stages: " + join(stage_names) +
                         "; leave stage out to watch the whole "
                         "pipeline)");
        }
      }

      if ((e = get(es, "statistic"))) {
        std::string text = string(e->v, "a statistic");
        std::optional<StatisticSpec> st = StatisticSpec::parse(trim(text));
        if (!st) {
          std::string hint = closest(text, {"Sum", "Maximum", "Minimum", "Average", "SampleCount"});
          fail(e->v, "unknown statistic '" + text + "' in " + ctx +
                         (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                         " (expected one of: Sum, Maximum, Minimum, Average, SampleCount, or a "
                         "percentile p0..p100 with up to two decimals such as p95 or p99.9)");
        }
        if (duration_max && st->kind != StatisticSpec::Kind::Maximum)
          fail(e->v,
               "metric duration_max is the Maximum of duration: write metric: duration "
               "with statistic: " +
                   st->name());
        a.statistic = *st;
      }

      const Entry* period = get(es, "period");
      if (period) {
        a.period = duration(period->v, "alarm period");
        if (a.period.count() % 1000 != 0)
          fail(period->v, "alarm period must be a whole number of seconds, found '" +
                              format_duration(a.period) + "'");
      }
      const Entry* n_entry = get(es, "evaluation_periods");
      if (n_entry)
        a.evaluation_periods =
            static_cast<int>(integer(n_entry->v, "evaluation_periods", 1, 100'000));
      a.datapoints_to_alarm = a.evaluation_periods;
      if ((e = get(es, "datapoints_to_alarm"))) {
        int64_t m = integer(e->v, "datapoints_to_alarm", 1, 100'000);
        if (m > a.evaluation_periods)
          fail(e->v, "datapoints_to_alarm must be between 1 and evaluation_periods (" +
                         std::to_string(a.evaluation_periods) + "), found " + std::to_string(m));
        a.datapoints_to_alarm = static_cast<int>(m);
      }
      // CloudWatch's own limit, and what bounds the samples kept for the alarm.
      if (a.period * a.evaluation_periods > std::chrono::hours(24))
        fail(n_entry ? n_entry->v : period->v,
             "period × evaluation_periods of " + ctx + " is " +
                 format_duration(a.period * a.evaluation_periods) +
                 ": it must be at most 1d, as in CloudWatch");

      const Entry* cmp = get(es, "comparison");
      if (cmp) {
        std::string text = string(cmp->v, "a comparison operator");
        std::optional<Comparison> c = parse_comparison(trim(text));
        if (!c) {
          std::vector<std::string> names;
          for (Comparison k :
               {Comparison::GreaterThanOrEqualToThreshold, Comparison::GreaterThanThreshold,
                Comparison::LessThanOrEqualToThreshold, Comparison::LessThanThreshold})
            names.emplace_back(comparison_name(k));
          std::string hint = closest(text, names);
          fail(cmp->v, "unknown comparison '" + text + "' in " + ctx +
                           (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                           " (expected one of: " + join(names) + ")");
        }
        a.comparison = *c;
      }
      e = require(es, item, "threshold", ctx);
      std::string t = string(e->v, "a threshold such as \">= 1\"");
      std::string_view tv = trim(t);
      std::optional<Comparison> op;
      size_t op_len = 0;
      for (Comparison c :
           {Comparison::GreaterThanOrEqualToThreshold, Comparison::LessThanOrEqualToThreshold,
            Comparison::GreaterThanThreshold, Comparison::LessThanThreshold})
        if (tv.starts_with(comparison_symbol(c))) {
          op = c;
          op_len = comparison_symbol(c).size();
          break;
        }
      std::optional<double> value = threshold_value(trim(tv.substr(op_len)));
      if (cmp) {
        if (op)
          fail(e->v, "threshold '" + t + "' of " + ctx +
                         " has its own operator and comparison: is given too (write a plain "
                         "number, or drop comparison:)");
        if (!value)
          fail(e->v, "expected a number for the threshold of " + ctx + ", found '" + t + "'");
      } else {
        if (!op || !value)
          fail(e->v,
               "expected a threshold such as \">= 1\" or \">= 750s\" (one of >=, >, <=, < and a "
               "number, durations in seconds), or comparison: with a number, found '" +
                   t + "'");
        a.comparison = *op;
      }
      a.threshold = *value;

      if ((e = get(es, "treat_missing_data"))) {
        std::string text = string(e->v, "how to treat missing data");
        std::optional<MissingData> m = parse_missing_data(trim(text));
        if (!m) {
          std::string hint = closest(text, {"missing", "notBreaching", "breaching", "ignore"});
          fail(e->v, "unknown treat_missing_data '" + text + "' in " + ctx +
                         (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                         " (expected one of: missing, notBreaching, breaching, ignore)");
        }
        a.treat_missing_data = *m;
      }
      spec.alarms.push_back(std::move(a));
    }
  }

  void parse_notify(const YAML::Node& n, PipelineSpec& spec) {
    if (!n.IsSequence()) fail(n, "expected a list of notifiers, found " + found(n));
    for (const auto& item : n) {
      Entries es = entries(item, "notify entry", {"type", "url", "command"});
      NotifySpec ns;
      ns.pos = pos(item);
      const Entry* e = require(es, item, "type", "notify entry");
      ns.type = string(e->v, "a notifier type");
      if (ns.type != "log" && ns.type != "webhook" && ns.type != "command") {
        std::string hint = closest(ns.type, {"log", "webhook", "command"});
        fail(e->v, "unknown notifier type '" + ns.type + "'" +
                       (hint.empty() ? "" : ": did you mean '" + hint + "'?") +
                       " (expected one of: log, webhook, command)");
      }
      const std::string ctx = "notifier of type " + ns.type;
      // Each setting belongs to one type: a stray one is a misunderstanding worth stopping on.
      for (auto [key, owner] : {std::pair{"url", "webhook"}, std::pair{"command", "command"}})
        if (const Entry* other = get(es, key); other && ns.type != owner)
          fail(other->k,
               std::string(key) + " is a setting of " + owner + " notifiers, not of a " + ctx);
      if (ns.type == "webhook") {
        e = require(es, item, "url", "notify entry");
        ns.url = string(e->v, "a webhook URL");
        // Never echo the URL: webhook URLs are bearer secrets.
        bool http = ns.url.starts_with("http://") || ns.url.starts_with("https://");
        if (!ns.url.empty() && (!http || ns.url.size() <= ns.url.find("//") + 2 ||
                                std::any_of(ns.url.begin(), ns.url.end(), [](char c) {
                                  return static_cast<unsigned char>(c) <= ' ';
                                })))
          fail(e->v, "webhook url must be an http:// or https:// URL (or empty to disable)");
      } else if (ns.type == "command") {
        e = require(es, item, "command", "notify entry");
        ns.command = string(e->v, "a shell command");
        if (trim(ns.command).empty())
          fail(e->v,
               "command of a notifier is empty (expected a shell command, run by /bin/sh -c)");
      }
      spec.notify.push_back(std::move(ns));
    }
  }

  std::string_view text_;
  std::string file_;
  const EnvLookup& env_;
};

}  // namespace

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

PipelineSpec load_pipeline_text(std::string_view yaml, const std::string& file_name,
                                const EnvLookup& env) {
  return Loader(yaml, file_name, env).load();
}

PipelineSpec load_pipeline_file(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(SourcePos{path, 0, 0}, "cannot read the pipeline file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(SourcePos{path, 0, 0}, "cannot read the pipeline file");
  return load_pipeline_text(ss.str(), path, env);
}

}  // namespace cascade
