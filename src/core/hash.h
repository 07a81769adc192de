// Content hashes: XXH3-64 over canonical JSON, so equal data hashes equal whatever the key
// order, whitespace or number spelling of the response it came from. Thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/value.h"

namespace cascade {

uint64_t hash_bytes(std::string_view bytes);
// Hash of canonical_json(v).
uint64_t hash_value(const Value& v);

}  // namespace cascade
