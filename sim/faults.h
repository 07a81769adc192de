// Faults: the fault plan of cascade-sim (quota 429s, 5xx, slow, hung, reset, truncated, malformed,
// wrong-shaped, HTML and huge responses), replaceable at run time. Thread-safe.
//
// Every decision is a draw from hash(seed, kind, path, n) where n counts the requests to that path
// since the plan was (re)set, so the same sequence of requests meets the same faults.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "sim/api.h"

namespace cascade::sim {

// The kinds, in the order a request is tested against them (the first that fires wins; slow
// combines with any of them except hang).
enum class FaultKind {
  quota,
  hang,
  reset,
  http5xx,
  html,
  truncate,
  malformed,
  wrong_shape,
  huge,
  slow,
};
inline constexpr int kFaultKinds = 10;
// "quota", "hang", "reset", "5xx", "html", "truncate", "malformed", "wrong_shape", "huge", "slow".
const char* fault_name(FaultKind k);

// The wrong_shape variants; `any` draws one per response.
enum class ShapeVariant { any, id_string, result_missing, null_list, number_record };
const char* shape_name(ShapeVariant v);

// One probabilistic kind. An empty path means every vendor path (/branches, /employees, /sales).
struct FaultRule {
  double p = 0;
  std::string path;
};

struct QuotaRule {
  int64_t limit = 0;  // requests per window; 0 = no quota
  Duration per{1000};
  std::string path;
  // Fixed: a window opens with the first request after the last one closed and admits `limit`
  // requests. Sliding: any `per` span admits `limit` requests (the vendor counts the requests
  // accepted in the last `per`), so a burst at the end of one window cannot borrow the next.
  bool sliding = false;
};

// What the plan injects; the JSON form is what `--faults` and `POST /admin/faults` take:
//   {"seed":7, "quota":{"limit":100,"per":"1s","path":"/sales","window":"sliding"} or "100/1s",
//    "5xx":{"p":0.1} or 0.1, "slow":{"p":0.2,"min_ms":50,"max_ms":500}, "hang":..., "reset":...,
//    "truncate":..., "malformed":..., "wrong_shape":{"p":1,"variant":"id_string"}, "html":...,
//    "huge":{"p":0.01,"mb":8}}
struct FaultConfig {
  std::optional<uint64_t> seed;  // unset: the simulator's --seed
  QuotaRule quota;
  std::array<FaultRule, kFaultKinds> rules;  // indexed by FaultKind; rules[quota] is unused
  int64_t slow_min_ms = 50, slow_max_ms = 500;
  ShapeVariant shape = ShapeVariant::any;
  double huge_mb = 8;

  FaultRule& rule(FaultKind k) { return rules[static_cast<size_t>(k)]; }
  const FaultRule& rule(FaultKind k) const { return rules[static_cast<size_t>(k)]; }
  bool empty() const;
};

// Parses the JSON form. Throws std::invalid_argument naming the offending member (unknown kind,
// probability outside 0..1, path other than the three vendor paths, quota window outside 1s..1d).
FaultConfig parse_fault_config(std::string_view json);
// Parses a quota spec "N/WINDOW" (e.g. "100/1s", "10000/1d"); throws std::invalid_argument.
QuotaRule parse_quota(std::string_view spec);
// The JSON form of a config (only the kinds that are set), as GET /admin/faults shows it.
std::string fault_config_json(const FaultConfig& c);

// A uniform draw in [0, 1) from hash(seed, kind, path, n, salt). Pure.
double fault_draw(uint64_t seed, FaultKind kind, std::string_view path, uint64_t n,
                  uint64_t salt = 0);

// The body mutations, exposed for tests. Pure; `n` picks among the variants.
// A syntactically broken copy of a JSON object body (missing closing brace or a stray byte).
std::string malformed_body(std::string_view body, uint64_t n);
// A valid JSON body of the wrong shape; throws cascade::JsonError if body is not valid JSON.
std::string wrong_shape_body(std::string_view body, ShapeVariant v);
// body (a JSON object) padded with an extra "padding" member to at least `bytes` bytes.
std::string huge_body(std::string_view body, size_t bytes);

class Faults final : public FaultPlan {
 public:
  // default_seed is used when the config has none. clock drives quota windows and must outlive
  // this object.
  Faults(FaultConfig cfg, uint64_t default_seed, const Clock& clock);

  // Quota first (a 429, handler skipped), then at most one of hang, reset, 5xx, html, truncate,
  // malformed, wrong_shape, huge, plus slow on top. Body faults spoil only 200 answers. Never
  // throws for any request; an empty plan costs one atomic load.
  void serve(const HttpRequest& req, HttpResponse& res, const ApiHandler& handler) override;
  // GET shows the plan, POST replaces it with the JSON body (400 on a bad body), DELETE clears
  // it. Replacing or clearing restarts the request counters and the quota window.
  bool admin(const HttpRequest& req, HttpResponse& res) override;
  // {"total":N,"kinds":{"5xx":{"/sales":N,...},...}}: injected faults since start.
  std::string stats_json() const override;

  // Installs cfg (assumed valid, as parse_fault_config returns it); restarts counters and window.
  void replace(FaultConfig cfg);
  // The plan in force, with its seed filled in.
  FaultConfig config() const;

 private:
  void record(FaultKind k, const std::string& path);

  const uint64_t default_seed_;
  const Clock& clock_;
  std::atomic<bool> active_{false};  // the plan injects something
  mutable std::mutex mu_;
  std::shared_ptr<const FaultConfig> cfg_;
  std::map<std::string, uint64_t> counters_;  // requests per path since the plan was set
  int64_t window_start_ms_ = -1;
  int64_t window_used_ = 0;
  std::deque<int64_t> accepted_ms_;  // sliding quota: when each request of the last `per` came
  std::map<std::string, std::map<std::string, uint64_t>> injected_;  // kind -> path -> count
};

}  // namespace cascade::sim
