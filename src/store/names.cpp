#include "store/names.h"

#include <cctype>

#include "store/change_log.h"
#include "store/warehouse.h"

namespace cascade {

namespace {

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

}  // namespace

bool is_reserved_table_name(std::string_view name) {
  return starts_with_nocase(name, kOwnTablePrefix) || starts_with_nocase(name, "sqlite_");
}

const char* change_kind_name(ChangeKind k) {
  switch (k) {
    case ChangeKind::New:
      return "new";
    case ChangeKind::Changed:
      return "changed";
    case ChangeKind::Gone:
      return "gone";
  }
  return "?";
}

const char* column_type_name(ColumnType t) {
  switch (t) {
    case ColumnType::Integer:
      return "INTEGER";
    case ColumnType::Real:
      return "REAL";
    case ColumnType::Text:
      return "TEXT";
    case ColumnType::Boolean:
      return "BOOLEAN";
    case ColumnType::Json:
      return "JSON";
    case ColumnType::Decimal:
      return "DECIMAL";
  }
  return "TEXT";
}

ColumnType column_type_from_name(std::string_view name) {
  for (ColumnType t : {ColumnType::Integer, ColumnType::Real, ColumnType::Boolean, ColumnType::Json,
                       ColumnType::Decimal})
    if (name == column_type_name(t)) return t;
  return ColumnType::Text;
}

}  // namespace cascade

namespace cascade {

std::string past_table_name(std::string_view table) {
  return std::string(kOwnTablePrefix) + "past_" + std::string(table);
}

std::string history_table_name(std::string_view table) {
  return std::string(table) + "_history";
}

}  // namespace cascade
