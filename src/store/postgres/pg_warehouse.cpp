#include "store/postgres/pg_warehouse.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <set>
#include <stdexcept>
#include <tuple>

#include "core/json.h"
#include "store/names.h"

namespace cascade::pg {
namespace {

// How a column's PostgreSQL type takes values; Other is a type cascade did not choose (a table
// made by hand), to which values are sent as text for the server to convert.
enum class Kind : uint8_t { Int, Real, Numeric, Text, Bool, Json, Other };

Kind kind_of(std::string_view pg_type) {
  if (pg_type == "bigint" || pg_type == "integer" || pg_type == "smallint") return Kind::Int;
  if (pg_type == "double precision" || pg_type == "real") return Kind::Real;
  if (pg_type.starts_with("numeric")) return Kind::Numeric;
  if (pg_type == "text" || pg_type.starts_with("character")) return Kind::Text;
  if (pg_type == "boolean") return Kind::Bool;
  if (pg_type == "jsonb" || pg_type == "json") return Kind::Json;
  return Kind::Other;
}

ColumnType column_type_of(Kind k) {
  switch (k) {
    case Kind::Int:
      return ColumnType::Integer;
    case Kind::Real:
      return ColumnType::Real;
    case Kind::Numeric:
      return ColumnType::Decimal;
    case Kind::Bool:
      return ColumnType::Boolean;
    case Kind::Json:
      return ColumnType::Json;
    default:
      return ColumnType::Text;
  }
}

const char* pg_type_of(ColumnType t) {
  switch (t) {
    case ColumnType::Integer:
      return "bigint";
    case ColumnType::Real:
      return "double precision";
    case ColumnType::Decimal:
      return "numeric";
    case ColumnType::Boolean:
      return "boolean";
    case ColumnType::Json:
      return "jsonb";
    case ColumnType::Text:
      break;
  }
  return "text";
}

std::string qi(std::string_view name) {
  std::string out = "\"";
  for (char ch : name) {
    out += ch;
    if (ch == '"') out += '"';
  }
  return out + "\"";
}

std::string lit(std::string_view text) {
  std::string out = "'";
  for (char ch : text) {
    out += ch;
    if (ch == '\'') out += '\'';
  }
  return out + "'";
}

// An observed time as the ISO 8601 UTC text that stamps carry.
std::string iso(const std::string& expr) {
  return "to_char(" + expr + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";
}

std::string p(size_t i) {
  return "$" + std::to_string(i);
}

// Metadata columns and their types, in the order SQLite has them.
constexpr std::pair<std::string_view, std::string_view> kMetadata[] = {
    {kFirstSeenColumn, "timestamptz"}, {kLastChangedColumn, "timestamptz"},
    {kVersionColumn, "bigint"},        {kRunIdColumn, "bigint"},
    {kDeletedAtColumn, "timestamptz"}, {kValidFromColumn, "text"},
    {kEffectiveColumn, "text"},        {kSeqColumn, "bigint"},
    {kHashColumn, "bigint"},           {kScopeColumn, "bigint"},
};

bool is_metadata_column(std::string_view name) {
  for (const auto& [m, type] : kMetadata)
    if (name == m) return true;
  return false;
}

constexpr const char* kSchema[] = {
    "CREATE TABLE IF NOT EXISTS cascade_meta(key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cascade_deletions(seq bigint PRIMARY KEY, table_name text NOT "
    "NULL, key text NOT NULL, image text NOT NULL, run_id bigint NOT NULL, at timestamptz NOT "
    "NULL)",
    "CREATE TABLE IF NOT EXISTS cascade_columns(table_name text NOT NULL, field text NOT NULL, "
    "field_json text NOT NULL, column_name text NOT NULL, type text NOT NULL, position bigint NOT "
    "NULL, added_at timestamptz NOT NULL, PRIMARY KEY(table_name, field_json))",
    "CREATE TABLE IF NOT EXISTS cascade_tables(table_name text PRIMARY KEY, parent_table text, "
    "field text, field_json text, position bigint NOT NULL, added_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cascade_type_conflicts(table_name text NOT NULL, column_name text "
    "NOT NULL, field text NOT NULL, expected_type text NOT NULL, seen_type text NOT NULL, "
    "first_seen timestamptz NOT NULL, last_seen timestamptz NOT NULL, count bigint NOT NULL, "
    "PRIMARY KEY(table_name, column_name, seen_type))",
    // The SELECTs define_view() was given: PostgreSQL refuses a view of a table that does not
    // exist yet, so such a view is made when the table is.
    "CREATE TABLE IF NOT EXISTS cascade_views(name text PRIMARY KEY, select_sql text NOT NULL)",
    "INSERT INTO cascade_meta(key, value) VALUES('change_seq', '0') ON CONFLICT DO NOTHING",
};

constexpr const char* kLockSchema = "SELECT pg_advisory_xact_lock(hashtext('cascade_schema'))";
constexpr const char* kEpoch = "1970-01-01T00:00:00.000Z";
constexpr size_t kBatch = 1000;

// One array parameter in PostgreSQL's literal syntax, every element quoted, NULLs bare.
class ArrayParam {
 public:
  ArrayParam() : s_("{") {}
  void add(const Param& v) {
    if (!first_) s_ += ',';
    first_ = false;
    if (!v) {
      s_ += "NULL";
      return;
    }
    s_ += '"';
    for (char ch : *v) {
      if (ch == '"' || ch == '\\') s_ += '\\';
      s_ += ch;
    }
    s_ += '"';
  }
  void add(int64_t v) { add(Param(std::to_string(v))); }
  Param done() { return s_ + "}"; }

