#include "aws/dynamo_tables.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "aws/dynamo_item.h"
#include "core/json.h"

namespace cascade::aws {
namespace {

const char* scalar_type(ColumnType t) {
  return t == ColumnType::Integer || t == ColumnType::Real || t == ColumnType::Decimal ? "N" : "S";
}

bool is_numeric(ColumnType t) {
  return std::string_view(scalar_type(t)) == "N";
}

// A key value as the key attribute the table declares (numbers as N, everything else as S).
void append_key_value(const Value& v, std::string_view type, std::string& out) {
  if (type == "N" && v.is_number()) {
    out += R"({"N":")";
    out += number_text(v);
    out += "\"}";
    return;
  }
  out += R"({"S":)";
  append_json_string(v.is_string() ? v.as_string() : v.to_text(), out);
  out += '}';
}

const Value& key_value(const Value& row, const Column& c) {
  static const Value null;
  const Value* v = row.find(c.name);
  if (!v || v->is_null()) throw std::runtime_error("row without its key column " + c.name);
  return *v;
}

}  // namespace

std::string ItemTable::attribute_type(size_t k) const {
  if (k < attribute_types.size() && !attribute_types[k].empty()) return attribute_types[k];
  if (k > 0 && key.size() > 2) return "S";  // `_range`
  return scalar_type(key[k].type);
}

bool ItemTable::number_as_text(size_t k, const Value& row) const {
  if (k >= key.size() || (k > 0 && key.size() > 2) || attribute_type(k) != "S") return false;
  const Value* v = row.find(key[k].name);
  return v && v->is_number();
}

Value ItemTable::key_value_of(size_t k, const Value& attribute) const {
  Value v = from_attribute(attribute);
  if (v.is_string() && k < key.size() && is_numeric(key[k].type)) {
    Value n = number_from_token(v.as_string());
    if (!n.is_null()) return n;
  }
  return v;
}

std::string ItemTable::range_attribute() const {
  if (key.size() == 1) return {};
  if (key.size() == 2) return key[1].name;
  return std::string(kItemRange);
}

std::string ItemTable::range_text(const Value& row) const {
  if (key.size() < 3) return {};
  Array rest;
  for (size_t i = 1; i < key.size(); ++i) rest.push_back(key_value(row, key[i]));
  return canonical_json(Value(std::move(rest)));
}

void ItemTable::key_of(const Value& row, std::string& key_json, std::string& identity) const {
  key_json = "{";
  append_json_string(key.front().name, key_json);
  key_json += ':';
  const Value& h = key_value(row, key.front());
  append_key_value(h, attribute_type(0), key_json);
  Array id{h};
  if (key.size() == 2) {
    key_json += ',';
    append_json_string(key[1].name, key_json);
    key_json += ':';
    const Value& r = key_value(row, key[1]);
    append_key_value(r, attribute_type(1), key_json);
    id.push_back(r);
  } else if (key.size() > 2) {
    std::string range = range_text(row);
    key_json += ',';
    append_json_string(kItemRange, key_json);
    key_json += ":{\"S\":";
    append_json_string(range, key_json);
    key_json += '}';
    id.push_back(Value(range));
  }
  key_json += '}';
  identity = canonical_json(Value(std::move(id)));
}

std::string ItemTable::identity_of_item(const Value& item) const {
  Array id;
  const Value* h = item.find(key.front().name);
  if (!h) throw std::runtime_error("DynamoDB item without its hash key in " + dynamo);
  id.push_back(key_value_of(0, *h));
  if (key.size() > 1) {
    const Value* r = item.find(range_attribute());
    if (!r) throw std::runtime_error("DynamoDB item without its range key in " + dynamo);
    id.push_back(key.size() == 2 ? key_value_of(1, *r) : from_attribute(*r));
  }
  return canonical_json(Value(std::move(id)));
}

DynamoTables::DynamoTables(Client& client, Store& meta, std::string prefix, bool create)
    : client_(client), meta_(meta), prefix_(std::move(prefix)), create_(create) {}

Value DynamoTables::call(std::string_view op, const std::string& body) {
  std::string target = std::string(kDynamoTarget) + std::string(op);
  std::string answer = client_.json(kDynamo, target, body);
  return answer.empty() ? Value(Object{}) : parse_json(answer);
}

Value DynamoTables::ensure(const std::string& name, const std::string& create_body, bool stream) {
  std::string describe = "{\"TableName\":";
  append_json_string(name, describe);
  describe += '}';
  Value d;
  try {
    d = call("DescribeTable", describe);
  } catch (const AwsError& e) {
    if (e.code != "ResourceNotFoundException") throw;
    if (!create_)
      throw std::runtime_error("DynamoDB table " + name +
                               " does not exist and the storage says create=false");
    try {
      call("CreateTable", create_body);
    } catch (const AwsError& c) {
      if (c.code != "ResourceInUseException") throw;  // made meanwhile by another process
    }
    d = call("DescribeTable", describe);
  }
  // A table being made takes a moment on AWS (none on local servers): wait, bounded.
  for (int i = 0; i < 300; ++i) {
    const Value* t = d.find("Table");
    const Value* status = t ? t->find("TableStatus") : nullptr;
    if (!status || !status->is_string() || status->as_string() == "ACTIVE") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    d = call("DescribeTable", describe);
  }
  if (!stream) return d;
  const Value* t = d.find("Table");
  const Value* spec = t ? t->find("StreamSpecification") : nullptr;
  const Value* on = spec ? spec->find("StreamEnabled") : nullptr;
  if (on && on->is_bool() && on->as_bool()) return d;
  if (!create_)
    throw std::runtime_error("DynamoDB table " + name +
                             " has no stream and the storage says create=false");
  std::string update = "{\"TableName\":";
  append_json_string(name, update);
  update += R"(,"StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"}})";
  call("UpdateTable", update);
  return d;
}

