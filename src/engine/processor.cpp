#include "engine/processor.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "engine/select.h"

namespace cascade {

uint64_t scope_of(const CompiledStage& stage, const std::string& rendered_request) {
  std::string s = stage.name;
  s.push_back('\0');
  s += rendered_request;
  return hash_bytes(s);
}

static Value field_value(const CompiledField& f, const Value& message, const Value& record,
                         size_t index) {
  if (f.or_null) {
    const Value* v = nullptr;
    if (!f.is_template)
      v = record.find_path(f.path);
    else if (f.tmpl->is_single_ref() && f.tmpl->refs()[0].scope == Template::Ref::Scope::Record)
      v = record.find_path(f.tmpl->refs()[0].path);
    else
      return f.tmpl->render_value(message, &record);
    return v ? *v : Value();
  }
  if (f.is_template) return f.tmpl->render_value(message, &record);
  const Value* v = record.find_path(f.path);
  if (!v || v->is_null())
    throw DataError(
        fmt::format("record {} has no '{}' (needed for column '{}')", index, f.path, f.name));
  return *v;
}

std::string key_string(const CompiledStage& stage, const Value& image) {
  std::string out = "[";
  for (size_t i = 0; i < stage.key.size(); ++i) {
    if (i) out.push_back(',');
    const Value* v = image.find(stage.key[i].name);
    append_canonical_json(v ? *v : Value(), out);
  }
  out.push_back(']');
  return out;
}

Processed process_response(const Plan& plan, const CompiledStage& stage, const Value& message,
                           std::string& body) {
  Processed out;
  out.children.reserve(stage.emit.size());
  for (const auto& e : stage.emit) out.children.emplace_back(e.child, std::vector<std::string>{});
  (void)plan;
  size_t index = 0;
  std::string scratch;  // the canonical JSON a row's hash is taken of, its buffer reused
  std::vector<uint32_t> record_of;  // per row, the record's position in the response
  select_records(body, stage.spec->records_path, [&](Value&& record) {
    size_t i = index++;
    ++out.records_seen;
    if (stage.where && !stage.where->eval(record, message)) {
      ++out.filtered_out;
      return;
    }
    Object image;
    image.reserve(stage.key.size() + stage.attach.size() + record.as_object().size());
    for (const auto& f : stage.key) {
      Value v = field_value(f, message, record, i);
      if (!v.is_scalar() || v.is_null())
        throw DataError(fmt::format("record {}: key column '{}' is {}, expected a scalar", i,
                                    f.name, type_name(v.type())));
      image.emplace_back(f.name, std::move(v));
    }
    for (const auto& f : stage.attach)
      image.emplace_back(f.name, field_value(f, message, record, i));
    // Children are rendered from the record as the API sent it, before its fields move.
    for (size_t e = 0; e < stage.emit.size(); ++e) {
      Value child{Object{}};
      for (const auto& f : stage.emit[e].fields)
        child.set(f.name, field_value(f, message, record, i));
      out.children[e].second.push_back(canonical_json(child));
    }
    size_t fixed = image.size();
    for (auto& [name, v] : record.as_object()) {
      if (std::find(stage.consumed.begin(), stage.consumed.end(), name) != stage.consumed.end())
        continue;
      // A field the pipeline also sets (key or attach) keeps the pipeline's value; the API's own
      // value may only differ loudly, never be dropped.
      bool shadowed = false;
      for (size_t k = 0; k < fixed && !shadowed; ++k) {
        if (image[k].first != name) continue;
        shadowed = true;
        if (!(image[k].second == v))
          throw DataError(fmt::format(
              "record {}: field '{}' is {} but the pipeline sets column '{}' to {}; rename the "
              "key or attach column so both are kept",
              i, name, v.to_text(), name, image[k].second.to_text()));
      }
      if (!shadowed) image.emplace_back(std::move(name), std::move(v));
    }
    Row row;
    row.image = Value(std::move(image));
    row.key = key_string(stage, row.image);
    scratch.clear();
    append_canonical_json(row.image, scratch);
    row.hash = hash_bytes(scratch);
    out.rows.push_back(std::move(row));
    record_of.push_back(static_cast<uint32_t>(i));
  });
  // One row per key, found by sorting rather than a map of copied keys: the same record twice
  // (overlapping pages, a repeated entry) is one row; the same key with other content would
  // silently drop one of them, so the response is refused.
  std::vector<uint32_t> order(out.rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    int c = out.rows[a].key.compare(out.rows[b].key);
    return c < 0 || (c == 0 && a < b);
  });
  std::vector<char> drop;
  for (size_t j = 1; j < order.size(); ++j) {
    const Row& first = out.rows[order[j - 1]];
    const Row& again = out.rows[order[j]];
    if (first.key != again.key) continue;
    // Equal hashes of canonical JSON: the same content whatever the field order or spelling.
    if (first.hash != again.hash) {
      std::string a = canonical_json(first.image), b = canonical_json(again.image);
      throw DataError(fmt::format(
          "record {}: key {} appears again with other content ({} vs {}); the key does not "
          "identify the records",
          record_of[order[j]], again.key, excerpt(a, 200), excerpt(b, 200)));
    }
    if (drop.empty()) drop.resize(out.rows.size(), 0);
    drop[order[j]] = 1;
    order[j] = order[j - 1];  // a third copy compares with the first
  }
  if (!drop.empty()) {
    size_t kept = 0;
    for (size_t i = 0; i < out.rows.size(); ++i) {
      if (drop[i]) {
        ++out.duplicates;
        continue;
      }
      if (kept != i) out.rows[kept] = std::move(out.rows[i]);
      ++kept;
    }
    out.rows.resize(kept);
  }
  return out;
}

Processed merge_pages(std::vector<Processed>& pages) {
  if (pages.size() == 1) return std::move(pages.front());
  Processed out;
  size_t total = 0;
  for (const auto& p : pages) total += p.rows.size();
  // Reserved up front: `by_key` views the keys where they finally live.
  out.rows.reserve(total);
  std::unordered_map<std::string_view, size_t> by_key;
  by_key.reserve(total);
  for (size_t n = 0; n < pages.size(); ++n) {
    Processed& p = pages[n];
    out.records_seen += p.records_seen;
    out.filtered_out += p.filtered_out;
    out.duplicates += p.duplicates;
    for (auto& row : p.rows) {
      auto it = by_key.find(row.key);
      if (it == by_key.end()) {
        out.rows.push_back(std::move(row));
        by_key.emplace(out.rows.back().key, out.rows.size() - 1);
      } else if (out.rows[it->second].hash == row.hash) {
        // Equal hashes of canonical JSON: the same content whatever the field order or spelling.
        ++out.duplicates;
      } else {
        std::string a = canonical_json(out.rows[it->second].image), b = canonical_json(row.image);
        throw DataError(fmt::format(
            "page {}: key {} appeared on an earlier page with other content ({} vs {}); the key "
            "does not identify the records",
            n + 1, row.key, excerpt(a, 200), excerpt(b, 200)));
      }
    }
    if (out.children.empty()) {
      out.children = std::move(p.children);
    } else {
      for (size_t e = 0; e < p.children.size() && e < out.children.size(); ++e) {
        auto& into = out.children[e].second;
        for (auto& body : p.children[e].second) into.push_back(std::move(body));
      }
    }
    p = Processed{};
  }
  return out;
}

}  // namespace cascade
