// DynamoDB items as cascade rows: the AttributeValue JSON of a Value and back, exactly. Numbers
// go as DynamoDB numbers (N) while they fit one (38 significant digits, magnitude within
// 1e-130..1e126); beyond that as their decimal text (S), the attribute's name listed in the
// item's `_big` attribute so that it reads back as the same number. An object or array goes as a
// map or list (M, L), or as its canonical JSON text (S, listed in `_json`) when a number inside
// does not fit. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/value.h"

namespace cascade::aws {

// The item attributes cascade adds to a row's columns.
inline constexpr std::string_view kItemHash = "_hash";             // content hash (N)
inline constexpr std::string_view kItemScope = "_scope";           // listing that wrote it (N)
inline constexpr std::string_view kItemRunId = "_run_id";          // run of the last write (N)
inline constexpr std::string_view kItemChangedAt = "_changed_at";  // ISO time of the write (S)
inline constexpr std::string_view kItemValidFrom = "_valid_from";  // claimed effective date (S)
inline constexpr std::string_view kItemDeletedAt = "_deleted_at";  // soft deletion (S)
inline constexpr std::string_view kItemBig = "_big";      // names of numbers kept as S (L of S)
inline constexpr std::string_view kItemJson = "_json";    // names of JSON kept as S (L of S)
inline constexpr std::string_view kItemRange = "_range";  // range key of a 3+ column key (S)

// Whether a normalized number text fits a DynamoDB number.
bool fits_dynamo_number(std::string_view number_text);

// The number text of a numeric Value (exact: int64 digits, shortest double, Decimal text).
std::string number_text(const Value& v);

// Appends the AttributeValue JSON of `v` to `out`. Sets *big when `v` is a number kept as S, *json
// when `v` is an object or array kept as its JSON text; the caller lists the attribute in `_big`
// or `_json` then.
void append_attribute(const Value& v, std::string& out, bool* big, bool* json);

// A Value from a parsed AttributeValue ({"S": ...}, {"N": ...}, ...). Numbers come back exactly.
// Throws std::runtime_error for a type cascade never writes (sets, binary).
Value from_attribute(const Value& av);

// The row held by a parsed item (a JSON object of AttributeValues): every attribute but the ones
// cascade adds (the `_`-names above), `_big` and `_json` ones read back as what they were.
Value row_from_item(const Value& item);

// Standard base64 (RFC 4648, with padding) and back; decode throws std::runtime_error on bad
// input.
std::string base64_encode(std::string_view bytes);
std::string base64_decode(std::string_view text);

}  // namespace cascade::aws
