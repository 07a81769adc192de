#include "load/loader.h"

#include <fmt/format.h>

#include <stdexcept>

namespace cascade {

ColumnType column_type_for(const Value& v) {
  switch (v.type()) {
    case Value::Type::Bool:
      return ColumnType::Boolean;
    case Value::Type::Int:
      return ColumnType::Integer;
    case Value::Type::Double:
      return ColumnType::Real;
    case Value::Type::Array:
    case Value::Type::Object:
      return ColumnType::Json;
    default:
      return ColumnType::Text;
  }
}

Loader::Known& Loader::known(const TableSpec& table, const Value* first_row) {
  Known& k = tables_[table.name];
  if (k.exists) return k;
  std::vector<Column> cols = warehouse_.columns(table.name);
  if (cols.empty()) {
    if (!first_row) return k;  // nothing to create from yet
    std::vector<Column> key;
    for (const auto& name : table.key) {
      const Value* v = first_row->find(name);
      key.push_back({name, v ? column_type_for(*v) : ColumnType::Text});
    }
    warehouse_.create_table(table.name, key);
    cols = warehouse_.columns(table.name);
  }
  k.exists = true;
  for (const auto& c : cols) k.columns.insert(c.name);
  for (const auto& name : table.key)
    for (const auto& c : cols)
      if (c.name == name) k.key_types.push_back(c);
  return k;
}

bool Loader::same_fields(const Known& k, const Value& row) const {
  const Object& o = row.as_object();
  if (o.size() != k.last_fields.size()) return false;
  for (size_t i = 0; i < o.size(); ++i)
    if (o[i].first != k.last_fields[i]) return false;
  return true;
}

void Loader::upsert(const TableSpec& table, std::span<const Value* const> rows) {
  if (rows.empty()) return;
  Known& k = known(table, rows.front());
  std::vector<Column> added;
  bool has_null_extras = false;
  for (const Value* row : rows) {
    if (same_fields(k, *row)) continue;
    bool covered = true;
    for (const auto& [name, v] : row->as_object()) {
      if (k.columns.count(name)) continue;
      covered = false;
      if (v.is_null()) {
        has_null_extras = true;
        continue;
      }
      added.push_back({name, column_type_for(v)});
      k.columns.insert(name);
    }
    if (covered) {
      k.last_fields.clear();
      for (const auto& m : row->as_object()) k.last_fields.push_back(m.first);
    }
  }
  if (!added.empty()) warehouse_.add_columns(table.name, added);
  if (!has_null_extras) {
    warehouse_.upsert(table.name, rows);
    return;
  }
  // Rare: strip null fields that never had a value anywhere, so no untyped column is made.
  std::vector<Value> copies;
  copies.reserve(rows.size());
  std::vector<const Value*> ptrs;
  ptrs.reserve(rows.size());
  for (const Value* row : rows) {
    Object o;
    for (const auto& [name, v] : row->as_object())
      if (k.columns.count(name)) o.emplace_back(name, v);
    copies.emplace_back(std::move(o));
    ptrs.push_back(&copies.back());
  }
  warehouse_.upsert(table.name, ptrs);
}

static bool fits(ColumnType t, const Value& v) {
  switch (t) {
    case ColumnType::Integer:
      return v.is_int() ||
             (v.is_double() &&
              v.as_double() == static_cast<double>(static_cast<int64_t>(v.as_double())));
    case ColumnType::Real:
      return v.is_number();
    case ColumnType::Boolean:
      return v.is_bool();
    case ColumnType::Text:
      return v.is_string();
    case ColumnType::Json:
      return v.is_array() || v.is_object();
  }
  return true;
}

std::string Loader::check_key_types(const TableSpec& table, const Value& row) {
  Known& k = known(table, nullptr);
  for (const auto& c : k.key_types) {
    const Value* v = row.find(c.name);
    if (v && !fits(c.type, *v))
      return fmt::format("key column '{}' of table '{}' holds {} values, but this record has {} {}",
                         c.name, table.name, column_type_name(c.type), type_name(v->type()),
                         v->to_text());
  }
  return {};
}

void Loader::remove(const TableSpec& table, std::span<const Value* const> keys) {
  if (keys.empty()) return;
  Known& k = known(table, nullptr);
  if (!k.exists) return;
  warehouse_.remove(table.name, keys);
}

}  // namespace cascade
