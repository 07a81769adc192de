#include <algorithm>
#include <stdexcept>

#include "core/json.h"
#include "store/names.h"
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

// Declared types of the metadata columns: none of them ever holds an exact big number.
constexpr std::pair<std::string_view, std::string_view> kMetadata[] = {
    {kFirstSeenColumn, "TEXT"}, {kLastChangedColumn, "TEXT"}, {kVersionColumn, "INTEGER"},
    {kRunIdColumn, "INTEGER"},  {kDeletedAtColumn, "TEXT"},   {kValidFromColumn, "TEXT"},
    {kEffectiveColumn, "TEXT"}, {kSeqColumn, "INTEGER"},      {kHashColumn, "INTEGER"},
    {kScopeColumn, "INTEGER"},
};

bool is_metadata_column(std::string_view name) {
  for (const auto& [m, decl] : kMetadata)
    if (name == m) return true;
  return false;
}

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
  seq_get_ = Stmt(db.get(), "SELECT value FROM cascade_meta WHERE key='change_seq'");
  seq_put_ = Stmt(db.get(),
                  "INSERT INTO cascade_meta(key, value) VALUES('change_seq', ?1) ON CONFLICT(key) "
                  "DO UPDATE SET value=excluded.value");
  del_event_ = Stmt(db.get(),
                    "INSERT INTO cascade_deletions(seq, table_name, key, image, run_id, at) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
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
  if (read_columns(name, nullptr, nullptr).empty()) no_table(name);
  upgrade(name);
  auto t = std::make_unique<Table>();
  t->columns = read_columns(name, &t->numeric_affinity, &t->key);
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
    sql += column_def(c) + " NOT NULL, ";
    if (!pk.empty()) pk += ", ";
    pk += quote_ident(c.name);
  }
  for (const auto& [name, decl] : kMetadata)
    sql += quote_ident(name) + " " + std::string(decl) + ", ";
  // One b-tree per table: the row lives in its key's index, so a new record is one insert.
  sql += "PRIMARY KEY(" + pk + ")) WITHOUT ROWID";
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
      db_.exec("ALTER TABLE " + quote_ident(past_table_name(table)) + " ADD COLUMN " +
               column_def(c));
      added.emplace(c.name, 0);
    }
    if (c.field) record(table, c);
  }
  if (!added.empty()) define_views_of(table);
  tx.done();
  // The cached statements name every column: they must be rebuilt for the new ones.
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
  auto kind = [&](const std::string& name) {
    Stmt st(db_.get(), "SELECT type FROM sqlite_schema WHERE name=?1");
    st.bind(1, std::string_view(name));
    return st.step() ? std::string(st.col_text(0)) : std::string();
  };
  std::vector<Info> current = info(table);
  const std::string past = past_table_name(table);
  const std::string history = history_table_name(table);
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
  const std::string history_kind = kind(history);
  const bool make_past = kind(past).empty();
  if (!ddl.empty() || make_past || history_kind != "view") {
    Implicit tx(db_);
    for (const auto& d : ddl) db_.exec(d);
    if (make_past && history_kind == "table") {
      // An earlier cascade kept every version, the current one included, in the history table:
      // its current versions move into the table's own rows, the rest become the past.
      std::vector<Info> old = info(history);
      std::string key_match;
      for (const auto& c : current)
        if (c.pk > 0)
          key_match += (key_match.empty() ? "" : " AND ") + quote_ident(table) + "." +
                       quote_ident(c.name) + "=h." + quote_ident(c.name);
      db_.exec("UPDATE " + quote_ident(table) + " SET " + quote_ident(kEffectiveColumn) +
               "=h._effective, " + quote_ident(kValidFromColumn) + "=CASE WHEN h._valid_from IS " +
               quote_ident(kLastChangedColumn) + " THEN NULL ELSE h._valid_from END FROM " +
               quote_ident(history) + " h WHERE " + key_match + " AND h._valid_to IS NULL");
      db_.exec("ALTER TABLE " + quote_ident(history) + " RENAME TO " + quote_ident(past));
      for (std::string_view extra : {kSeqColumn, kChangedAtColumn})
        if (!has(old, extra))
          db_.exec("ALTER TABLE " + quote_ident(past) + " ADD COLUMN " + quote_ident(extra) +
                   (extra == kSeqColumn ? " INTEGER" : " TEXT"));
      db_.exec("DELETE FROM " + quote_ident(past) + " WHERE _valid_to IS NULL");
    } else if (make_past) {
      auto def = [](const Info& c) {
        return quote_ident(c.name) + (c.decl.empty() ? "" : " " + c.decl);
      };
      std::vector<std::pair<int64_t, std::string>> pk;
      std::string sql = "CREATE TABLE " + quote_ident(past) + "(";
      for (const auto& c : current) {
        if (is_metadata_column(c.name)) continue;
        sql += def(c) + ", ";
        if (c.pk > 0) pk.emplace_back(c.pk, quote_ident(c.name));
      }
      std::sort(pk.begin(), pk.end());
      sql += quote_ident(kVersionColumn) + " INTEGER NOT NULL, " + quote_ident(kValidFromColumn) +
             " TEXT NOT NULL, " + quote_ident(kValidToColumn) + " TEXT, " +
             quote_ident(kEffectiveColumn) + " TEXT, " + quote_ident(kRunIdColumn) + " INTEGER, " +
             quote_ident(kSeqColumn) + " INTEGER, " + quote_ident(kChangedAtColumn) +
             " TEXT, PRIMARY KEY(";
      for (const auto& [p, name] : pk) sql += name + ", ";
      sql += quote_ident(kVersionColumn) + ")) WITHOUT ROWID";
      db_.exec(sql);
    }
    define_views_of(table);
    tx.done();
  }
}

