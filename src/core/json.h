// JSON text <-> Value. Parsing uses simdjson (on-demand); writing is canonical (sorted keys,
// one spelling per number) or natural (insertion order). All functions are thread-safe.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "core/value.h"

namespace cascade {

// A JSON document that could not be parsed: what went wrong and the byte offset near which.
class JsonError : public std::runtime_error {
 public:
  JsonError(const std::string& what, size_t offset) : std::runtime_error(what), offset_(offset) {}
  size_t offset() const { return offset_; }

 private:
  size_t offset_;
};

// Parses one complete JSON document. Throws JsonError on malformed input or trailing content.
Value parse_json(std::string_view text);

// Canonical form: object keys sorted bytewise, no whitespace, integral numbers as integers
// (1.0 -> 1, 1e2 -> 100), other numbers in shortest round-trip form, minimal string escapes.
// Two documents with the same data produce the same bytes. A key repeated in one object keeps
// its last value (as JSON.parse does), so the output never repeats a key.
std::string canonical_json(const Value& v);
void append_canonical_json(const Value& v, std::string& out);

// Insertion-order JSON, for output meant to be read by people and scripts.
std::string to_json(const Value& v);
void append_json(const Value& v, std::string& out);

// Appends s as a quoted JSON string.
void append_json_string(std::string_view s, std::string& out);
// Appends a number in canonical spelling.
void append_canonical_number(double d, std::string& out);

}  // namespace cascade
