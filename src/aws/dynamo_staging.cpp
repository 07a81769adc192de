#include "aws/dynamo_staging.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "aws/dynamo_item.h"
#include "core/json.h"
#include "store/listing_blob.h"

namespace cascade::aws {
namespace {

std::string hex(uint64_t scope) {
  return fmt::format("{:016x}", scope);
}

std::string record_name(std::string_view stage, std::string_view id) {
  std::string n(stage);
  n += '\0';
  n += id;
  return n;
}

uint64_t scope_of_id(std::string_view id) {
  // "K/<16 hex>..."
  if (id.size() < 18) throw std::runtime_error("bad listing record id " + std::string(id));
  return std::stoull(std::string(id.substr(2, 16)), nullptr, 16);
}

const std::string* text_attr(const Value& item, std::string_view name, std::string_view type) {
  const Value* a = item.find(name);
  const Value* v = a ? a->find(type) : nullptr;
  return v && v->is_string() ? &v->as_string() : nullptr;
}

}  // namespace

void DynamoStaging::create_stage(std::string_view) {
  tables_.listings();
}

std::vector<Value> DynamoStaging::query(std::string_view stage, std::string_view prefix,
                                        bool ids_only) {
  std::vector<Value> out;
  std::optional<Value> start;
  for (int page = 0; page < 1'000'000; ++page) {
    std::string body = "{\"TableName\":";
    append_json_string(tables_.listings(), body);
    body +=
        R"~(,"ConsistentRead":true,"KeyConditionExpression":"#s = :s AND begins_with(#i, :p)",)~";
    body += R"("ExpressionAttributeNames":{"#s":"stage","#i":"id"},)";
    body += R"("ExpressionAttributeValues":{":s":{"S":)";
    append_json_string(stage, body);
    body += R"(},":p":{"S":)";
    append_json_string(prefix, body);
    body += "}}";
    if (ids_only) body += R"(,"ProjectionExpression":"#i")";
    if (start) {
      body += ",\"ExclusiveStartKey\":";
      append_json(*start, body);
    }
    body += '}';
    Value r = tables_.call("Query", body);
    if (const Value* items = r.find("Items"); items && items->is_array())
      for (auto& it : items->as_array()) out.push_back(std::move(it));
    const Value* last = r.find("LastEvaluatedKey");
    if (!last || !last->is_object() || last->as_object().empty()) return out;
    start = *last;
  }
  throw std::runtime_error("DynamoDB Query of the listings never ended");
}

void DynamoStaging::put(std::string_view stage, const std::string& id,
                        const std::string& attributes) {
  std::string body = "{\"TableName\":";
  append_json_string(tables_.listings(), body);
  body += R"(,"Item":{"stage":{"S":)";
  append_json_string(stage, body);
  body += R"(},"id":{"S":)";
  append_json_string(id, body);
  body += '}';
  body += attributes;
  body += "}}";
  unit_.write_listing("PutItem", std::move(body), record_name(stage, id));
}

void DynamoStaging::remove(std::string_view stage, const std::string& id) {
  std::string body = "{\"TableName\":";
  append_json_string(tables_.listings(), body);
  body += R"(,"Key":{"stage":{"S":)";
  append_json_string(stage, body);
  body += R"(},"id":{"S":)";
  append_json_string(id, body);
  body += "}}}";
  unit_.write_listing("DeleteItem", std::move(body), record_name(stage, id));
}

void DynamoStaging::scope_rows(std::string_view stage, uint64_t scope,
                               std::vector<StagedRow>& out) {
  std::string id = "L/" + hex(scope);
  if (const auto* o = unit_.record(record_name(stage, id))) {
    if (*o) decode_listing(**o, stage, out);
    return;
  }
  std::vector<Value> items = query(stage, id + "/", false);
  if (items.empty()) return;
  std::sort(items.begin(), items.end(), [](const Value& a, const Value& b) {
    return *text_attr(a, "id", "S") < *text_attr(b, "id", "S");
  });
  const std::string* n = text_attr(items.front(), "n", "N");
  size_t chunks = n ? std::stoull(*n) : 1;
  if (items.size() < chunks)
    throw std::runtime_error(fmt::format("stage {}: listing {} lacks chunks ({} of {})", stage,
                                         hex(scope), items.size(), chunks));
  std::string blob;
  for (size_t i = 0; i < chunks; ++i) {
    const std::string* b = text_attr(items[i], "rows", "B");
    if (!b) throw std::runtime_error("stage " + std::string(stage) + ": listing without rows");
    blob += base64_decode(*b);
  }
  decode_listing(blob, stage, out);
}

void DynamoStaging::set_scope_rows(std::string_view stage, uint64_t scope,
                                   std::span<const StagedRef> rows) {
  std::string id = "L/" + hex(scope);
  std::string name = record_name(stage, id);
  size_t before = 0;
  for (const auto& it : query(stage, id + "/", true)) {
    (void)it;
    ++before;
  }
  size_t& written = chunks_written_[name];
  before = std::max(before, written);
  std::optional<std::string> blob;
  size_t chunks = 0;
  if (!rows.empty()) {
    blob = encode_listing(rows);
    chunks = (blob->size() + kChunkBytes - 1) / kChunkBytes;
    for (size_t i = 0; i < chunks; ++i) {
      std::string attrs = R"(,"rows":{"B":")";
      attrs += base64_encode(std::string_view(*blob).substr(i * kChunkBytes, kChunkBytes));
      attrs += "\"}";
      if (i == 0) attrs += fmt::format(R"(,"n":{{"N":"{}"}})", chunks);
      put(stage, fmt::format("{}/{:04}", id, i), attrs);
    }
  }
  for (size_t i = chunks; i < before; ++i) remove(stage, fmt::format("{}/{:04}", id, i));
  written = std::max(written, chunks);
  unit_.set_record(name, std::move(blob));
}