 private:
  std::string s_;
  bool first_ = true;
};

// Whether numeric (and so jsonb) holds the decimal `text`: at most 131072 digits before the
// point and 16383 after it.
bool numeric_holds(std::string_view text) {
  size_t e = text.find_first_of("eE");
  std::string_view mantissa = text.substr(0, e);
  int64_t exp = 0;
  if (e != std::string_view::npos) {
    std::string_view x = text.substr(e + 1);
    if (!x.empty() && x.front() == '+') x.remove_prefix(1);
    if (std::from_chars(x.data(), x.data() + x.size(), exp).ec != std::errc()) return false;
  }
  size_t dot = mantissa.find('.');
  int64_t before = static_cast<int64_t>(dot == std::string_view::npos ? mantissa.size() : dot);
  int64_t after =
      dot == std::string_view::npos ? 0 : static_cast<int64_t>(mantissa.size() - dot - 1);
  return before + exp <= 131072 && after - exp <= 16383;
}

bool numbers_fit_numeric(const Value& v) {
  switch (v.type()) {
    case Value::Type::Decimal:
      return numeric_holds(v.as_decimal());
    case Value::Type::Array:
      for (const auto& x : v.as_array())
        if (!numbers_fit_numeric(x)) return false;
      return true;
    case Value::Type::Object:
      for (const auto& [name, x] : v.as_object())
        if (!numbers_fit_numeric(x)) return false;
      return true;
    default:
      return true;
  }
}

// PostgreSQL's text and jsonb refuse the NUL character.
bool has_nul(const Value& v) {
  switch (v.type()) {
    case Value::Type::String:
      return v.as_string().find('\0') != std::string::npos;
    case Value::Type::Array:
      for (const auto& x : v.as_array())
        if (has_nul(x)) return true;
      return false;
    case Value::Type::Object:
      for (const auto& [name, x] : v.as_object())
        if (name.find('\0') != std::string::npos || has_nul(x)) return true;
      return false;
    default:
      return false;
  }
}

// The text of `v` for a column of kind `k`, exactly. False when the column cannot hold it
// without rounding or refusing it; `widen` then says the kind that can.
bool render(const Value& v, Kind k, Param& out, Kind& widen) {
  auto number_or_text = [&]() {
    widen = v.is_number() && numbers_fit_numeric(v) ? Kind::Numeric : Kind::Text;
    return false;
  };
  auto as_text = [&]() {
    switch (v.type()) {
      case Value::Type::String:
        out = v.as_string();
        break;
      case Value::Type::Int:
        out = std::to_string(v.as_int());
        break;
      case Value::Type::Double: {
        std::string s;
        append_canonical_number(v.as_double(), s);
        out = std::move(s);
        break;
      }
      case Value::Type::Decimal:
        out = v.as_decimal();
        break;
      case Value::Type::Bool:
        out = v.as_bool() ? "true" : "false";
        break;
      default:
        out = canonical_json(v);
    }
    return true;
  };
  if (v.is_null()) {
    out = std::nullopt;
    return true;
  }
  if (has_nul(v)) {
    widen = Kind::Other;  // no column can hold it
    return false;
  }
  switch (k) {
    case Kind::Int:
      if (v.is_int()) return as_text();
      if (v.is_double()) {
        double d = v.as_double();
        if (d == std::trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
          out = std::to_string(static_cast<int64_t>(d));
          return true;
        }
      }
      return number_or_text();
    case Kind::Real:
      if (v.is_double()) return as_text();
      // Integers beyond 2^53 are not all doubles.
      if (v.is_int() && v.as_int() <= (int64_t{1} << 53) && v.as_int() >= -(int64_t{1} << 53))
        return as_text();
      return number_or_text();
    case Kind::Numeric:
      if (v.is_number() && numbers_fit_numeric(v)) return as_text();
      widen = Kind::Text;
      return false;
    case Kind::Bool:
      if (v.is_bool()) return as_text();
      widen = Kind::Text;
      return false;
    case Kind::Json:
      if (!numbers_fit_numeric(v)) {
        widen = Kind::Text;
        return false;
      }
      out = canonical_json(v);
      return true;
    case Kind::Text:
    case Kind::Other:
      return as_text();
  }
  return as_text();
}

// Dependents of a view or table: views only, deepest last.
constexpr const char* kDependents = R"sql(
WITH RECURSIVE dep(oid, depth) AS (
  SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.refobjid IN (SELECT to_regclass(x) FROM unnest($1::text[]) x)
    AND r.ev_class <> d.refobjid
  UNION
  SELECT r.ev_class, dep.depth + 1 FROM dep JOIN pg_depend d ON d.refobjid = dep.oid
    AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class <> dep.oid)
SELECT c.relname, pg_get_viewdef(c.oid), max(dep.depth), v.select_sql
FROM dep JOIN pg_class c ON c.oid = dep.oid
LEFT JOIN cascade_views v ON v.name = c.relname
WHERE c.relkind = 'v' AND c.relnamespace = to_regnamespace(current_schema())
GROUP BY c.oid, c.relname, v.select_sql ORDER BY 3, 1
)sql";

void ensure_schema(Conn& c) {
  // Made already (the usual case): no lock, and no DDL that a role without CREATE may not run.
  Result r = c.query(
      "SELECT count(to_regclass(n)) FROM unnest('{cascade_meta,cascade_deletions,"
      "cascade_columns,cascade_tables,cascade_type_conflicts,cascade_views}'::text[]) n");
  if (r.integer(0, 0) == 6 &&
      c.query("SELECT 1 FROM cascade_meta WHERE key='change_seq'").rows() == 1)
    return;
  Tx tx(c);
  // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: one at a time.
  c.query(kLockSchema);
  for (const char* sql : kSchema) c.query(sql);
  tx.commit();
}

bool relation_exists(Conn& c, std::string_view name) {
  return !c.query("SELECT to_regclass($1)", qi(name)).null(0, 0);
}

}  // namespace

struct PgWarehouse::Table {
  std::vector<Column> columns;  // key and field columns, without the metadata
  std::vector<std::string> pg_type;
  std::vector<Kind> kind;
  std::vector<int> key;  // positions in `columns`, in key order
  std::map<std::string, int, std::less<>> index;
  size_t metadata = 0;      // metadata columns present
  std::string fingerprint;  // every column's name and type, as the lookup reads them
  std::string lookup, insert, write, candidates, remove, items;
};

namespace {

std::unique_ptr<PgWarehouse::Table> load_table(Conn& c, std::string_view name) {
  Result r = c.query(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
      "coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY k(a, n) WHERE k.a = "
      "a.attnum), 0) FROM pg_attribute a JOIN pg_class "
      "k ON k.oid = a.attrelid AND k.relkind IN ('r', 'p') LEFT JOIN pg_index i ON i.indrelid = "
      "a.attrelid AND i.indisprimary WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT "
      "a.attisdropped ORDER BY a.attnum",
      qi(name));
  auto t = std::make_unique<PgWarehouse::Table>();
  std::vector<std::pair<int64_t, int>> pk;
  for (int i = 0; i < r.rows(); ++i) {
    std::string col(r.text(i, 0));
    t->fingerprint += col + ":" + std::string(r.text(i, 1)) + ",";
    if (is_metadata_column(col)) {
      ++t->metadata;
      continue;
    }
    if (int64_t pos = r.integer(i, 2); pos > 0)
      pk.emplace_back(pos, static_cast<int>(t->columns.size()));
    Kind k = kind_of(r.text(i, 1));
    t->columns.push_back(Column{col, column_type_of(k)});
    t->columns.back().field.reset();
    t->pg_type.emplace_back(r.text(i, 1));
    t->kind.push_back(k);
  }
  if (t->columns.empty()) return nullptr;
  std::sort(pk.begin(), pk.end());
  for (auto& [pos, i] : pk) t->key.push_back(i);
  for (size_t i = 0; i < t->columns.size(); ++i)
    t->index.emplace(t->columns[i].name, static_cast<int>(i));
  // The catalog's types win: a column widened to hold an odd value keeps the type of its field.
  Result cat = c.query(
      "SELECT column_name, type FROM cascade_columns WHERE table_name=$1 AND "
      "column_name<>'_overflow'",
      name);
  for (int i = 0; i < cat.rows(); ++i)
    if (auto it = t->index.find(cat.text(i, 0)); it != t->index.end())
      t->columns[static_cast<size_t>(it->second)].type = column_type_from_name(cat.text(i, 1));
  return t;
}

// JSON text of a row's columns as SQL over alias `a`, in column order, every value exact.
std::string image_sql(const PgWarehouse::Table& t, const std::string& a) {
  std::string cols;
  for (const auto& c : t.columns) cols += (cols.empty() ? "" : ", ") + a + "." + qi(c.name);
  return "(SELECT row_to_json(r)::text FROM (SELECT " + cols + ") r)";
}

std::string key_sql(const PgWarehouse::Table& t, const std::string& a) {
  std::string out = "'[' || concat_ws(','";
  for (int k : t.key)
    out += ", to_json(" + a + "." + qi(t.columns[static_cast<size_t>(k)].name) + ")::text";
  return out + ") || ']'";
}

void define_change_log_on(Conn& c);
std::string change_log_select(Conn& c);

// True when view `name` exists as `select` made it: every worker defines the views when it
// starts, and doing it again would take locks for nothing.
bool unchanged_view(Conn& c, std::string_view name, const std::string& select) {
  if (!relation_exists(c, name)) return false;
  Result r = name == kChangeLogView
                 ? c.query("SELECT value FROM cascade_meta WHERE key='change_log_view'")
                 : c.query("SELECT select_sql FROM cascade_views WHERE name=$1", name);
  return r.rows() == 1 && r.text(0, 0) == select;
}

}  // namespace

namespace {

// A transaction of the warehouse's own (or the caller's, joined): a failure forgets the cached
// layouts, which may describe DDL the rollback undoes (a stale type would make values be cast
// to a type the column no longer has).
class Unit {
 public:
  Unit(Conn& c, PgWarehouse& w) : tx_(c), w_(w) {}
  ~Unit() {
    if (!done_) w_.forget();
  }
  Unit(const Unit&) = delete;
  Unit& operator=(const Unit&) = delete;
  void commit() {
    tx_.commit();
    done_ = true;
  }

 private:
  Tx tx_;
  PgWarehouse& w_;
  bool done_ = false;
};

}  // namespace

PgWarehouse::PgWarehouse(Conn& conn) : c_(conn) {
  ensure_schema(c_);
  if (!relation_exists(c_, kChangeLogView)) {
    Unit tx(c_, *this);
    lock_schema();
    if (!relation_exists(c_, kChangeLogView)) define_change_log();
    tx.commit();
  }
}

PgWarehouse::~PgWarehouse() = default;

void PgWarehouse::forget() {
  tables_.clear();
}

void PgWarehouse::lock_schema() {
  c_.query(kLockSchema);
}

std::string PgWarehouse::quote(std::string_view identifier) const {
  return qi(identifier);
}

PgWarehouse::Table& PgWarehouse::table(std::string_view name) {
  if (auto it = tables_.find(name); it != tables_.end()) return *it->second;
  auto t = load_table(c_, name);
  if (!t) throw std::runtime_error("warehouse: table '" + std::string(name) + "' does not exist");
  if (t->metadata < std::size(kMetadata) || !relation_exists(c_, past_table_name(name))) {
    Unit tx(c_, *this);
    lock_schema();
    upgrade(name);
    tx.commit();
    t = load_table(c_, name);
  }
  auto& slot = tables_[std::string(name)];
  slot = std::move(t);
  return *slot;
}

