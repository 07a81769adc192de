#include "sim/faults.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <vector>

#include "core/duration.h"
#include "core/hash.h"
#include "core/json.h"

namespace cascade::sim {
namespace {

constexpr const char* kPaths[] = {"/branches", "/employees", "/sales"};
constexpr int64_t kMaxSlowMs = 10 * 60 * 1000;

// Salts of the secondary draws of one request, so each choice is independent of the p draw.
enum Salt : uint64_t { kFire = 0, kVariant = 1, kExtra = 2 };

bool is_vendor_path(std::string_view p) {
  for (const char* v : kPaths)
    if (p == v) return true;
  return false;
}

bool applies(const FaultRule& r, const std::string& path) {
  return r.p > 0 && (r.path.empty() || r.path == path);
}

[[noreturn]] void bad(const std::string& msg) {
  throw std::invalid_argument(msg);
}

double number(const Value& v, const std::string& what) {
  if (!v.is_number()) bad(what + " must be a number");
  return v.as_number();
}

int64_t integer(const Value& v, const std::string& what) {
  if (v.is_int()) return v.as_int();
  if (v.is_double() && v.as_double() == std::floor(v.as_double()) &&
      std::fabs(v.as_double()) < 9e15)
    return static_cast<int64_t>(v.as_double());
  bad(what + " must be an integer");
}

std::string path_of(const Value& v, const std::string& what) {
  if (!v.is_string() || !is_vendor_path(v.as_string()))
    bad(what + ".path must be one of /branches, /employees, /sales");
  return v.as_string();
}

Duration quota_window(std::string_view text, const std::string& what) {
  const auto d = parse_duration(text);
  if (!d) bad(fmt::format("{}: '{}' is not a duration (e.g. 1s, 15m, 1h, 1d)", what, text));
  if (*d < std::chrono::seconds(1) || *d > std::chrono::hours(24))
    bad(fmt::format("{}: the window must be between 1s and 1d", what));
  return *d;
}

const char* const kShapeNames[] = {"any", "id_string", "result_missing", "null_list",
                                   "number_record"};

// Byte offsets of structural commas (outside strings) in a JSON text.
std::vector<size_t> structural_commas(std::string_view s) {
  std::vector<size_t> out;
  bool in_str = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (in_str) {
      if (ch == '\\')
        ++i;
      else if (ch == '"')
        in_str = false;
    } else if (ch == '"') {
      in_str = true;
    } else if (ch == ',') {
      out.push_back(i);
    }
  }
  return out;
}

// The record list of a vendor response: `result` if it is an array, else the first array member
// of `result`. nullptr if there is none.
Value* record_list(Value& root) {
  Value* result = root.find("result");
  if (!result) return nullptr;
  if (result->is_array()) return result;
  if (result->is_object())
    for (auto& [k, v] : result->as_object())
      if (v.is_array()) return &v;
  return nullptr;
}

constexpr std::string_view kHtml502 =
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
    "Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
constexpr std::string_view kHtml503 =
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>"
    "\r\n</body>\r\n</html>\r\n";

}  // namespace

const char* fault_name(FaultKind k) {
  static const char* const names[kFaultKinds] = {"quota", "hang",     "reset",     "5xx",
                                                 "html",  "truncate", "malformed", "wrong_shape",
                                                 "huge",  "slow"};
  return names[static_cast<int>(k)];
}

const char* shape_name(ShapeVariant v) {
  return kShapeNames[static_cast<int>(v)];
}

bool FaultConfig::empty() const {
  if (quota.limit > 0) return false;
  for (const FaultRule& r : rules)
    if (r.p > 0) return false;
  return true;
}

QuotaRule parse_quota(std::string_view spec) {
  const size_t slash = spec.find('/');
  if (slash == std::string_view::npos || slash == 0)
    bad(fmt::format("quota '{}' must be N/WINDOW, e.g. 100/1s or 10000/1d", spec));
  QuotaRule q;
  for (char ch : spec.substr(0, slash)) {
    if (ch < '0' || ch > '9' || q.limit > 1'000'000'000'000)
      bad(fmt::format("quota '{}': N must be a positive integer", spec));
    q.limit = q.limit * 10 + (ch - '0');
  }
  if (q.limit < 1) bad(fmt::format("quota '{}': N must be a positive integer", spec));
  q.per = quota_window(spec.substr(slash + 1), "quota");
  return q;
}