namespace {

// SQL for the JSON text of column `c` of a row, exact for every type a column may hold: REALs
// with the fewest digits that read back as the same double, Decimals kept in BLOBs as their
// digits, booleans as true/false, JSON columns as JSON.
std::string json_value_sql(const Column& c) {
  std::string x = quote_ident(c.name);
  std::string g15 = "printf('%!.15g', " + x + ")";
  std::string real = "json(CASE WHEN CAST(" + g15 + " AS REAL) = " + x + " THEN " + g15 +
                     " ELSE printf('%!.17g', " + x + ") END)";
  std::string any = "CASE typeof(" + x + ") WHEN 'real' THEN " + real +
                    " WHEN 'blob' THEN json(CAST(" + x + " AS TEXT)) ";
  switch (c.type) {
    case ColumnType::Boolean:
      any += "WHEN 'integer' THEN json(CASE " + x + " WHEN 0 THEN 'false' ELSE 'true' END) ";
      break;
    case ColumnType::Json:
    case ColumnType::Decimal:
      any += "WHEN 'text' THEN CASE WHEN json_valid(" + x + ") THEN json(" + x + ") ELSE " + x +
             " END ";
      break;
    default:
      break;
  }
  return any + "ELSE " + x + " END";
}

std::string literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

// json_object() takes at most 63 pairs (SQLite's limit of 127 arguments): wider rows are merged
// from several objects.
std::string json_object_sql(std::span<const Column> cols) {
  if (cols.empty()) return "json_object()";
  std::string out;
  for (size_t i = 0; i < cols.size(); i += 60) {
    std::string part = "json_object(";
    for (size_t j = i; j < std::min(cols.size(), i + 60); ++j) {
      if (j > i) part += ", ";
      part += literal(cols[j].name) + ", " + json_value_sql(cols[j]);
    }
    part += ")";
    out = out.empty() ? part : "json_patch(" + out + ", " + part + ")";
  }
  return out;
}

}  // namespace

void SqliteWarehouse::define_views_of(std::string_view table) {
  std::vector<Column> cols = read_columns(table, nullptr, nullptr);
  std::string list;
  for (const auto& c : cols) list += quote_ident(c.name) + ", ";
  const std::string view = quote_ident(history_table_name(table));
  db_.exec("DROP VIEW IF EXISTS " + view);
  db_.exec("CREATE VIEW " + view + " AS SELECT " + list +
           "_version, _valid_from, _valid_to, _effective, _run_id, _seq, _changed_at FROM " +
           quote_ident(past_table_name(table)) + " UNION ALL SELECT " + list +
           "_version, coalesce(_valid_from, _last_changed), NULL, _effective, _run_id, _seq, "
           "_last_changed FROM " +
           quote_ident(table) + " WHERE _deleted_at IS NULL");
  define_change_log();
}

