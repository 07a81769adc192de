#include "store/change_log.h"
#include "store/warehouse.h"

namespace cascade {

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
