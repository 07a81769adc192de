// libFuzzer target: arbitrary byte strings as the field names of one table. The contract of
// ColumnNamer: every field gets a valid column name (clean, within the identifier limit, never
// one of cascade's own), names are distinct ignoring ASCII case, the same fields in the same
// order always get the same names, and SQLite accepts them all as quoted identifiers.
#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "load/column_names.h"

namespace {

void check(bool ok, const char* what, std::string_view field, std::string_view column) {
  if (ok) return;
  std::fprintf(stderr, "column naming broke: %s (field %zu bytes, column '%.*s')\n", what,
               field.size(), static_cast<int>(column.size()), column.data());
  std::abort();
}

std::string folded(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string quoted(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

// Input: a sequence of fields, each a length byte followed by that many bytes, so names may
// hold any byte, NUL and newline included.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> fields;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < size;) {
    size_t n = data[i++];
    n = std::min(n, size - i);
    std::string f(reinterpret_cast<const char*>(data + i), n);
    i += n;
    // The loader names a field once per table.
    if (seen.insert(f).second) fields.push_back(std::move(f));
  }

  cascade::ColumnNamer namer;
  std::vector<std::string> columns;
  std::unordered_set<std::string> folded_columns;
  for (const auto& f : fields) {
    std::string c = namer.assign(f);
    check(cascade::is_clean_column_name(c), "not a clean name", f, c);
    check(c.size() <= cascade::kMaxColumnNameBytes, "too long", f, c);
    check(!cascade::is_reserved_column(c), "one of cascade's own names", f, c);
    check(folded_columns.insert(folded(c)).second, "two fields share a column", f, c);
    check(cascade::sanitized_column_name(f) == cascade::sanitized_column_name(f), "unstable", f, c);
    if (cascade::is_clean_column_name(f) && !cascade::is_reserved_column(f) && columns.empty())
      check(c == f, "a clean free name was changed", f, c);
    columns.push_back(std::move(c));
  }

  cascade::ColumnNamer again;
  for (size_t k = 0; k < fields.size(); ++k)
    check(again.assign(fields[k]) == columns[k], "not deterministic", fields[k], columns[k]);

  if (!columns.empty() && columns.size() <= 2000) {
    sqlite3* db = nullptr;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) std::abort();
    std::string sql = "CREATE TABLE t(";
    for (size_t k = 0; k < columns.size(); ++k) sql += (k ? "," : "") + quoted(columns[k]);
    sql += ")";
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::fprintf(stderr, "SQLite refused the columns: %s\n", err ? err : "?");
      std::abort();
    }
    sqlite3_close(db);
  }
  return 0;
}
