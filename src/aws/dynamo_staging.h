// Staging of the `aws:` storage: the engine's listing records (what each listing produced, held
// deletions, incremental cursors) as items of `{prefix}cascade_listings`, hash key the stage,
// range key `L/SCOPE/CHUNK` (a listing in the shared binary format of listing_blob.h, split in
// chunks below DynamoDB's item size), `H/SCOPE` (a held listing) or `C/SCOPE` (a cursor), SCOPE
// as 16 hex digits. Writes join the store's unit of work (the listing phase); reads see what the
// unit wrote. Not thread-safe: one owner thread.
#pragma once

#include <unordered_map>

#include "aws/dynamo_unit.h"
#include "store/staging.h"

namespace cascade::aws {

class DynamoStaging final : public Staging {
 public:
  DynamoStaging(DynamoTables& tables, UnitOfWork& unit) : tables_(tables), unit_(unit) {}

  void create_stage(std::string_view stage) override;
  void scope_rows(std::string_view stage, uint64_t scope, std::vector<StagedRow>& out) override;
  void set_scope_rows(std::string_view stage, uint64_t scope,
                      std::span<const StagedRef> rows) override;
  void scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  std::optional<HeldListing> held_listing(std::string_view stage, uint64_t scope) override;
  void held_scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  void hold_listing(std::string_view stage, uint64_t scope, const HeldListing& listing) override;
  void release_listing(std::string_view stage, uint64_t scope) override;
  std::optional<std::string> cursor(std::string_view stage, uint64_t scope) override;
  void set_cursor(std::string_view stage, uint64_t scope, std::string_view value) override;
  size_t clear_cursors(std::string_view stage) override;

  // Listings above this many bytes are split over several items (DynamoDB items hold 400 KB).
  static constexpr size_t kChunkBytes = 350 * 1024;

 private:
  // Items of the stage whose id starts with `prefix`, every attribute or only `projection`.
  std::vector<Value> query(std::string_view stage, std::string_view prefix, bool ids_only);
  void put(std::string_view stage, const std::string& id, const std::string& attributes);
  void remove(std::string_view stage, const std::string& id);
  // Every scope with a record of `kind` ("L" or "H"), overlay included.
  void scopes_of(std::string_view stage, std::string_view kind, std::vector<uint64_t>& out);

  DynamoTables& tables_;
  UnitOfWork& unit_;
  // Per listing: the most chunks this process may have written, so a shorter listing removes
  // every chunk past its own even before the earlier write is flushed.
  std::unordered_map<std::string, size_t> chunks_written_;
};

}  // namespace cascade::aws
