// Warehouse: typed tables that analysts query with SQL, one per stage, one column per record
// field, kept current by applying changes. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/value.h"
#include "store/names.h"

namespace cascade {

// Decimal: exact numbers beyond int64 and double, kept as their decimal text.
enum class ColumnType : uint8_t { Integer, Real, Text, Boolean, Json, Decimal };
// INTEGER, REAL, TEXT, BOOLEAN, JSON, DECIMAL: the names the catalog and messages use.
const char* column_type_name(ColumnType t);
// The type a column_type_name() names; Text for anything else.
ColumnType column_type_from_name(std::string_view name);

struct Column {
  Column() = default;
  // A column holding the field of its own name.
  Column(std::string n, ColumnType t) : name(n), type(t), field(std::move(n)) {}
  Column(std::string n, ColumnType t, std::string f)
      : name(std::move(n)), type(t), field(std::move(f)) {}
  std::string name;
  ColumnType type = ColumnType::Text;
  // The field of the row images this column holds (any text, the empty one included); none
  // for a column that holds no one field, like the overflow column itself.
  std::optional<std::string> field;
  // What the column holds, spelled unambiguously as JSON (cascade_columns.field_json): empty
  // for a record field, which is spelled as its JSON string; a JSON array of names for a field
  // of a nested object (`["manager","name"]`, whose `field` reads `manager.name`); a JSON object
  // for a column cascade derives, like a child table's `_index`.
  std::string field_json;
  const std::string& field_name() const { return field ? *field : name; }
};

// A table holding the items of a list of objects of another table's rows (a child table).
struct ChildTable {
  std::string table;
  std::string parent;
  std::string field;       // the list's field in the parent's rows, dotted (`lines`, `a.items`)
  std::string field_json;  // the same as a JSON array of names
};

// Values of a column whose type differs from the type the catalog records for it, seen while
// writing: `count` of them, of type `seen`.
struct TypeConflict {
  std::string table;
  std::string column;
  std::string field;
  ColumnType expected = ColumnType::Text;
  ColumnType seen = ColumnType::Text;
  uint64_t count = 0;
};

// Who wrote a row and when: the run and the observed time (ISO 8601 UTC text, e.g.
// 2026-11-29T10:00:00.000Z) that the metadata columns and history intervals record.
struct WriteStamp {
  int64_t run_id = 0;
  std::string at;
};

// One row to upsert: the image (an object holding every key column) and the vendor's effective
// date it claims (empty: none). A version is valid from its claim when it is the first of its key
// or its claim differs from the previous version's (the change the date describes, a transfer),
// else from the stamp's time (a change the date does not describe, a new salary).
//
// `hash` makes the write compare-and-set: a row whose stored hash equals it (and is not deleted)
// is left alone and reported Unchanged, so a replayed write changes nothing. 0 means no hash:
// every write is a new version. `scope` records the listing that wrote the row (0: none), which
// mark_deleted() can require. `known` says the caller saw the key before (in its listing), so the
// row is looked up first instead of inserted first.
struct RowWrite {
  const Value* row = nullptr;
  std::string_view valid_from;
  uint64_t hash = 0;
  uint64_t scope = 0;
  bool known = false;
};

// What a write did to its row: nothing (same hash), a first version, a next version of a live
// row, or a next version of a row that was deleted.
enum class WriteOutcome : uint8_t { Unchanged, Inserted, Updated, Revived };

// The metadata columns every current table carries, after its key columns.
inline constexpr std::string_view kFirstSeenColumn = "_first_seen";      // first written
inline constexpr std::string_view kLastChangedColumn = "_last_changed";  // last new version
inline constexpr std::string_view kVersionColumn = "_version";           // 1, 2, ... per key
inline constexpr std::string_view kRunIdColumn = "_run_id";              // run of the last write
inline constexpr std::string_view kDeletedAtColumn = "_deleted_at";      // NULL while listed
// The current version's start when it is not `_last_changed` (a claimed effective date), its
// claim, the change-log sequence number of its write, the content hash and the listing (scope)
// that wrote it: what compare-and-set writes and deletion detection need, kept in the row itself
// so that a new record costs one insert.
inline constexpr std::string_view kValidFromColumn = "_valid_from";
inline constexpr std::string_view kEffectiveColumn = "_effective";  // the row's claimed date
inline constexpr std::string_view kSeqColumn = "_seq";
inline constexpr std::string_view kHashColumn = "_hash";
inline constexpr std::string_view kScopeColumn = "_scope";
// The columns a history (history_table_name()) adds to the field columns, besides `_version`,
// `_valid_from`, `_effective`, `_run_id` (the run that wrote the version) and `_seq`.
inline constexpr std::string_view kValidToColumn = "_valid_to";      // NULL: the current version
inline constexpr std::string_view kChangedAtColumn = "_changed_at";  // when it was written

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

// One value of a streamed result as the database holds it, so that a writer can tell an INTEGER
// from digits stored as TEXT and a BLOB from text.
struct Cell {
  enum class Kind : uint8_t { Null, Integer, Real, Text, Blob };
  Kind kind = Kind::Null;
  int64_t integer = 0;
  double real = 0;
  std::string_view bytes;  // Text and Blob; valid only during the RowSink::row call
};

// Receives a streamed result row by row, so that no result is ever held whole in memory.
class RowSink {
 public:
  virtual ~RowSink() = default;
  // The column names of the statement whose rows follow; called again for each later statement
  // of the same SQL that returns columns.
  virtual void columns(std::span<const std::string> names) = 0;
  // One row, with one cell per column. Returning false ends the query at once.
  virtual bool row(std::span<const Cell> cells) = 0;
};

// A table or view of the warehouse.
struct Relation {
  std::string name;
  bool view = false;
};

class Warehouse {
 public:
  virtual ~Warehouse() = default;