void SqliteWarehouse::define_change_log() {
  std::vector<std::string> tables;
  {
    Stmt st(db_.get(),
            "SELECT t.table_name FROM cascade_tables t JOIN sqlite_schema s ON s.name = "
            "'cascade_past_' || t.table_name AND s.type = 'table' ORDER BY t.position");
    while (st.step()) tables.emplace_back(st.col_text(0));
  }
  std::string sql =
      "SELECT seq, table_name, key, 'delete' AS operation, image, run_id, at FROM "
      "cascade_deletions";
  for (const auto& t : tables) {
    std::vector<int> pk;
    std::vector<Column> cols = read_columns(t, nullptr, &pk);
    if (cols.empty()) continue;
    std::string key = "json_array(";
    for (size_t j = 0; j < pk.size(); ++j)
      key += (j ? ", " : "") + json_value_sql(cols[static_cast<size_t>(pk[j])]);
    key += ")";
    std::string image = json_object_sql(cols);
    std::string common = " AS seq, " + literal(t) + " AS table_name, " + key +
                         " AS key, CASE WHEN _version = 1 THEN 'insert' ELSE 'update' END AS "
                         "operation, " +
                         image + " AS image, _run_id AS run_id, ";
    sql += " UNION ALL SELECT _seq" + common + "_changed_at AS at FROM " +
           quote_ident(past_table_name(t)) + " WHERE _seq IS NOT NULL";
    sql += " UNION ALL SELECT _seq" + common + "_last_changed AS at FROM " + quote_ident(t) +
           " WHERE _seq IS NOT NULL AND _deleted_at IS NULL";
  }
  const std::string view = quote_ident(kChangeLogView);
  db_.exec("DROP VIEW IF EXISTS " + view);
  db_.exec("CREATE VIEW " + view + " AS SELECT * FROM (" + sql + ") ORDER BY seq");
}

int64_t SqliteWarehouse::next_seq() {
  if (!seq_loaded_) {
    Use u(seq_get_);
    seq_ = seq_get_.step() ? std::stoll(std::string(seq_get_.col_text(0))) : 0;
    seq_loaded_ = true;
  }
  seq_dirty_ = true;
  return ++seq_;
}

void SqliteWarehouse::save_seq() {
  if (!seq_dirty_) return;
  seq_put_.bind_copy(1, std::to_string(seq_));
  seq_put_.exec();
  seq_dirty_ = false;
}

