#include "aws/streams_reader.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

#include "aws/dynamo_item.h"
#include "core/error.h"
#include "core/json.h"

namespace cascade::aws {
namespace {

const std::string* attr(const Value& item, std::string_view name, std::string_view type) {
  const Value* a = item.find(name);
  const Value* v = a ? a->find(type) : nullptr;
  return v && v->is_string() ? &v->as_string() : nullptr;
}

const std::string* str(const Value& v, std::string_view name) {
  const Value* x = v.find(name);
  return x && x->is_string() ? &x->as_string() : nullptr;
}

}  // namespace

Value StreamReader::call(std::string_view op, const std::string& body) {
  std::string answer =
      tables_.client().json(kStreamsService, std::string(kStreamsTarget) + std::string(op), body);
  return answer.empty() ? Value(Object{}) : parse_json(answer);
}

StreamReadResult StreamReader::catch_up(const StreamReadOptions& options) {
  StreamReadResult result;
  result.caught_up = true;
  for (const std::string& name : tables_.tables()) {
    const ItemTable* t = tables_.find(name);
    if (!t) continue;
    std::string describe = "{\"TableName\":";
    append_json_string(t->dynamo, describe);
    describe += '}';
    Value d = tables_.call("DescribeTable", describe);
    const Value* table = d.find("Table");
    const std::string* arn = table ? str(*table, "LatestStreamArn") : nullptr;
    if (!arn) throw std::runtime_error("DynamoDB table " + t->dynamo + " has no stream");
    // Every shard, then parents before children: a key's changes in order across a split.
    struct Shard {
      std::string id, parent;
    };
    std::vector<Shard> shards;
    std::optional<std::string> start;
    for (int page = 0; page < 100'000; ++page) {
      std::string body = "{\"StreamArn\":";
      append_json_string(*arn, body);
      if (start) {
        body += ",\"ExclusiveStartShardId\":";
        append_json_string(*start, body);
      }
      body += '}';
      Value r = call("DescribeStream", body);
      const Value* desc = r.find("StreamDescription");
      if (!desc) break;
      if (const Value* list = desc->find("Shards"); list && list->is_array())
        for (const auto& s : list->as_array()) {
          const std::string* id = str(s, "ShardId");
          const std::string* parent = str(s, "ParentShardId");
          if (id) shards.push_back({*id, parent ? *parent : std::string()});
        }
      const std::string* last = str(*desc, "LastEvaluatedShardId");
      if (!last) break;
      start = *last;
    }
    std::unordered_set<std::string> all, done;
    for (const auto& s : shards) all.insert(s.id);
    for (size_t round = 0; done.size() < shards.size() && round <= shards.size(); ++round) {
      for (const auto& s : shards) {
        if (done.count(s.id)) continue;
        // A parent still listed goes first; one trimmed away already is no longer waited for.
        if (!s.parent.empty() && all.count(s.parent) && !done.count(s.parent)) continue;
        if (!read_shard(*t, *arn, s.id, options, result)) {
          result.caught_up = false;
          return result;
        }
        done.insert(s.id);
      }
    }
  }
  return result;
}

bool StreamReader::read_shard(const ItemTable& t, const std::string& arn, const std::string& shard,
                              const StreamReadOptions& options, StreamReadResult& result) {
  const std::string key = "aws_stream:" + t.table + ":" + shard;
  std::optional<std::string> checkpoint = store_.get_meta(key);
  if (checkpoint == "end") return true;
  std::string body = "{\"StreamArn\":";
  append_json_string(arn, body);
  body += ",\"ShardId\":";
  append_json_string(shard, body);
  if (checkpoint) {
    body += R"(,"ShardIteratorType":"AFTER_SEQUENCE_NUMBER","SequenceNumber":)";
    append_json_string(*checkpoint, body);
  } else {
    body += R"(,"ShardIteratorType":"TRIM_HORIZON")";
  }
  body += '}';
  Value it = call("GetShardIterator", body);
  const std::string* first = str(it, "ShardIterator");
  if (!first) return true;
  std::string iterator = *first;
  int empty = 0;
  for (;;) {
    if (options.stop && options.stop->load()) return false;
    if (result.batches >= options.max_batches) return false;
    std::string get = "{\"ShardIterator\":";
    append_json_string(iterator, get);
    get += ",\"Limit\":" + std::to_string(std::clamp(options.limit, 1, 1000)) + "}";
    Value r = call("GetRecords", get);
    const Value* records = r.find("Records");
    const std::string* next = str(r, "NextShardIterator");
    bool any = records && records->is_array() && !records->as_array().empty();
    if (any || !next) {
      std::string last = checkpoint.value_or("");
      if (any) {
        const Value& tail = records->as_array().back();
        const Value* dyn = tail.find("dynamodb");
        const std::string* seq = dyn ? str(*dyn, "SequenceNumber") : nullptr;
        if (!seq) throw std::runtime_error("stream record without a sequence number");
        last = *seq;
      }
      store_.begin();
      try {
        if (any) apply(t, *records);
        // A closed shard read to its end is never read again.
        store_.set_meta(key, next ? last : std::string("end"));
        if (options.before_commit) options.before_commit();
        store_.commit();
      } catch (...) {
        store_.rollback();
        throw;
      }
      checkpoint = last;
      ++result.batches;
      if (any) result.records += records->as_array().size();
    }
    if (!next) return true;
    iterator = *next;
    // An open shard has no end: a few empty answers in a row mean it is read up to now.
    if (any)
      empty = 0;
    else if (++empty >= 2)
      return true;
  }
}

void StreamReader::apply(const ItemTable& t, const Value& records) {
  Warehouse& w = store_.warehouse();
  for (const auto& rec : records.as_array()) {
    const std::string* event = str(rec, "eventName");
    const Value* dyn = rec.find("dynamodb");
    if (!event || !dyn || *event == "REMOVE") continue;  // cascade never removes an item
    const Value* image = dyn->find("NewImage");
    if (!image || !image->is_object())
      throw std::runtime_error("stream of " + t.dynamo + " carries no NEW_IMAGE");
    Value row = row_from_item(*image);
    const std::string* run = attr(*image, kItemRunId, "N");
    WriteStamp stamp{run ? std::stoll(*run) : 0, {}};
    if (const std::string* gone = attr(*image, kItemDeletedAt, "S")) {
      stamp.at = *gone;
      Value key{Object{}};
      for (const auto& c : t.key)
        if (const Value* v = row.find(c.name)) key.set(c.name, *v);
      const Value* ptr = &key;
      w.mark_deleted(t.table, std::span<const Value* const>(&ptr, 1), stamp);
      continue;
    }
    const std::string* at = attr(*image, kItemChangedAt, "S");
    stamp.at = at ? *at : std::string();
    const std::string* hash = attr(*image, kItemHash, "N");
    const std::string* scope = attr(*image, kItemScope, "N");
    const std::string* from = attr(*image, kItemValidFrom, "S");
    RowWrite write{&row, from ? std::string_view(*from) : std::string_view(),
                   hash ? std::stoull(*hash) : 0, scope ? std::stoull(*scope) : 0, false};
    w.upsert(t.table, std::span<const RowWrite>(&write, 1), stamp);
  }
}

}  // namespace cascade::aws