void DynamoStaging::scopes_of(std::string_view stage, std::string_view kind,
                              std::vector<uint64_t>& out) {
  std::string prefix = std::string(kind) + "/";
  std::unordered_map<uint64_t, bool> seen;  // scope -> present
  for (const auto& it : query(stage, prefix, true)) {
    const std::string* id = text_attr(it, "id", "S");
    if (!id) continue;
    if (kind == "L" && !id->ends_with("/0000")) continue;
    seen[scope_of_id(*id)] = true;
  }
  std::string overlay_prefix = record_name(stage, prefix);
  for (const auto& [name, v] : unit_.records_with(overlay_prefix))
    seen[scope_of_id(std::string_view(name).substr(stage.size() + 1))] = v.has_value();
  for (const auto& [s, present] : seen)
    if (present) out.push_back(s);
}

void DynamoStaging::scopes(std::string_view stage, std::vector<uint64_t>& out) {
  scopes_of(stage, "L", out);
}

std::optional<HeldListing> DynamoStaging::held_listing(std::string_view stage, uint64_t scope) {
  std::string id = "H/" + hex(scope);
  std::string value;
  if (const auto* o = unit_.record(record_name(stage, id))) {
    if (!*o) return std::nullopt;
    value = **o;
  } else {
    std::vector<Value> items = query(stage, id, false);
    if (items.empty()) return std::nullopt;
    const std::string* v = text_attr(items.front(), "v", "S");
    if (!v) return std::nullopt;
    value = *v;
  }
  size_t sp = value.find(' ');
  if (sp == std::string::npos) return std::nullopt;
  return HeldListing{std::stoull(value.substr(0, sp)), std::stoll(value.substr(sp + 1))};
}

void DynamoStaging::held_scopes(std::string_view stage, std::vector<uint64_t>& out) {
  scopes_of(stage, "H", out);
}

void DynamoStaging::hold_listing(std::string_view stage, uint64_t scope,
                                 const HeldListing& listing) {
  std::string id = "H/" + hex(scope);
  std::string value = fmt::format("{} {}", listing.fingerprint, listing.run_id);
  std::string attrs = R"(,"v":{"S":)";
  append_json_string(value, attrs);
  attrs += '}';
  put(stage, id, attrs);
  unit_.set_record(record_name(stage, id), value);
}

void DynamoStaging::release_listing(std::string_view stage, uint64_t scope) {
  std::string id = "H/" + hex(scope);
  remove(stage, id);
  unit_.set_record(record_name(stage, id), std::nullopt);
}

std::optional<std::string> DynamoStaging::cursor(std::string_view stage, uint64_t scope) {
  std::string id = "C/" + hex(scope);
  if (const auto* o = unit_.record(record_name(stage, id))) return *o;
  std::vector<Value> items = query(stage, id, false);
  if (items.empty()) return std::nullopt;
  const std::string* v = text_attr(items.front(), "v", "S");
  return v ? std::optional<std::string>(*v) : std::nullopt;
}

void DynamoStaging::set_cursor(std::string_view stage, uint64_t scope, std::string_view value) {
  std::string id = "C/" + hex(scope);
  std::string attrs = R"(,"v":{"S":)";
  append_json_string(value, attrs);
  attrs += '}';
  put(stage, id, attrs);
  unit_.set_record(record_name(stage, id), std::string(value));
}

size_t DynamoStaging::clear_cursors(std::string_view stage) {
  std::vector<uint64_t> all;
  scopes_of(stage, "C", all);
  for (uint64_t scope : all) {
    std::string id = "C/" + hex(scope);
    remove(stage, id);
    unit_.set_record(record_name(stage, id), std::nullopt);
  }
  return all.size();
}

}  // namespace cascade::aws