std::vector<Column> PgWarehouse::columns(std::string_view table) {
  auto t = load_table(c_, table);
  return t ? t->columns : std::vector<Column>{};
}

std::vector<Column> PgWarehouse::catalog(std::string_view table) {
  std::vector<Column> out;
  Result r = c_.query(
      "SELECT field, column_name, type, field_json FROM cascade_columns WHERE table_name=$1 "
      "ORDER BY position",
      table);
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(Column{std::string(r.text(i, 1)), column_type_from_name(r.text(i, 2)),
                         std::string(r.text(i, 0))});
    std::string_view json = r.text(i, 3);
    if (!json.empty() && json.front() != '"') out.back().field_json = json;
  }
  return out;
}

void PgWarehouse::record(std::string_view table, const Column& c) {
  std::string field_json = c.field_json;
  if (field_json.empty()) append_json_string(*c.field, field_json);
  c_.query(
      "INSERT INTO cascade_columns(table_name, field, field_json, column_name, type, position, "
      "added_at) VALUES($1, $2, $3, $4, $5, (SELECT count(*) FROM cascade_columns WHERE "
      "table_name=$1), now()) ON CONFLICT DO NOTHING",
      table, *c.field, field_json, c.name, column_type_name(c.type));
}

void PgWarehouse::create_table(std::string_view table, std::span<const Column> key) {
  if (key.empty())
    throw std::runtime_error("warehouse: table '" + std::string(table) + "' needs a key column");
  std::string sql = "CREATE TABLE IF NOT EXISTS " + qi(table) + "(";
  std::string pk;
  for (const auto& c : key) {
    sql += qi(c.name) + " " + pg_type_of(c.type) + " NOT NULL, ";
    pk += (pk.empty() ? "" : ", ") + qi(c.name);
  }
  for (const auto& [name, type] : kMetadata) sql += qi(name) + " " + std::string(type) + ", ";
  sql += "PRIMARY KEY(" + pk + "))";
  // Every worker declares every table when it starts: one that is complete takes no lock.
  if (auto t = load_table(c_, table); t && t->metadata == std::size(kMetadata)) {
    std::vector<std::string> fields;
    for (const auto& c : key) {
      if (!c.field) continue;
      fields.push_back(c.field_json);
      if (fields.back().empty()) append_json_string(*c.field, fields.back());
    }
    Result r = c_.query(
        "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND EXISTS(SELECT 1 "
        "FROM cascade_tables WHERE table_name=$3) AND (SELECT count(*) FROM cascade_columns WHERE "
        "table_name=$3 AND field_json = ANY($4::text[])) = $5",
        qi(past_table_name(table)), qi(history_table_name(table)), table, text_array(fields),
        static_cast<int64_t>(fields.size()));
    if (r.text(0, 0) == "t") return;
  }
  Unit tx(c_, *this);
  lock_schema();
  c_.query(sql);
  for (const auto& c : key)
    if (c.field) record(table, c);
  upgrade(table);
  create_pending_views();
  tx.commit();
  if (auto it = tables_.find(table); it != tables_.end()) tables_.erase(it);
}

void PgWarehouse::upgrade(std::string_view table) {
  c_.query(
      "INSERT INTO cascade_tables(table_name, parent_table, field, field_json, position, "
      "added_at) VALUES($1, NULL, NULL, NULL, (SELECT count(*) FROM cascade_tables), now()) ON "
      "CONFLICT DO NOTHING",
      table);
  auto t = load_table(c_, table);
  if (!t) throw std::runtime_error("warehouse: table '" + std::string(table) + "' does not exist");
  bool changed = false;
  if (t->metadata < std::size(kMetadata)) {
    std::string sql = "ALTER TABLE " + qi(table);
    for (size_t i = 0; i < std::size(kMetadata); ++i)
      sql += std::string(i ? "," : "") + " ADD COLUMN IF NOT EXISTS " + qi(kMetadata[i].first) +
             " " + std::string(kMetadata[i].second);
    c_.query(sql);
    changed = true;
  }
  const std::string past = past_table_name(table);
  if (!relation_exists(c_, past)) {
    std::string sql = "CREATE TABLE " + qi(past) + "(";
    std::string pk;
    for (size_t i = 0; i < t->columns.size(); ++i)
      sql += qi(t->columns[i].name) + " " + t->pg_type[i] + ", ";
    for (int k : t->key) pk += qi(t->columns[static_cast<size_t>(k)].name) + ", ";
    sql += qi(kVersionColumn) + " bigint NOT NULL, " + qi(kValidFromColumn) + " text NOT NULL, " +
           qi(kValidToColumn) + " text, " + qi(kEffectiveColumn) + " text, " + qi(kRunIdColumn) +
           " bigint, " + qi(kSeqColumn) + " bigint, " + qi(kChangedAtColumn) +
           " timestamptz, PRIMARY KEY(" + pk + qi(kVersionColumn) + "))";
    c_.query(sql);
    changed = true;
  }
  if (changed || !relation_exists(c_, history_table_name(table))) define_views_of(table);
}

void PgWarehouse::add_columns(std::string_view table, std::span<const Column> cols) {
  this->table(table);  // upgrades a table from before the metadata columns
  Unit tx(c_, *this);
  lock_schema();
  // Another worker may have added some since this one looked.
  auto t = load_table(c_, table);
  std::vector<const Column*> added;
  std::set<std::string, std::less<>> names;
  for (const auto& c : cols)
    if (t->index.find(c.name) == t->index.end() && names.insert(c.name).second) added.push_back(&c);
  if (!added.empty()) {
    const std::string past = past_table_name(table);
    const std::string history = history_table_name(table);
    // Views over the table are made again, so that a `SELECT *` given to define_view() shows the
    // new columns as it does on SQLite.
    around_dependents({qi(table), qi(history)}, [&] {
      std::string a = "ALTER TABLE " + qi(table), b = "ALTER TABLE " + qi(past);
      for (size_t i = 0; i < added.size(); ++i) {
        std::string def = std::string(i ? "," : "") + " ADD COLUMN IF NOT EXISTS " +
                          qi(added[i]->name) + " " + pg_type_of(added[i]->type);
        a += def;
        b += def;
      }
      c_.query(a);
      c_.query(b);
      define_views_of(table);
    });
  }
  for (const auto& c : cols)
    if (c.field) record(table, c);
  create_pending_views();
  tx.commit();
  if (auto it = tables_.find(table); it != tables_.end()) tables_.erase(it);
}

template <class F>
void PgWarehouse::around_dependents(const std::vector<std::string>& relations, F ddl) {
  struct View {
    std::string name, def;
  };
  std::vector<View> views;
  {
    Result r = c_.query(kDependents, text_array(relations));
    for (int i = 0; i < r.rows(); ++i)
      views.push_back(
          {std::string(r.text(i, 0)), std::string(r.null(i, 3) ? r.text(i, 1) : r.text(i, 3))});
  }
  for (auto it = views.rbegin(); it != views.rend(); ++it)
    c_.query("DROP VIEW IF EXISTS " + qi(it->name));
  ddl();
  // Views that `ddl` made again itself are left as it made them.
  for (const auto& v : views)
    if (!relation_exists(c_, v.name)) c_.query("CREATE VIEW " + qi(v.name) + " AS " + v.def);
}

void PgWarehouse::replace_view(std::string_view name, std::string_view select) {
  around_dependents({qi(name)}, [&] {
    c_.query("DROP VIEW IF EXISTS " + qi(name));
    c_.query("CREATE VIEW " + qi(name) + " AS " + std::string(select));
  });
}

void PgWarehouse::define_views_of(std::string_view table) {
  auto t = load_table(c_, table);
  if (!t) return;
  std::string list;
  for (const auto& c : t->columns) list += qi(c.name) + ", ";
  std::string iso_changed = iso(qi(kLastChangedColumn));
  replace_view(history_table_name(table),
               "SELECT " + list +
                   "_version, _valid_from, _valid_to, _effective, _run_id, _seq, _changed_at "
                   "FROM " +
                   qi(past_table_name(table)) + " UNION ALL SELECT " + list +
                   "_version, coalesce(_valid_from, " + iso_changed +
                   "), NULL::text, _effective, _run_id, _seq, _last_changed FROM " + qi(table) +
                   " WHERE _deleted_at IS NULL");
  define_change_log();
}

