// PgStaging: the Staging contract (store/staging.h) on PostgreSQL, the same tables as on SQLite:
// cascade_listings(stage, scope, rows bytea) with the listing encoding of store/listing_blob.h,
// cascade_held_deletions and cascade_cursors, plus the crawl stamps in
// cascade_listing_crawls(stage, scope, crawl). Scopes are uint64 stored as bigint, bit for bit.
//
// Many workers: a unit of work that reads a listing (scope_rows() inside a transaction) takes a
// transaction-scoped advisory lock on (stage, scope) without waiting; when another worker's unit
// holds it (it is applying the same listing now), scope_rows() throws ContendedError, so the
// caller retries the message after that unit committed and compares with what it wrote. Two
// workers therefore never both write a listing from the same earlier state, and never wait on
// each other in a cycle for it.
//
// Not thread-safe: one PgStaging per connection, its owner thread.
#pragma once

#include "store/postgres/pg_conn.h"
#include "store/staging.h"

namespace cascade::pg {

class PgStaging final : public Staging {
 public:
  // Creates the tables if missing. Throws StorageError if the database cannot be used.
  explicit PgStaging(Conn& conn);

  void create_stage(std::string_view stage) override;
  bool keeps_crawl_stamps() const override { return true; }
  void scope_rows(std::string_view stage, uint64_t scope, std::vector<StagedRow>& out) override;
  void set_scope_rows(std::string_view stage, uint64_t scope,
                      std::span<const StagedRef> rows) override;
  void record_listing(std::string_view stage, uint64_t scope, std::span<const StagedRef> rows,
                      uint64_t digest) override;
  std::optional<ListingDigest> listing_digest(std::string_view stage, uint64_t scope) override;
  void scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  std::optional<HeldListing> held_listing(std::string_view stage, uint64_t scope) override;
  void held_scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  void hold_listing(std::string_view stage, uint64_t scope, const HeldListing& listing) override;
  void release_listing(std::string_view stage, uint64_t scope) override;
  std::optional<std::string> cursor(std::string_view stage, uint64_t scope) override;
  void set_cursor(std::string_view stage, uint64_t scope, std::string_view value) override;
  size_t clear_cursors(std::string_view stage) override;
  void stamp_scope(std::string_view stage, uint64_t scope, int64_t crawl) override;
  void scopes_stamped_before(std::string_view stage, int64_t crawl,
                             std::vector<uint64_t>& out) override;
  std::optional<int64_t> scope_stamp(std::string_view stage, uint64_t scope) override;

 private:
  Conn& c_;
};

}  // namespace cascade::pg
