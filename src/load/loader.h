// Loader: applies changes to the warehouse's typed tables — creates each table on first use,
// adds a column when a field first appears (schema evolution), upserts new and changed rows,
// deletes gone ones. Each field gets its own column named by ColumnNamer (load/column_names.h),
// recorded in the warehouse's catalog; fields past kMaxTableColumns go to the overflow column
// as one JSON object, so no value is ever dropped. Caches table schemas; not thread-safe (runs
// on the store's owner thread).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "load/column_names.h"
#include "store/warehouse.h"

namespace cascade {

struct TableSpec {
  std::string name;
  std::vector<std::string> key;  // key column names, in key order
  // The field holding the vendor's effective date of a version (history's valid_from).
  std::optional<std::string> effective;
};

class Loader {
 public:
  explicit Loader(Warehouse& warehouse) : warehouse_(warehouse) {}

  // Writes new versions of row images (objects holding every key column), each valid from
  // its effective field when the table names one and the row holds it as text, else from the
  // stamp's time. Adds missing columns first, typed from the first non-null value seen; null
  // fields that are not columns yet are skipped.
  void upsert(const TableSpec& table, std::span<const Value* const> rows,
              const WriteStamp& stamp = {});
  // Marks rows deleted (soft); each entry is an object holding the key columns.
  void mark_deleted(const TableSpec& table, std::span<const Value* const> keys,
                    const WriteStamp& stamp = {});

  // Why `row` cannot go into the table as it stands, or "" if it can: a key column whose value
  // has another type than the column (an id sent as "3972" where ids are integers would make a
  // second, different row).
  std::string check_key_types(const TableSpec& table, const Value& row);

  // Forgets cached schemas (after a rollback that may have undone DDL).
  void reset() { tables_.clear(); }

 private:
  struct Known {
    bool exists = false;
    std::unordered_map<std::string, std::string> columns;  // field -> its column
    ColumnNamer namer;
    size_t column_count = 0;
    bool has_overflow = false;
    // Some field is stored under another name (or in the overflow column): rows are rewritten.
    bool renamed = false;
    // Field names of the last row seen to be fully covered: most rows of a table repeat them,
    // and comparing names in order is cheaper than hashing each one.
    std::vector<std::string> last_fields;
    std::vector<Column> key_types;  // declared types of the key columns
  };
  bool same_fields(const Known& k, const Value& row) const;
  Known& known(const TableSpec& table, const Value* first_row);

  Warehouse& warehouse_;
  std::unordered_map<std::string, Known> tables_;
};

ColumnType column_type_for(const Value& v);

}  // namespace cascade
