#include "load/column_names.h"

#include <fmt/format.h>

#include <array>
#include <stdexcept>

#include "core/hash.h"
#include "core/utf8.h"

namespace cascade {

namespace {

std::string fold(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one.
size_t utf8_len(std::string_view s, size_t i) {
  uint32_t cp;
  return utf8_at(s, i, cp);
}

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7F;
}

// The longest prefix of a clean name that is at most `max` bytes and ends on a character.
std::string_view prefix_within(std::string_view clean, size_t max) {
  if (clean.size() <= max) return clean;
  size_t end = 0;
  while (end < clean.size()) {
    size_t n = utf8_len(clean, end);
    if (n == 0) n = 1;
    if (end + n > max) break;
    end += n;
  }
  return clean.substr(0, end);
}

// The metadata columns of current and history tables (store/warehouse.h), and the overflow.
constexpr std::array<std::string_view, 14> kReserved = {
    "_overflow", "_deleted_at", "_first_seen", "_last_changed", "_version",
    "_run_id",   "_cascade",    "_valid_from", "_valid_to",     "_effective",
    "_seq",      "_hash",       "_scope",      "_changed_at"};

}  // namespace

bool in_reserved_space(std::string_view name) {
  std::string f = fold(name);
  return f == "_cascade" || f.rfind("_cascade_", 0) == 0;
}

bool is_reserved_column(std::string_view name) {
  std::string f = fold(name);
  for (auto r : kReserved)
    if (f == r) return true;
  return in_reserved_space(name);
}

bool is_clean_column_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxColumnNameBytes) return false;
  for (size_t i = 0; i < name.size();) {
    size_t n = utf8_len(name, i);
    if (n == 0 || (n == 1 && is_control(static_cast<unsigned char>(name[i])))) return false;
    i += n;
  }
  return true;
}

std::string sanitized_column_name(std::string_view field) {
  if (field.empty()) return "_empty";
  if (is_clean_column_name(field)) return std::string(field);
  std::string clean;
  clean.reserve(field.size());
  for (size_t i = 0; i < field.size();) {
    size_t n = utf8_len(field, i);
    if (n == 0 || (n == 1 && is_control(static_cast<unsigned char>(field[i])))) {
      fmt::format_to(std::back_inserter(clean), "_x{:02X}", static_cast<unsigned char>(field[i]));
      ++i;
    } else {
      clean.append(field.substr(i, n));
      i += n;
    }
  }
  if (clean.size() <= kMaxColumnNameBytes) return clean;
  std::string tail = fmt::format("_{:08x}", static_cast<uint32_t>(hash_bytes(field)));
  std::string out(prefix_within(clean, kMaxColumnNameBytes - tail.size()));
  return out + tail;
}

void ColumnNamer::take(std::string_view column) {
  folded_.insert(fold(column));
}

bool ColumnNamer::taken(std::string_view column) const {
  return folded_.count(fold(column)) > 0 || is_reserved_column(column);
}

std::string ColumnNamer::assign(std::string_view field) {
  std::string base = sanitized_column_name(field);
  // A suffix cannot lead a name out of the reserved space, a leading word can.
  if (in_reserved_space(base))
    base =
        std::string(prefix_within(std::string(kReservedSpaceEscape) + base, kMaxColumnNameBytes));
  std::string name = base;
  for (int n = 2; taken(name); ++n) {
    if (n > 1'000'000) throw std::logic_error("no free column name for a field");
    std::string suffix = fmt::format("__{}", n);
    name = std::string(prefix_within(base, kMaxColumnNameBytes - suffix.size())) + suffix;
  }
  take(name);
  return name;
}

}  // namespace cascade