const ItemTable& DynamoTables::define(std::string_view table, std::span<const Column> key) {
  if (auto it = known_.find(table); it != known_.end()) {
    // Its record may have been rolled back with the unit of work that made it.
    if (!meta_.get_meta("aws_table:" + it->second.table)) record(it->second);
    return it->second;
  }
  if (key.empty()) throw std::runtime_error("table " + std::string(table) + " has no key");
  ItemTable t;
  t.table = std::string(table);
  t.dynamo = prefix_ + t.table;
  t.key.assign(key.begin(), key.end());
  std::string body = "{\"TableName\":";
  append_json_string(t.dynamo, body);
  body += R"(,"BillingMode":"PAY_PER_REQUEST",)";
  body += R"("StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"},)";
  body += R"("KeySchema":[{"AttributeName":)";
  append_json_string(t.hash_attribute(), body);
  body += R"(,"KeyType":"HASH"})";
  std::string range = t.range_attribute();
  if (!range.empty()) {
    body += R"(,{"AttributeName":)";
    append_json_string(range, body);
    body += R"(,"KeyType":"RANGE"})";
  }
  body += R"(],"AttributeDefinitions":[{"AttributeName":)";
  append_json_string(t.hash_attribute(), body);
  body += R"(,"AttributeType":")";
  body += scalar_type(t.key[0].type);
  body += "\"}";
  if (!range.empty()) {
    body += R"(,{"AttributeName":)";
    append_json_string(range, body);
    body += R"(,"AttributeType":")";
    body += t.key.size() == 2 ? scalar_type(t.key[1].type) : "S";
    body += "\"}";
  }
  body += "]}";
  // The key types the table declares win over the columns': it may have been made by a
  // template that cannot know them.
  Value d = ensure(t.dynamo, body, true);
  const Value* desc = d.find("Table");
  const Value* defs = desc ? desc->find("AttributeDefinitions") : nullptr;
  const size_t typed = std::min<size_t>(t.key.size(), 2);
  t.attribute_types.assign(typed, std::string());
  for (size_t k = 0; k < typed && defs && defs->is_array(); ++k) {
    const std::string attr = k == 0 ? t.hash_attribute() : range;
    for (const auto& def : defs->as_array()) {
      const Value* n = def.find("AttributeName");
      const Value* ty = def.find("AttributeType");
      if (n && ty && n->is_string() && ty->is_string() && n->as_string() == attr)
        t.attribute_types[k] = ty->as_string();
    }
  }
  record(t);
  return known_.emplace(t.table, std::move(t)).first->second;
}

void DynamoTables::record(const ItemTable& t) {
  // The record of its key, and the list of tables the stream reader follows.
  Array cols;
  for (size_t k = 0; k < t.key.size(); ++k) {
    const Column& c = t.key[k];
    Array col{Value(c.name), Value(column_type_name(c.type))};
    if (k < t.attribute_types.size() && !t.attribute_types[k].empty())
      col.push_back(Value(t.attribute_types[k]));
    cols.push_back(Value(std::move(col)));
  }
  meta_.set_meta("aws_table:" + t.table, canonical_json(Value(std::move(cols))));
  std::vector<std::string> all = tables();
  if (std::find(all.begin(), all.end(), t.table) == all.end()) {
    all.push_back(t.table);
    Array a;
    for (auto& n : all) a.push_back(Value(n));
    meta_.set_meta("aws_tables", canonical_json(Value(std::move(a))));
  }
}

const ItemTable* DynamoTables::find(std::string_view table) {
  if (auto it = known_.find(table); it != known_.end()) return &it->second;
  std::optional<std::string> rec = meta_.get_meta("aws_table:" + std::string(table));
  if (!rec) return nullptr;
  ItemTable t;
  t.table = std::string(table);
  t.dynamo = prefix_ + t.table;
  Value cols = parse_json(*rec);
  for (const auto& c : cols.as_array()) {
    const Array& col = c.as_array();
    t.key.emplace_back(col[0].as_string(), column_type_from_name(col[1].as_string()));
    // Older records carry no attribute type: the column's.
    t.attribute_types.push_back(col.size() > 2 ? col[2].as_string() : std::string());
  }
  if (t.key.empty()) return nullptr;
  return &known_.emplace(t.table, std::move(t)).first->second;
}

std::vector<std::string> DynamoTables::tables() {
  std::vector<std::string> out;
  if (std::optional<std::string> rec = meta_.get_meta("aws_tables")) {
    Value names = parse_json(*rec);
    for (const auto& n : names.as_array()) out.push_back(n.as_string());
  }
  return out;
}

const std::string& DynamoTables::listings() {
  if (!listings_.empty()) return listings_;
  std::string name = prefix_ + "cascade_listings";
  std::string body = "{\"TableName\":";
  append_json_string(name, body);
  body += R"(,"BillingMode":"PAY_PER_REQUEST",)"
          R"("KeySchema":[{"AttributeName":"stage","KeyType":"HASH"},)"
          R"({"AttributeName":"id","KeyType":"RANGE"}],)"
          R"("AttributeDefinitions":[{"AttributeName":"stage","AttributeType":"S"},)"
          R"({"AttributeName":"id","AttributeType":"S"}]})";
  ensure(name, body, false);
  listings_ = name;
  return listings_;
}

}  // namespace cascade::aws
