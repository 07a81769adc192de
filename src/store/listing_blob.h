// The record of one listing (Staging::set_scope_rows) as one byte string: its rows sorted by key,
// each as the key's length (4 bytes), the key's bytes and the hash (8 bytes), all little-endian.
// One format for every backend that keeps a listing as one value (SQLite BLOB, PostgreSQL bytea),
// so a re-sync reads one value per request instead of one index entry per row.
// Pure functions; thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/staging.h"

namespace cascade {

// The encoded listing of `rows` (any order; keys unique), sorted by the byte order of the keys.
std::string encode_listing(std::span<const StagedRef> rows);

// Appends the rows of an encoded listing to `out`, in their recorded (key) order. Throws
// std::runtime_error naming `stage` when the bytes are not a whole listing.
void decode_listing(std::string_view bytes, std::string_view stage, std::vector<StagedRow>& out);

}  // namespace cascade