void PgWarehouse::define_change_log() {
  define_change_log_on(c_);
}

namespace {

std::string change_log_select(Conn& c) {
  std::string sql =
      "SELECT seq, table_name, key, 'delete'::text AS operation, image, run_id, at FROM "
      "cascade_deletions";
  Result tables = c.query("SELECT table_name FROM cascade_tables ORDER BY position");
  for (int i = 0; i < tables.rows(); ++i) {
    std::string name(tables.text(i, 0));
    const std::string past = past_table_name(name);
    if (!relation_exists(c, past)) continue;
    auto t = load_table(c, name);
    if (!t || t->key.empty()) continue;
    auto branch = [&](const std::string& rel, const std::string& at, const std::string& where) {
      return " UNION ALL SELECT a._seq, " + lit(name) + "::text, " + key_sql(*t, "a") +
             ", CASE WHEN a._version = 1 THEN 'insert' ELSE 'update' END, " + image_sql(*t, "a") +
             ", a._run_id, a." + at + " FROM " + qi(rel) + " a WHERE a._seq IS NOT NULL" + where;
    };
    sql += branch(past, "_changed_at", "");
    sql += branch(name, "_last_changed", " AND a._deleted_at IS NULL");
  }
  return "SELECT * FROM (" + sql + ") u ORDER BY seq";
}

void define_change_log_on(Conn& c) {
  const std::string select = change_log_select(c);
  if (unchanged_view(c, kChangeLogView, select)) return;
  // Analysts' views over the change log are kept (dropped and made again around the change).
  Result deps = c.query(kDependents, text_array(std::vector<std::string>{qi(kChangeLogView)}));
  std::vector<std::pair<std::string, std::string>> views;
  for (int i = 0; i < deps.rows(); ++i)
    views.emplace_back(std::string(deps.text(i, 0)),
                       std::string(deps.null(i, 3) ? deps.text(i, 1) : deps.text(i, 3)));
  for (auto it = views.rbegin(); it != views.rend(); ++it)
    c.query("DROP VIEW IF EXISTS " + qi(it->first));
  c.query("DROP VIEW IF EXISTS " + qi(kChangeLogView));
  c.query("CREATE VIEW " + qi(kChangeLogView) + " AS " + select);
  for (const auto& [name, def] : views)
    if (!relation_exists(c, name)) c.query("CREATE VIEW " + qi(name) + " AS " + def);
  c.query(
      "INSERT INTO cascade_meta(key, value) VALUES('change_log_view', $1) ON CONFLICT(key) DO "
      "UPDATE SET value=excluded.value",
      select);
}

}  // namespace

void PgWarehouse::create_pending_views() {
  Result r = c_.query(
      "SELECT name, select_sql FROM cascade_views WHERE to_regclass(quote_ident(name)) IS NULL "
      "ORDER BY name");
  for (int i = 0; i < r.rows(); ++i) {
    c_.query("SAVEPOINT cascade_view");
    try {
      c_.query("CREATE VIEW " + qi(r.text(i, 0)) + " AS " + std::string(r.text(i, 1)));
      c_.query("RELEASE SAVEPOINT cascade_view");
    } catch (const QueryError&) {
      // Still naming a table or column that is not there: made once it is.
      c_.query("ROLLBACK TO SAVEPOINT cascade_view");
      c_.query("RELEASE SAVEPOINT cascade_view");
    }
  }
}

void PgWarehouse::define_view(std::string_view name, std::string_view select) {
  if (unchanged_view(c_, name, std::string(select))) return;
  Unit tx(c_, *this);
  lock_schema();
  c_.query(
      "INSERT INTO cascade_views(name, select_sql) VALUES($1, $2) ON CONFLICT(name) DO UPDATE SET "
      "select_sql=excluded.select_sql",
      name, select);
  c_.query("SAVEPOINT cascade_view");
  try {
    replace_view(name, select);
    c_.query("RELEASE SAVEPOINT cascade_view");
  } catch (const QueryError& e) {
    c_.query("ROLLBACK TO SAVEPOINT cascade_view");
    c_.query("RELEASE SAVEPOINT cascade_view");
    // 42P01: a table that does not exist yet; the view is made with it (create_pending_views).
    if (e.sqlstate() != "42P01") throw;
    c_.query("DROP VIEW IF EXISTS " + qi(name));
  }
  tx.commit();
  forget();
}

bool PgWarehouse::widen(std::string_view table, Table& cached,
                        const std::vector<std::pair<int, int>>& wanted) {
  Unit tx(c_, *this);
  lock_schema();
  auto t = load_table(c_, table);
  std::map<std::string, Kind> target;
  for (const auto& [col, kind] : wanted) {
    const std::string& name = cached.columns[static_cast<size_t>(col)].name;
    Kind k = static_cast<Kind>(kind);
    auto [it, fresh] = target.try_emplace(name, k);
    if (!fresh && k == Kind::Text) it->second = Kind::Text;
  }
  std::vector<std::pair<std::string, std::string>> alters;  // column, new type
  for (const auto& [name, k] : target) {
    auto it = t->index.find(name);
    if (it == t->index.end()) continue;
    Kind now = t->kind[static_cast<size_t>(it->second)];
    if (k == Kind::Numeric && (now == Kind::Int || now == Kind::Real))
      alters.emplace_back(name, "numeric");
    else if (k == Kind::Text && now != Kind::Text && now != Kind::Other)
      alters.emplace_back(name, "text");
  }
  if (!alters.empty()) {
    const std::string past = past_table_name(table);
    around_dependents({qi(table), qi(past)}, [&] {
      for (const std::string& rel : {std::string(table), past}) {
        std::string sql = "ALTER TABLE " + qi(rel);
        for (size_t i = 0; i < alters.size(); ++i) {
          const auto& [col, type] = alters[i];
          // Through text: a double's own text is its shortest exact spelling, where a direct
          // cast to numeric keeps 15 digits.
          sql += std::string(i ? "," : "") + " ALTER COLUMN " + qi(col) + " TYPE " + type +
                 " USING " + qi(col) + "::text::" + type;
        }
        c_.query(sql);
      }
    });
  }
  tx.commit();
  // Another worker may have widened them already: then this one's layout was stale.
  bool changed = !alters.empty();
  for (const auto& [col, kind] : wanted) {
    auto it = t->index.find(cached.columns[static_cast<size_t>(col)].name);
    if (it != t->index.end() &&
        t->kind[static_cast<size_t>(it->second)] != cached.kind[static_cast<size_t>(col)])
      changed = true;
  }
  if (auto it = tables_.find(table); it != tables_.end()) tables_.erase(it);
  return changed;
}

int64_t PgWarehouse::reserve(int64_t n, std::string& before) {
  Result r = c_.query(
      "INSERT INTO cascade_meta(key, value) VALUES('change_seq', $1::bigint::text) ON "
      "CONFLICT(key) DO UPDATE SET value=(cascade_meta.value::bigint + $1::bigint)::text "
      "RETURNING value::bigint - $1::bigint",
      n);
  before = std::string(r.text(0, 0));
  return r.integer(0, 0);
}

