// Column naming: turns API field names, which may be anything JSON allows, into column names
// every SQL backend accepts as quoted identifiers, one distinct column per field.
//
// The rule (documented for users in README.md, "Field names and columns"):
//   1. A field name is its own column name when it is non-empty valid UTF-8 without control
//      characters, at most kMaxBytes bytes, and not taken.
//   2. Otherwise it is sanitized: the empty name becomes `_empty`; each control byte (0x00-0x1F,
//      0x7F) and each byte of invalid UTF-8 becomes `_xHH` (hex); a name still longer than
//      kMaxBytes keeps its first bytes (whole characters) and ends in `_` + 8 hex digits of a
//      hash of the whole field name.
//   3. A name in cascade's own space (`_cascade` or `_cascade_...`, ASCII case ignored) is
//      prefixed with `field` (`_cascade_x` becomes `field_cascade_x`).
//   4. A name that is taken (equal, ignoring ASCII case as SQLite does, to an earlier column or
//      to one of cascade's own column names) gets the first free suffix `__2`, `__3`, ...
// Names are taken in the order fields first appear, and a field keeps its column for good: the
// catalog table (cascade_columns) records which field each column holds.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_set>

namespace cascade {

// PostgreSQL's identifier limit (NAMEDATALEN - 1), the tightest of the backends.
constexpr size_t kMaxColumnNameBytes = 63;

// Fields beyond this many columns in one table go to the overflow column as JSON (SQLite allows
// 2000 columns, PostgreSQL 1600).
constexpr size_t kMaxTableColumns = 1000;

// The JSON column holding fields that no longer fit as columns.
constexpr std::string_view kOverflowColumn = "_overflow";

// What step 3 of the rule puts before a name in cascade's own space.
constexpr std::string_view kReservedSpaceEscape = "field";

// Whether `name` is `_cascade` or starts with `_cascade_` (ASCII case ignored): names cascade
// keeps for columns of its own.
bool in_reserved_space(std::string_view name);

// Whether `name` is one of cascade's own column names or in its space (ASCII case ignored).
bool is_reserved_column(std::string_view name);

// Step 2 of the rule: a valid, at most kMaxColumnNameBytes long name for `field`.
std::string sanitized_column_name(std::string_view field);

// Whether `name` is a valid column name: non-empty valid UTF-8 without control characters, at
// most kMaxColumnNameBytes bytes.
bool is_clean_column_name(std::string_view name);

// Hands out column names for one table. Not thread-safe.
class ColumnNamer {
 public:
  // Marks an existing column name as taken.
  void take(std::string_view column);
  bool taken(std::string_view column) const;
  // The column for a field not seen before in this table (steps 1-4), now taken.
  std::string assign(std::string_view field);

 private:
  std::unordered_set<std::string> folded_;
};

}  // namespace cascade
