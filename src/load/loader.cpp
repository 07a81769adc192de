#include "load/loader.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "core/json.h"

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

namespace {

std::string path_json(const std::vector<std::string>& path) {
  std::string out = "[";
  for (size_t i = 0; i < path.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(path[i], out);
  }
  out.push_back(']');
  return out;
}

std::string joined(const std::vector<std::string>& path, size_t from, std::string_view sep) {
  std::string out;
  for (size_t i = from; i < path.size(); ++i) {
    if (i > from) out += sep;
    out += path[i];
  }
  return out;
}

bool is_object_list(const Value& v) {
  if (!v.is_array() || v.as_array().empty()) return false;
  for (const auto& item : v.as_array())
    if (!item.is_object()) return false;
  return true;
}

}  // namespace

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
    k.fresh = true;
  }
  k.exists = true;
  for (const auto& c : cols) {
    k.namer.take(c.name);
    k.types[c.name] = c.type;
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
    if (c.field_json.empty()) {
      k.columns.emplace(c.field_name(), c.name);
      if (c.field_name() != c.name) k.renamed = true;
    } else if (c.field_json.front() == '[') {
      k.nested.emplace(c.field_json, c.name);
    }
  }
  for (size_t i = 0; i < table.key.size(); ++i) {
    auto it = k.columns.find(table.key[i]);
    const std::string& column = it == k.columns.end() ? table.key[i] : it->second;
    for (const auto& c : cols)
      if (c.name == column) k.key_types.push_back(Column{c.name, c.type, table.key[i]});
  }
  for (auto& c : warehouse_.child_tables(table.name)) {
    Child ch;
    ch.table = std::move(c.table);
    ch.path_json = std::move(c.field_json);
    Value path = parse_json(ch.path_json);
    for (const auto& p : path.as_array()) ch.path.push_back(p.as_string());
    k.children.push_back(std::move(ch));
  }
  return k;
}

Loader::Known* Loader::child(const TableSpec& parent, Known& pk,
                             const std::vector<std::string>& path, const std::string& path_json,
                             bool create, TableSpec& spec) {
  const Child* found = nullptr;
  for (const auto& c : pk.children)
    if (c.path_json == path_json) found = &c;
  spec = TableSpec{};
  for (const auto& c : pk.key_types) spec.key.push_back(c.field_name());
  spec.key.emplace_back(kIndexColumn);
  spec.flatten_depth = parent.flatten_depth;
  spec.list_tables = false;  // a list inside an item stays JSON
  spec.contract = parent.contract;
  if (found) {
    spec.name = found->table;
    return &known(spec, nullptr);
  }
  if (!create) return nullptr;
  // A table of that name that is no child of this list belongs to someone else.
  std::string base = sanitized_column_name(parent.name + "__" + joined(path, 0, "__"));
  std::string name = base;
  for (int n = 2; !warehouse_.columns(name).empty(); ++n)
    name = sanitized_column_name(base + "__" + std::to_string(n));
  std::vector<Column> key;
  for (const auto& c : pk.key_types) key.push_back(Column{c.name, c.type, c.field_name()});
  Column index{std::string(kIndexColumn), ColumnType::Integer, joined(path, 0, ".") + "[]"};
  index.field_json = "{\"index_in\":" + path_json + "}";
  key.push_back(std::move(index));
  warehouse_.create_table(name, key);
  ChildTable link{name, parent.name, joined(path, 0, "."), path_json};
  warehouse_.link_child_table(link);
  pk.children.push_back(Child{path, path_json, name});
  spec.name = name;
  Known& ck = known(spec, nullptr);
  ck.fresh = true;
  return &ck;
}

bool Loader::same_fields(const Known& k, const Value& row) const {
  const Object& o = row.as_object();
  if (o.size() != k.last_fields.size()) return false;
  for (size_t i = 0; i < o.size(); ++i)
    if (o[i].first != k.last_fields[i]) return false;
  return true;
}

bool Loader::has_nested(const TableSpec& t, const Value& row) const {
  if (t.flatten_depth <= 0) return false;
  for (const auto& [name, v] : row.as_object()) {
    if (v.is_object()) return true;
    if (t.list_tables && v.is_array() && !v.as_array().empty() && v.as_array()[0].is_object())
      return true;
  }
  return false;
}

