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
  void get_hashes(std::string_view stage, std::span<const std::string_view> keys,
                  std::unordered_map<std::string, uint64_t>& out) override;
  void upsert(std::string_view stage, uint64_t scope, std::span<const StagedRef> rows) override;
  void mark_gone(std::string_view stage, std::span<const std::string_view> keys) override;
  int64_t count(std::string_view stage) override;
  void scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  std::optional<HeldListing> held_listing(std::string_view stage, uint64_t scope) override;
  void held_scopes(std::string_view stage, std::vector<uint64_t>& out) override;
  void hold_listing(std::string_view stage, uint64_t scope, const HeldListing& listing) override;
  void release_listing(std::string_view stage, uint64_t scope) override;

  void forget() { stages_.clear(); }

 private:
  struct Stage {
    Stmt scope_rows, get_hash, get_hashes, upsert, mark_gone, count, scopes;
  };
  Stage& stage(std::string_view name);
  Stage& prepare(std::string_view name);
  struct Held {
    Stmt get, scopes, put, release;
  };
  Held& held();

  Db& db_;
  StrMap<std::unique_ptr<Stage>> stages_;
  std::unique_ptr<Held> held_;  // prepared on first use: read-only stores never need it
};

class SqliteChangeLog final : public ChangeLog {
 public:
  explicit SqliteChangeLog(Db& db);

  void append(std::span<Change> changes) override;
  std::vector<Change> read(int64_t after, size_t limit) override;
  int64_t count(std::string_view stage, int64_t run) override;
  int64_t last_seq() override;
  void define_view(std::span<const std::pair<std::string, std::string>> tables) override;

 private:
  Db& db_;
  Stmt insert_, read_, count_all_, count_stage_, count_run_, count_stage_run_, last_;
};

class SqliteWarehouse final : public Warehouse {
 public:
  explicit SqliteWarehouse(Db& db);

  std::vector<Column> columns(std::string_view table) override;
  std::vector<Column> catalog(std::string_view table) override;
  void create_table(std::string_view table, std::span<const Column> key) override;
  void add_columns(std::string_view table, std::span<const Column> columns) override;
  using Warehouse::upsert;
  void upsert(std::string_view table, std::span<const RowWrite> rows,
              const WriteStamp& stamp) override;
  void mark_deleted(std::string_view table, std::span<const Value* const> keys,
                    const WriteStamp& stamp) override;
  void mark_deleted_items(std::string_view table, std::span<const Value* const> parents,
                          std::span<const int64_t> from, const WriteStamp& stamp) override;
  void link_child_table(const ChildTable& child) override;
  std::vector<ChildTable> child_tables(std::string_view parent) override;
  void record_type_conflicts(std::span<const TypeConflict> conflicts,
                             const WriteStamp& stamp) override;
  void define_view(std::string_view name, std::string_view select) override;
  QueryResult query(std::string_view sql) override;
  void query_rows(std::string_view sql, RowSink& sink) override;
  std::vector<Relation> relations() override;
  std::string quote(std::string_view identifier) const override { return quote_ident(identifier); }

  void forget() { tables_.clear(); }

 private:
  struct Table {
    std::vector<Column> columns;
    StrMap<int> index;     // column name -> 0-based position
    std::vector<int> key;  // positions of the primary key columns
    // Prepared on first use: the current row's upsert (RETURNING its version), the history
    // insert, the close of the previous version, the soft delete and its history close.
    Stmt upsert, history_insert, history_close, soft_delete, history_end;
    // A child table's: the soft delete of a parent's items from a position on, and its history
    // close.
    Stmt items_delete, items_history_end;
    std::vector<char> seen;  // scratch for upsert
    // Per column: declared with a numeric affinity (tables made before typeless number
    // columns), where SQLite would round a Decimal bound as text.
    std::vector<char> numeric_affinity;
  };
  Table& table(std::string_view name);
  std::vector<Column> read_columns(std::string_view table, std::vector<char>* numeric,
                                   std::vector<int>* pk);
  void record(std::string_view table, const Column& c);
  // Gives a table made by an earlier version its metadata columns and history table.
  void upgrade(std::string_view table);
  void prepare_writes(std::string_view name, Table& t);
  void bind_key(Stmt& st, int first, const Table& t, const Value& key, std::string_view table);
  void bind(Stmt& st, int i, const Value& v, const Column& c, bool numeric_affinity);

  Db& db_;
  Stmt table_info_, catalog_, catalog_types_, record_, list_table_, children_, conflict_;
  StrMap<std::unique_ptr<Table>> tables_;
};

}  // namespace cascade::sqlite