namespace {

// The columns of a ROWS FROM(unnest(...)) list named c0, c1, ... for the table's columns (or
// only its key columns), then `extra` (name, array type), from parameter `first` on.
std::string rows_from(const PgWarehouse::Table& t, bool key_only,
                      const std::vector<std::pair<std::string, std::string>>& extra,
                      size_t first = 1) {
  std::string fns, names;
  size_t n = first;
  auto add = [&](const std::string& name, const std::string& type) {
    if (!names.empty()) fns += ", ", names += ", ";
    fns += "unnest(" + p(n++) + "::" + type + "[])";
    names += name;
  };
  if (key_only) {
    for (size_t j = 0; j < t.key.size(); ++j)
      add("k" + std::to_string(j), t.pg_type[static_cast<size_t>(t.key[j])]);
  } else {
    for (size_t i = 0; i < t.columns.size(); ++i) add("c" + std::to_string(i), t.pg_type[i]);
  }
  for (const auto& [name, type] : extra) add(name, type);
  return "ROWS FROM(" + fns + ") AS v(" + names + ")";
}

std::string key_match(const PgWarehouse::Table& t, const std::string& a, const std::string& b,
                      bool key_only) {
  std::string out;
  for (size_t j = 0; j < t.key.size(); ++j) {
    size_t c = static_cast<size_t>(t.key[j]);
    out += (j ? " AND " : "") + a + "." + qi(t.columns[c].name) + " = " + b + "." +
           (key_only ? "k" + std::to_string(j) : "c" + std::to_string(c));
  }
  return out;
}

// Each key's row through its primary key index, with what moving it to the past table needs:
// a LATERAL subquery behind OFFSET 0 is a nested loop of index probes, where a plain join of
// the key arrays with the table may be planned as a scan of the whole table per batch.
std::string current_of(std::string_view table, const PgWarehouse::Table& t,
                       const std::string& until, const std::string& where) {
  std::string start = "coalesce(t._valid_from, " + iso("t._last_changed") + ")";
  std::string cols;
  for (size_t i = 0; i < t.columns.size(); ++i)
    cols += "t." + qi(t.columns[i].name) + " AS o" + std::to_string(i) + ", ";
  return "CROSS JOIN LATERAL (SELECT t.ctid AS tid, " + cols + "t._version AS o_version, " + start +
         " AS o_from, GREATEST(" + start + " COLLATE \"C\", " + until +
         ") AS o_to, t._effective AS o_eff, t._run_id AS o_run, t._seq AS o_seq, t._last_changed "
         "AS o_changed, t._deleted_at IS NULL AS o_live FROM " +
         qi(table) + " t WHERE " + where + " OFFSET 0) x";
}

// Moves the rows of `cur` (made with current_of) that satisfy `where` to the past table.
std::string archive_from_cur(std::string_view table, const PgWarehouse::Table& t,
                             const std::string& where) {
  std::string cols, olds;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    cols += qi(t.columns[i].name) + ", ";
    olds += "o" + std::to_string(i) + ", ";
  }
  return "INSERT INTO " + qi(past_table_name(table)) + "(" + cols +
         "_version, _valid_from, _valid_to, _effective, _run_id, _seq, _changed_at) SELECT " +
         olds + "o_version, o_from, o_to, o_eff, o_run, o_seq, o_changed FROM cur" + where;
}

void build_writes(std::string_view name, PgWarehouse::Table& t) {
  if (!t.lookup.empty()) return;
  const std::string table = qi(name);
  const size_t n = t.columns.size(), k = t.key.size();
  t.lookup =
      "SELECT NULL::int, NULL::bigint, NULL::boolean, NULL::bigint, NULL::text, (SELECT "
      "value FROM cascade_meta WHERE key='change_seq'), (SELECT string_agg(attname || ':' || "
      "format_type(atttypid, atttypmod) || ',', '' ORDER BY attnum) FROM pg_attribute WHERE "
      "attrelid = " +
      lit(table) +
      "::regclass AND attnum > 0 AND NOT attisdropped) UNION ALL SELECT v.o, x.*, NULL FROM " +
      rows_from(t, true, {{"o", "int"}}) +
      " CROSS JOIN LATERAL (SELECT t._hash, t._deleted_at IS NOT NULL, t._version, t._effective, "
      "NULL::text FROM " +
      table + " t WHERE " + key_match(t, "t", "v", true) + " OFFSET 0) x";
  const std::vector<std::pair<std::string, std::string>> meta{
      {"vf", "text"}, {"eff", "text"}, {"seq", "bigint"}, {"hash", "bigint"}, {"scope", "bigint"}};
  std::string cols, vals;
  for (size_t i = 0; i < n; ++i) {
    cols += qi(t.columns[i].name) + ", ";
    vals += "v.c" + std::to_string(i) + ", ";
  }
  // Parameters: one array per column, then the metadata arrays, then at and run.
  auto write_meta = meta;
  write_meta.emplace_back("vt", "text");
  const size_t arrays = n + write_meta.size();
  const std::string wat = p(arrays + 1) + "::timestamptz", wrun = p(arrays + 2) + "::bigint";
  t.insert = "INSERT INTO " + table + "(" + cols +
             "_first_seen, _last_changed, _version, _run_id, _deleted_at, _valid_from, "
             "_effective, _seq, _hash, _scope) SELECT " +
             vals + p(n + meta.size() + 1) + "::timestamptz, " + p(n + meta.size() + 1) +
             "::timestamptz, 1, " + p(n + meta.size() + 2) +
             "::bigint, NULL, v.vf, v.eff, v.seq, v.hash, v.scope FROM " +
             rows_from(t, false, meta, 1);
  std::string sets;
  for (size_t i = 0; i < n; ++i) {
    if (std::find(t.key.begin(), t.key.end(), static_cast<int>(i)) != t.key.end()) continue;
    sets += qi(t.columns[i].name) + " = cur.c" + std::to_string(i) + ", ";
  }
  // The rows to update are found by their ctid, and `ctid = ANY(ARRAY(...))` lets the planner
  // fetch just those (a TID scan) where a join alone may be planned as a scan of the table.
  t.write = "WITH v AS (SELECT * FROM " + rows_from(t, false, write_meta, 1) +
            "), cur AS (SELECT v.*, x.* FROM v " +
            current_of(name, t, "v.vt", key_match(t, "t", "v", false)) + "), arc AS (" +
            archive_from_cur(name, t, " WHERE o_live AND o_version > 0") + ") UPDATE " + table +
            " t SET " + sets + "_last_changed = " + wat +
            ", _version = coalesce(t._version, 0) + 1, _run_id = " + wrun +
            ", _deleted_at = NULL, _valid_from = cur.vf, _effective = cur.eff, _seq = cur.seq, "
            "_hash = cur.hash, _scope = cur.scope FROM cur WHERE t.ctid = cur.tid AND t.ctid = "
            "ANY(ARRAY(SELECT tid FROM cur))";
  // Deletes. Parameters: key arrays, ords, key JSON, image JSON; then scope, at, run, base seq,
  // table name.
  const std::vector<std::pair<std::string, std::string>> del{
      {"o", "int"}, {"kj", "text"}, {"ij", "text"}};
  const std::string dat = p(k + 5), drun = p(k + 6) + "::bigint", base = p(k + 7) + "::bigint",
                    tname = p(k + 8) + "::text";
  const std::string live = key_match(t, "t", "v", true) + " AND t._deleted_at IS NULL AND (" +
                           p(k + 4) + "::bigint IS NULL OR t._scope = " + p(k + 4) + "::bigint)";
  t.candidates = "SELECT count(*) FROM " + rows_from(t, true, del) +
                 " CROSS JOIN LATERAL (SELECT 1 FROM " + table + " t WHERE " + live +
                 " OFFSET 0) x";
  t.remove = "WITH v AS (SELECT * FROM " + rows_from(t, true, del) +
             "), cur AS (SELECT v.o, v.kj, v.ij, x.* FROM v " +
             current_of(name, t, dat + "::text", live) + "), arc AS (" +
             archive_from_cur(name, t, "") + "), upd AS (UPDATE " + table +
             " t SET _deleted_at = " + dat + "::timestamptz, _run_id = " + drun +
             " FROM cur WHERE t.ctid = cur.tid AND t.ctid = ANY(ARRAY(SELECT tid FROM cur))), ins "
             "AS (INSERT INTO cascade_deletions(seq, "
             "table_name, key, image, run_id, at) SELECT " +
             base + " + row_number() OVER (ORDER BY cur.o), " + tname + ", cur.kj, cur.ij, " +
             drun + ", " + dat + "::timestamptz FROM cur) SELECT o FROM cur ORDER BY o";
  if (k >= 2) {
    std::string match;
    for (size_t j = 0; j + 1 < k; ++j)
      match += "t." + qi(t.columns[static_cast<size_t>(t.key[j])].name) + " = v.k" +
               std::to_string(j) + " AND ";
    const std::string idx = "t." + qi(t.columns[static_cast<size_t>(t.key[k - 1])].name);
    std::string fns, names;
    for (size_t j = 0; j + 1 < k; ++j) {
      fns += "unnest(" + p(j + 1) + "::" + t.pg_type[static_cast<size_t>(t.key[j])] + "[]), ";
      names += "k" + std::to_string(j) + ", ";
    }
    fns += "unnest(" + p(k) + "::int[]), unnest(" + p(k + 1) + "::bigint[])";
    names += "o, f";
    t.items = "SELECT v.o, x.i FROM ROWS FROM(" + fns + ") AS v(" + names +
              ") CROSS JOIN LATERAL (SELECT " + idx + " AS i FROM " + table + " t WHERE " + match +
              idx + " >= v.f AND t._deleted_at IS NULL OFFSET 0) x ORDER BY v.o, x.i";
  }
}

std::string to_param_text(uint64_t v) {
  return std::to_string(static_cast<int64_t>(v));
}

}  // namespace

