#include "load/loader.h"

#include <fmt/format.h>

#include <cmath>
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
    case Value::Type::Decimal:
      return ColumnType::Decimal;
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
    ColumnNamer namer;
    for (const auto& name : table.key) {
      const Value* v = first_row->find(name);
      std::string column = namer.assign(name);
      key.push_back({column, v ? column_type_for(*v) : ColumnType::Text, name});
    }
    warehouse_.create_table(table.name, key);
    cols = warehouse_.columns(table.name);
  }
  k.exists = true;
  for (const auto& c : cols) {
    k.namer.take(c.name);
    if (c.name == kOverflowColumn) k.has_overflow = true;
  }
  k.column_count = cols.size();
  std::vector<Column> catalog = warehouse_.catalog(table.name);
  if (catalog.empty()) {
    // A table made before the catalog: each column holds the field of its name.
    for (const auto& c : cols)
      if (c.name != kOverflowColumn) k.columns.emplace(c.name, c.name);
  }
  for (const auto& c : catalog) {
    k.columns.emplace(c.field_name(), c.name);
    if (c.field_name() != c.name) k.renamed = true;
  }
  for (size_t i = 0; i < table.key.size(); ++i) {
    auto it = k.columns.find(table.key[i]);
    const std::string& column = it == k.columns.end() ? table.key[i] : it->second;
    for (const auto& c : cols)
      if (c.name == column) k.key_types.push_back(Column{c.name, c.type, table.key[i]});
  }
  return k;
}

bool Loader::same_fields(const Known& k, const Value& row) const {
  const Object& o = row.as_object();
  if (o.size() != k.last_fields.size()) return false;
  for (size_t i = 0; i < o.size(); ++i)
    if (o[i].first != k.last_fields[i]) return false;
  return true;
}

void Loader::upsert(const TableSpec& table, std::span<const Value* const> rows,
                    const WriteStamp& stamp) {
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
      // One column stays free for the overflow.
      if (k.column_count + 1 >= kMaxTableColumns) {
        if (!k.has_overflow) {
          Column overflow{std::string(kOverflowColumn), ColumnType::Json};
          overflow.field.reset();  // it holds many fields, recorded as they come
          added.push_back(std::move(overflow));
          k.has_overflow = true;
          ++k.column_count;
        }
        added.push_back({std::string(kOverflowColumn), column_type_for(v), name});
        k.columns.emplace(name, kOverflowColumn);
        k.renamed = true;
        continue;
      }
      std::string column = k.namer.assign(name);
      if (column != name) k.renamed = true;
      added.push_back({column, column_type_for(v), name});
      k.columns.emplace(name, std::move(column));
      ++k.column_count;
    }
    if (covered) {
      k.last_fields.clear();
      for (const auto& m : row->as_object()) k.last_fields.push_back(m.first);
    }
  }
  if (!added.empty()) warehouse_.add_columns(table.name, added);
  std::vector<RowWrite> writes;
  writes.reserve(rows.size());
  for (const Value* row : rows) {
    std::string_view from;
    if (table.effective)
      if (const Value* v = row->find(*table.effective); v && v->is_string()) from = v->as_string();
    writes.push_back({row, from});
  }
  if (!has_null_extras && !k.renamed) {
    warehouse_.upsert(table.name, std::span<const RowWrite>(writes), stamp);
    return;
  }
  // Rare: rows are rewritten under their column names, overflow fields gathered into one JSON
  // object, and null fields that never had a value anywhere left out (no untyped column).
  std::vector<Value> copies;
  copies.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Value* row = rows[i];
    Object o;
    Object overflow;
    for (const auto& [name, v] : row->as_object()) {
      auto it = k.columns.find(name);
      if (it == k.columns.end()) continue;
      if (it->second == kOverflowColumn)
        overflow.emplace_back(name, v);
      else
        o.emplace_back(it->second, v);
    }
    if (!overflow.empty()) o.emplace_back(std::string(kOverflowColumn), Value(std::move(overflow)));
    copies.emplace_back(std::move(o));
    writes[i].row = &copies.back();
  }
  warehouse_.upsert(table.name, std::span<const RowWrite>(writes), stamp);
}

static bool fits(ColumnType t, const Value& v) {
  switch (t) {
    case ColumnType::Integer:
      // Integral values of any size: a Decimal beyond int64 is stored as its digits.
      if (v.is_int()) return true;
      if (v.is_double())
        return std::isfinite(v.as_double()) && v.as_double() == std::trunc(v.as_double());
      return v.is_decimal() && v.as_decimal().find('.') == std::string::npos &&
             v.as_decimal().find("e-") == std::string::npos;
    case ColumnType::Decimal:
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
    const Value* v = row.find(c.field_name());
    if (v && !fits(c.type, *v))
      return fmt::format("key column '{}' of table '{}' holds {} values, but this record has {} {}",
                         c.name, table.name, column_type_name(c.type), type_name(v->type()),
                         v->to_text());
  }
  return {};
}

void Loader::mark_deleted(const TableSpec& table, std::span<const Value* const> keys,
                          const WriteStamp& stamp) {
  if (keys.empty()) return;
  Known& k = known(table, nullptr);
  if (!k.exists) return;
  bool renamed = false;
  for (const auto& c : k.key_types) renamed = renamed || c.field_name() != c.name;
  if (!renamed) {
    warehouse_.mark_deleted(table.name, keys, stamp);
    return;
  }
  std::vector<Value> copies;
  copies.reserve(keys.size());
  std::vector<const Value*> ptrs;
  for (const Value* key : keys) {
    Object o;
    for (const auto& c : k.key_types)
      if (const Value* v = key->find(c.field_name())) o.emplace_back(c.name, *v);
    copies.emplace_back(std::move(o));
    ptrs.push_back(&copies.back());
  }
  warehouse_.mark_deleted(table.name, ptrs, stamp);
}

}  // namespace cascade
