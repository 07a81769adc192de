#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "cli/output.h"
#include "config/loader.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/plan.h"
#include "store/store.h"

namespace cascade::cli {

namespace {

struct Selected {
  const CompiledStage* stage;
  DeadLetter letter;
};

// Dead letters of the chosen stages that match every given filter.
std::vector<Selected> select(const Plan& plan, Store& store, const DlqFilter& f) {
  std::vector<Selected> out;
  for (const auto& st : plan.stages()) {
    if (!f.stage.empty() && st.name != f.stage) continue;
    for (auto& d : store.queue().dead_letters(st.queue, f.limit)) {
      if (!f.ids.empty() && std::find(f.ids.begin(), f.ids.end(), d.id) == f.ids.end()) continue;
      if (!f.reason.empty() && d.reason.find(f.reason) == std::string::npos) continue;
      if (!f.message.empty() && d.body.find(f.message) == std::string::npos) continue;
      out.push_back({&st, std::move(d)});
    }
  }
  return out;
}

std::string one_line(std::string s, size_t max) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

std::string letter_json(const Selected& s) {
  std::string out = "{\"stage\":";
  append_json_string(s.stage->name, out);
  out += ",\"queue\":";
  append_json_string(s.letter.queue.empty() ? s.stage->queue : s.letter.queue, out);
  out += ",\"id\":";
  append_json_string(s.letter.id, out);
  out += ",\"body\":";
  append_json_string(s.letter.body, out);
  out += fmt::format(",\"receive_count\":{},\"sent_at\":\"{}\",\"dead_at\":\"{}\",\"reason\":",
                     s.letter.receive_count, format_time(s.letter.sent_at),
                     format_time(s.letter.dead_at));
  append_json_string(s.letter.reason, out);
  return out + "}";
}

}  // namespace

int cmd_dlq(const Common& c, const std::string& action, const DlqFilter& filter) {
  auto spec = load_pipeline_or_report(c.pipeline);
  if (!spec) return 2;
  if (!c.storage.empty()) spec->storage = c.storage;
  Plan plan(*spec);
  if (!filter.stage.empty() && !plan.find(filter.stage)) {
    fmt::print(stderr, "error: no stage '{}' in {}\n", filter.stage, c.pipeline);
    return 2;
  }
  StoreOptions opts;
  opts.read_only = action == "list" || action == "show";
  auto store = open_store(spec->storage, SystemClock::instance(), opts);
  std::vector<Selected> sel;
  try {
    sel = select(plan, *store, filter);
  } catch (const std::exception& e) {
    // A store without queues yet (never synced) has no dead letters.
    if (action == "list" && !c.json)
      fmt::print("no dead letters\n");
    else if (action == "list")
      fmt::print("[]\n");
    return action == "show" ? 1 : 0;
  }
  if (action == "list" || action == "show") {
    if (action == "show" && sel.empty()) {
      fmt::print(stderr, "error: no dead letter matches\n");
      return 1;
    }
    if (c.json || action == "show") {
      std::string out = "[";
      for (size_t i = 0; i < sel.size(); ++i) out += (i ? ",\n " : "") + letter_json(sel[i]);
      fmt::print("{}]\n", out);
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : sel)
      rows.push_back({s.stage->name, s.letter.id, std::to_string(s.letter.receive_count),
                      format_time(s.letter.dead_at), one_line(s.letter.body, 40),
                      one_line(s.letter.reason, 100)});
    if (rows.empty()) {
      fmt::print("no dead letters\n");
      return 0;
    }
    fmt::print("{}",
               format_table({"stage", "id", "receives", "dead at", "message", "reason"}, rows));
    return 0;
  }
  // redrive / purge act on exactly the selected letters, per stage.
  size_t done = 0;
  store->begin();
  try {
    for (const auto& st : plan.stages()) {
      std::vector<std::string> ids;
      for (const auto& s : sel)
        if (s.stage == &st) ids.push_back(s.letter.id);
      if (ids.empty()) continue;
      done += action == "redrive" ? store->queue().redrive(st.queue, ids)
                                  : store->queue().purge_dead_letters(st.queue, ids);
    }
    store->commit();
  } catch (...) {
    store->rollback();
    throw;
  }
  if (action == "redrive")
    fmt::print("redrove {} message{} to {}; `cascade sync --drain` processes them\n", done,
               done == 1 ? "" : "s",
               filter.stage.empty() ? "their queues" : "the " + filter.stage + " queue");
  else
    fmt::print("purged {} dead letter{}\n", done, done == 1 ? "" : "s");
  return 0;
}

}  // namespace cascade::cli
