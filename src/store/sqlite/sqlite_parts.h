// The four store interfaces implemented over one SQLite connection (internal to the sqlite
// backend; the engine sees only store/*.h). Not thread-safe: the owning SqliteStore's thread.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/change_log.h"
#include "store/queue.h"
#include "store/sqlite/sqlite_db.h"
#include "store/staging.h"
#include "store/warehouse.h"

namespace cascade::sqlite {

// Transparent hashing so lookups by string_view need no temporary string.
struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, StrHash, std::equal_to<>>;

class SqliteQueue final : public Queue {
 public:
  SqliteQueue(Db& db, const Clock& clock);

  void create(std::string_view queue, const QueueOptions& options) override;
  size_t send(std::string_view queue, std::span<const std::string> bodies, Duration delay) override;
  std::vector<ReceivedMessage> receive(std::string_view queue, size_t max,
                                       std::optional<Duration> visibility) override;
  bool remove(std::string_view queue, std::string_view receipt) override;
  bool change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                         std::string_view error) override;
  bool release(std::string_view queue, std::string_view receipt, Duration delay) override;
  bool dead_letter(std::string_view queue, std::string_view receipt,
                   std::string_view reason) override;
  QueueStats stats(std::string_view queue) override;
  std::vector<DeadLetter> dead_letters(std::string_view queue, size_t limit) override;
  size_t redrive(std::string_view queue, std::span<const std::string> ids) override;
  size_t purge_dead_letters(std::string_view queue, std::span<const std::string> ids) override;
  size_t release_in_flight(std::string_view queue) override;

  // Forgets cached queue declarations (after a rollback may have undone some).
  void forget() { queues_.clear(); }

 private:
  struct Info {
    int64_t id = 0;
    QueueOptions options;
    int64_t retention_cutoff_done = INT64_MIN;  // last cutoff applied by receive()
  };
  Info& info(std::string_view queue);
  int64_t now() const { return to_millis(clock_.now()); }

  Db& db_;
  const Clock& clock_;
  std::mt19937_64 rng_;
  StrMap<Info> queues_;
  Stmt find_queue_, upsert_queue_, insert_, expire_, select_visible_, hide_, to_dlq_, delete_,
      delete_receipt_, set_visibility_, dlq_receipt_, count_visible_, count_hidden_, oldest_,
      count_dlq_, list_dlq_, redrive_all_, redrive_one_, purge_all_, purge_one_, release_, uncount_,
      absorb_released_;
};

class SqliteStaging final : public Staging {
 public:
  explicit SqliteStaging(Db& db) : db_(db) {}

  void create_stage(std::string_view stage) override;
  void scope_rows(std::string_view stage, uint64_t scope, std::vector<StagedRow>& out) override;
  void set_scope_rows(std::string_view stage, uint64_t scope,
                      std::span<const StagedRef> rows) override;
  void record_listing(std::string_view stage, uint64_t scope, std::span<const StagedRef> rows,
                      uint64_t digest) override;
  std::optional<ListingDigest> listing_digest(std::string_view stage, uint64_t scope) override;
  void scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  std::optional<HeldListing> held_listing(std::string_view stage, uint64_t scope) override;
  void held_scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  void hold_listing(std::string_view stage, uint64_t scope, const HeldListing& listing) override;
  void release_listing(std::string_view stage, uint64_t scope) override;
  std::optional<std::string> cursor(std::string_view stage, uint64_t scope) override;
  void set_cursor(std::string_view stage, uint64_t scope, std::string_view value) override;
  size_t clear_cursors(std::string_view stage) override;

  void forget() {}

 private:
  struct Stmts {
    Stmt get, put, drop, scopes, digest;
  };
  Stmts& stmts();
  struct Held {
    Stmt get, scopes, put, release;
  };
  Held& held();
  struct Cursors {
    Stmt get, put, clear;
  };
  Cursors& cursors();

  Db& db_;
  // Prepared on first use: read-only stores may predate the tables.
  std::unique_ptr<Stmts> stmts_;
  std::unique_ptr<Held> held_;
  std::unique_ptr<Cursors> cursors_;
};

class SqliteWarehouse;

class SqliteChangeLog final : public ChangeLog {
 public:
  SqliteChangeLog(Db& db, SqliteWarehouse& warehouse);

  std::vector<Change> read(int64_t after, size_t limit) override;
  int64_t count(std::string_view table, int64_t run) override;
  int64_t last_seq() override;
  void define_view() override;