void Loader::conflict(const TableSpec& t, const std::string& column, const std::string& field,
                      ColumnType expected, const Value& v) {
  ColumnType seen = column_type_for(v);
  auto [it, fresh] = conflicts_.try_emplace({t.name, column, seen});
  if (fresh) it->second = TypeConflict{t.name, column, field, expected, seen, 0};
  ++it->second.count;
}

void Loader::place(Batch& b, std::vector<std::string>& path, size_t base, const Value& v,
                   Object& out, Object& overflow, std::vector<ListOf>* lists) {
  const TableSpec& t = *b.spec;
  size_t level = path.size() - base;
  if (v.is_object() && static_cast<int>(level) <= t.flatten_depth) {
    b.nested_rows = true;
    for (const auto& [name, m] : v.as_object()) {
      path.push_back(name);
      place(b, path, base, m, out, overflow, lists);
      path.pop_back();
    }
    return;
  }
  if (lists && t.list_tables && t.flatten_depth > 0 && v.is_array()) {
    bool list = is_object_list(v);
    if (!list && v.as_array().empty()) {
      // An empty list is a list of objects once its child table exists.
      std::string pj = path_json(path);
      for (const auto& c : b.k->children) list = list || c.path_json == pj;
      // Or once another row of the write has items there: decided when every row is seen.
      if (!list && b.pending) {
        b.nested_rows = true;
        b.pending->push_back({path, &v});
        return;
      }
    }
    if (list) {
      b.nested_rows = true;
      lists->push_back({path, &v.as_array()});
      return;
    }
  }
  leaf(b, path, base, v, out, overflow);
}

void Loader::leaf(Batch& b, std::vector<std::string>& path, size_t base, const Value& v,
                  Object& out, Object& overflow) {
  Known& k = *b.k;
  bool top = path.size() == 1;
  std::string key = top ? path[0] : path_json(path);
  auto& map = top ? k.columns : k.nested;
  auto it = map.find(key);
  if (it == map.end()) {
    if (v.is_null()) {
      b.null_extras = true;
      return;
    }
    if (b.strict && b.spec->contract != Contract::Evolve) {
      if (b.spec->contract == Contract::Discard) {
        ++b.discarded;
      } else if (b.unknown.empty()) {
        b.unknown = joined(path, 0, ".");
      }
      return;
    }
    if (b.check_only) return;
    ColumnType type = column_type_for(v);
    std::string field = top ? path[0] : joined(path, 0, ".");
    // One column stays free for the overflow.
    if (k.column_count + 1 >= kMaxTableColumns) {
      if (!k.has_overflow) {
        Column o{std::string(kOverflowColumn), ColumnType::Json};
        o.field.reset();  // it holds many fields, recorded as they come
        b.added.push_back(std::move(o));
        k.has_overflow = true;
        ++k.column_count;
      }
      Column c{std::string(kOverflowColumn), type, field};
      if (!top) c.field_json = key;
      b.added.push_back(std::move(c));
      it = map.emplace(std::move(key), kOverflowColumn).first;
      k.renamed = true;
    } else {
      std::string column = k.namer.assign(top ? path[0] : joined(path, base, "__"));
      if (top && column != path[0]) k.renamed = true;
      Column c{column, type, field};
      if (!top) c.field_json = key;
      b.added.push_back(std::move(c));
      k.types[column] = type;
      it = map.emplace(std::move(key), std::move(column)).first;
      ++k.column_count;
    }
  }
  if (b.check_only) return;
  if (it->second == kOverflowColumn) {
    overflow.emplace_back(top ? path[0] : joined(path, 0, "."), v);
    return;
  }
  if (!v.is_null()) {
    ColumnType type = k.types[it->second];
    if (!fits_column_type(type, v))
      conflict(*b.spec, it->second, top ? path[0] : joined(path, 0, "."), type, v);
  }
  out.emplace_back(it->second, v);
}

size_t Loader::upsert(const TableSpec& table, std::span<const Value* const> rows,
                      const WriteStamp& stamp) {
  std::vector<LoadRow> load;
  load.reserve(rows.size());
  for (const Value* r : rows) load.push_back({r});
  return upsert(table, load, stamp, {});
}

