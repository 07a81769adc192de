// The Warehouse the engine writes through on the `aws:` storage. Row writes go to the DynamoDB
// item tables (the staging of the AWS design): an upsert is a PutItem conditional on the stored
// `_hash` differing (so a replayed message writes nothing), a deletion an UpdateItem setting
// `_deleted_at`, both joining the store's unit of work (the item phase). The tables' streams
// carry them to the inner warehouse (StreamReader). Everything else (DDL, the catalog, views,
// queries) is the inner warehouse's, which analysts query. Not thread-safe: one owner thread.
#pragma once

#include "aws/dynamo_unit.h"
#include "store/warehouse.h"

namespace cascade::aws {

class DynamoWarehouse final : public Warehouse {
 public:
  DynamoWarehouse(Warehouse& inner, DynamoTables& tables, UnitOfWork& unit)
      : inner_(inner), tables_(tables), unit_(unit) {}

  std::vector<Column> columns(std::string_view table) override { return inner_.columns(table); }
  std::vector<Column> catalog(std::string_view table) override { return inner_.catalog(table); }
  // Makes the inner table and the item table (at once: DynamoDB has no transactional DDL).
  void create_table(std::string_view table, std::span<const Column> key) override;
  void add_columns(std::string_view table, std::span<const Column> columns) override {
    inner_.add_columns(table, columns);
  }
  // Reads the items' stored hashes (batched, consistent) to tell each outcome, then buffers a
  // conditional PutItem for every row whose content differs.
  void upsert(std::string_view table, std::span<const RowWrite> rows, const WriteStamp& stamp,
              std::span<WriteOutcome> outcomes) override;
  size_t mark_deleted(std::string_view table, std::span<const Value* const> keys,
                      const WriteStamp& stamp, std::optional<uint64_t> scope,
                      std::span<char> deleted) override;
  void mark_deleted_items(std::string_view table, std::span<const Value* const> parents,
                          std::span<const int64_t> from, const WriteStamp& stamp) override;
  void link_child_table(const ChildTable& child) override { inner_.link_child_table(child); }
  std::vector<ChildTable> child_tables(std::string_view parent) override {
    return inner_.child_tables(parent);
  }
  void record_type_conflicts(std::span<const TypeConflict> conflicts,
                             const WriteStamp& stamp) override {
    inner_.record_type_conflicts(conflicts, stamp);
  }
  void define_view(std::string_view name, std::string_view select) override {
    inner_.define_view(name, select);
  }
  void query_rows(std::string_view sql, RowSink& sink) override { inner_.query_rows(sql, sink); }
  std::vector<Relation> relations() override { return inner_.relations(); }
  std::string quote(std::string_view identifier) const override { return inner_.quote(identifier); }

 private:
  const ItemTable& table_of(std::string_view table);
  // The state of each item (overlay first, then BatchGetItem), by identity.
  void lookup(const ItemTable& t, const std::vector<std::string>& identities,
              const std::vector<std::string>& key_jsons,
              std::unordered_map<std::string, ItemState>& out);
  void delete_item(const ItemTable& t, const std::string& key_json, const std::string& identity,
                   const WriteStamp& stamp, std::optional<uint64_t> scope, ItemState state);

  Warehouse& inner_;
  DynamoTables& tables_;
  UnitOfWork& unit_;
};

}  // namespace cascade::aws
