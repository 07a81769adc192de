#include "aws/dynamo_warehouse.h"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include "aws/dynamo_item.h"
#include "core/error.h"
#include "core/json.h"

namespace cascade::aws {
namespace {

std::string item_id(const ItemTable& t, const std::string& identity) {
  return t.dynamo + '\0' + identity;
}

const std::string* n_attr(const Value& item, std::string_view name) {
  const Value* a = item.find(name);
  const Value* v = a ? a->find("N") : nullptr;
  return v && v->is_string() ? &v->as_string() : nullptr;
}

constexpr size_t kMaxItemBytes = 400 * 1024;

bool is_key_column(const ItemTable& t, std::string_view name) {
  for (const auto& c : t.key)
    if (c.name == name) return true;
  return false;
}

}  // namespace

const ItemTable& DynamoWarehouse::table_of(std::string_view table) {
  if (const ItemTable* t = tables_.find(table)) return *t;
  throw std::runtime_error("table " + std::string(table) +
                           " has no DynamoDB item table recorded in this storage");
}

void DynamoWarehouse::create_table(std::string_view table, std::span<const Column> key) {
  inner_.create_table(table, key);
  tables_.define(table, key);
}

void DynamoWarehouse::lookup(const ItemTable& t, const std::vector<std::string>& identities,
                             const std::vector<std::string>& key_jsons,
                             std::unordered_map<std::string, ItemState>& out) {
  std::vector<size_t> missing;
  std::unordered_set<std::string_view> asked;
  for (size_t i = 0; i < identities.size(); ++i) {
    if (out.count(identities[i])) continue;
    if (const ItemState* s = unit_.item(item_id(t, identities[i]))) {
      out.emplace(identities[i], *s);
      continue;
    }
    if (asked.insert(identities[i]).second) missing.push_back(i);
  }
  std::string names = R"("ExpressionAttributeNames":{"#k0":)";
  append_json_string(t.hash_attribute(), names);
  std::string projection = "#k0,#h,#d,#s";
  if (std::string range = t.range_attribute(); !range.empty()) {
    names += R"(,"#k1":)";
    append_json_string(range, names);
    projection += ",#k1";
  }
  names += R"(,"#h":"_hash","#d":"_deleted_at","#s":"_scope"})";
  for (size_t at = 0; at < missing.size(); at += 100) {
    std::string body = R"({"RequestItems":{)";
    append_json_string(t.dynamo, body);
    body += R"(:{"ConsistentRead":true,"ProjectionExpression":")" + projection + "\"," + names;
    body += R"(,"Keys":[)";
    for (size_t j = at; j < std::min(missing.size(), at + 100); ++j) {
      if (j > at) body += ',';
      body += key_jsons[missing[j]];
    }
    body += "]}}}";
    for (int attempt = 0;; ++attempt) {
      Value r = tables_.call("BatchGetItem", body);
      if (const Value* resp = r.find("Responses"))
        if (const Value* items = resp->find(t.dynamo); items && items->is_array())
          for (const auto& item : items->as_array()) {
            ItemState s;
            s.exists = true;
            s.deleted = item.find(kItemDeletedAt) != nullptr;
            if (const std::string* h = n_attr(item, kItemHash)) s.hash = std::stoull(*h);
            if (const std::string* sc = n_attr(item, kItemScope)) s.scope = std::stoull(*sc);
            out[t.identity_of_item(item)] = s;
          }
      const Value* left = r.find("UnprocessedKeys");
      if (!left || !left->is_object() || left->as_object().empty()) break;
      if (attempt >= 20)
        throw StorageError("DynamoDB BatchGetItem kept leaving keys unprocessed on " + t.dynamo);
      // Unprocessed keys are the table's capacity speaking: back off before asking again.
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << std::min(attempt, 5)));
      body = R"({"RequestItems":)" + to_json(*left) + "}";
    }
  }
  for (const auto& id : identities) out.try_emplace(id, ItemState{});
}