size_t Loader::upsert(const TableSpec& table, std::span<const LoadRow> load,
                      const WriteStamp& stamp, std::span<WriteOutcome> outcomes) {
  if (load.empty()) return 0;
  std::vector<const Value*> ptrs;
  ptrs.reserve(load.size());
  for (const auto& l : load) ptrs.push_back(l.row);
  std::span<const Value* const> rows(ptrs);
  Known& k = known(table, rows.front());
  bool strict = !k.fresh;
  k.fresh = false;
  conflicts_.clear();
  Batch b;
  b.spec = &table;
  b.k = &k;
  b.strict = strict;
  std::vector<RowWrite> writes;
  writes.reserve(rows.size());
  std::vector<std::string_view> from(rows.size());
  // Rows laid out anew: under other names, flattened, or without the values they cannot keep.
  std::vector<Value> copies;
  copies.reserve(rows.size());  // writes point into it
  std::vector<std::vector<ListOf>> lists;
  bool rewrite = k.renamed;
  std::vector<size_t> slow;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Value* row = rows[i];
    if (table.effective)
      if (const Value* v = row->find(*table.effective); v && v->is_string())
        from[i] = v->as_string();
    writes.push_back({row, from[i], load[i].hash, load[i].scope, load[i].known});
    if (!k.renamed && k.children.empty() && !has_nested(table, *row)) {
      if (same_fields(k, *row)) {
        size_t f = 0;
        for (const auto& [name, v] : row->as_object()) {
          if (!v.is_null() && !fits_column_type(k.last_types[f], v))
            conflict(table, name, name, k.last_types[f], v);
          ++f;
        }
        continue;
      }
      // Other fields, all of them columns of their own name: written as they are.
      bool covered = true;
      for (const auto& m : row->as_object()) covered = covered && k.columns.count(m.first);
      if (covered) {
        k.last_fields.clear();
        k.last_types.clear();
        for (const auto& [name, v] : row->as_object()) {
          ColumnType type = k.types[name];
          if (!v.is_null() && !fits_column_type(type, v)) conflict(table, name, name, type, v);
          k.last_fields.push_back(name);
          k.last_types.push_back(type);
        }
        continue;
      }
    }
    slow.push_back(i);
  }
  if (!slow.empty()) {
    lists.resize(rows.size());
    std::vector<std::string> path;
    std::vector<Object> outs(slow.size()), overflows(slow.size());
    std::vector<std::vector<std::pair<std::vector<std::string>, const Value*>>> pending(
        slow.size());
    std::vector<char> plain(slow.size(), 0);
    for (size_t j = 0; j < slow.size(); ++j) {
      const Value* row = rows[slow[j]];
      b.null_extras = false;
      b.nested_rows = false;
      b.pending = &pending[j];
      size_t discarded_before = b.discarded;
      for (const auto& [name, v] : row->as_object()) {
        path.assign(1, name);
        place(b, path, 0, v, outs[j], overflows[j], &lists[slow[j]]);
      }
      plain[j] = !b.null_extras && !b.nested_rows && overflows[j].empty() &&
                 b.discarded == discarded_before && outs[j].size() == row->as_object().size();
    }
    b.pending = nullptr;
    for (size_t j = 0; j < slow.size(); ++j) {
      size_t i = slow[j];
      // An empty list joins the child table that another row's items make; without one it is
      // JSON in its column.
      for (auto& [p, v] : pending[j]) {
        bool list = false;
        for (const auto& row_lists : lists)
          for (const auto& l : row_lists) list = list || l.path == p;
        if (list)
          lists[i].push_back({p, &v->as_array()});
        else
          leaf(b, p, 0, *v, outs[j], overflows[j]);
      }
      const Value* row = rows[i];
      if (plain[j] && !k.renamed && k.children.empty()) {
        k.last_fields.clear();
        k.last_types.clear();
        for (const auto& m : row->as_object()) {
          k.last_fields.push_back(m.first);
          k.last_types.push_back(k.types[m.first]);
        }
      } else {
        rewrite = true;
      }
      Object& o = outs[j];
      if (!overflows[j].empty())
        o.emplace_back(std::string(kOverflowColumn), Value(std::move(overflows[j])));
      copies.emplace_back(std::move(o));
      writes[i].row = &copies.back();
    }
    if (!b.unknown.empty())
      throw std::runtime_error(
          fmt::format("field '{}' is not a column of table '{}' (contract: "
                      "freeze)",
                      b.unknown, table.name));
  }
  if (!b.added.empty()) warehouse_.add_columns(table.name, b.added);
  if (rewrite) {
    // Rows that took the fast path are written under their column names as well.
    std::vector<size_t> fast;
    size_t s = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (s < slow.size() && slow[s] == i) {
        ++s;
        continue;
      }
      fast.push_back(i);
    }
    if (!fast.empty()) {
      for (size_t i : fast) {
        Object o;
        for (const auto& [name, v] : rows[i]->as_object()) o.emplace_back(k.columns[name], v);
        copies.emplace_back(std::move(o));
        writes[i].row = &copies.back();
      }
    }
  } else {
    for (size_t i = 0; i < rows.size(); ++i) writes[i].row = rows[i];
  }
  std::vector<WriteOutcome> own;
  if (outcomes.empty()) {
    own.resize(rows.size());
    outcomes = own;
  }
  warehouse_.upsert(table.name, std::span<const RowWrite>(writes), stamp, outcomes);
  size_t discarded = b.discarded;
  if (!lists.empty() || !k.children.empty()) {
    if (lists.empty()) lists.resize(rows.size());
    // Items are versions of their parent's: only a parent that changed rewrites them.
    std::vector<const Value*> changed;
    std::vector<std::vector<ListOf>> changed_lists;
    std::vector<std::string_view> changed_from;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (outcomes[i] == WriteOutcome::Unchanged) continue;
      changed.push_back(rows[i]);
      changed_lists.push_back(std::move(lists[i]));
      changed_from.push_back(from[i]);
    }
    if (!changed.empty())
      write_children(table, k, changed, changed_lists, changed_from, stamp, discarded, strict);
  }
  if (!conflicts_.empty()) {
    std::vector<TypeConflict> all;
    all.reserve(conflicts_.size());
    for (auto& [key, c] : conflicts_) all.push_back(std::move(c));
    conflicts_.clear();
    warehouse_.record_type_conflicts(all, stamp);
  }
  return discarded;
}

