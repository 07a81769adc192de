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
  }
  return "TEXT";
}

}  // namespace cascade
