// Staging: what each listing (the response of one request, its scope) produced last time: the
// keys with their content hashes, so that a re-sync tells new, changed, unchanged and gone
// records apart without reading the rows. It is the DynamoDB table of the AWS design; on SQLite
// the hashes live in the warehouse rows themselves (RowWrite::hash) and a listing is one record
// of its keys and hashes, written only when the listing changed. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
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

// What a listing was last recorded from: a digest of the response that produced it (the engine
// decides what goes into it) and how many rows it holds.
struct ListingDigest {
  uint64_t digest = 0;
  uint32_t rows = 0;
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

  // The rows the listing of `scope` produced when it was last recorded, appended to `out` in
  // key order (byte order of the key text); nothing for a listing never recorded.
  virtual void scope_rows(std::string_view stage, uint64_t scope, std::vector<StagedRow>& out) = 0;

  // Records what the listing of `scope` produced now (any order; keys unique), replacing the
  // earlier record; an empty listing removes it. Part of the caller's unit of work.
  virtual void set_scope_rows(std::string_view stage, uint64_t scope,
                              std::span<const StagedRef> rows) = 0;

  // set_scope_rows() that also records `digest` (0: none) with the listing, for
  // listing_digest(). A backend that keeps no digests records the rows alone.
  virtual void record_listing(std::string_view stage, uint64_t scope,
                              std::span<const StagedRef> rows, uint64_t digest) {
    (void)digest;
    set_scope_rows(stage, scope, rows);
  }

  // The digest the listing of `scope` was last recorded with, read without its rows: none when
  // it has none (never recorded, recorded without one, or a backend that keeps no digests). A
  // response whose digest equals it produces the recorded listing again, so the engine need not
  // read it. Takes no lock and may be called outside a unit of work.
  virtual std::optional<ListingDigest> listing_digest(std::string_view stage, uint64_t scope) {
    (void)stage;
    (void)scope;
    return std::nullopt;
  }

  // Every scope of the stage with a recorded listing, appended to `out` (in no order).
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

  // Incremental cursors: per scope, the value an incremental stage asks the vendor to list
  // from next time (the engine decides its text; on SQLite the canonical JSON of the value).
  // Any number of scopes per stage. Writes belong to the caller's unit of work, so a cursor
  // advances exactly when the effects of the response that moved it commit.

  // The cursor of `scope`, if one was recorded.
  virtual std::optional<std::string> cursor(std::string_view stage, uint64_t scope) = 0;
  // Records the cursor of `scope`, replacing any earlier one.
  virtual void set_cursor(std::string_view stage, uint64_t scope, std::string_view value) = 0;
  // Forgets every cursor of the stage (a full refresh); returns how many there were.
  virtual size_t clear_cursors(std::string_view stage) = 0;

  // Crawl stamps, for a store many workers share (Store::coordination() non-null), where no
  // worker applies a whole crawl and the orphan sweep after a complete crawl needs to know, per
  // scope, whether any worker applied its listing since that crawl began. The engine numbers
  // crawls (a Coordination marker) and stamps each listing it applies with the crawl number it
  // read after receiving the message. A store one process owns keeps no stamps (the engine
  // remembers the crawl's scopes in memory): there these throw std::logic_error.

  // Whether this staging keeps crawl stamps (the calls below work). A shared store whose staging
  // keeps none (the AWS one) gets no orphan sweep.
  virtual bool keeps_crawl_stamps() const { return false; }
  // Stamps `scope` with `crawl`; a stamp never goes down (a lower one changes nothing). Part of
  // the caller's unit of work, like the listing it stamps.
  virtual void stamp_scope(std::string_view stage, uint64_t scope, int64_t crawl);
  // Scopes of the stage with a recorded listing whose stamp is below `crawl` (or that were never
  // stamped), appended to `out` (in no order).
  virtual void scopes_stamped_before(std::string_view stage, int64_t crawl,
                                     std::vector<uint64_t>& out);
  // The stamp of `scope`, if it was ever stamped.
  virtual std::optional<int64_t> scope_stamp(std::string_view stage, uint64_t scope);
};

inline void Staging::stamp_scope(std::string_view, uint64_t, int64_t) {
  throw std::logic_error("staging: this store keeps no crawl stamps");
}
inline void Staging::scopes_stamped_before(std::string_view, int64_t, std::vector<uint64_t>&) {
  throw std::logic_error("staging: this store keeps no crawl stamps");
}
inline std::optional<int64_t> Staging::scope_stamp(std::string_view, uint64_t) {
  throw std::logic_error("staging: this store keeps no crawl stamps");
}

}  // namespace cascade
