#include "engine/cursor.h"

#include <fmt/format.h>

#include <cstdint>

#include "core/error.h"

namespace cascade {
namespace {

// A number as sign, significant digits and the position of its decimal point: the value is
// 0.DIGITS x 10^point. Zero has no digits.
struct Magnitude {
  bool negative = false;
  std::string digits;
  int64_t point = 0;
};

Magnitude magnitude(const std::string& text) {
  Magnitude m;
  size_t i = 0;
  if (i < text.size() && text[i] == '-') m.negative = true, ++i;
  std::string all;
  int64_t int_len = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++int_len) all += text[i];
  if (i < text.size() && text[i] == '.')
    for (++i; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) all += text[i];
  int64_t exp = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool neg = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) neg = text[i] == '-', ++i;
    // Values come from parsed documents, whose exponents are bounded (number_from_token).
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
      exp = exp * 10 + (text[i] - '0');
    if (neg) exp = -exp;
  }
  size_t first = all.find_first_not_of('0');
  if (first == std::string::npos) {
    m.negative = false;
    return m;
  }
  size_t last = all.find_last_not_of('0');
  m.digits = all.substr(first, last - first + 1);
  m.point = int_len - static_cast<int64_t>(first) + exp;
  return m;
}

int compare_numbers(const Value& a, const Value& b) {
  if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int();
  Magnitude x = magnitude(a.to_text()), y = magnitude(b.to_text());
  int sx = x.digits.empty() ? 0 : x.negative ? -1 : 1;
  int sy = y.digits.empty() ? 0 : y.negative ? -1 : 1;
  if (sx != sy || sx == 0) return sx < sy ? -1 : sx > sy;
  int c = x.point != y.point ? (x.point < y.point ? -1 : 1) : x.digits.compare(y.digits);
  c = c < 0 ? -1 : c > 0;
  return sx < 0 ? -c : c;
}

const char* kind(const Value& v) {
  return v.is_number() ? "a number" : "a string";
}

}  // namespace

std::string cursor_image_path(const CompiledStage& stage) {
  if (!stage.spec || !stage.spec->incremental) return {};
  std::string path = stage.spec->incremental->cursor_path;
  std::string first = path.substr(0, path.find('.'));
  for (const auto* fields : {&stage.key, &stage.attach})
    for (const auto& f : *fields)
      if (f.consumes == first) return f.name + path.substr(first.size());
  return path;
}

int compare_cursor_values(const Value& a, const Value& b) {
  for (const Value* v : {&a, &b})
    if (!v->is_string() && !v->is_number())
      throw DataError(
          fmt::format("a cursor must be a string or a number, found {}", type_name(v->type())));
  if (a.is_number() != b.is_number())
    throw DataError(fmt::format("cursor values of two types: {} and {}", kind(a), kind(b)));
  if (a.is_number()) return compare_numbers(a, b);
  int c = a.as_string().compare(b.as_string());
  return c < 0 ? -1 : c > 0;
}

std::optional<Value> advance_cursor(std::span<const Row> rows, std::string_view path,
                                    const Value* current) {
  const Value* best = nullptr;
  for (const Row& row : rows) {
    const Value* v = row.image.find_path(path);
    if (!v || v->is_null()) continue;
    if (!v->is_string() && !v->is_number())
      throw DataError(
          fmt::format("record {}: cursor field '{}' is {}, expected a string or a number", row.key,
                      path, type_name(v->type())));
    const Value* against = best ? best : current;
    if (against && v->is_number() != against->is_number())
      throw DataError(fmt::format(
          "record {}: cursor field '{}' is {} ({}) but {} is {}", row.key, path, kind(*v),
          v->to_text(), best ? "an earlier record's" : "the current cursor", kind(*against)));
    if (!best || compare_cursor_values(*v, *best) > 0) best = v;
  }
  if (!best || (current && compare_cursor_values(*best, *current) <= 0)) return std::nullopt;
  return *best;
}

}  // namespace cascade
