// Warehouse: typed tables that analysts query with SQL, one per stage, one column per record
// field, kept current by applying changes. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.h"

namespace cascade {

enum class ColumnType : uint8_t { Integer, Real, Text, Boolean, Json };
const char* column_type_name(ColumnType t);

struct Column {
  std::string name;
  ColumnType type = ColumnType::Text;
};

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

class Warehouse {
 public:
  virtual ~Warehouse() = default;

  // Columns of a table in order; empty when the table does not exist.
  virtual std::vector<Column> columns(std::string_view table) = 0;

  // Creates a table whose primary key is `key` (idempotent when it exists).
  virtual void create_table(std::string_view table, std::span<const Column> key) = 0;

  // Adds columns to an existing table (schema evolution); existing rows get NULL.
  virtual void add_columns(std::string_view table, std::span<const Column> columns) = 0;

  // Inserts or replaces rows. Each row is an object holding every key column; fields that are
  // not columns of the table are an error (add them first); absent columns become NULL.
  virtual void upsert(std::string_view table, std::span<const Value* const> rows) = 0;

  // Deletes rows by key; each entry is an object holding the key columns.
  virtual void remove(std::string_view table, std::span<const Value* const> keys) = 0;

  // Runs read-only SQL (any statement for the embedded backends). Throws std::runtime_error with
  // the database's message on error.
  virtual QueryResult query(std::string_view sql) = 0;
};

}  // namespace cascade
