#include <algorithm>
#include <stdexcept>

#include "core/json.h"
#include "store/sqlite/sqlite_parts.h"

namespace cascade::sqlite {
namespace {

// Tables made before the catalog declared every column's type; later ones declare only TEXT,
// and leave number columns without a type, so SQLite stores each value as given (an INTEGER,
// REAL or NUMERIC affinity would turn the text of an exact big number into a rounded REAL).
ColumnType type_from_decl(std::string_view decl) {
  if (decl == "INTEGER") return ColumnType::Integer;
  if (decl == "REAL") return ColumnType::Real;
  if (decl == "BOOLEAN") return ColumnType::Boolean;
  if (decl == "JSON") return ColumnType::Json;
  return ColumnType::Text;
}

bool decl_is_numeric(std::string_view decl) {
  return decl == "INTEGER" || decl == "REAL" || decl == "BOOLEAN" || decl == "JSON";
}

std::string column_def(const Column& c) {
  if (c.type == ColumnType::Text) return quote_ident(c.name) + " TEXT";
  return quote_ident(c.name);
}

bool is_metadata_column(std::string_view name) {
  return name == kFirstSeenColumn || name == kLastChangedColumn || name == kVersionColumn ||
         name == kRunIdColumn || name == kDeletedAtColumn;
}

// Declared types of the metadata columns: none of them ever holds an exact big number.
constexpr std::pair<std::string_view, std::string_view> kMetadata[] = {
    {kFirstSeenColumn, "TEXT"}, {kLastChangedColumn, "TEXT"}, {kVersionColumn, "INTEGER"},
    {kRunIdColumn, "INTEGER"},  {kDeletedAtColumn, "TEXT"},
};

[[noreturn]] void no_table(std::string_view table) {
  throw std::runtime_error("warehouse: table '" + std::string(table) + "' does not exist");
}

}  // namespace

SqliteWarehouse::SqliteWarehouse(Db& db) : db_(db) {
  // The table-valued pragma takes the name as a bound value: no quoting, one statement.
  table_info_ = Stmt(db.get(), "SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid");
  catalog_ = Stmt(db.get(),
                  "SELECT field, column_name, type, field_json FROM cascade_columns WHERE "
                  "table_name=?1 ORDER BY position");
  catalog_types_ = Stmt(db.get(),
                        "SELECT column_name, type FROM cascade_columns WHERE table_name=?1 "
                        "AND column_name<>'_overflow'");
  record_ = Stmt(db.get(),
                 "INSERT OR IGNORE INTO cascade_columns(table_name, field, field_json, "
                 "column_name, type, position, added_at) VALUES(?1, ?2, ?3, ?4, ?5, "
                 "(SELECT count(*) FROM cascade_columns WHERE table_name=?1), "
                 "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
  list_table_ = Stmt(db.get(),
                     "INSERT INTO cascade_tables(table_name, parent_table, field, field_json, "
                     "position, added_at) VALUES(?1, ?2, ?3, ?4, (SELECT count(*) FROM "
                     "cascade_tables), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT DO "
                     "UPDATE SET parent_table=coalesce(excluded.parent_table, parent_table), "
                     "field=coalesce(excluded.field, field), field_json=coalesce(excluded."
                     "field_json, field_json)");
  children_ = Stmt(db.get(),
                   "SELECT table_name, field, field_json FROM cascade_tables WHERE "
                   "parent_table=?1 ORDER BY position");
  conflict_ = Stmt(db.get(),
                   "INSERT INTO cascade_type_conflicts(table_name, column_name, field, "
                   "expected_type, seen_type, first_seen, last_seen, count) VALUES(?1, ?2, ?3, "
                   "?4, ?5, ?6, ?6, ?7) ON CONFLICT DO UPDATE SET last_seen=excluded.last_seen, "
                   "count=count+excluded.count");
}

std::vector<Column> SqliteWarehouse::read_columns(std::string_view table,
                                                  std::vector<char>* numeric,
                                                  std::vector<int>* pk_out) {
  std::vector<Column> out;
  std::vector<std::pair<int64_t, int>> pk;  // (position in key, column)
  {
    Use u(table_info_);
    table_info_.bind(1, table);
    while (table_info_.step()) {
      std::string_view decl = table_info_.col_text(1);
      if (is_metadata_column(table_info_.col_text(0))) continue;
      if (int64_t p = table_info_.col_int(2); p > 0)
        pk.emplace_back(p, static_cast<int>(out.size()));
      out.push_back(Column{std::string(table_info_.col_text(0)), type_from_decl(decl)});
      out.back().field.reset();
      if (numeric) numeric->push_back(decl_is_numeric(decl) ? 1 : 0);
    }
  }
  if (out.empty()) return out;
  StrMap<ColumnType> types;
  {
    Use u(catalog_types_);
    catalog_types_.bind(1, table);
    while (catalog_types_.step())
      types.emplace(std::string(catalog_types_.col_text(0)),
                    column_type_from_name(catalog_types_.col_text(1)));
  }
  for (auto& c : out)
    if (auto it = types.find(c.name); it != types.end()) c.type = it->second;
  if (pk_out) {
    std::sort(pk.begin(), pk.end());
    for (auto& [p, i] : pk) pk_out->push_back(i);
  }
  return out;
}

std::vector<Column> SqliteWarehouse::columns(std::string_view table) {
  return read_columns(table, nullptr, nullptr);
}

std::vector<Column> SqliteWarehouse::catalog(std::string_view table) {
  std::vector<Column> out;
  Use u(catalog_);
  catalog_.bind(1, table);
  while (catalog_.step()) {
    out.push_back(Column{std::string(catalog_.col_text(1)),
                         column_type_from_name(catalog_.col_text(2)),
                         std::string(catalog_.col_text(0))});
    std::string_view json = catalog_.col_text(3);
    // A record field's spelling is implied by its name; only the others are kept.
    if (!json.empty() && json.front() != '"') out.back().field_json = json;
  }
  return out;
}

void SqliteWarehouse::record(std::string_view table, const Column& c) {
  const std::string& field = *c.field;
  std::string field_json = c.field_json;
  if (field_json.empty()) append_json_string(field, field_json);
  record_.bind(1, table);
  record_.bind(2, std::string_view(field));
  record_.bind(3, std::string_view(field_json));
  record_.bind(4, std::string_view(c.name));
  record_.bind(5, std::string_view(column_type_name(c.type)));
  record_.exec();
}

SqliteWarehouse::Table& SqliteWarehouse::table(std::string_view name) {
  if (auto it = tables_.find(name); it != tables_.end()) return *it->second;
  auto t = std::make_unique<Table>();
  t->columns = read_columns(name, &t->numeric_affinity, &t->key);
  if (t->columns.empty()) no_table(name);
  upgrade(name);
  for (size_t i = 0; i < t->columns.size(); ++i)
    t->index.emplace(t->columns[i].name, static_cast<int>(i));
  t->seen.resize(t->columns.size());
  auto& slot = tables_[std::string(name)];
  slot = std::move(t);
  return *slot;
}

void SqliteWarehouse::create_table(std::string_view table, std::span<const Column> key) {
  if (key.empty())
    throw std::runtime_error("warehouse: table '" + std::string(table) + "' needs a key column");
  std::string sql = "CREATE TABLE IF NOT EXISTS " + quote_ident(table) + "(";
  std::string pk;
  for (const auto& c : key) {
    sql += column_def(c) + ", ";
    if (!pk.empty()) pk += ", ";
    pk += quote_ident(c.name);
  }
  for (const auto& [name, decl] : kMetadata)
    sql += quote_ident(name) + " " + std::string(decl) + ", ";
  sql += "PRIMARY KEY(" + pk + "))";
  Implicit tx(db_);
  db_.exec(sql);
  for (const auto& c : key)
    if (c.field) record(table, c);
  upgrade(table);
  tx.done();
  if (auto it = tables_.find(table); it != tables_.end()) tables_.erase(it);
}

void SqliteWarehouse::add_columns(std::string_view table, std::span<const Column> cols) {
  Table& t = this->table(table);
  Implicit tx(db_);
  StrMap<int> added;
  for (const auto& c : cols) {
    // Idempotent, so a schema evolution that was interrupted can simply be replayed.
    if (t.index.find(c.name) == t.index.end() && added.find(c.name) == added.end()) {
      db_.exec("ALTER TABLE " + quote_ident(table) + " ADD COLUMN " + column_def(c));
      db_.exec("ALTER TABLE " + quote_ident(history_table_name(table)) + " ADD COLUMN " +
               column_def(c));
      added.emplace(c.name, 0);
    }
    if (c.field) record(table, c);
  }
  tx.done();
  // The cached upsert names every column: it must be rebuilt for the new ones.
  tables_.erase(tables_.find(table));
}

void SqliteWarehouse::upgrade(std::string_view table) {
  {
    Implicit tx(db_);
    list_table_.bind(1, table);
    list_table_.bind_null(2);
    list_table_.bind_null(3);
    list_table_.bind_null(4);
    list_table_.exec();
    tx.done();
  }
  struct Info {
    std::string name, decl;
    int64_t pk;
  };
  auto info = [&](std::string_view t) {
    std::vector<Info> out;
    Use u(table_info_);
    table_info_.bind(1, t);
    while (table_info_.step())
      out.push_back({std::string(table_info_.col_text(0)), std::string(table_info_.col_text(1)),
                     table_info_.col_int(2)});
    return out;
  };
  std::vector<Info> current = info(table);
  std::string history = history_table_name(table);
  std::vector<Info> past = info(history);
  auto has = [](const std::vector<Info>& cols, std::string_view name) {
    for (const auto& c : cols)
      if (c.name == name) return true;
    return false;
  };
  std::vector<std::string> ddl;
  for (const auto& [name, decl] : kMetadata)
    if (!has(current, name))
      ddl.push_back("ALTER TABLE " + quote_ident(table) + " ADD COLUMN " + quote_ident(name) + " " +
                    std::string(decl));
  auto def = [](const Info& c) {
    return quote_ident(c.name) + (c.decl.empty() ? "" : " " + c.decl);
  };
  if (past.empty()) {
    std::vector<std::pair<int64_t, std::string>> pk;
    std::string sql = "CREATE TABLE " + quote_ident(history) + "(";
    for (const auto& c : current) {
      if (is_metadata_column(c.name)) continue;
      sql += def(c) + ", ";
      if (c.pk > 0) pk.emplace_back(c.pk, quote_ident(c.name));
    }
    std::sort(pk.begin(), pk.end());
    sql += quote_ident(kVersionColumn) + " INTEGER NOT NULL, " + quote_ident(kValidFromColumn) +
           " TEXT NOT NULL, " + quote_ident(kValidToColumn) + " TEXT, " +
           quote_ident(kEffectiveColumn) + " TEXT, " + quote_ident(kRunIdColumn) +
           " INTEGER, PRIMARY KEY(";
    for (const auto& [p, name] : pk) sql += name + ", ";
    sql += quote_ident(kVersionColumn) + ")) WITHOUT ROWID";
    ddl.push_back(std::move(sql));
  } else {
    for (const auto& c : current)
      if (!is_metadata_column(c.name) && !has(past, c.name))
        ddl.push_back("ALTER TABLE " + quote_ident(history) + " ADD COLUMN " + def(c));
  }
  if (ddl.empty()) return;
  Implicit tx(db_);
  for (const auto& d : ddl) db_.exec(d);
  tx.done();
}

void SqliteWarehouse::prepare_writes(std::string_view name, Table& t) {
  std::string table = quote_ident(name);
  std::string history = quote_ident(history_table_name(name));
  size_t n = t.columns.size();
  auto p = [](size_t i) { return "?" + std::to_string(i); };
  // Every column is named so an absent field overwrites with NULL, as a replace would, but in
  // place: ON CONFLICT DO UPDATE keeps the rowid, INSERT OR REPLACE would delete it.
  std::string cols, vals, keys, sets;
  for (size_t i = 0; i < n; ++i) {
    if (i) cols += ", ", vals += ", ";
    cols += quote_ident(t.columns[i].name);
    vals += p(i + 1);
  }
  std::string key_match;
  for (size_t j = 0; j < t.key.size(); ++j) {
    std::string q = quote_ident(t.columns[static_cast<size_t>(t.key[j])].name);
    if (j) keys += ", ", key_match += " AND ";
    keys += q;
    key_match += q + "=" + p(j + 1);
  }
  for (size_t i = 0; i < n; ++i) {
    if (std::find(t.key.begin(), t.key.end(), static_cast<int>(i)) != t.key.end()) continue;
    std::string q = quote_ident(t.columns[i].name);
    sets += q + "=excluded." + q + ", ";
  }
  std::string at = p(n + 1), run = p(n + 2);
  std::string version = quote_ident(kVersionColumn);
  t.upsert =
      Stmt(db_.get(),
           "INSERT INTO " + table + "(" + cols + ", " + quote_ident(kFirstSeenColumn) + ", " +
               quote_ident(kLastChangedColumn) + ", " + version + ", " + quote_ident(kRunIdColumn) +
               ", " + quote_ident(kDeletedAtColumn) + ") VALUES(" + vals + ", " + at + ", " + at +
               ", 1, " + run + ", NULL) ON CONFLICT(" + keys + ") DO UPDATE SET " + sets +
               quote_ident(kLastChangedColumn) + "=excluded." + quote_ident(kLastChangedColumn) +
               ", " + version + "=coalesce(" + version + ", 0) + 1, " + quote_ident(kRunIdColumn) +
               "=excluded." + quote_ident(kRunIdColumn) + ", " + quote_ident(kDeletedAtColumn) +
               "=NULL RETURNING " + version);
  t.history_insert =
      Stmt(db_.get(), "INSERT INTO " + history + "(" + cols + ", " + version + ", " +
                          quote_ident(kValidFromColumn) + ", " + quote_ident(kEffectiveColumn) +
                          ", " + quote_ident(kRunIdColumn) + ") VALUES(" + vals + ", " + p(n + 1) +
                          ", " + p(n + 2) + ", " + p(n + 3) + ", " + p(n + 4) + ")");
  size_t k = t.key.size();
  std::string valid_from = quote_ident(kValidFromColumn), valid_to = quote_ident(kValidToColumn);
  std::string effective = quote_ident(kEffectiveColumn);
  // The new version starts at its claim unless the previous version claimed the same (?k+2,
  // NULL: no claim), else at the stamp's time (?k+3); the statement returns which, so the new
  // version is inserted with the same start. A version never ends before it began, whatever
  // dates the vendor sends.
  std::string claim = p(k + 2), now = p(k + 3);
  std::string same = "(" + claim + " IS NULL OR " + effective + " IS " + claim + ")";
  t.history_close =
      Stmt(db_.get(), "UPDATE " + history + " SET " + valid_to + "=max(" + valid_from +
                          ", CASE WHEN " + same + " THEN " + now + " ELSE " + claim +
                          " END) WHERE " + key_match + " AND " + version + "=" + p(k + 1) +
                          " AND " + valid_to + " IS NULL RETURNING " + same);
  t.soft_delete =
      Stmt(db_.get(), "UPDATE " + table + " SET " + quote_ident(kDeletedAtColumn) + "=" + p(k + 1) +
                          ", " + quote_ident(kRunIdColumn) + "=" + p(k + 2) + " WHERE " +
                          key_match + " AND " + quote_ident(kDeletedAtColumn) + " IS NULL");
  t.history_end =
      Stmt(db_.get(), "UPDATE " + history + " SET " + valid_to + "=max(" + valid_from + ", " +
                          p(k + 1) + ") WHERE " + key_match + " AND " + valid_to + " IS NULL");
}

void SqliteWarehouse::upsert(std::string_view table, std::span<const RowWrite> rows,
                             const WriteStamp& stamp) {
  if (rows.empty()) return;
  Table& t = this->table(table);
  if (!t.upsert) prepare_writes(table, t);
  const int n = static_cast<int>(t.columns.size());
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  Stmt& st = t.upsert;
  Stmt& hist = t.history_insert;
  Stmt& close = t.history_close;
  st.bind(n + 1, std::string_view(at));
  st.bind(n + 2, stamp.run_id);
  hist.bind(n + 4, stamp.run_id);
  Implicit tx(db_);
  for (const RowWrite& w : rows) {
    const Value* row = w.row;
    if (!row || !row->is_object())
      throw std::runtime_error("warehouse: a row for table '" + std::string(table) +
                               "' is not an object");
    std::fill(t.seen.begin(), t.seen.end(), 0);
    for (const auto& [name, v] : row->as_object()) {
      auto it = t.index.find(name);
      if (it == t.index.end())
        throw std::runtime_error("warehouse: table '" + std::string(table) + "' has no column '" +
                                 name + "' (add it first)");
      size_t c = static_cast<size_t>(it->second);
      t.seen[c] = 1;
      bind(st, it->second + 1, v, t.columns[c], t.numeric_affinity[c]);
      bind(hist, it->second + 1, v, t.columns[c], t.numeric_affinity[c]);
    }
    for (int k : t.key) {
      const Value* kv = nullptr;
      if (t.seen[static_cast<size_t>(k)]) kv = row->find(t.columns[static_cast<size_t>(k)].name);
      if (!kv || kv->is_null())
        throw std::runtime_error("warehouse: a row for table '" + std::string(table) +
                                 "' lacks key column '" + t.columns[static_cast<size_t>(k)].name +
                                 "'");
    }
    for (size_t i = 0; i < t.seen.size(); ++i)
      if (!t.seen[i]) {
        st.bind_null(static_cast<int>(i + 1));
        hist.bind_null(static_cast<int>(i + 1));
      }
    int64_t version = 1;
    {
      Use u(st);
      if (st.step()) version = st.col_int(0);
    }
    std::string_view from = w.valid_from.empty() ? std::string_view(at) : w.valid_from;
    if (version > 1) {
      const int k = static_cast<int>(t.key.size());
      bind_key(close, 1, t, *row, table);
      close.bind(k + 1, version - 1);
      if (w.valid_from.empty())
        close.bind_null(k + 2);
      else
        close.bind(k + 2, w.valid_from);
      close.bind(k + 3, std::string_view(at));
      Use u(close);
      if (close.step() && close.col_int(0)) from = at;
    }
    hist.bind(n + 1, version);
    hist.bind(n + 2, from);
    if (w.valid_from.empty())
      hist.bind_null(n + 3);
    else
      hist.bind(n + 3, w.valid_from);
    hist.exec();
  }
  tx.done();
}

void SqliteWarehouse::bind_key(Stmt& st, int first, const Table& t, const Value& key,
                               std::string_view table) {
  for (size_t j = 0; j < t.key.size(); ++j) {
    size_t c = static_cast<size_t>(t.key[j]);
    const std::string& name = t.columns[c].name;
    const Value* v = key.is_object() ? key.find(name) : nullptr;
    if (!v || v->is_null())
      throw std::runtime_error("warehouse: a key for table '" + std::string(table) +
                               "' lacks column '" + name + "'");
    bind(st, first + static_cast<int>(j), *v, t.columns[c], t.numeric_affinity[c]);
  }
}

void SqliteWarehouse::mark_deleted(std::string_view table, std::span<const Value* const> keys,
                                   const WriteStamp& stamp) {
  if (keys.empty()) return;
  Table& t = this->table(table);
  if (!t.upsert) prepare_writes(table, t);
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  const int k = static_cast<int>(t.key.size());
  Implicit tx(db_);
  for (const Value* key : keys) {
    if (!key)
      throw std::runtime_error("warehouse: a null key for table '" + std::string(table) + "'");
    bind_key(t.soft_delete, 1, t, *key, table);
    t.soft_delete.bind(k + 1, std::string_view(at));
    t.soft_delete.bind(k + 2, stamp.run_id);
    t.soft_delete.exec();
    bind_key(t.history_end, 1, t, *key, table);
    t.history_end.bind(k + 1, std::string_view(at));
    t.history_end.exec();
  }
  tx.done();
}

void SqliteWarehouse::mark_deleted_items(std::string_view table,
                                         std::span<const Value* const> parents,
                                         std::span<const int64_t> from, const WriteStamp& stamp) {
  if (parents.empty()) return;
  if (parents.size() != from.size())
    throw std::runtime_error("warehouse: mark_deleted_items needs one position per parent");
  Table& t = this->table(table);
  if (t.key.size() < 2)
    throw std::runtime_error("warehouse: table '" + std::string(table) + "' is no child table");
  const size_t k = t.key.size() - 1;  // the parent's key columns
  if (!t.items_delete) {
    auto p = [](size_t i) { return "?" + std::to_string(i); };
    std::string match;
    for (size_t j = 0; j < k; ++j)
      match +=
          quote_ident(t.columns[static_cast<size_t>(t.key[j])].name) + "=" + p(j + 1) + " AND ";
    match += quote_ident(t.columns[static_cast<size_t>(t.key[k])].name) + ">=" + p(k + 1);
    t.items_delete = Stmt(
        db_.get(), "UPDATE " + quote_ident(table) + " SET " + quote_ident(kDeletedAtColumn) + "=" +
                       p(k + 2) + ", " + quote_ident(kRunIdColumn) + "=" + p(k + 3) + " WHERE " +
                       match + " AND " + quote_ident(kDeletedAtColumn) + " IS NULL");
    std::string valid_from = quote_ident(kValidFromColumn), valid_to = quote_ident(kValidToColumn);
    t.items_history_end =
        Stmt(db_.get(), "UPDATE " + quote_ident(history_table_name(table)) + " SET " + valid_to +
                            "=max(" + valid_from + ", " + p(k + 2) + ") WHERE " + match + " AND " +
                            valid_to + " IS NULL");
  }
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  Implicit tx(db_);
  for (size_t i = 0; i < parents.size(); ++i) {
    const Value* parent = parents[i];
    for (Stmt* st : {&t.items_delete, &t.items_history_end}) {
      for (size_t j = 0; j < k; ++j) {
        size_t c = static_cast<size_t>(t.key[j]);
        const Value* v = parent && parent->is_object() ? parent->find(t.columns[c].name) : nullptr;
        if (!v || v->is_null())
          throw std::runtime_error("warehouse: a parent key for table '" + std::string(table) +
                                   "' lacks column '" + t.columns[c].name + "'");
        bind(*st, static_cast<int>(j + 1), *v, t.columns[c], t.numeric_affinity[c]);
      }
      st->bind(static_cast<int>(k + 1), from[i]);
      st->bind(static_cast<int>(k + 2), std::string_view(at));
      if (st == &t.items_delete) st->bind(static_cast<int>(k + 3), stamp.run_id);
      st->exec();
    }
  }
  tx.done();
}

void SqliteWarehouse::link_child_table(const ChildTable& child) {
  Implicit tx(db_);
  list_table_.bind(1, std::string_view(child.table));
  list_table_.bind(2, std::string_view(child.parent));
  list_table_.bind(3, std::string_view(child.field));
  list_table_.bind(4, std::string_view(child.field_json));
  list_table_.exec();
  tx.done();
}

std::vector<ChildTable> SqliteWarehouse::child_tables(std::string_view parent) {
  std::vector<ChildTable> out;
  Use u(children_);
  children_.bind(1, parent);
  while (children_.step())
    out.push_back({std::string(children_.col_text(0)), std::string(parent),
                   std::string(children_.col_text(1)), std::string(children_.col_text(2))});
  return out;
}

void SqliteWarehouse::record_type_conflicts(std::span<const TypeConflict> conflicts,
                                            const WriteStamp& stamp) {
  if (conflicts.empty()) return;
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  Implicit tx(db_);
  for (const auto& c : conflicts) {
    conflict_.bind(1, std::string_view(c.table));
    conflict_.bind(2, std::string_view(c.column));
    conflict_.bind(3, std::string_view(c.field));
    conflict_.bind(4, std::string_view(column_type_name(c.expected)));
    conflict_.bind(5, std::string_view(column_type_name(c.seen)));
    conflict_.bind(6, std::string_view(at));
    conflict_.bind(7, static_cast<int64_t>(c.count));
    conflict_.exec();
  }
  tx.done();
}

void SqliteWarehouse::define_view(std::string_view name, std::string_view select) {
  Implicit tx(db_);
  db_.exec("DROP VIEW IF EXISTS " + quote_ident(name));
  db_.exec("CREATE VIEW " + quote_ident(name) + " AS " + std::string(select));
  tx.done();
  forget();
}

void SqliteWarehouse::bind(Stmt& st, int i, const Value& v, const Column& c, bool numeric) {
  switch (v.type()) {
    case Value::Type::Null:
      st.bind_null(i);
      break;
    case Value::Type::Bool:
      st.bind(i, int64_t{v.as_bool() ? 1 : 0});
      break;
    case Value::Type::Int:
      st.bind(i, v.as_int());
      break;
    case Value::Type::Double:
      // A TEXT column would keep only 15 digits of a REAL: give it the shortest exact text.
      if (c.type == ColumnType::Text)
        st.bind_copy(i, canonical_json(v));
      else
        st.bind(i, v.as_double());
      break;
    case Value::Type::Decimal:
      // In a column with numeric affinity, text that looks like a number is rounded to a REAL;
      // a BLOB is stored as given.
      if (numeric)
        st.bind_blob(i, v.as_decimal());
      else
        st.bind(i, std::string_view(v.as_decimal()));
      break;
    case Value::Type::String:
      st.bind(i, std::string_view(v.as_string()));
      break;
    case Value::Type::Array:
    case Value::Type::Object:
      st.bind_copy(i, canonical_json(v));
      break;
  }
}

namespace {

// Collects a streamed result, keeping only the last statement that returns columns. Text and
// BLOBs both become strings.
class Collect final : public RowSink {
 public:
  QueryResult result;
  void columns(std::span<const std::string> names) override {
    result = QueryResult{};
    result.columns.assign(names.begin(), names.end());
  }
  bool row(std::span<const Cell> cells) override {
    std::vector<Value> row;
    row.reserve(cells.size());
    for (const Cell& c : cells) {
      switch (c.kind) {
        case Cell::Kind::Null:
          row.emplace_back();
          break;
        case Cell::Kind::Integer:
          row.emplace_back(c.integer);
          break;
        case Cell::Kind::Real:
          row.emplace_back(c.real);
          break;
        case Cell::Kind::Text:
        case Cell::Kind::Blob:
          row.emplace_back(std::string(c.bytes));
          break;
      }
    }
    result.rows.push_back(std::move(row));
    return true;
  }
};

}  // namespace

QueryResult SqliteWarehouse::query(std::string_view sql) {
  Collect c;
  query_rows(sql, c);
  return std::move(c.result);
}

void SqliteWarehouse::query_rows(std::string_view sql, RowSink& sink) {
  const char* p = sql.data();
  const char* end = sql.data() + sql.size();
  bool wrote = false;
  // Any statement may have changed a schema this object has cached, whichever way this ends.
  struct Forget {
    SqliteWarehouse& w;
    bool& wrote;
    ~Forget() {
      if (wrote) w.forget();
    }
  } forget_on_exit{*this, wrote};
  auto error = [&]() { throw std::runtime_error(sqlite3_errmsg(db_.get())); };
  std::vector<std::string> names;
  std::vector<Cell> cells;
  while (p < end) {
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(db_.get(), p, static_cast<int>(end - p), &raw, &tail) != SQLITE_OK)
      error();
    p = tail;
    if (!raw) continue;  // whitespace or a comment
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
    if (!sqlite3_stmt_readonly(raw)) wrote = true;
    int n = sqlite3_column_count(raw);
    if (n > 0) {
      names.clear();
      for (int i = 0; i < n; ++i) names.emplace_back(sqlite3_column_name(raw, i));
      sink.columns(names);
    }
    cells.assign(static_cast<size_t>(n), Cell{});
    int rc;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      for (int i = 0; i < n; ++i) {
        Cell& c = cells[static_cast<size_t>(i)];
        c = Cell{};
        switch (sqlite3_column_type(raw, i)) {
          case SQLITE_INTEGER:
            c.kind = Cell::Kind::Integer;
            c.integer = sqlite3_column_int64(raw, i);
            break;
          case SQLITE_FLOAT:
            c.kind = Cell::Kind::Real;
            c.real = sqlite3_column_double(raw, i);
            break;
          case SQLITE_NULL:
            break;
          case SQLITE_BLOB: {
            c.kind = Cell::Kind::Blob;
            const void* b = sqlite3_column_blob(raw, i);
            int len = sqlite3_column_bytes(raw, i);
            if (len > 0) c.bytes = {static_cast<const char*>(b), static_cast<size_t>(len)};
            break;
          }
          default: {
            c.kind = Cell::Kind::Text;
            const unsigned char* t = sqlite3_column_text(raw, i);
            int len = sqlite3_column_bytes(raw, i);
            if (len > 0) c.bytes = {reinterpret_cast<const char*>(t), static_cast<size_t>(len)};
          }
        }
      }
      if (!sink.row(cells)) return;
    }
    if (rc != SQLITE_DONE) error();
  }
}

std::vector<Relation> SqliteWarehouse::relations() {
  std::vector<Relation> out;
  Stmt st(db_.get(),
          "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE "
          "'sqlite\\_%' ESCAPE '\\' ORDER BY name");
  while (st.step()) out.push_back({std::string(st.col_text(0)), st.col_text(1) == "view"});
  return out;
}

}  // namespace cascade::sqlite