void SqliteWarehouse::prepare_writes(std::string_view name, Table& t) {
  const std::string table = quote_ident(name);
  const std::string past = quote_ident(past_table_name(name));
  const size_t n = t.columns.size();
  auto p = [](size_t i) { return "?" + std::to_string(i); };
  std::string cols, vals, sets, key_by_row, key_by_key;
  for (size_t i = 0; i < n; ++i) {
    if (i) cols += ", ", vals += ", ";
    cols += quote_ident(t.columns[i].name);
    vals += p(i + 1);
  }
  for (size_t j = 0; j < t.key.size(); ++j) {
    size_t c = static_cast<size_t>(t.key[j]);
    std::string q = quote_ident(t.columns[c].name);
    if (j) key_by_row += " AND ", key_by_key += " AND ";
    key_by_row += q + "=" + p(c + 1);
    key_by_key += q + "=" + p(j + 1);
  }
  for (size_t i = 0; i < n; ++i) {
    if (std::find(t.key.begin(), t.key.end(), static_cast<int>(i)) != t.key.end()) continue;
    sets += quote_ident(t.columns[i].name) + "=" + p(i + 1) + ", ";
  }
  // Bound after the field columns: at, run, valid_from, effective, seq, hash, scope, version.
  const std::string at = p(n + 1), run = p(n + 2), from = p(n + 3), eff = p(n + 4), seq = p(n + 5),
                    hash = p(n + 6), scope = p(n + 7), version = p(n + 8);
  t.insert = Stmt(db_.get(), "INSERT INTO " + table + "(" + cols +
                                 ", _first_seen, _last_changed, _version, _run_id, _deleted_at, "
                                 "_valid_from, _effective, _seq, _hash, _scope) VALUES(" +
                                 vals + ", " + at + ", " + at + ", 1, " + run + ", NULL, " + from +
                                 ", " + eff + ", " + seq + ", " + hash + ", " + scope + ")");
  t.update = Stmt(db_.get(), "UPDATE " + table + " SET " + sets + "_last_changed=" + at +
                                 ", _version=" + version + ", _run_id=" + run +
                                 ", _deleted_at=NULL, _valid_from=" + from + ", _effective=" + eff +
                                 ", _seq=" + seq + ", _hash=" + hash + ", _scope=" + scope +
                                 " WHERE " + key_by_row);
  t.lookup = Stmt(db_.get(), "SELECT _hash, _deleted_at IS NOT NULL, _version, _effective FROM " +
                                 table + " WHERE " + key_by_key);
  const size_t k = t.key.size();
  // The live current version of a key (with ?k+2, only when that listing wrote it) becomes a
  // past version, closed at ?k+1 but never before it began.
  std::string past_cols = cols +
                          ", _version, _valid_from, _valid_to, _effective, _run_id, _seq, "
                          "_changed_at";
  t.archive =
      Stmt(db_.get(), "INSERT INTO " + past + "(" + past_cols + ") SELECT " + cols +
                          ", _version, coalesce(_valid_from, _last_changed), "
                          "max(coalesce(_valid_from, _last_changed), " +
                          p(k + 1) + "), _effective, _run_id, _seq, _last_changed FROM " + table +
                          " WHERE " + key_by_key + " AND _deleted_at IS NULL AND (" + p(k + 2) +
                          " IS NULL OR _scope IS " + p(k + 2) + ")");
  t.soft_delete = Stmt(db_.get(), "UPDATE " + table + " SET _deleted_at=" + p(k + 1) +
                                      ", _run_id=" + p(k + 2) + " WHERE " + key_by_key);
}

namespace {

struct RawUse {
  sqlite3_stmt* st;
  ~RawUse() { sqlite3_reset(st); }
};

}  // namespace

