// The DynamoDB tables of the `aws:` storage: one item table per warehouse table, named
// `{prefix}{table}`, keyed as the AWS design keys them (the first key column as hash key, the
// second as range key; a key of three or more columns keeps the rest as the JSON text of their
// values in `_range`), with a NEW_IMAGE stream; and `{prefix}cascade_listings` for the engine's
// listing records. Each table's key columns are recorded in the warehouse's metadata
// (`aws_table:NAME`), so any later process knows how to address its items. Not thread-safe:
// one owner thread, with the store's Client.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "core/value.h"
#include "store/store.h"

namespace cascade::aws {

inline constexpr std::string_view kDynamo = "dynamodb";
inline constexpr std::string_view kDynamoTarget = "DynamoDB_20120810.";

// How the items of one warehouse table are addressed.
struct ItemTable {
  std::string table;   // the warehouse table
  std::string dynamo;  // the DynamoDB table
  std::vector<Column> key;
  // The DynamoDB type ("N" or "S") of the hash and, for a two-column key, the range attribute,
  // as the table declares it. A table made elsewhere (a SAM template) may declare S for an
  // integer column: its values are then written as their canonical text, listed in `_big`, and
  // read back as numbers. Empty: the column's own type (N for numbers).
  std::vector<std::string> attribute_types;

  // The type of key attribute `k` (0: hash, 1: range of a two-column key).
  std::string attribute_type(size_t k) const;
  // Whether key column `k` of `row` is a number held in an S attribute (so listed in `_big`).
  bool number_as_text(size_t k, const Value& row) const;
  // A key attribute read back as the value of key column `k`.
  Value key_value_of(size_t k, const Value& attribute) const;

  const std::string& hash_attribute() const { return key.front().name; }
  // Empty for a one-column key.
  std::string range_attribute() const;
  // The key attributes of `row` (an object holding the key columns) as DynamoDB JSON
  // ({"a":{"N":"1"},...}), and their identity: the canonical JSON of [hash, range] values.
  void key_of(const Value& row, std::string& key_json, std::string& identity) const;
  // The identity of an item read back (its key attributes parsed).
  std::string identity_of_item(const Value& item) const;
  // The value `row` holds for `_range` (the JSON array of the key values after the second); empty
  // when the key has fewer than three columns.
  std::string range_text(const Value& row) const;
};

class DynamoTables {
 public:
  // `meta` holds the key records (the warehouse's store). `create`: missing tables are made.
  DynamoTables(Client& client, Store& meta, std::string prefix, bool create);

  // The table of `table`, made (with its stream, waiting until it is active) when missing.
  // Throws std::runtime_error when it is missing and may not be made.
  const ItemTable& define(std::string_view table, std::span<const Column> key);
  // The table of `table` as recorded; nullptr for a table never defined.
  const ItemTable* find(std::string_view table);
  // Every recorded warehouse table with items.
  std::vector<std::string> tables();

  // `{prefix}cascade_listings`, made when missing (hash `stage`, range `id`, both S).
  const std::string& listings();

  // Calls DynamoDB (`op` e.g. "PutItem") with `body`; returns the parsed answer.
  Value call(std::string_view op, const std::string& body);

  Client& client() { return client_; }
  const std::string& prefix() const { return prefix_; }

 private:
  // Records the key of `t` and lists it among the tables (the warehouse's metadata).
  void record(const ItemTable& t);
  // Returns the table's DescribeTable answer.
  Value ensure(const std::string& name, const std::string& create_body, bool stream);

  Client& client_;
  Store& meta_;
  std::string prefix_;
  bool create_;
  std::map<std::string, ItemTable, std::less<>> known_;
  std::string listings_;
};

}  // namespace cascade::aws
