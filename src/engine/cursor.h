// Incremental cursors (StageSpec::incremental): which value of a listing's records its next
// request lists from. Pure functions over values; thread-safe.
//
// Cursor values are strings or numbers. Numbers compare by exact value (1e3 == 1000, big
// integers and long decimals without rounding); strings compare byte by byte, so ISO 8601
// timestamps in one fixed format (same width, same zone) compare as times.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/value.h"
#include "engine/plan.h"
#include "engine/processor.h"

namespace cascade {

// Where the cursor field sits in a row image: incremental.cursor_path, except that a first
// segment renamed into a key or attach column (key `version: updated_at`) is read from that
// column. Empty for a stage that is not incremental.
std::string cursor_image_path(const CompiledStage& stage);

// <0, 0 or >0 as a is below, equal to or above b. Throws DataError when either is neither a
// string nor a number, or when one is a string and the other a number.
int compare_cursor_values(const Value& a, const Value& b);

// The cursor after a response: the largest value at `path` among `rows` when it is above
// `current` (no current: any value), else nullopt, so an empty or older listing leaves the
// cursor as it is. A row without the field (or with null) does not move it. Throws DataError
// naming the row's key when a value is not a string or a number, or its type differs from the
// others' or from `current`'s.
std::optional<Value> advance_cursor(std::span<const Row> rows, std::string_view path,
                                    const Value* current);

}  // namespace cascade
