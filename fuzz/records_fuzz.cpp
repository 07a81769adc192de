// libFuzzer target: arbitrary bytes as the response body of every stage of the reference
// pipeline. process_response may only refuse data with DataError; anything else is a finding.
// Every record it accepts must also satisfy the hashing invariants the staging table relies on.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "engine/plan.h"
#include "engine/processor.h"

using namespace cascade;

namespace {

[[noreturn]] void finding(const char* what, std::string_view detail) {
  std::fprintf(stderr, "FINDING: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// Defaults only: the harness must not depend on the shell's environment.
std::optional<std::string> no_env(std::string_view) {
  return std::nullopt;
}

const Plan& plan() {
  static const std::unique_ptr<Plan> p =
      std::make_unique<Plan>(load_pipeline_file(CASCADE_EXAMPLE_PIPELINE, no_env));
  return *p;
}

// A message carrying every parameter any stage of the example may reference.
const Value& message() {
  static const Value m = parse_json(R"({"branch":"Scranton","branch_id":1,"employee_id":7})");
  return m;
}

// canonical_json is a fixed point: parsing it back gives the same bytes and the same hash.
void check_canonical(const std::string& canon, uint64_t hash) {
  Value again;
  try {
    again = parse_json(canon);
  } catch (const std::exception& e) {
    finding("canonical JSON does not parse back", std::string(e.what()) + " in " + canon);
  }
  std::string canon2 = canonical_json(again);
  if (canon2 != canon) finding("canonical JSON is not stable", canon + " -> " + canon2);
  if (hash_bytes(canon2) != hash || hash_value(again) != hash)
    finding("hash changes after a canonical round trip", canon);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Plan& p = plan();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const auto& stage : p.stages()) {
    std::string body(input);  // process_response pads it in place
    try {
      Processed out = process_response(p, stage, message(), body);
      for (const auto& row : out.rows) {
        std::string json = canonical_json(row.image);
        if (row.hash != hash_bytes(json)) finding("row hash is not the hash of its json", json);
        check_canonical(json, row.hash);
        if (row.key != key_string(stage, row.image)) finding("row key mismatch", row.key);
      }
      for (const auto& [child, bodies] : out.children)
        for (const auto& b : bodies) check_canonical(b, hash_bytes(b));
    } catch (const DataError&) {
      // The documented refusal: the message goes to the DLQ with this reason.
    } catch (const std::exception& e) {
      finding("unexpected exception (not DataError)", e.what());
    }
  }
  // Any body the JSON parser accepts must round-trip canonically too, records path or not.
  try {
    Value v = parse_json(input);
    std::string canon = canonical_json(v);
    check_canonical(canon, hash_bytes(canon));
  } catch (const JsonError&) {
  } catch (const std::exception& e) {
    finding("parse_json threw something other than JsonError", e.what());
  }
  return 0;
}