 private:
  struct Stmts {
    Stmt read, count_all, count_table, count_run, count_table_run, last;
  };
  Stmts& stmts();
  Db& db_;
  SqliteWarehouse& warehouse_;
  std::unique_ptr<Stmts> stmts_;
};

class SqliteWarehouse final : public Warehouse {
 public:
  explicit SqliteWarehouse(Db& db);

  std::vector<Column> columns(std::string_view table) override;
  std::vector<Column> catalog(std::string_view table) override;
  void create_table(std::string_view table, std::span<const Column> key) override;
  void add_columns(std::string_view table, std::span<const Column> columns) override;
  using Warehouse::upsert;
  void upsert(std::string_view table, std::span<const RowWrite> rows, const WriteStamp& stamp,
              std::span<WriteOutcome> outcomes) override;
  using Warehouse::mark_deleted;
  size_t mark_deleted(std::string_view table, std::span<const Value* const> keys,
                      const WriteStamp& stamp, std::optional<uint64_t> scope,
                      std::span<char> deleted) override;
  void mark_deleted_items(std::string_view table, std::span<const Value* const> parents,
                          std::span<const int64_t> from, const WriteStamp& stamp) override;
  void link_child_table(const ChildTable& child) override;
  std::vector<ChildTable> child_tables(std::string_view parent) override;
  void record_type_conflicts(std::span<const TypeConflict> conflicts,
                             const WriteStamp& stamp) override;
  void define_view(std::string_view name, std::string_view select) override;
  void query_rows(std::string_view sql, RowSink& sink) override;
  std::vector<Relation> relations() override;
  std::string quote(std::string_view identifier) const override { return quote_ident(identifier); }

  // (Re)defines the change-log view over every table's versions and the deletions.
  void define_change_log();

  // Forgets cached schemas and the change-log sequence (after a rollback may have undone some).
  void forget() {
    tables_.clear();
    seq_loaded_ = false;
    seq_dirty_ = false;
  }

 private:
  struct Table {
    std::vector<Column> columns;  // key and field columns, without the metadata
    StrMap<int> index;            // column name -> 0-based position
    std::vector<int> key;         // positions of the primary key columns
    // Prepared on first write: a first version, a next version in place, the row's hash and
    // state, moving the live version into the past, the soft delete, and (child tables) the
    // live items of a parent from a position on.
    Stmt insert, update, lookup, archive, soft_delete, items;
    std::vector<char> seen;  // scratch for bind_row: columns given a non-null value
    // The field names of the last row bound and their column positions.
    std::vector<std::string> memo_names;
    std::vector<int> memo_pos;
    // Per column: declared with a numeric affinity (tables made before typeless number
    // columns), where SQLite would round a Decimal bound as text.
    std::vector<char> numeric_affinity;
  };
  Table& table(std::string_view name);
  std::vector<Column> read_columns(std::string_view table, std::vector<char>* numeric,
                                   std::vector<int>* pk);
  void record(std::string_view table, const Column& c);
  // Gives a table made by an earlier version its metadata columns, past table and views.
  void upgrade(std::string_view table);
  // (Re)defines the history view of `table` and the change log.
  void define_views_of(std::string_view table);
  void prepare_writes(std::string_view name, Table& t);
  // Binds every field column of `row` (NULL for absent ones) at its position + 1.
  void bind_row(Stmt& st, Table& t, const Value& row, std::string_view table);
  void bind_key(Stmt& st, int first, const Table& t, const Value& key, std::string_view table);
  void bind(Stmt& st, int i, const Value& v, const Column& c, bool numeric_affinity);
  bool delete_one(std::string_view table, Table& t, const Value& key, std::string_view at,
                  int64_t run, std::optional<uint64_t> scope);
  // The change-log sequence: loaded from cascade_meta on first use in a unit of work, saved at
  // the end of every write call, so it is part of the same commit as the versions it numbers.
  int64_t next_seq();
  void save_seq();

  Db& db_;
  Stmt table_info_, catalog_, catalog_types_, record_, list_table_, children_, conflict_, seq_get_,
      seq_put_, del_event_;
  StrMap<std::unique_ptr<Table>> tables_;
  int64_t seq_ = 0;
  bool seq_loaded_ = false, seq_dirty_ = false;
};

}  // namespace cascade::sqlite