void SqliteWarehouse::upsert(std::string_view table, std::span<const RowWrite> rows,
                             const WriteStamp& stamp, std::span<WriteOutcome> outcomes) {
  if (rows.empty()) return;
  if (!outcomes.empty() && outcomes.size() != rows.size())
    throw std::logic_error("warehouse: upsert needs one outcome slot per row");
  Table& t = this->table(table);
  if (!t.insert) prepare_writes(table, t);
  const int n = static_cast<int>(t.columns.size());
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  Stmt& ins = t.insert;
  Stmt& upd = t.update;
  for (Stmt* st : {&ins, &upd}) {
    st->bind(n + 1, std::string_view(at));
    st->bind(n + 2, stamp.run_id);
  }
  // The metadata of a new version: its start when not `at`, its claim, seq, hash and scope.
  auto bind_meta = [&](Stmt& st, std::string_view from, const RowWrite& w) {
    if (from == at)
      st.bind_null(n + 3);
    else
      st.bind(n + 3, from);
    if (w.valid_from.empty())
      st.bind_null(n + 4);
    else
      st.bind(n + 4, w.valid_from);
    st.bind(n + 5, next_seq());
    if (w.hash)
      st.bind(n + 6, static_cast<int64_t>(w.hash));
    else
      st.bind_null(n + 6);
    st.bind(n + 7, static_cast<int64_t>(w.scope));
  };
  // Inserts a first version; false when the key is there already.
  auto insert = [&](const RowWrite& w) {
    bind_row(ins, t, *w.row, table);
    bind_meta(ins, w.valid_from.empty() ? std::string_view(at) : w.valid_from, w);
    RawUse u{ins.get()};
    int rc = sqlite3_step(ins.get());
    if (rc == SQLITE_DONE) return true;
    // The key is the table's only constraint (SQLite reports a WITHOUT ROWID key as UNIQUE).
    int ext = sqlite3_extended_errcode(db_.get());
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE) return false;
    throw_error(rc,
                "sqlite: insert into '" + std::string(table) + "': " + sqlite3_errmsg(db_.get()));
  };
  Implicit tx(db_);
  for (size_t r = 0; r < rows.size(); ++r) {
    const RowWrite& w = rows[r];
    const Value* row = w.row;
    if (!row || !row->is_object())
      throw std::runtime_error("warehouse: a row for table '" + std::string(table) +
                               "' is not an object");
    auto done = [&](WriteOutcome o) {
      if (!outcomes.empty()) outcomes[r] = o;
    };
    if (!w.known && insert(w)) {
      done(WriteOutcome::Inserted);
      continue;
    }
    const std::string_view claim = w.valid_from;
    int64_t version = 0;
    bool found = false, deleted = false, same_claim = claim.empty();
    {
      Stmt& look = t.lookup;
      bind_key(look, 1, t, *row, table);
      Use u(look);
      if (look.step()) {
        found = true;
        deleted = look.col_int(1) != 0;
        if (w.hash && !deleted && !look.col_null(0) &&
            static_cast<uint64_t>(look.col_int(0)) == w.hash) {
          done(WriteOutcome::Unchanged);
          continue;
        }
        // A row from before versions has none: its next one is the first the history holds.
        version = look.col_int(2);
        if (!claim.empty() && !look.col_null(3) && look.col_text(3) == claim) same_claim = true;
      }
    }
    if (!found) {
      // Known to the caller's listing but not to the table: a first version after all.
      if (!insert(w))
        throw std::runtime_error("warehouse: a row of table '" + std::string(table) +
                                 "' appeared while it was written");
      done(WriteOutcome::Inserted);
      continue;
    }
    // A next version starts at its claim when the claim is new (what the date describes), else
    // when it was seen; a revived row starts at its claim or when it was seen.
    std::string_view from = deleted ? (claim.empty() ? std::string_view(at) : claim)
                                    : (same_claim ? std::string_view(at) : claim);
    if (!deleted && version > 0) {
      Stmt& arc = t.archive;
      const int k = static_cast<int>(t.key.size());
      bind_key(arc, 1, t, *row, table);
      arc.bind(k + 1, from);
      arc.bind_null(k + 2);
      arc.exec();
    }
    bind_row(upd, t, *row, table);
    bind_meta(upd, from, w);
    upd.bind(n + 8, version + 1);
    upd.exec();
    done(deleted ? WriteOutcome::Revived : WriteOutcome::Updated);
  }
  save_seq();
  tx.done();
}