void Loader::write_children(const TableSpec& table, Known& k, std::span<const Value* const> rows,
                            const std::vector<std::vector<ListOf>>& lists,
                            const std::vector<std::string_view>& from, const WriteStamp& stamp,
                            size_t& discarded, bool strict) {
  // Every list path some row holds, and every child table the parent has: a row without the
  // list has no items.
  std::vector<std::pair<std::vector<std::string>, std::string>> paths;
  for (const auto& c : k.children) paths.emplace_back(c.path, c.path_json);
  for (const auto& row_lists : lists)
    for (const auto& l : row_lists) {
      std::string pj = path_json(l.path);
      bool seen = false;
      for (const auto& p : paths) seen = seen || p.second == pj;
      if (!seen) paths.emplace_back(l.path, std::move(pj));
    }
  // The parent's key, under the key column names its child tables share.
  std::vector<Value> parent_keys;
  parent_keys.reserve(rows.size());
  for (const Value* row : rows) {
    Object key;
    for (const auto& c : k.key_types)
      if (const Value* v = row->find(c.field_name())) key.emplace_back(c.name, *v);
    parent_keys.emplace_back(std::move(key));
  }
  for (const auto& [path, pj] : paths) {
    bool exists = false;
    for (const auto& c : k.children) exists = exists || c.path_json == pj;
    if (!exists && strict && table.contract != Contract::Evolve) {
      // A new list under discard: dropped, once per row holding it.
      for (const auto& row_lists : lists)
        for (const auto& l : row_lists)
          if (l.path == path) ++discarded;
      continue;
    }
    TableSpec spec;
    Known* ck = child(table, k, path, pj, true, spec);
    Batch b;
    b.spec = &spec;
    b.k = ck;
    b.strict = !ck->fresh;
    ck->fresh = false;
    std::vector<Value> items;
    std::vector<RowWrite> writes;
    std::vector<const Value*> parents;
    std::vector<int64_t> ends;
    std::vector<std::string> ipath;
    for (size_t i = 0; i < rows.size(); ++i) {
      const Array* list = nullptr;
      for (const auto& l : lists[i])
        if (l.path == path) list = l.items;
      parents.push_back(&parent_keys[i]);
      ends.push_back(list ? static_cast<int64_t>(list->size()) : 0);
      if (!list) continue;
      for (size_t n = 0; n < list->size(); ++n) {
        Object o = parent_keys[i].as_object();
        o.emplace_back(std::string(kIndexColumn), Value(static_cast<int64_t>(n)));
        Object overflow;
        for (const auto& [name, v] : (*list)[n].as_object()) {
          ipath = path;
          ipath.push_back(name);
          place(b, ipath, path.size(), v, o, overflow, nullptr);
        }
        if (!overflow.empty())
          o.emplace_back(std::string(kOverflowColumn), Value(std::move(overflow)));
        items.emplace_back(std::move(o));
      }
    }
    if (!b.unknown.empty())
      throw std::runtime_error(
          fmt::format("field '{}' is not a column of table '{}' (contract: "
                      "freeze)",
                      b.unknown, spec.name));
    discarded += b.discarded;
    if (!b.added.empty()) warehouse_.add_columns(spec.name, b.added);
    size_t next = 0;
    for (size_t i = 0; i < rows.size(); ++i)
      for (int64_t n = 0; n < ends[i]; ++n) writes.push_back({&items[next++], from[i]});
    if (!writes.empty()) warehouse_.upsert(spec.name, std::span<const RowWrite>(writes), stamp);
    warehouse_.mark_deleted_items(spec.name, parents, ends, stamp);
  }
}