void PgWarehouse::upsert(std::string_view name, std::span<const RowWrite> rows,
                         const WriteStamp& stamp, std::span<WriteOutcome> outcomes) {
  if (rows.empty()) return;
  if (!outcomes.empty() && outcomes.size() != rows.size())
    throw std::logic_error("warehouse: upsert needs one outcome slot per row");
  const std::string at = stamp.at.empty() ? kEpoch : stamp.at;
  for (const auto& w : rows)
    if (!w.row || !w.row->is_object())
      throw std::runtime_error("warehouse: a row for table '" + std::string(name) +
                               "' is not an object");
  Unit tx(c_, *this);
  // A layout cached before a rollback undid its DDL (or before another worker's) is seen at the
  // first read, before anything is written: then it is read again and the call starts over.
  for (int round = 0;; ++round) {
    bool stale = false, first_read = true;
    // Every value as text for its column; a value a column cannot hold widens it first. Each
    // widening moves a column up (to numeric, then text), so this ends.
    Table* tp = nullptr;
    std::vector<Param> cells;
    size_t n = 0;
    for (int attempt = 0;; ++attempt) {
      Table& t = table(name);
      n = t.columns.size();
      cells.assign(rows.size() * n, std::nullopt);
      std::vector<char> seen(n);
      std::vector<std::pair<int, int>> wanted;
      for (size_t r = 0; r < rows.size(); ++r) {
        std::fill(seen.begin(), seen.end(), 0);
        for (const auto& [field, v] : rows[r].row->as_object()) {
          auto it = t.index.find(field);
          if (it == t.index.end())
            throw std::runtime_error("warehouse: table '" + std::string(name) +
                                     "' has no column '" + field + "' (add it first)");
          size_t c = static_cast<size_t>(it->second);
          Kind widen = Kind::Text;
          if (!render(v, t.kind[c], cells[r * n + c], widen)) {
            if (widen == Kind::Other)
              throw std::runtime_error("warehouse: column '" + field + "' of table '" +
                                       std::string(name) +
                                       "' is given the NUL character, which PostgreSQL text "
                                       "cannot hold");
            wanted.emplace_back(static_cast<int>(c), static_cast<int>(widen));
          }
          if (!v.is_null()) seen[c] = 1;
        }
        for (int k : t.key)
          if (!seen[static_cast<size_t>(k)])
            throw std::runtime_error("warehouse: a row for table '" + std::string(name) +
                                     "' lacks key column '" +
                                     t.columns[static_cast<size_t>(k)].name + "'");
      }
      if (wanted.empty()) {
        tp = &t;
        break;
      }
      if (attempt >= 3 || !widen(name, t, wanted))
        throw std::runtime_error("warehouse: table '" + std::string(name) +
                                 "' cannot hold a value exactly");
    }
    Table& t = *tp;
    build_writes(name, t);
    const size_t k = t.key.size();

    struct Found {
      bool found = false, deleted = false;
      std::optional<int64_t> hash;
      int64_t version = 0;
      std::optional<std::string> effective;
    };
    std::vector<Found> state(rows.size());
    // Reads what is stored for rows `idx` into `state`; returns the seq counter as it was then.
    auto lookup = [&](const std::vector<size_t>& idx) {
      std::vector<Param> ps;
      for (size_t j = 0; j < k; ++j) {
        ArrayParam a;
        for (size_t r : idx) a.add(cells[r * n + static_cast<size_t>(t.key[j])]);
        ps.push_back(a.done());
      }
      ArrayParam o;
      for (size_t r : idx) o.add(static_cast<int64_t>(r));
      ps.push_back(o.done());
      for (size_t r : idx) state[r] = Found{};
      Result res = c_.exec(t.lookup, ps);
      std::string counter;
      for (int i = 0; i < res.rows(); ++i) {
        if (res.null(i, 0)) {
          counter = res.null(i, 5) ? "" : std::string(res.text(i, 5));
          if (first_read && res.text(i, 6) != t.fingerprint) stale = true;
          first_read = false;
          continue;
        }
        Found& f = state[static_cast<size_t>(res.integer(i, 0))];
        f.found = true;
        if (!res.null(i, 1)) f.hash = res.integer(i, 1);
        f.deleted = res.text(i, 2) == "t";
        f.version = res.null(i, 3) ? 0 : res.integer(i, 3);
        if (!res.null(i, 4)) f.effective = std::string(res.text(i, 4));
      }
      return counter;
    };
    auto unchanged = [&](size_t r) {
      const Found& f = state[r];
      return f.found && !f.deleted && rows[r].hash && f.hash &&
             static_cast<uint64_t>(*f.hash) == rows[r].hash;
    };

    std::vector<size_t> chunk;
    std::set<std::string> keys;
    auto flush = [&]() {
      if (chunk.empty()) return;
      std::string counter = lookup(chunk);
      if (stale) return;
      std::vector<size_t> need;
      for (size_t r : chunk) {
        if (unchanged(r)) {
          if (!outcomes.empty()) outcomes[r] = WriteOutcome::Unchanged;
        } else {
          need.push_back(r);
        }
      }
      chunk.clear();
      keys.clear();
      if (need.empty()) return;
      std::string before;
      int64_t base = reserve(static_cast<int64_t>(need.size()), before);
      if (before != counter) {
        // Another writer committed since the read: read again, now that none can write.
        lookup(need);
        std::vector<size_t> still;
        for (size_t r : need) {
          if (unchanged(r)) {
            if (!outcomes.empty()) outcomes[r] = WriteOutcome::Unchanged;
          } else {
            still.push_back(r);
          }
        }
        need.swap(still);
      }
      std::vector<size_t> ins, upd;
      std::vector<int64_t> seq(rows.size());
      std::vector<std::string> from(rows.size());
      for (size_t i = 0; i < need.size(); ++i) {
        size_t r = need[i];
        seq[r] = base + 1 + static_cast<int64_t>(i);
        const std::string_view claim = rows[r].valid_from;
        const Found& f = state[r];
        if (!f.found) {
          from[r] = claim.empty() ? at : std::string(claim);
          ins.push_back(r);
          if (!outcomes.empty()) outcomes[r] = WriteOutcome::Inserted;
          continue;
        }
        // A next version starts at its claim when the claim is new (what the date describes),
        // else when it was seen; a revived row starts at its claim or when it was seen.
        bool same_claim = claim.empty() || (f.effective && *f.effective == claim);
        from[r] = f.deleted ? (claim.empty() ? at : std::string(claim))
                            : (same_claim ? at : std::string(claim));
        upd.push_back(r);
        if (!outcomes.empty())
          outcomes[r] = f.deleted ? WriteOutcome::Revived : WriteOutcome::Updated;
      }
      auto params = [&](const std::vector<size_t>& idx, bool with_until) {
        std::vector<Param> ps;
        for (size_t c = 0; c < n; ++c) {
          ArrayParam a;
          for (size_t r : idx) a.add(cells[r * n + c]);
          ps.push_back(a.done());
        }
        ArrayParam vf, eff, sq, hash, scope, vt;
        for (size_t r : idx) {
          vf.add(from[r] == at ? Param() : Param(from[r]));
          eff.add(rows[r].valid_from.empty() ? Param() : Param(std::string(rows[r].valid_from)));
          sq.add(seq[r]);
          hash.add(rows[r].hash ? Param(to_param_text(rows[r].hash)) : Param());
          scope.add(Param(to_param_text(rows[r].scope)));
          vt.add(Param(from[r]));
        }
        for (ArrayParam* a : {&vf, &eff, &sq, &hash, &scope}) ps.push_back(a->done());
        if (with_until) ps.push_back(vt.done());
        ps.push_back(at);
        ps.push_back(std::to_string(stamp.run_id));
        return ps;
      };
      if (!ins.empty()) {
        Result r = c_.exec(t.insert, params(ins, false));
        if (static_cast<size_t>(r.affected()) != ins.size())
          throw std::runtime_error("warehouse: rows of table '" + std::string(name) +
                                   "' appeared while they were written");
      }
      if (!upd.empty()) c_.exec(t.write, params(upd, true));
    };
    for (size_t r = 0; r < rows.size(); ++r) {
      std::string key;
      for (int c : t.key) {
        key += *cells[r * n + static_cast<size_t>(c)];
        key += '\x1f';
      }
      // A key twice in one batch: its second write must see the first.
      if (chunk.size() >= kBatch || keys.count(key)) flush();
      if (stale) break;
      keys.insert(std::move(key));
      chunk.push_back(r);
    }
    if (!stale) flush();
    if (!stale) break;
    forget();
    if (round >= 2)
      throw std::runtime_error("warehouse: the columns of table '" + std::string(name) +
                               "' keep changing while it is written");
  }
  tx.commit();
}