void SqliteWarehouse::bind_row(Stmt& st, Table& t, const Value& row, std::string_view table) {
  const Object& o = row.as_object();
  // Rows of one table mostly repeat their field names in the same order: comparing them with
  // the last row's is cheaper than looking each one up.
  bool same = o.size() == t.memo_names.size();
  for (size_t i = 0; same && i < o.size(); ++i) same = o[i].first == t.memo_names[i];
  if (!same) {
    t.memo_names.clear();
    t.memo_pos.clear();
    for (const auto& [name, v] : o) {
      auto it = t.index.find(name);
      if (it == t.index.end())
        throw std::runtime_error("warehouse: table '" + std::string(table) + "' has no column '" +
                                 name + "' (add it first)");
      t.memo_names.push_back(name);
      t.memo_pos.push_back(it->second);
    }
  }
  std::fill(t.seen.begin(), t.seen.end(), 0);
  for (size_t i = 0; i < o.size(); ++i) {
    const Value& v = o[i].second;
    size_t c = static_cast<size_t>(t.memo_pos[i]);
    if (!v.is_null()) t.seen[c] = 1;
    bind(st, t.memo_pos[i] + 1, v, t.columns[c], t.numeric_affinity[c]);
  }
  for (int k : t.key)
    if (!t.seen[static_cast<size_t>(k)])
      throw std::runtime_error("warehouse: a row for table '" + std::string(table) +
                               "' lacks key column '" + t.columns[static_cast<size_t>(k)].name +
                               "'");
  // Absent and null fields alike are NULL (bound again: a statement keeps its last bindings).
  for (size_t i = 0; i < t.seen.size(); ++i)
    if (!t.seen[i]) st.bind_null(static_cast<int>(i + 1));
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

bool SqliteWarehouse::delete_one(std::string_view table, Table& t, const Value& key,
                                 std::string_view at, int64_t run, std::optional<uint64_t> scope) {
  const int k = static_cast<int>(t.key.size());
  Stmt& arc = t.archive;
  bind_key(arc, 1, t, key, table);
  arc.bind(k + 1, at);
  if (scope)
    arc.bind(k + 2, static_cast<int64_t>(*scope));
  else
    arc.bind_null(k + 2);
  arc.exec();
  if (db_.changes() == 0) return false;
  bind_key(t.soft_delete, 1, t, key, table);
  t.soft_delete.bind(k + 1, at);
  t.soft_delete.bind(k + 2, run);
  t.soft_delete.exec();
  // The delete's change-log entry: the key as an array in key order and as an object.
  Array values;
  Object image;
  for (int c : t.key) {
    const std::string& name = t.columns[static_cast<size_t>(c)].name;
    const Value* v = key.find(name);
    values.push_back(*v);
    image.emplace_back(name, *v);
  }
  std::string key_json = canonical_json(Value(std::move(values)));
  std::string image_json = canonical_json(Value(std::move(image)));
  del_event_.bind(1, next_seq());
  del_event_.bind(2, table);
  del_event_.bind(3, std::string_view(key_json));
  del_event_.bind(4, std::string_view(image_json));
  del_event_.bind(5, run);
  del_event_.bind(6, at);
  del_event_.exec();
  return true;
}

size_t SqliteWarehouse::mark_deleted(std::string_view table, std::span<const Value* const> keys,
                                     const WriteStamp& stamp, std::optional<uint64_t> scope,
                                     std::span<char> deleted) {
  if (keys.empty()) return 0;
  if (!deleted.empty() && deleted.size() != keys.size())
    throw std::logic_error("warehouse: mark_deleted needs one flag per key");
  Table& t = this->table(table);
  if (!t.insert) prepare_writes(table, t);
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  size_t count = 0;
  Implicit tx(db_);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!keys[i])
      throw std::runtime_error("warehouse: a null key for table '" + std::string(table) + "'");
    bool d = delete_one(table, t, *keys[i], at, stamp.run_id, scope);
    if (!deleted.empty()) deleted[i] = d ? 1 : 0;
    count += d ? 1 : 0;
  }
  save_seq();
  tx.done();
  return count;
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
  if (!t.insert) prepare_writes(table, t);
  const size_t k = t.key.size() - 1;  // the parent's key columns
  const std::string& index_name = t.columns[static_cast<size_t>(t.key[k])].name;
  if (!t.items) {
    auto p = [](size_t i) { return "?" + std::to_string(i); };
    std::string match;
    for (size_t j = 0; j < k; ++j)
      match +=
          quote_ident(t.columns[static_cast<size_t>(t.key[j])].name) + "=" + p(j + 1) + " AND ";
    match += quote_ident(index_name) + ">=" + p(k + 1);
    t.items = Stmt(db_.get(), "SELECT " + quote_ident(index_name) + " FROM " + quote_ident(table) +
                                  " WHERE " + match + " AND _deleted_at IS NULL");
  }
  const std::string at = stamp.at.empty() ? "1970-01-01T00:00:00.000Z" : stamp.at;
  Implicit tx(db_);
  std::vector<int64_t> positions;
  for (size_t i = 0; i < parents.size(); ++i) {
    const Value* parent = parents[i];
    positions.clear();
    {
      Stmt& st = t.items;
      for (size_t j = 0; j < k; ++j) {
        size_t c = static_cast<size_t>(t.key[j]);
        const Value* v = parent && parent->is_object() ? parent->find(t.columns[c].name) : nullptr;
        if (!v || v->is_null())
          throw std::runtime_error("warehouse: a parent key for table '" + std::string(table) +
                                   "' lacks column '" + t.columns[c].name + "'");
        bind(st, static_cast<int>(j + 1), *v, t.columns[c], t.numeric_affinity[c]);
      }
      st.bind(static_cast<int>(k + 1), from[i]);
      Use u(st);
      while (st.step()) positions.push_back(st.col_int(0));
    }
    for (int64_t pos : positions) {
      Object key = parent->as_object();
      key.emplace_back(index_name, Value(pos));
      delete_one(table, t, Value(std::move(key)), at, stamp.run_id, std::nullopt);
    }
  }
  save_seq();
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