  // Columns of a table in order; empty when the table does not exist.
  virtual std::vector<Column> columns(std::string_view table) = 0;

  // The catalog of a table: every field it holds, each with its column and type, in the order
  // they appeared. Several fields may share the overflow column. Empty for tables made before
  // the catalog existed (their columns are named as their fields).
  virtual std::vector<Column> catalog(std::string_view table) = 0;

  // Creates a table whose primary key is `key` (idempotent when it exists), recording its key
  // columns in the catalog, with the metadata columns, its past versions' table and its history
  // (history_table_name(): the field columns, `_version`, `_valid_from`, `_valid_to`,
  // `_effective`, `_run_id`, `_seq`, `_changed_at`, one row per version), and includes it in the
  // change log. A table made by an earlier version of cascade gains all of these here.
  virtual void create_table(std::string_view table, std::span<const Column> key) = 0;

  // Adds columns to an existing table and its history (schema evolution; existing rows get
  // NULL) and records each one's field in the catalog. A column that exists already only gains
  // the catalog entry, which is how further fields join the overflow column.
  virtual void add_columns(std::string_view table, std::span<const Column> columns) = 0;

  // Writes each row whose content changed as a new version: inserted (version 1, first seen
  // now), or updated in place (version + 1, undeleted) with its previous version moved to the
  // history, closed at this one's valid_from (never before its own start). A row whose stored
  // hash equals its RowWrite::hash is left alone (compare-and-set). Each row is an object holding
  // every key column; fields that are not columns of the table are an error (add them first);
  // absent columns become NULL. Every value is stored exactly: numbers as the column can hold
  // them without rounding, Decimals and numbers in text columns as their decimal text. Every new
  // version gets the next change-log sequence number. `outcomes`, when not empty, receives what
  // happened to each row (it must be as long as `rows`).
  virtual void upsert(std::string_view table, std::span<const RowWrite> rows,
                      const WriteStamp& stamp, std::span<WriteOutcome> outcomes) = 0;
  void upsert(std::string_view table, std::span<const RowWrite> rows, const WriteStamp& stamp) {
    upsert(table, rows, stamp, {});
  }

  // Marks rows deleted (soft: `_deleted_at` = the stamp's time), closes their current version
  // in the history there and appends a delete to the change log; nothing is ever removed. Each
  // entry is an object holding the key columns. A key that is not in the table, deleted already,
  // or (with `scope`) last written by another listing is left alone. `deleted`, when not empty,
  // says which keys were marked (it must be as long as `keys`). Returns how many were.
  virtual size_t mark_deleted(std::string_view table, std::span<const Value* const> keys,
                              const WriteStamp& stamp, std::optional<uint64_t> scope,
                              std::span<char> deleted) = 0;
  size_t mark_deleted(std::string_view table, std::span<const Value* const> keys,
                      const WriteStamp& stamp) {
    return mark_deleted(table, keys, stamp, std::nullopt, {});
  }

  // Marks deleted (as mark_deleted() does) the rows of a child table whose key starts with a
  // parent's key and whose last key column (the item's position) is at least `from`: each
  // entry of `parents` is an object holding every key column but the last.
  virtual void mark_deleted_items(std::string_view table, std::span<const Value* const> parents,
                                  std::span<const int64_t> from, const WriteStamp& stamp) = 0;

  // Records `child` as a child table in the table catalog (cascade_tables), where every table
  // is listed with its parent (none for a stage's table) and the list field it holds.
  virtual void link_child_table(const ChildTable& child) = 0;
  // The child tables of `parent`, in the order they were made.
  virtual std::vector<ChildTable> child_tables(std::string_view parent) = 0;

  // Adds conflicts to cascade_type_conflicts: per (table, column, seen type) the count grows and
  // last_seen becomes the stamp's time (first_seen set once).
  virtual void record_type_conflicts(std::span<const TypeConflict> conflicts,
                                     const WriteStamp& stamp) = 0;

  // Convenience for callers without effective dates.
  void upsert(std::string_view table, std::span<const Value* const> rows,
              const WriteStamp& stamp = {}) {
    std::vector<RowWrite> w;
    w.reserve(rows.size());
    for (const Value* r : rows) w.push_back({r, {}});
    upsert(table, std::span<const RowWrite>(w), stamp);
  }

  // Replaces the view `name` with `select` (a SELECT statement). Views may name tables that do
  // not exist yet; a query of the view fails until they do.
  virtual void define_view(std::string_view name, std::string_view select) = 0;

  // Runs read-only SQL (any statement for the embedded backends) through query_rows(), keeping
  // the rows of the last statement that returns columns (Text and Blob cells as strings). Throws
  // std::runtime_error with the database's message on error.
  QueryResult query(std::string_view sql);

  // Runs SQL as query() does, handing each row to `sink` as the database yields it. Exceptions
  // thrown by the sink end the query and propagate.
  virtual void query_rows(std::string_view sql, RowSink& sink) = 0;

  // Every table and view, cascade's own included, sorted by name; SQLite's internal tables left
  // out.
  virtual std::vector<Relation> relations() = 0;

  // `identifier` quoted for this backend's SQL, so that no name is ever read as SQL.
  virtual std::string quote(std::string_view identifier) const = 0;
};

}  // namespace cascade
