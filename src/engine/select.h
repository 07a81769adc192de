// Record selection: walks a response body with simdjson on-demand to the records path and
// materialises each record, one at a time, without building the whole document. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/value.h"

namespace cascade {

// Calls `fn` for each record at `path` (dotted; empty = root) of the JSON in `body`. An array
// yields its elements, an object yields itself. `body` must have SIMDJSON_PADDING bytes of
// capacity past its size (it is padded here otherwise). Throws DataError with a readable reason
// (the path that is missing, the type found, the parse error and its byte offset, an excerpt).
// Returns the number of records.
size_t select_records(std::string& body, std::string_view path,
                      const std::function<void(Value&&)>& fn);

// A short printable excerpt of a body for error reports (control bytes escaped).
std::string excerpt(std::string_view body, size_t max = 200);

}  // namespace cascade