void DynamoWarehouse::upsert(std::string_view table, std::span<const RowWrite> rows,
                             const WriteStamp& stamp, std::span<WriteOutcome> outcomes) {
  if (rows.empty()) return;
  const ItemTable& t = table_of(table);
  std::vector<std::string> ids(rows.size()), keys(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) t.key_of(*rows[i].row, keys[i], ids[i]);
  std::unordered_map<std::string, ItemState> states;
  lookup(t, ids, keys, states);
  for (size_t i = 0; i < rows.size(); ++i) {
    const RowWrite& w = rows[i];
    ItemState& s = states[ids[i]];
    WriteOutcome o = !s.exists                         ? WriteOutcome::Inserted
                     : s.deleted                       ? WriteOutcome::Revived
                     : w.hash != 0 && s.hash == w.hash ? WriteOutcome::Unchanged
                                                       : WriteOutcome::Updated;
    if (!outcomes.empty()) outcomes[i] = o;
    if (o == WriteOutcome::Unchanged) continue;
    std::string body = "{\"TableName\":";
    append_json_string(t.dynamo, body);
    body += ",\"Item\":";
    body.append(keys[i], 0, keys[i].size() - 1);  // the key attributes, still open
    std::vector<std::string_view> big, json;
    for (const auto& [name, v] : w.row->as_object()) {
      if (is_key_column(t, name)) continue;
      body += ',';
      append_json_string(name, body);
      body += ':';
      bool is_big = false, is_json = false;
      append_attribute(v, body, &is_big, &is_json);
      if (is_big) big.push_back(name);
      if (is_json) json.push_back(name);
    }
    for (size_t k = 0; k < 2; ++k)
      if (t.number_as_text(k, *w.row)) big.push_back(t.key[k].name);
    if (t.key.size() > 2) {
      // The key columns after the second are item attributes too, besides `_range`.
      for (size_t k = 1; k < t.key.size(); ++k) {
        const Value* v = w.row->find(t.key[k].name);
        body += ',';
        append_json_string(t.key[k].name, body);
        body += ':';
        bool b = false, j = false;
        append_attribute(*v, body, &b, &j);
      }
    }
    auto list = [&](std::string_view attr, const std::vector<std::string_view>& names) {
      if (names.empty()) return;
      body += ',';
      append_json_string(attr, body);
      body += R"(:{"L":[)";
      for (size_t n = 0; n < names.size(); ++n) {
        if (n) body += ',';
        body += R"({"S":)";
        append_json_string(names[n], body);
        body += '}';
      }
      body += "]}";
    };
    list(kItemBig, big);
    list(kItemJson, json);
    body += fmt::format(R"(,"_hash":{{"N":"{}"}},"_scope":{{"N":"{}"}},"_run_id":{{"N":"{}"}})",
                        w.hash, w.scope, stamp.run_id);
    body += R"(,"_changed_at":{"S":)";
    append_json_string(stamp.at, body);
    body += '}';
    if (!w.valid_from.empty()) {
      body += R"(,"_valid_from":{"S":)";
      append_json_string(w.valid_from, body);
      body += '}';
    }
    body += '}';
    if (w.hash != 0)
      body += fmt::format(
          R"~(,"ConditionExpression":"attribute_not_exists(#h) OR #h <> :h OR attribute_exists(#d)",)~"
          R"("ExpressionAttributeNames":{{"#h":"_hash","#d":"_deleted_at"}},)"
          R"("ExpressionAttributeValues":{{":h":{{"N":"{}"}}}})",
          w.hash);
    body += '}';
    // Refused here, so the message fails alone (dead-lettered with the reason) rather than the
    // whole unit of work at commit.
    if (body.size() > kMaxItemBytes)
      throw std::runtime_error(fmt::format(
          "a row of {} is {} bytes as a DynamoDB item, more than the 400 KB an item holds", t.table,
          body.size()));
    std::string id = item_id(t, ids[i]);
    unit_.write_item("PutItem", std::move(body), id);
    s = ItemState{true, false, w.hash, w.scope};
    unit_.set_item(id, s);
  }
}

void DynamoWarehouse::delete_item(const ItemTable& t, const std::string& key_json,
                                  const std::string& identity, const WriteStamp& stamp,
                                  std::optional<uint64_t> scope, ItemState state) {
  std::string body = "{\"TableName\":";
  append_json_string(t.dynamo, body);
  body += ",\"Key\":" + key_json;
  body += R"(,"UpdateExpression":"SET #d = :d, #r = :r, #c = :d",)";
  body += R"("ConditionExpression":"attribute_exists(#h) AND attribute_not_exists(#d))";
  if (scope) body += " AND #s = :s";
  body +=
      R"(","ExpressionAttributeNames":{"#d":"_deleted_at","#r":"_run_id","#c":"_changed_at","#h":"_hash")";
  if (scope) body += R"(,"#s":"_scope")";
  body += R"(},"ExpressionAttributeValues":{":d":{"S":)";
  append_json_string(stamp.at, body);
  body += fmt::format(R"(}},":r":{{"N":"{}"}})", stamp.run_id);
  if (scope) body += fmt::format(R"(,":s":{{"N":"{}"}})", *scope);
  body += "}}";
  std::string id = item_id(t, identity);
  unit_.write_item("UpdateItem", std::move(body), id);
  state.deleted = true;
  unit_.set_item(id, state);
}

size_t DynamoWarehouse::mark_deleted(std::string_view table, std::span<const Value* const> keys,
                                     const WriteStamp& stamp, std::optional<uint64_t> scope,
                                     std::span<char> deleted) {
  if (keys.empty()) return 0;
  const ItemTable& t = table_of(table);
  std::vector<std::string> ids(keys.size()), key_jsons(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) t.key_of(*keys[i], key_jsons[i], ids[i]);
  std::unordered_map<std::string, ItemState> states;
  lookup(t, ids, key_jsons, states);
  size_t n = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    ItemState& s = states[ids[i]];
    bool hit = s.exists && !s.deleted && (!scope || s.scope == *scope);
    if (!deleted.empty()) deleted[i] = hit ? 1 : 0;
    if (!hit) continue;
    delete_item(t, key_jsons[i], ids[i], stamp, scope, s);
    s.deleted = true;
    ++n;
  }
  return n;
}

void DynamoWarehouse::mark_deleted_items(std::string_view table,
                                         std::span<const Value* const> parents,
                                         std::span<const int64_t> from, const WriteStamp& stamp) {
  const ItemTable* found = tables_.find(table);
  if (!found || found->key.size() < 2) return;
  const ItemTable& t = *found;
  const std::string range = t.range_attribute();
  for (size_t p = 0; p < parents.size(); ++p) {
    const Value& parent = *parents[p];
    int64_t first = from.empty() ? 0 : from[p];
    const Value* h = parent.find(t.key.front().name);
    if (!h) continue;
    std::string hash_av = "{\"" + t.attribute_type(0) + "\":";
    append_json_string(h->is_string() ? h->as_string() : h->to_text(), hash_av);
    hash_av += '}';
    std::optional<Value> start;
    for (int page = 0; page < 1'000'000; ++page) {
      std::string body = "{\"TableName\":";
      append_json_string(t.dynamo, body);
      body += R"(,"ConsistentRead":true,"KeyConditionExpression":"#k0 = :h)";
      // An S range (a template's) cannot be compared with a number: filtered below instead.
      const bool range_n = t.key.size() == 2 && t.attribute_type(1) == "N";
      if (range_n) body += " AND #k1 >= :f";
      body += R"(","ProjectionExpression":"#k0,#k1,#d","ExpressionAttributeNames":{"#k0":)";
      append_json_string(t.hash_attribute(), body);
      body += R"(,"#k1":)";
      append_json_string(range, body);
      body += R"(,"#d":"_deleted_at"},"ExpressionAttributeValues":{":h":)" + hash_av;
      if (range_n) body += fmt::format(R"(,":f":{{"N":"{}"}})", first);
      body += '}';
      if (start) body += ",\"ExclusiveStartKey\":" + to_json(*start);
      body += '}';
      Value r = tables_.call("Query", body);
      for (const auto& item : r.find("Items") ? r.find("Items")->as_array() : Array{}) {
        if (item.find(kItemDeletedAt)) continue;
        // The item's whole key as a row, to address it and check it belongs to this parent.
        Value key_row{Object{}};
        key_row.set(t.key.front().name, t.key_value_of(0, *item.find(t.key.front().name)));
        Value r_val = t.key.size() == 2 ? t.key_value_of(1, *item.find(range))
                                        : from_attribute(*item.find(range));
        if (t.key.size() == 2) {
          if (first > 0 && (!r_val.is_int() || r_val.as_int() < first)) continue;
          key_row.set(t.key[1].name, r_val);
        } else {
          Value rest = parse_json(r_val.as_string());
          const Array& a = rest.as_array();
          if (a.size() != t.key.size() - 1) continue;
          bool mine = true;
          for (size_t k = 1; mine && k + 1 < t.key.size(); ++k) {
            const Value* pv = parent.find(t.key[k].name);
            mine = pv && *pv == a[k - 1];
          }
          if (!mine || !a.back().is_int() || a.back().as_int() < first) continue;
          for (size_t k = 1; k < t.key.size(); ++k) key_row.set(t.key[k].name, a[k - 1]);
        }
        std::string key_json, identity;
        t.key_of(key_row, key_json, identity);
        const ItemState* known = unit_.item(item_id(t, identity));
        if (known && (known->deleted || !known->exists)) continue;
        delete_item(t, key_json, identity, stamp, std::nullopt,
                    known ? *known : ItemState{true, false, 0, 0});
      }
      const Value* last = r.find("LastEvaluatedKey");
      if (!last || !last->is_object() || last->as_object().empty()) break;
      start = *last;
    }
  }
}

}  // namespace cascade::aws
