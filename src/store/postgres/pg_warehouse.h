// PgWarehouse and PgChangeLog: the Warehouse (store/warehouse.h) and ChangeLog
// (store/change_log.h) contracts on PostgreSQL, with the tables, views and columns the SQLite
// backend has, so that analysts' SQL reads the same names on both.
//
// Schema. A warehouse table `<t>` holds its key and field columns, then the metadata columns
// (_first_seen, _last_changed, _version, _run_id, _deleted_at, _valid_from, _effective, _seq,
// _hash, _scope); `cascade_past_<t>` its past versions, the view `<t>_history` every version;
// cascade_deletions the deletes; the view cascade_change_log (seq, table_name, key, operation,
// image, run_id, at) every version and delete in seq order; cascade_columns, cascade_tables and
// cascade_type_conflicts the catalog; cascade_views the views define_view() was given.
//
// Types. INTEGER -> bigint, REAL -> double precision, DECIMAL -> numeric, TEXT -> text,
// BOOLEAN -> boolean, JSON -> jsonb. The times cascade observes (_first_seen, _last_changed,
// _deleted_at, _changed_at, the change log's `at`, catalog times) are timestamptz; _valid_from,
// _effective and _valid_to stay text: they hold the vendor's own dates, compared as text (in the
// "C" collation) with the observed times spelled ISO 8601 UTC. _hash and _scope are the uint64
// bit-cast to bigint. The change log's key and image are JSON text.
//
// Exactness. Values are sent as text and never rounded: a value its column's type cannot hold
// exactly (an integer beyond int64 in a bigint column, a decimal in a double precision one, text
// in a number column) widens the column first, in the table and its past table: bigint and
// double precision to numeric for numbers, anything to text otherwise (views that depend on the
// table are dropped and recreated from their definitions around the change); numbers beyond
// numeric's range (131072 digits before the point, 16383 after) make numeric and jsonb columns
// text. The loader records such values as type conflicts, as on SQLite. Text holding the NUL
// character, which no PostgreSQL text or jsonb can hold, is refused with an error naming the
// column.
//
// Batching. upsert() costs a fixed number of statements per batch of up to 1000 rows, whatever
// their number: one reading the stored hash, version and claim of every key of the batch
// (ROWS FROM unnest of one array per key column), then, when anything is to be written, one
// reserving seqs, one multi-row INSERT for the new keys and one statement that moves the
// previous versions to the past table and updates the rows in place. A replayed write of
// unchanged rows is one read and takes no lock. Rows are found by index probes (LATERAL
// subqueries) and updated by TID, never by a join the planner could turn into a scan of the
// table. Measured on loopback, 100k rows in batches of 1000 (PostgreSQL 15, fsync off): first
// written 0.5 s, replayed unchanged 0.25 s, all changed 1.3 s. Readers of the change log filter
// on seq through a view over every table; there is no index on _seq (it would cost every write).
//
// Seq: commit order across workers. The counter is the row cascade_meta 'change_seq', which a
// write locks with UPDATE ... RETURNING to reserve a block of seqs for its batch (one per new
// version in row order, one per delete), held until the caller's unit of work ends. Every writer
// of warehouse rows takes it before writing them, so a transaction that got a smaller seq has
// committed (or rolled back, taking its seqs with it) before any larger one can be reserved: a
// reader following seq never skips an entry committed later. A PostgreSQL sequence would not
// give that (nextval is not ordered by commit). The lock is taken as late as possible: after the
// read that tells what is to be written, not at all for an unchanged batch. Should another
// writer have committed between that read and the lock (the counter moved), the read is repeated
// under the lock. Seqs of rows that turned out unchanged are skipped, never reused: seq has gaps.
//
// Locks. Reads take no lock and rows are written only under the counter, so writers never wait
// for one another's rows in a cycle. DDL (create_table, add_columns, widening, views) runs under
// the transaction advisory lock hashtext('cascade_schema') that the other PostgreSQL parts take.
// A unit of work that does its DDL before its writes (as the loader does) cannot deadlock; one
// that holds the counter and then needs DDL, while another holding the DDL lock waits for the
// counter, is a deadlock PostgreSQL breaks by failing one of them (SQLSTATE 40P01), to be
// retried like any failed unit of work. After a rollback the owner calls forget(): cached
// layouts may describe DDL that was undone.
//
// Transactions. Every method runs on the given connection and joins the caller's transaction
// when one is open (pg::Tx), never committing it; alone, each call is its own transaction.
//
// Not thread-safe: one instance per connection, one owner thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/change_log.h"
#include "store/postgres/pg_conn.h"
#include "store/warehouse.h"

namespace cascade::pg {

class PgWarehouse final : public Warehouse {
 public:
  // Creates cascade's own tables and the seq counter if missing.
  explicit PgWarehouse(Conn& conn);
  ~PgWarehouse() override;

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
  // Streams with libpq's single-row mode; several statements may be given. Ending early (the
  // sink returns false or throws) cancels the statement. Inside the caller's transaction the
  // query runs under a savepoint, so that such a cancel undoes only the query and the unit of
  // work goes on; a statement the server refuses fails the unit of work. Types: int2/4/8 ->
  // Integer, float4/8 -> Real, bool -> Integer 0/1, bytea -> Blob, anything else (numeric
  // included, so that it stays exact) -> Text.
  void query_rows(std::string_view sql, RowSink& sink) override;
  // Tables and views of the current schema, sorted bytewise.
  std::vector<Relation> relations() override;
  std::string quote(std::string_view identifier) const override;

  // (Re)defines cascade_change_log over every table of the catalog.
  void define_change_log();
  // Forgets cached table layouts (after a rollback may have undone DDL they describe).
  void forget();

  struct Table;

 private:
  Table& table(std::string_view name);
  std::unique_ptr<Table> read_table(std::string_view name);
  void record(std::string_view table, const Column& c);
  void upgrade(std::string_view table);
  void define_views_of(std::string_view table);
  // Replaces view `name` with `select`, dropping and recreating the views that depend on it.
  void replace_view(std::string_view name, std::string_view select);
  // Runs `ddl` with the views depending on `relations` dropped, then recreates them.
  template <class F>
  void around_dependents(const std::vector<std::string>& relations, F ddl);
  void create_pending_views();
  void lock_schema();
  int64_t reserve(int64_t n, std::string& before);
  bool widen(std::string_view table, Table& t, const std::vector<std::pair<int, int>>& wanted);
  size_t delete_keys(std::string_view table, Table& t, std::vector<Value>& keys,
                     const std::string& at, int64_t run, std::optional<uint64_t> scope,
                     std::span<char> deleted);

  Conn& c_;
  std::map<std::string, std::unique_ptr<Table>, std::less<>> tables_;
};

class PgChangeLog final : public ChangeLog {
 public:
  explicit PgChangeLog(Conn& conn);
  // Images come back in column order, compact JSON, every number exact.
  std::vector<Change> read(int64_t after, size_t limit) override;
  int64_t count(std::string_view table = {}, int64_t run = 0) override;
  // The highest seq of an entry committed (or written by this connection's open transaction).
  int64_t last_seq() override;
  void define_view() override;

 private:
  Conn& c_;
};

}  // namespace cascade::pg