FaultConfig parse_fault_config(std::string_view json) {
  Value root;
  try {
    root = parse_json(json);
  } catch (const JsonError& e) {
    bad(std::string("fault plan is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) bad("fault plan must be a JSON object");
  FaultConfig c;
  for (const auto& [key, v] : root.as_object()) {
    if (key == "seed") {
      const int64_t s = integer(v, "seed");
      if (s < 0) bad("seed must be >= 0");
      c.seed = static_cast<uint64_t>(s);
      continue;
    }
    if (key == "quota") {
      if (v.is_string()) {
        c.quota = parse_quota(v.as_string());
        continue;
      }
      if (!v.is_object()) bad("quota must be \"N/WINDOW\" or {requests, per, path}");
      c.quota.limit = 0;
      for (const auto& [k, x] : v.as_object()) {
        if (k == "requests" || k == "limit") {
          c.quota.limit = integer(x, "quota." + k);
        } else if (k == "per") {
          if (!x.is_string()) bad("quota.per must be a duration such as \"1s\" or \"1d\"");
          c.quota.per = quota_window(x.as_string(), "quota.per");
        } else if (k == "path") {
          c.quota.path = path_of(x, "quota");
        } else if (k == "window") {
          if (!x.is_string() || (x.as_string() != "fixed" && x.as_string() != "sliding"))
            bad("quota.window must be \"fixed\" or \"sliding\"");
          c.quota.sliding = x.as_string() == "sliding";
        } else {
          bad("quota: unknown member '" + k + "' (requests, per, path, window)");
        }
      }
      if (c.quota.limit < 1) bad("quota.requests must be a positive integer");
      continue;
    }
    int kind = -1;
    for (int k = 1; k < kFaultKinds; ++k)
      if (key == fault_name(static_cast<FaultKind>(k))) kind = k;
    if (kind < 0)
      bad("unknown fault kind '" + key +
          "' (seed, quota, 5xx, slow, hang, reset, truncate, malformed, wrong_shape, html, huge)");
    const FaultKind fk = static_cast<FaultKind>(kind);
    FaultRule& r = c.rule(fk);
    if (v.is_number()) {
      r.p = v.as_number();
    } else if (v.is_object()) {
      bool has_p = false;
      for (const auto& [k, x] : v.as_object()) {
        if (k == "p") {
          r.p = number(x, key + ".p");
          has_p = true;
        } else if (k == "path") {
          r.path = path_of(x, key);
        } else if (fk == FaultKind::slow && (k == "min_ms" || k == "max_ms")) {
          const int64_t ms = integer(x, key + "." + k);
          if (ms < 0 || ms > kMaxSlowMs) bad(key + "." + k + " must be in 0..600000");
          (k == "min_ms" ? c.slow_min_ms : c.slow_max_ms) = ms;
        } else if (fk == FaultKind::wrong_shape && k == "variant") {
          bool found = false;
          for (int i = 0; i < 5; ++i)
            if (x.is_string() && x.as_string() == kShapeNames[i]) {
              c.shape = static_cast<ShapeVariant>(i);
              found = true;
            }
          if (!found)
            bad("wrong_shape.variant must be one of any, id_string, result_missing, null_list, "
                "number_record");
        } else if (fk == FaultKind::huge && k == "mb") {
          c.huge_mb = number(x, "huge.mb");
          if (!(c.huge_mb > 0 && c.huge_mb <= 1024)) bad("huge.mb must be in (0, 1024]");
        } else {
          bad(key + ": unknown member '" + k + "'");
        }
      }
      if (!has_p) bad(key + ".p is required");
    } else {
      bad(key + " must be a probability or an object with p");
    }
    if (!(r.p >= 0 && r.p <= 1)) bad(key + ".p must be a probability in 0..1");
  }
  if (c.slow_min_ms > c.slow_max_ms) bad("slow.min_ms must not exceed slow.max_ms");
  return c;
}

std::string fault_config_json(const FaultConfig& c) {
  Object o;
  if (c.seed) o.emplace_back("seed", static_cast<int64_t>(*c.seed));
  if (c.quota.limit > 0) {
    Object q;
    q.emplace_back("requests", c.quota.limit);
    q.emplace_back("per", format_duration(c.quota.per));
    if (!c.quota.path.empty()) q.emplace_back("path", c.quota.path);
    if (c.quota.sliding) q.emplace_back("window", "sliding");
    o.emplace_back("quota", Value(std::move(q)));
  }
  for (int k = 1; k < kFaultKinds; ++k) {
    const FaultKind fk = static_cast<FaultKind>(k);
    const FaultRule& r = c.rule(fk);
    if (r.p <= 0) continue;
    Object x;
    x.emplace_back("p", r.p);
    if (!r.path.empty()) x.emplace_back("path", r.path);
    if (fk == FaultKind::slow) {
      x.emplace_back("min_ms", c.slow_min_ms);
      x.emplace_back("max_ms", c.slow_max_ms);
    } else if (fk == FaultKind::wrong_shape) {
      x.emplace_back("variant", shape_name(c.shape));
    } else if (fk == FaultKind::huge) {
      x.emplace_back("mb", c.huge_mb);
    }
    o.emplace_back(fault_name(fk), Value(std::move(x)));
  }
  return to_json(Value(std::move(o)));
}

double fault_draw(uint64_t seed, FaultKind kind, std::string_view path, uint64_t n, uint64_t salt) {
  std::string buf(8 * 4 + path.size(), '\0');
  const uint64_t words[4] = {seed, static_cast<uint64_t>(kind), n, salt};
  std::memcpy(buf.data(), words, sizeof words);
  std::memcpy(buf.data() + sizeof words, path.data(), path.size());
  return static_cast<double>(hash_bytes(buf) >> 11) * 0x1.0p-53;
}

std::string malformed_body(std::string_view body, uint64_t n) {
  std::string out(body);
  const std::vector<size_t> commas = structural_commas(body);
  if (n % 2 == 1 && !commas.empty()) {
    // A stray byte where a member or element must start: no parser, however lenient, takes it.
    size_t at = commas.back();
    for (size_t c : commas)
      if (c >= body.size() / 2) {
        at = c;
        break;
      }
    out.insert(at + 1, 1, '@');
    return out;
  }
  const size_t brace = out.rfind('}');
  if (brace == std::string::npos) return out + "{";
  out.erase(brace, 1);
  return out;
}

std::string wrong_shape_body(std::string_view body, ShapeVariant v) {
  Value root = parse_json(body);
  if (!root.is_object()) root = Value(Object{});
  Value* list = record_list(root);
  switch (v) {
    case ShapeVariant::any:
    case ShapeVariant::id_string: {
      bool changed = false;
      if (list)
        for (Value& rec : list->as_array())
          if (Value* id = rec.find("id"); id && id->is_int()) {
            *id = Value(std::to_string(id->as_int()));
            changed = true;
          }
      if (!changed) {
        Object rec;
        rec.emplace_back("id", "3972");
        if (list)
          list->as_array().emplace_back(std::move(rec));
        else
          root.set("result", Value(Array{Value(std::move(rec))}));
      }
      break;
    }
    case ShapeVariant::result_missing: {
      Object& o = root.as_object();
      bool renamed = false;
      for (auto& [k, x] : o)
        if (k == "result") {
          k = "data";
          renamed = true;
        }
      if (!renamed) root.set("data", Value(Array{}));
      break;
    }
    case ShapeVariant::null_list:
      if (list)
        *list = Value(nullptr);
      else
        root.set("result", Value(nullptr));
      break;
    case ShapeVariant::number_record:
      if (list && !list->as_array().empty()) {
        Value& first = list->as_array().front();
        const Value* id = first.find("id");
        first = Value(id && id->is_int() ? id->as_int() : int64_t{3972});
      } else if (list) {
        list->as_array().emplace_back(int64_t{3972});
      } else {
        root.set("result", Value(Array{Value(int64_t{3972})}));
      }
      break;
  }
  return to_json(root);
}

std::string huge_body(std::string_view body, size_t bytes) {
  std::string out(body);
  if (out.size() >= bytes) return out;
  const size_t brace = out.rfind('}');
  if (brace == std::string::npos) return out;
  size_t before = brace;
  while (before > 0 && (out[before - 1] == ' ' || out[before - 1] == '\n')) --before;
  const bool empty_object = before > 0 && out[before - 1] == '{';
  std::string pad = empty_object ? "\"padding\":\"" : ",\"padding\":\"";
  const size_t fixed = out.size() + pad.size() + 1;
  pad.append(bytes > fixed ? bytes - fixed : 0, 'x');
  pad += '"';
  out.insert(brace, pad);
  return out;
}

Faults::Faults(FaultConfig cfg, uint64_t default_seed, const Clock& clock)
    : default_seed_(default_seed), clock_(clock) {
  replace(std::move(cfg));
}

void Faults::replace(FaultConfig cfg) {
  auto next = std::make_shared<const FaultConfig>(std::move(cfg));
  std::lock_guard lock(mu_);
  active_.store(!next->empty(), std::memory_order_relaxed);
  cfg_ = std::move(next);
  counters_.clear();
  window_start_ms_ = -1;
  window_used_ = 0;
  accepted_ms_.clear();
}

FaultConfig Faults::config() const {
  std::lock_guard lock(mu_);
  FaultConfig c = *cfg_;
  if (!c.seed) c.seed = default_seed_;
  return c;
}

void Faults::record(FaultKind k, const std::string& path) {
  std::lock_guard lock(mu_);
  ++injected_[fault_name(k)][path];
}

std::string Faults::stats_json() const {
  std::lock_guard lock(mu_);
  std::string out = "{\"kinds\":{";
  uint64_t total = 0;
  bool first_kind = true;
  for (const auto& [kind, by_path] : injected_) {
    if (!first_kind) out += ',';
    first_kind = false;
    append_json_string(kind, out);
    out += ":{";
    bool first = true;
    for (const auto& [path, n] : by_path) {
      if (!first) out += ',';
      first = false;
      append_json_string(path, out);
      fmt::format_to(std::back_inserter(out), ":{}", n);
      total += n;
    }
    out += '}';
  }
  fmt::format_to(std::back_inserter(out), "}},\"total\":{}}}", total);
  return out;
}

bool Faults::admin(const HttpRequest& req, HttpResponse& res) {
  if (req.method == "POST" || req.method == "PUT") {
    try {
      replace(parse_fault_config(req.body));
    } catch (const std::invalid_argument& e) {
      res.status = 400;
      res.body = "{\"error\":";
      append_json_string(e.what(), res.body);
      res.body += '}';
      return true;
    }
  } else if (req.method == "DELETE") {
    replace(FaultConfig{});
  } else if (req.method != "GET" && req.method != "HEAD") {
    res.status = 405;
    res.body = R"({"error":"use GET, POST or DELETE /admin/faults"})";
    return true;
  }
  res.body = fault_config_json(config());
  return true;
}

void Faults::serve(const HttpRequest& req, HttpResponse& res, const ApiHandler& handler) {
  // No plan: one relaxed load, so a fault-free simulator serves benchmarks at full speed.
  if (!active_.load(std::memory_order_relaxed)) {
    handler(res);
    return;
  }
  const std::string& path = req.path;
  std::shared_ptr<const FaultConfig> cfg;
  uint64_t n = 0;
  bool quota_on = false, over_quota = false;
  int64_t limit = 0, remaining = 0, reset_ms = 0, now_ms = 0;
  {
    std::lock_guard lock(mu_);
    cfg = cfg_;
    n = counters_[path]++;
    const QuotaRule& q = cfg->quota;
    if (q.limit > 0 && (q.path.empty() || q.path == path)) {
      quota_on = true;
      now_ms = to_millis(clock_.now());
      const int64_t per = q.per.count();
      limit = q.limit;
      if (q.sliding) {
        while (!accepted_ms_.empty() && accepted_ms_.front() <= now_ms - per)
          accepted_ms_.pop_front();
        // Rejected requests do not count: a client hammering through a 429 burns no quota.
        if (static_cast<int64_t>(accepted_ms_.size()) < q.limit)
          accepted_ms_.push_back(now_ms);
        else
          over_quota = true;
        remaining = q.limit - static_cast<int64_t>(accepted_ms_.size());
        // When the oldest counted request leaves the window, a request is admitted again.
        reset_ms = std::max<int64_t>(1, accepted_ms_.front() + per - now_ms);
      } else {
        if (window_start_ms_ < 0 || now_ms >= window_start_ms_ + per) {
          window_start_ms_ = now_ms;
          window_used_ = 0;
        }
        // Rejected requests do not count: a client hammering through a 429 burns no quota.
        if (window_used_ < q.limit)
          ++window_used_;
        else
          over_quota = true;
        remaining = q.limit - window_used_;
        reset_ms = window_start_ms_ + per - now_ms;
      }
    }
  }
  const uint64_t seed = cfg->seed.value_or(default_seed_);
  auto draw = [&](FaultKind k, uint64_t salt) { return fault_draw(seed, k, path, n, salt); };

  if (over_quota) {
    const int64_t secs = (reset_ms + 999) / 1000;
    res.status = 429;
    res.body = fmt::format(
        R"({{"error":"quota exceeded: {} requests per {}; the window reopens in {} s"}})", limit,
        format_duration(cfg->quota.per), secs);
    res.headers.emplace_back("Retry-After", std::to_string(secs));
    record(FaultKind::quota, path);
  } else {
    FaultKind chosen = FaultKind::quota;  // quota = none of the others fired
    for (FaultKind k :
         {FaultKind::hang, FaultKind::reset, FaultKind::http5xx, FaultKind::html,
          FaultKind::truncate, FaultKind::malformed, FaultKind::wrong_shape, FaultKind::huge})
      if (applies(cfg->rule(k), path) && draw(k, kFire) < cfg->rule(k).p) {
        chosen = k;
        break;
      }
    bool injected = true;
    switch (chosen) {
      case FaultKind::hang:
        res.hang = true;
        break;
      case FaultKind::reset:
        if (draw(chosen, kVariant) < 0.5) {
          res.reset_after = 0;
        } else {
          handler(res);
          // Past the ~120-byte head, into the body when there is one.
          res.reset_after = 120 + static_cast<int64_t>(res.body.size() / 2);
        }
        break;
      case FaultKind::http5xx: {
        static constexpr int kStatus[] = {500, 502, 503};
        res.status = kStatus[static_cast<int>(draw(chosen, kVariant) * 3)];
        res.body = fmt::format(R"({{"error":"simulated server error {}"}})", res.status);
        if (res.status == 503 && draw(chosen, kExtra) < 0.5)
          res.headers.emplace_back("Retry-After", "1");
        break;
      }
      case FaultKind::html: {
        const bool is502 = draw(chosen, kVariant) < 0.5;
        res.status = is502 ? 502 : 503;
        res.content_type = "text/html";
        res.body = is502 ? kHtml502 : kHtml503;
        break;
      }
      case FaultKind::truncate:
      case FaultKind::malformed:
      case FaultKind::wrong_shape:
      case FaultKind::huge:
        handler(res);
        // Only a real answer is spoiled: an error body stays what the handler said.
        if (res.status != 200 || res.stream) {
          injected = false;
        } else if (chosen == FaultKind::truncate) {
          res.truncate_body = static_cast<int64_t>(static_cast<double>(res.body.size()) *
                                                   (0.1 + 0.8 * draw(chosen, kVariant)));
        } else if (chosen == FaultKind::malformed) {
          res.body = malformed_body(res.body, static_cast<uint64_t>(draw(chosen, kVariant) * 2));
        } else if (chosen == FaultKind::wrong_shape) {
          ShapeVariant v = cfg->shape;
          if (v == ShapeVariant::any)
            v = static_cast<ShapeVariant>(1 + static_cast<int>(draw(chosen, kVariant) * 4));
          res.body = wrong_shape_body(res.body, v);
        } else {
          res.body = huge_body(res.body, static_cast<size_t>(cfg->huge_mb * 1024 * 1024));
        }
        break;
      default:
        injected = false;
        handler(res);
    }
    if (injected) record(chosen, path);
    const FaultRule& slow = cfg->rule(FaultKind::slow);
    if (chosen != FaultKind::hang && applies(slow, path) && draw(FaultKind::slow, kFire) < slow.p) {
      const int64_t span = cfg->slow_max_ms - cfg->slow_min_ms + 1;
      res.delay = std::chrono::milliseconds(
          cfg->slow_min_ms +
          std::min(span - 1, static_cast<int64_t>(draw(FaultKind::slow, kVariant) *
                                                  static_cast<double>(span))));
      record(FaultKind::slow, path);
    }
  }
  if (quota_on) {
    const int64_t secs = (reset_ms + 999) / 1000;
    const std::string lim = std::to_string(limit), rem = std::to_string(remaining),
                      reset = std::to_string(secs);
    res.headers.emplace_back("RateLimit-Limit", lim);
    res.headers.emplace_back("RateLimit-Remaining", rem);
    res.headers.emplace_back("RateLimit-Reset", reset);
    res.headers.emplace_back("X-RateLimit-Limit", lim);
    res.headers.emplace_back("X-RateLimit-Remaining", rem);
    // The X- form is an absolute Unix time, as GitHub and most vendors send it.
    res.headers.emplace_back("X-RateLimit-Reset", std::to_string((now_ms + reset_ms + 999) / 1000));
  }
}

}  // namespace cascade::sim
