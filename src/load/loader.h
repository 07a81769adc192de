// Loader: applies changes to the warehouse's typed tables — creates each table on first use,
// adds a column when a field first appears (schema evolution), upserts new and changed rows,
// deletes gone ones. Each field gets its own column named by ColumnNamer (load/column_names.h),
// recorded in the warehouse's catalog; fields past kMaxTableColumns go to the overflow column
// as one JSON object, so no value is ever dropped. Caches table schemas; not thread-safe (runs
// on the store's owner thread).
//
// The shape of a row image is the API's; the shape of a table row is the Loader's (README,
// "Nested objects, lists and contracts"):
//   - The members of a nested object, down to TableSpec::flatten_depth levels, are columns of
//     their own named by their path joined with `__` (`manager: {name}` -> `manager__name`);
//     the catalog spells the path as a JSON array (`["manager","name"]`). An object below the
//     depth is JSON in the column of the last flattened level.
//   - A list of objects (TableSpec::list_tables) is a child table `<table>__<path>` keyed by the
//     parent's key columns and `_index`, the item's position; the parent's row does not hold it.
//     Each new version of a parent replaces its items: positions still present get a new
//     version, the ones past the list's end are marked deleted, as are all items of a deleted
//     parent. Lists inside an item, and lists of anything but objects, stay JSON.
//   - A value whose type differs from its column's catalog type is stored as given and counted
//     in cascade_type_conflicts (key columns are refused by check_row() instead).
//   - The contract decides what a field that is not a column yet does once the table exists:
//     evolve adds the column, freeze refuses the row (check_row()), discard drops the value.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "load/column_names.h"
#include "store/warehouse.h"

namespace cascade {

enum class Contract : uint8_t { Evolve, Freeze, Discard };

// The derived key column of a child table: the item's position in its parent's list, from 0.
constexpr std::string_view kIndexColumn = "_index";

struct TableSpec {
  std::string name;
  std::vector<std::string> key;  // key column names, in key order
  // The field holding the vendor's effective date of a version (history's valid_from).
  std::optional<std::string> effective;
  // Levels of nested objects whose members become columns; 0 keeps every object and list as
  // JSON in the field's column, child tables included.
  int flatten_depth = 1;
  bool list_tables = true;  // lists of objects become child tables (with flatten_depth > 0)
  Contract contract = Contract::Evolve;
};

// A row image to write, with its content hash and the listing it came from (RowWrite).
struct LoadRow {
  const Value* row = nullptr;
  uint64_t hash = 0;
  uint64_t scope = 0;
  bool known = false;
};

class Loader {
 public:
  explicit Loader(Warehouse& warehouse) : warehouse_(warehouse) {}

  // Writes new versions of row images (objects holding every key column), each valid from
  // its effective field when the table names one and the row holds it as text, else from the
  // stamp's time, and replaces their items in child tables. Adds missing columns and child
  // tables first (as the contract allows), typed from the first non-null value seen; null
  // fields that are not columns yet are skipped. Each row's hash makes its write
  // compare-and-set (RowWrite); `outcomes`, when not empty, receives what each write did. Only
  // rows that changed rewrite their items. Returns how many values the discard contract dropped.
  size_t upsert(const TableSpec& table, std::span<const LoadRow> rows, const WriteStamp& stamp,
                std::span<WriteOutcome> outcomes);
  // The same for rows without hash or scope: every row is a new version.
  size_t upsert(const TableSpec& table, std::span<const Value* const> rows,
                const WriteStamp& stamp = {});
  // Marks rows deleted (soft), and the items in child tables of those it marked; each entry is
  // an object holding the key columns. With `scope`, only rows that listing wrote last. Returns
  // how many were marked.
  size_t mark_deleted(const TableSpec& table, std::span<const Value* const> keys,
                      const WriteStamp& stamp = {}, std::optional<uint64_t> scope = {});

  // Why `row` cannot go into the table as it stands, or "" if it can: a key column whose value
  // has another type than the column (an id sent as "3972" where ids are integers would make a
  // second, different row), or, under the freeze contract, a field the existing table has no
  // column for.
  std::string check_row(const TableSpec& table, const Value& row);

  // Forgets cached schemas (after a rollback that may have undone DDL).
  void reset() { tables_.clear(); }

 private:
  struct Child {
    std::vector<std::string> path;  // of the list, from the parent row's top
    std::string path_json;
    std::string table;
  };
  struct Known {
    bool exists = false;
    // Made by the write under way: every field of its first rows is welcome, whatever the
    // contract, which only applies to a table that existed before.
    bool fresh = false;
    std::unordered_map<std::string, std::string> columns;  // top-level field -> its column
    std::unordered_map<std::string, std::string> nested;   // path as JSON -> its column
    std::unordered_map<std::string, ColumnType> types;     // column -> its catalog type
    ColumnNamer namer;
    size_t column_count = 0;
    bool has_overflow = false;
    // Some field is stored under another name (or in the overflow column): rows are rewritten.
    bool renamed = false;
    // Field names of the last row seen to be fully covered by same-named columns, with their
    // column types: most rows of a table repeat them, and comparing names in order is cheaper
    // than hashing each one.
    std::vector<std::string> last_fields;
    std::vector<ColumnType> last_types;
    std::vector<Column> key_types;  // declared types of the key columns
    std::vector<Child> children;
  };
  // One write (or check) of rows into one table.
  struct Batch {
    const TableSpec* spec = nullptr;
    Known* k = nullptr;
    bool check_only = false;
    bool strict = false;  // the contract applies
    std::string unknown;  // the first field no column holds, for freeze
    std::vector<Column> added;
    size_t discarded = 0;
    bool null_extras = false;
    bool nested_rows = false;  // some row had a flattened object or a list for a child table
    // Empty lists of the row under way at paths without a child table yet.
    std::vector<std::pair<std::vector<std::string>, const Value*>>* pending = nullptr;
  };
  // A parent row's list of objects, bound for a child table.
  struct ListOf {
    std::vector<std::string> path;
    const Array* items = nullptr;
  };
  using Conflicts = std::map<std::tuple<std::string, std::string, ColumnType>, TypeConflict>;

  bool same_fields(const Known& k, const Value& row) const;
  bool has_nested(const TableSpec& t, const Value& row) const;
  Known& known(const TableSpec& table, const Value* first_row);
  // The child table holding the list at `path` of `parent`'s rows; made when `create`.
  Known* child(const TableSpec& parent, Known& pk, const std::vector<std::string>& path,
               const std::string& path_json, bool create, TableSpec& spec_out);
  void place(Batch& b, std::vector<std::string>& path, size_t base, const Value& v, Object& out,
             Object& overflow, std::vector<ListOf>* lists);
  void leaf(Batch& b, std::vector<std::string>& path, size_t base, const Value& v, Object& out,
            Object& overflow);
  void conflict(const TableSpec& t, const std::string& column, const std::string& field,
                ColumnType expected, const Value& v);
  void write_children(const TableSpec& table, Known& k, std::span<const Value* const> rows,
                      const std::vector<std::vector<ListOf>>& lists,
                      const std::vector<std::string_view>& from, const WriteStamp& stamp,
                      size_t& discarded, bool strict);

  Warehouse& warehouse_;
  std::unordered_map<std::string, Known> tables_;
  Conflicts conflicts_;  // gathered during one upsert
};

ColumnType column_type_for(const Value& v);

// Whether `v` may be stored in a column of type `t` as that type (an integral double in an
// INTEGER column, any number in a REAL one), with no type conflict.
bool fits_column_type(ColumnType t, const Value& v);

}  // namespace cascade
