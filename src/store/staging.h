// Staging: the last known (key, hash) of every record of every stage, grouped by the scope
// (request) that produced it, so a re-sync can tell new, changed, unchanged and gone records
// apart. It is the DynamoDB table of the AWS design. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cascade {

struct StagedRow {
  std::string key;  // canonical JSON array of the key values, e.g. [3972,1235]
  uint64_t hash = 0;
};

// A row to write, borrowing its key from the caller.
struct StagedRef {
  std::string_view key;
  uint64_t hash = 0;
};

struct HeldListing {
  uint64_t fingerprint = 0;
  int64_t run_id = 0;
};

class Staging {
 public:
  virtual ~Staging() = default;

  // Declares a stage (idempotent).
  virtual void create_stage(std::string_view stage) = 0;

  // Live rows last written under `scope`, appended to `out`.
  virtual void scope_rows(std::string_view stage, uint64_t scope, std::vector<StagedRow>& out) = 0;

  // Hashes of live rows with the given keys, whatever their scope; missing keys are left out.
  virtual void get_hashes(std::string_view stage, std::span<const std::string_view> keys,
                          std::unordered_map<std::string, uint64_t>& out) = 0;

  // Inserts or replaces rows (live again if they were gone), under `scope`.
  virtual void upsert(std::string_view stage, uint64_t scope, std::span<const StagedRef> rows) = 0;

  // Conveniences over the two calls above for callers that own their keys.
  void get_hashes(std::string_view stage, const std::vector<std::string>& keys,
                  std::unordered_map<std::string, uint64_t>& out) {
    std::vector<std::string_view> views(keys.begin(), keys.end());
    get_hashes(stage, std::span<const std::string_view>(views), out);
  }
  void upsert(std::string_view stage, uint64_t scope, const std::vector<StagedRow>& rows) {
    std::vector<StagedRef> refs;
    refs.reserve(rows.size());
    for (const auto& r : rows) refs.push_back({r.key, r.hash});
    upsert(stage, scope, std::span<const StagedRef>(refs));
  }

  void mark_gone(std::string_view stage, const std::vector<std::string>& keys) {
    std::vector<std::string_view> views(keys.begin(), keys.end());
    mark_gone(stage, std::span<const std::string_view>(views));
  }

  // Marks rows gone: they no longer count as live until upserted again.
  virtual void mark_gone(std::string_view stage, std::span<const std::string_view> keys) = 0;

  // Number of live rows of the stage.
  virtual int64_t count(std::string_view stage) = 0;

  // Every scope of the stage that holds a row, live or gone, appended to `out` (in no order):
  // what the scope index alone can answer, without reading the rows.
  virtual void scopes(std::string_view stage, std::vector<uint64_t>& out) = 0;

  // Deletions held for confirmation: per scope, a fingerprint of the listing that would have
  // caused them (the engine decides what a fingerprint is) and the run that saw it. The rows
  // themselves stay live. Writes belong to the caller's unit of work, like every other effect
  // of a message.

  // The listing held for `scope`, if any.
  virtual std::optional<HeldListing> held_listing(std::string_view stage, uint64_t scope) = 0;
  // Scopes of the stage with a held listing, appended to `out`.
  virtual void held_scopes(std::string_view stage, std::vector<uint64_t>& out) = 0;
  // Holds `listing` for `scope`, replacing any earlier one.
  virtual void hold_listing(std::string_view stage, uint64_t scope, const HeldListing& listing) = 0;
  // Forgets the held listing of `scope` (nothing when there is none).
  virtual void release_listing(std::string_view stage, uint64_t scope) = 0;
};

}  // namespace cascade
