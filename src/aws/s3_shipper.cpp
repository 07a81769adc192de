#include "aws/s3_shipper.h"

#include <fmt/format.h>

#include <cctype>
#include <map>
#include <stdexcept>

#include "aws/s3_gzip.h"
#include "core/json.h"

namespace cascade::aws {
namespace {

const char* operation(ChangeKind k) {
  switch (k) {
    case ChangeKind::New:
      return "insert";
    case ChangeKind::Changed:
      return "update";
    case ChangeKind::Gone:
      return "delete";
  }
  return "update";
}

// YYYY-MM-DD of an ISO 8601 time, or "unknown" when it does not start with one.
std::string date_of(const std::string& at) {
  if (at.size() < 10) return "unknown";
  for (size_t i = 0; i < 10; ++i) {
    bool digit = std::isdigit(static_cast<unsigned char>(at[i]));
    if ((i == 4 || i == 7) ? at[i] != '-' : !digit) return "unknown";
  }
  return at.substr(0, 10);
}

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

void append_line(const Change& c, std::string& out) {
  out += "{\"seq\":";
  out += std::to_string(c.seq);
  out += ",\"table\":";
  append_json_string(c.table, out);
  out += ",\"operation\":\"";
  out += operation(c.kind);
  // key and image are JSON text already (see change_log.h).
  out += "\",\"key\":";
  out += c.key.empty() ? "null" : c.key;
  out += ",\"image\":";
  out += c.image.empty() ? "null" : c.image;
  out += ",\"run_id\":";
  out += std::to_string(c.run_id);
  out += ",\"at\":";
  append_json_string(c.at, out);
  out += "}\n";
}

}  // namespace

ChangeLogShipper::ChangeLogShipper(ChangeLog& log, S3& s3, ShipOptions options)
    : log_(log), s3_(s3), options_(std::move(options)) {
  options_.prefix = trim_slashes(options_.prefix);
  if (options_.batch == 0) throw std::invalid_argument("ShipOptions.batch must be at least 1");
}

std::string ChangeLogShipper::object_key(const std::string& table, const std::string& date,
                                         int64_t first_seq) const {
  std::string rel = fmt::format("table={}/date={}/{:020}.json.gz", table, date, first_seq);
  return options_.prefix.empty() ? rel : options_.prefix + "/" + rel;
}

std::string ChangeLogShipper::checkpoint_key() const {
  return options_.prefix.empty() ? "_cascade/checkpoint.json"
                                 : options_.prefix + "/_cascade/checkpoint.json";
}

int64_t ChangeLogShipper::checkpoint() {
  std::optional<std::string> text = s3_.get(options_.bucket, checkpoint_key());
  if (!text) return 0;
  Value v;
  try {
    v = parse_json(*text);
  } catch (const JsonError& e) {
    throw std::runtime_error("s3://" + options_.bucket + "/" + checkpoint_key() +
                             ": not the JSON cascade writes: " + e.what());
  }
  const Value* seq = v.find("seq");
  if (!seq || !seq->is_int() || seq->as_int() < 0)
    throw std::runtime_error("s3://" + options_.bucket + "/" + checkpoint_key() +
                             ": expected {\"seq\": N} with N a whole number >= 0");
  return seq->as_int();
}

ShipResult ChangeLogShipper::ship(const std::atomic<bool>* stop) {
  ShipResult result;
  result.last_seq = checkpoint();
  // Each round makes progress (its changes have larger seqs), and the log is finite.
  while (!(stop && stop->load())) {
    std::vector<Change> changes = log_.read(result.last_seq, options_.batch);
    if (changes.empty()) break;
    // One object per table and date, its lines in seq order.
    std::map<std::pair<std::string, std::string>, std::pair<int64_t, std::string>> objects;
    for (const Change& c : changes) {
      auto& [first, text] = objects[{c.table, date_of(c.at)}];
      if (text.empty()) first = c.seq;
      append_line(c, text);
    }
    for (const auto& [where, object] : objects) {
      s3_.put(options_.bucket, object_key(where.first, where.second, object.first),
              gzip(object.second), "application/x-ndjson", "gzip");
      ++result.objects;
    }
    int64_t last = changes.back().seq;
    // After the objects: a crash before this line ships the round again, to the same keys.
    s3_.put(options_.bucket, checkpoint_key(), "{\"seq\":" + std::to_string(last) + "}",
            "application/json");
    result.changes += static_cast<int64_t>(changes.size());
    result.last_seq = last;
    if (changes.size() < options_.batch) break;
  }
  return result;
}

}  // namespace cascade::aws