size_t PgWarehouse::delete_keys(std::string_view name, Table& t, std::vector<Value>& keys,
                                const std::string& at, int64_t run, std::optional<uint64_t> scope,
                                std::span<char> deleted) {
  build_writes(name, t);
  const size_t k = t.key.size();
  size_t count = 0;
  std::set<std::string> done;
  for (size_t first = 0; first < keys.size(); first += kBatch) {
    const size_t last = std::min(keys.size(), first + kBatch);
    std::vector<ArrayParam> cols(k);
    ArrayParam ords, kj, ij;
    size_t m = 0;
    for (size_t i = first; i < last; ++i) {
      const Value& key = keys[i];
      std::vector<Param> vals(k);
      Array values;
      Object image;
      std::string id;
      for (size_t j = 0; j < k; ++j) {
        size_t c = static_cast<size_t>(t.key[j]);
        const std::string& col = t.columns[c].name;
        const Value* v = key.is_object() ? key.find(col) : nullptr;
        if (!v || v->is_null())
          throw std::runtime_error("warehouse: a key for table '" + std::string(name) +
                                   "' lacks column '" + col + "'");
        Kind widen = Kind::Text;
        if (!render(*v, t.kind[c], vals[j], widen)) vals[j].reset();  // not in this column
        values.push_back(*v);
        image.emplace_back(col, *v);
        id += vals[j] ? *vals[j] : std::string("\x1e");
        id += '\x1f';
      }
      // A key that no column value equals, or one named twice, is not deleted (again).
      bool absent = std::any_of(vals.begin(), vals.end(), [](const Param& x) { return !x; });
      if (absent || !done.insert(id).second) continue;
      for (size_t j = 0; j < k; ++j) cols[j].add(vals[j]);
      ords.add(static_cast<int64_t>(i));
      kj.add(Param(canonical_json(Value(std::move(values)))));
      ij.add(Param(canonical_json(Value(std::move(image)))));
      ++m;
    }
    if (m == 0) continue;
    std::vector<Param> ps;
    for (auto& a : cols) ps.push_back(a.done());
    ps.push_back(ords.done());
    ps.push_back(kj.done());
    ps.push_back(ij.done());
    ps.push_back(scope ? Param(to_param_text(*scope)) : Param());
    std::vector<Param> probe(ps);
    int64_t candidates = c_.exec(t.candidates, probe).integer(0, 0);
    if (candidates == 0) continue;
    std::string before;
    int64_t base = reserve(candidates, before);
    ps.push_back(at);
    ps.push_back(std::to_string(run));
    ps.push_back(std::to_string(base));
    ps.push_back(std::string(name));
    Result r = c_.exec(t.remove, ps);
    for (int i = 0; i < r.rows(); ++i) {
      if (!deleted.empty()) deleted[static_cast<size_t>(r.integer(i, 0))] = 1;
      ++count;
    }
  }
  return count;
}

size_t PgWarehouse::mark_deleted(std::string_view name, std::span<const Value* const> keys,
                                 const WriteStamp& stamp, std::optional<uint64_t> scope,
                                 std::span<char> deleted) {
  if (keys.empty()) return 0;
  if (!deleted.empty() && deleted.size() != keys.size())
    throw std::logic_error("warehouse: mark_deleted needs one flag per key");
  for (const Value* k : keys)
    if (!k) throw std::runtime_error("warehouse: a null key for table '" + std::string(name) + "'");
  std::fill(deleted.begin(), deleted.end(), 0);
  Table& t = table(name);
  std::vector<Value> owned;
  owned.reserve(keys.size());
  for (const Value* k : keys) owned.push_back(*k);
  Unit tx(c_, *this);
  size_t n = delete_keys(name, t, owned, stamp.at.empty() ? kEpoch : stamp.at, stamp.run_id, scope,
                         deleted);
  tx.commit();
  return n;
}

void PgWarehouse::mark_deleted_items(std::string_view name, std::span<const Value* const> parents,
                                     std::span<const int64_t> from, const WriteStamp& stamp) {
  if (parents.empty()) return;
  if (parents.size() != from.size())
    throw std::runtime_error("warehouse: mark_deleted_items needs one position per parent");
  Table& t = table(name);
  if (t.key.size() < 2)
    throw std::runtime_error("warehouse: table '" + std::string(name) + "' is no child table");
  build_writes(name, t);
  const size_t k = t.key.size() - 1;
  const std::string& index_name = t.columns[static_cast<size_t>(t.key[k])].name;
  Unit tx(c_, *this);
  std::vector<Value> keys;
  for (size_t first = 0; first < parents.size(); first += kBatch) {
    const size_t last = std::min(parents.size(), first + kBatch);
    std::vector<ArrayParam> cols(k);
    ArrayParam ords, froms;
    for (size_t i = first; i < last; ++i) {
      const Value* parent = parents[i];
      for (size_t j = 0; j < k; ++j) {
        size_t c = static_cast<size_t>(t.key[j]);
        const Value* v = parent && parent->is_object() ? parent->find(t.columns[c].name) : nullptr;
        if (!v || v->is_null())
          throw std::runtime_error("warehouse: a parent key for table '" + std::string(name) +
                                   "' lacks column '" + t.columns[c].name + "'");
        Param text;
        Kind widen = Kind::Text;
        if (!render(*v, t.kind[c], text, widen)) text.reset();
        cols[j].add(text);
      }
      ords.add(static_cast<int64_t>(i));
      froms.add(from[i]);
    }
    std::vector<Param> ps;
    for (auto& a : cols) ps.push_back(a.done());
    ps.push_back(ords.done());
    ps.push_back(froms.done());
    Result r = c_.exec(t.items, ps);
    for (int i = 0; i < r.rows(); ++i) {
      Object key = parents[static_cast<size_t>(r.integer(i, 0))]->as_object();
      key.emplace_back(index_name, Value(r.integer(i, 1)));
      keys.emplace_back(std::move(key));
    }
  }
  if (!keys.empty()) {
    const std::string at = stamp.at.empty() ? kEpoch : stamp.at;
    delete_keys(name, t, keys, at, stamp.run_id, std::nullopt, {});
  }
  tx.commit();
}

void PgWarehouse::link_child_table(const ChildTable& child) {
  Unit tx(c_, *this);
  lock_schema();
  c_.query(
      "INSERT INTO cascade_tables(table_name, parent_table, field, field_json, position, "
      "added_at) VALUES($1, $2, $3, $4, (SELECT count(*) FROM cascade_tables), now()) ON "
      "CONFLICT(table_name) DO UPDATE SET parent_table=coalesce(excluded.parent_table, "
      "cascade_tables.parent_table), field=coalesce(excluded.field, cascade_tables.field), "
      "field_json=coalesce(excluded.field_json, cascade_tables.field_json)",
      child.table, child.parent, child.field, child.field_json);
  tx.commit();
}

std::vector<ChildTable> PgWarehouse::child_tables(std::string_view parent) {
  std::vector<ChildTable> out;
  Result r = c_.query(
      "SELECT table_name, field, field_json FROM cascade_tables WHERE parent_table=$1 ORDER BY "
      "position",
      parent);
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({std::string(r.text(i, 0)), std::string(parent), std::string(r.text(i, 1)),
                   std::string(r.text(i, 2))});
  return out;
}

void PgWarehouse::record_type_conflicts(std::span<const TypeConflict> conflicts,
                                        const WriteStamp& stamp) {
  if (conflicts.empty()) return;
  const std::string at = stamp.at.empty() ? kEpoch : stamp.at;
  // One row per (table, column, seen type): ON CONFLICT DO UPDATE takes each row once.
  std::map<std::tuple<std::string, std::string, ColumnType>, TypeConflict> merged;
  for (const auto& c : conflicts) {
    auto [it, fresh] = merged.try_emplace({c.table, c.column, c.seen}, c);
    if (!fresh) it->second.count += c.count;
  }
  ArrayParam table, column, field, expected, seen, count;
  for (const auto& [key, c] : merged) {
    table.add(Param(c.table));
    column.add(Param(c.column));
    field.add(Param(c.field));
    expected.add(Param(column_type_name(c.expected)));
    seen.add(Param(column_type_name(c.seen)));
    count.add(static_cast<int64_t>(c.count));
  }
  const Param ps[] = {
      table.done(), column.done(), field.done(), expected.done(), seen.done(), count.done(), at};
  Unit tx(c_, *this);
  // Sorted, so that two writers lock the same conflict rows in the same order.
  c_.exec(
      "INSERT INTO cascade_type_conflicts(table_name, column_name, field, expected_type, "
      "seen_type, first_seen, last_seen, count) SELECT t, c, f, e, s, $7::timestamptz, "
      "$7::timestamptz, n FROM ROWS FROM(unnest($1::text[]), unnest($2::text[]), "
      "unnest($3::text[]), unnest($4::text[]), unnest($5::text[]), unnest($6::bigint[])) AS "
      "v(t, c, f, e, s, n) ORDER BY t, c, s ON CONFLICT(table_name, column_name, seen_type) DO "
      "UPDATE SET last_seen=excluded.last_seen, count=cascade_type_conflicts.count+excluded.count",
      ps);
  tx.commit();
}

