// The record of one listing (Staging::set_scope_rows) as one byte string: its rows sorted by key,
// each as the key's length (4 bytes), the key's bytes and the hash (8 bytes), all little-endian.
// A listing recorded with the digest of the response that produced it starts with a 16-byte
// header: 0xFFFFFFFF (no key is that long), the digest (8 bytes) and the row count (4 bytes).
// One format for every backend that keeps a listing as one value (SQLite BLOB, PostgreSQL bytea),
// so a re-sync reads one value per request instead of one index entry per row.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/staging.h"

namespace cascade {

// The encoded listing of `rows` (any order; keys unique), sorted by the byte order of the keys,
// with the header carrying `digest` unless it is 0.
std::string encode_listing(std::span<const StagedRef> rows, uint64_t digest = 0);

// Appends the rows of an encoded listing to `out`, in their recorded (key) order. Throws
// std::runtime_error naming `stage` when the bytes are not a whole listing.
void decode_listing(std::string_view bytes, std::string_view stage, std::vector<StagedRow>& out);

// The digest and row count an encoded listing was recorded with (its first 16 bytes are enough),
// or none when it has no header.
std::optional<ListingDigest> listing_blob_digest(std::string_view bytes);

// How many leading bytes of an encoded listing listing_blob_digest() needs.
inline constexpr size_t kListingHeaderBytes = 16;

}  // namespace cascade