bool fits_column_type(ColumnType t, const Value& v) {
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

std::string Loader::check_row(const TableSpec& table, const Value& row) {
  Known& k = known(table, nullptr);
  for (const auto& c : k.key_types) {
    const Value* v = row.find(c.field_name());
    if (v && !fits_column_type(c.type, *v))
      return fmt::format("key column '{}' of table '{}' holds {} values, but this record has {} {}",
                         c.name, table.name, column_type_name(c.type), type_name(v->type()),
                         v->to_text());
  }
  if (table.contract != Contract::Freeze || !k.exists || k.fresh) return {};
  if (!k.renamed && k.children.empty() && same_fields(k, row) && !has_nested(table, row)) return {};
  Batch b;
  b.spec = &table;
  b.k = &k;
  b.check_only = true;
  b.strict = true;
  std::vector<ListOf> lists;
  std::vector<std::string> path;
  Object unused, unused_overflow;
  for (const auto& [name, v] : row.as_object()) {
    path.assign(1, name);
    place(b, path, 0, v, unused, unused_overflow, &lists);
  }
  for (const auto& l : lists) {
    if (!b.unknown.empty()) break;
    TableSpec spec;
    Known* ck = child(table, k, l.path, path_json(l.path), false, spec);
    if (!ck) {
      b.unknown = joined(l.path, 0, ".");
      break;
    }
    Batch cb;
    cb.spec = &spec;
    cb.k = ck;
    cb.check_only = true;
    cb.strict = true;
    for (const auto& item : *l.items) {
      for (const auto& [name, v] : item.as_object()) {
        path = l.path;
        path.push_back(name);
        place(cb, path, l.path.size(), v, unused, unused_overflow, nullptr);
      }
      if (!cb.unknown.empty()) break;
    }
    b.unknown = cb.unknown;
  }
  if (b.unknown.empty()) return {};
  return fmt::format("field '{}' is not a column of table '{}' (contract: freeze)", b.unknown,
                     table.name);
}

size_t Loader::mark_deleted(const TableSpec& table, std::span<const Value* const> keys,
                            const WriteStamp& stamp, std::optional<uint64_t> scope) {
  if (keys.empty()) return 0;
  Known& k = known(table, nullptr);
  if (!k.exists) return 0;
  bool renamed = false;
  for (const auto& c : k.key_types) renamed = renamed || c.field_name() != c.name;
  std::vector<Value> copies;
  std::vector<const Value*> ptrs(keys.begin(), keys.end());
  if (renamed) {
    copies.reserve(keys.size());
    ptrs.clear();
    for (const Value* key : keys) {
      Object o;
      for (const auto& c : k.key_types)
        if (const Value* v = key->find(c.field_name())) o.emplace_back(c.name, *v);
      copies.emplace_back(std::move(o));
      ptrs.push_back(&copies.back());
    }
  }
  std::vector<char> deleted(ptrs.size(), 0);
  size_t n = warehouse_.mark_deleted(table.name, ptrs, stamp, scope, deleted);
  if (k.children.empty() || n == 0) return n;
  // A deleted parent has no items: they are marked deleted with it (and come back with it).
  std::vector<const Value*> parents;
  for (size_t i = 0; i < ptrs.size(); ++i)
    if (deleted[i]) parents.push_back(ptrs[i]);
  std::vector<int64_t> none(parents.size(), 0);
  for (const auto& c : k.children) warehouse_.mark_deleted_items(c.table, parents, none, stamp);
  return n;
}

}  // namespace cascade