namespace {

// Type OIDs of pg_type (fixed since PostgreSQL 7).
constexpr Oid kBool = 16, kBytea = 17, kInt8 = 20, kInt2 = 21, kInt4 = 23, kFloat4 = 700,
              kFloat8 = 701;

int hex(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return 0;
}

}  // namespace

void PgWarehouse::query_rows(std::string_view sql, RowSink& sink) {
  // Any statement may have changed a schema this object has cached.
  forget();
  PGconn* pc = c_.raw();
  if (!pc || c_.broken()) throw StorageError("postgres: not connected");
  // Inside the caller's transaction, a savepoint lets the cancel of a query stopped early end
  // only this query. A statement the server refuses fails the unit of work, as any other does.
  const bool in_tx = c_.in_transaction();
  if (in_tx) c_.query("SAVEPOINT cascade_query");
  if (!PQsendQuery(pc, std::string(sql).c_str()))
    throw StorageError(std::string("postgres: cannot send a query: ") + PQerrorMessage(pc));
  PQsetSingleRowMode(pc);
  std::string error, state;
  std::exception_ptr thrown;
  bool stopped = false, announced = false;
  std::vector<std::string> names, blobs;
  std::vector<Cell> cells;
  auto stop = [&]() {
    stopped = true;
    if (PGcancel* cancel = PQgetCancel(pc)) {
      char buf[256];
      PQcancel(cancel, buf, sizeof buf);
      PQfreeCancel(cancel);
    }
  };
  auto announce = [&](PGresult* r) {
    int nf = PQnfields(r);
    names.clear();
    for (int i = 0; i < nf; ++i) names.emplace_back(PQfname(r, i));
    sink.columns(names);
    announced = true;
  };
  // Every result is read to the end (the connection is unusable before): this loop ends when
  // libpq has no more, which it always reaches once the server is done or gone.
  while (PGresult* r = PQgetResult(pc)) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> guard(r, PQclear);
    switch (PQresultStatus(r)) {
      case PGRES_SINGLE_TUPLE: {
        if (stopped) break;
        try {
          if (!announced) announce(r);
          int nf = PQnfields(r);
          cells.assign(static_cast<size_t>(nf), Cell{});
          blobs.resize(static_cast<size_t>(nf));
          for (int i = 0; i < nf; ++i) {
            if (PQgetisnull(r, 0, i)) continue;
            Cell& c = cells[static_cast<size_t>(i)];
            const char* v = PQgetvalue(r, 0, i);
            std::string_view text(v, static_cast<size_t>(PQgetlength(r, 0, i)));
            switch (PQftype(r, i)) {
              case kInt2:
              case kInt4:
              case kInt8:
                c.kind = Cell::Kind::Integer;
                std::from_chars(text.data(), text.data() + text.size(), c.integer);
                break;
              case kFloat4:
              case kFloat8:
                c.kind = Cell::Kind::Real;
                c.real = std::strtod(v, nullptr);
                break;
              case kBool:
                c.kind = Cell::Kind::Integer;
                c.integer = text == "t" ? 1 : 0;
                break;
              case kBytea: {
                std::string& b = blobs[static_cast<size_t>(i)];
                b.clear();
                for (size_t j = 2; j + 1 < text.size(); j += 2)
                  b += static_cast<char>(hex(text[j]) * 16 + hex(text[j + 1]));
                c.kind = Cell::Kind::Blob;
                c.bytes = b;
                break;
              }
              default:
                c.kind = Cell::Kind::Text;
                c.bytes = text;
            }
          }
          if (!sink.row(cells)) stop();
        } catch (...) {
          thrown = std::current_exception();
          stop();
        }
        break;
      }
      case PGRES_TUPLES_OK:
        if (!stopped && !announced && PQnfields(r) > 0) {
          try {
            announce(r);
          } catch (...) {
            thrown = std::current_exception();
            stop();
          }
        }
        announced = false;
        break;
      case PGRES_COPY_IN:
        PQputCopyEnd(pc, "cascade: COPY FROM STDIN is not supported here");
        break;
      case PGRES_COPY_OUT: {
        char* buf = nullptr;
        while (PQgetCopyData(pc, &buf, 0) > 0) PQfreemem(buf);
        break;
      }
      case PGRES_COMMAND_OK:
      case PGRES_EMPTY_QUERY:
        announced = false;
        break;
      default:
        if (!stopped && error.empty()) {
          const char* st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
          state = st ? st : "";
          error = PQresultErrorMessage(r);
          while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
        }
        announced = false;
    }
  }
  if (c_.broken()) throw StorageError("postgres: connection lost");
  if (in_tx && error.empty()) {
    try {
      if (stopped) c_.query("ROLLBACK TO SAVEPOINT cascade_query");
      c_.query("RELEASE SAVEPOINT cascade_query");
    } catch (const std::runtime_error&) {
      // The SQL ended the transaction itself (COMMIT, ROLLBACK): no savepoint is left.
    }
  }
  if (thrown) std::rethrow_exception(thrown);
  if (!error.empty()) throw QueryError("postgres: " + error, state);
}

std::vector<Relation> PgWarehouse::relations() {
  std::vector<Relation> out;
  Result r = c_.query(
      "SELECT relname, relkind IN ('v', 'm') FROM pg_class WHERE relnamespace = "
      "to_regnamespace(current_schema()) AND relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY "
      "relname COLLATE \"C\"");
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({std::string(r.text(i, 0)), r.text(i, 1) == "t"});
  return out;
}

PgChangeLog::PgChangeLog(Conn& conn) : c_(conn) {
  ensure_schema(c_);
  if (!relation_exists(c_, kChangeLogView)) define_view();
}

std::vector<Change> PgChangeLog::read(int64_t after, size_t limit) {
  std::vector<Change> out;
  Result r = c_.query("SELECT seq, table_name, operation, key, image, run_id, " + iso("at") +
                          " FROM " + qi(kChangeLogView) + " WHERE seq > $1 ORDER BY seq LIMIT $2",
                      after, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  for (int i = 0; i < r.rows(); ++i) {
    Change c;
    c.seq = r.integer(i, 0);
    c.table = r.text(i, 1);
    std::string_view op = r.text(i, 2);
    c.kind = op == "insert"   ? ChangeKind::New
             : op == "update" ? ChangeKind::Changed
                              : ChangeKind::Gone;
    // Compact JSON in column order (jsonb values inside are spelled with spaces by the server).
    c.key = to_json(parse_json(r.text(i, 3)));
    c.image = to_json(parse_json(r.text(i, 4)));
    c.run_id = r.integer(i, 5);
    c.at = r.text(i, 6);
    out.push_back(std::move(c));
  }
  return out;
}

int64_t PgChangeLog::count(std::string_view table, int64_t run) {
  Param t = table.empty() ? Param() : Param(std::string(table));
  const Param ps[] = {t, std::to_string(run)};
  return c_
      .exec("SELECT count(*) FROM " + qi(kChangeLogView) +
                " WHERE ($1::text IS NULL OR table_name = $1::text) AND ($2::bigint = 0 OR run_id "
                "= $2::bigint)",
            ps)
      .integer(0, 0);
}

int64_t PgChangeLog::last_seq() {
  return c_.query("SELECT coalesce(max(seq), 0) FROM " + qi(kChangeLogView)).integer(0, 0);
}

void PgChangeLog::define_view() {
  if (unchanged_view(c_, kChangeLogView, change_log_select(c_))) return;
  Tx tx(c_);
  c_.query(kLockSchema);
  define_change_log_on(c_);
  tx.commit();
}

}  // namespace cascade::pg
