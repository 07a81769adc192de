#include "store/postgres/pg_staging.h"

#include <cstring>

#include "core/error.h"
#include "core/hash.h"
#include "store/listing_blob.h"

namespace cascade::pg {
namespace {

constexpr const char* kSchema[] = {
    "CREATE TABLE IF NOT EXISTS cascade_listings(stage text NOT NULL, scope bigint NOT NULL, rows "
    "bytea NOT NULL, PRIMARY KEY(stage, scope))",
    "CREATE TABLE IF NOT EXISTS cascade_held_deletions(stage text NOT NULL, scope bigint NOT NULL, "
    "listing bigint NOT NULL, run_id bigint NOT NULL, PRIMARY KEY(stage, scope))",
    "CREATE TABLE IF NOT EXISTS cascade_cursors(stage text NOT NULL, scope bigint NOT NULL, value "
    "text NOT NULL, PRIMARY KEY(stage, scope))",
    "CREATE TABLE IF NOT EXISTS cascade_listing_crawls(stage text NOT NULL, scope bigint NOT NULL, "
    "crawl bigint NOT NULL, PRIMARY KEY(stage, scope))",
};

// uint64 scopes and fingerprints are stored as bigint with the same bits.
int64_t as_bigint(uint64_t v) {
  int64_t out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}
uint64_t as_uint(int64_t v) {
  uint64_t out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

// bytea parameters and results travel in text format as "\x" + hex.
std::string to_hex_bytea(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 + bytes.size() * 2);
  out += "\\x";
  for (unsigned char ch : bytes) {
    out += kDigits[ch >> 4];
    out += kDigits[ch & 15];
  }
  return out;
}

std::string from_hex_bytea(std::string_view text, std::string_view stage) {
  auto digit = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  if (!text.starts_with("\\x") || text.size() % 2 != 0)
    throw std::runtime_error("staging: the recorded listing of a scope of stage '" +
                             std::string(stage) + "' is not hex bytea (bytea_output must be hex)");
  std::string out;
  out.reserve((text.size() - 2) / 2);
  for (size_t i = 2; i < text.size(); i += 2) {
    int hi = digit(text[i]), lo = digit(text[i + 1]);
    if (hi < 0 || lo < 0)
      throw std::runtime_error("staging: the recorded listing of a scope of stage '" +
                               std::string(stage) + "' is damaged");
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

PgStaging::PgStaging(Conn& conn) : c_(conn) {
  Tx tx(c_);
  // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: one at a time.
  c_.query("SELECT pg_advisory_xact_lock(hashtext('cascade_schema'))");
  for (const char* sql : kSchema) c_.query(sql);
  tx.commit();
}

void PgStaging::create_stage(std::string_view) {}

void PgStaging::scope_rows(std::string_view stage, uint64_t scope, std::vector<StagedRow>& out) {
  if (c_.in_transaction()) {
    // The two-key lock space, apart from the one-key schema lock. The scope folded to 32 bits:
    // a collision only makes two listings wait for each other.
    auto folded = static_cast<int32_t>(static_cast<uint32_t>(scope ^ (scope >> 32)));
    auto name_key = static_cast<int32_t>(static_cast<uint32_t>(hash_bytes(stage)));
    Result lock = c_.query("SELECT pg_try_advisory_xact_lock($1::int, $2::int)",
                           static_cast<int64_t>(name_key), static_cast<int64_t>(folded));
    if (lock.text(0, 0) != "t")
      throw ContendedError("staging: another worker is applying a listing of stage '" +
                           std::string(stage) + "' now");
  }
  Result r = c_.query("SELECT rows FROM cascade_listings WHERE stage=$1 AND scope=$2", stage,
                      as_bigint(scope));
  if (r.rows() == 0) return;
  decode_listing(from_hex_bytea(r.text(0, 0), stage), stage, out);
}

void PgStaging::set_scope_rows(std::string_view stage, uint64_t scope,
                               std::span<const StagedRef> rows) {
  record_listing(stage, scope, rows, 0);
}

std::optional<ListingDigest> PgStaging::listing_digest(std::string_view stage, uint64_t scope) {
  Result r = c_.query(
      "SELECT substring(rows from 1 for 16) FROM cascade_listings WHERE stage=$1 "
      "AND scope=$2",
      stage, as_bigint(scope));
  if (r.rows() == 0) return std::nullopt;
  return listing_blob_digest(from_hex_bytea(r.text(0, 0), stage));
}

void PgStaging::record_listing(std::string_view stage, uint64_t scope,
                               std::span<const StagedRef> rows, uint64_t digest) {
  if (rows.empty()) {
    c_.query("DELETE FROM cascade_listings WHERE stage=$1 AND scope=$2", stage, as_bigint(scope));
    return;
  }
  c_.query(
      "INSERT INTO cascade_listings(stage, scope, rows) VALUES($1, $2, $3::bytea) ON "
      "CONFLICT(stage, scope) DO UPDATE SET rows=excluded.rows",
      stage, as_bigint(scope), to_hex_bytea(encode_listing(rows, digest)));
}

void PgStaging::scopes(std::string_view stage, std::vector<uint64_t>& out) {
  Result r = c_.query("SELECT scope FROM cascade_listings WHERE stage=$1", stage);
  for (int i = 0; i < r.rows(); ++i) out.push_back(as_uint(r.integer(i, 0)));
}

std::optional<HeldListing> PgStaging::held_listing(std::string_view stage, uint64_t scope) {
  Result r =
      c_.query("SELECT listing, run_id FROM cascade_held_deletions WHERE stage=$1 AND scope=$2",
               stage, as_bigint(scope));
  if (r.rows() == 0) return std::nullopt;
  return HeldListing{as_uint(r.integer(0, 0)), r.integer(0, 1)};
}

void PgStaging::held_scopes(std::string_view stage, std::vector<uint64_t>& out) {
  Result r = c_.query("SELECT scope FROM cascade_held_deletions WHERE stage=$1", stage);
  for (int i = 0; i < r.rows(); ++i) out.push_back(as_uint(r.integer(i, 0)));
}

void PgStaging::hold_listing(std::string_view stage, uint64_t scope, const HeldListing& listing) {
  c_.query(
      "INSERT INTO cascade_held_deletions(stage, scope, listing, run_id) VALUES($1, $2, $3, $4) "
      "ON CONFLICT(stage, scope) DO UPDATE SET listing=excluded.listing, run_id=excluded.run_id",
      stage, as_bigint(scope), as_bigint(listing.fingerprint), listing.run_id);
}

void PgStaging::release_listing(std::string_view stage, uint64_t scope) {
  c_.query("DELETE FROM cascade_held_deletions WHERE stage=$1 AND scope=$2", stage,
           as_bigint(scope));
}

std::optional<std::string> PgStaging::cursor(std::string_view stage, uint64_t scope) {
  Result r = c_.query("SELECT value FROM cascade_cursors WHERE stage=$1 AND scope=$2", stage,
                      as_bigint(scope));
  if (r.rows() == 0) return std::nullopt;
  return std::string(r.text(0, 0));
}

void PgStaging::set_cursor(std::string_view stage, uint64_t scope, std::string_view value) {
  c_.query(
      "INSERT INTO cascade_cursors(stage, scope, value) VALUES($1, $2, $3) ON CONFLICT(stage, "
      "scope) DO UPDATE SET value=excluded.value",
      stage, as_bigint(scope), value);
}

size_t PgStaging::clear_cursors(std::string_view stage) {
  return static_cast<size_t>(
      c_.query("DELETE FROM cascade_cursors WHERE stage=$1", stage).affected());
}

void PgStaging::stamp_scope(std::string_view stage, uint64_t scope, int64_t crawl) {
  c_.query(
      "INSERT INTO cascade_listing_crawls(stage, scope, crawl) VALUES($1, $2, $3) ON "
      "CONFLICT(stage, scope) DO UPDATE SET crawl=excluded.crawl WHERE "
      "cascade_listing_crawls.crawl < excluded.crawl",
      stage, as_bigint(scope), crawl);
}

void PgStaging::scopes_stamped_before(std::string_view stage, int64_t crawl,
                                      std::vector<uint64_t>& out) {
  Result r = c_.query(
      "SELECT l.scope FROM cascade_listings l LEFT JOIN cascade_listing_crawls c ON "
      "c.stage = l.stage AND c.scope = l.scope WHERE l.stage=$1 AND (c.crawl IS NULL OR c.crawl "
      "< $2)",
      stage, crawl);
  for (int i = 0; i < r.rows(); ++i) out.push_back(as_uint(r.integer(i, 0)));
}

std::optional<int64_t> PgStaging::scope_stamp(std::string_view stage, uint64_t scope) {
  Result r = c_.query("SELECT crawl FROM cascade_listing_crawls WHERE stage=$1 AND scope=$2", stage,
                      as_bigint(scope));
  if (r.rows() == 0) return std::nullopt;
  return r.integer(0, 0);
}

}  // namespace cascade::pg
