#include "cli/output.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/json.h"

namespace cascade {

static bool looks_numeric(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (!(std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == 'e' ||
          s[i] == '+' || s[i] == '-'))
      return false;
  return true;
}

static size_t display_width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++w;  // count UTF-8 code points, not bytes
  return w;
}

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = display_width(header[i]);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], display_width(r[i]));
  std::vector<bool> numeric(header.size(), !rows.empty());
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < numeric.size(); ++i)
      if (!r[i].empty() && !looks_numeric(r[i])) numeric[i] = false;
  std::string out;
  auto cell = [&](const std::string& s, size_t i) {
    size_t pad = width[i] - display_width(s);
    if (numeric[i]) out.append(pad, ' ');
    out += s;
    if (!numeric[i] && i + 1 < header.size()) out.append(pad, ' ');
    if (i + 1 < header.size()) out += "  ";
  };
  for (size_t i = 0; i < header.size(); ++i) cell(header[i], i);
  out += '\n';
  for (size_t i = 0; i < header.size(); ++i) {
    out.append(width[i], '-');
    if (i + 1 < header.size()) out += "  ";
  }
  out += '\n';
  for (const auto& r : rows) {
    for (size_t i = 0; i < header.size(); ++i) cell(i < r.size() ? r[i] : std::string(), i);
    out += '\n';
  }
  return out;
}

static std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string format_result(const QueryResult& r, const std::string& format) {
  if (format == "json") {
    std::string out = "[";
    for (size_t i = 0; i < r.rows.size(); ++i) {
      out += i ? ",\n " : "";
      out += '{';
      for (size_t c = 0; c < r.columns.size(); ++c) {
        if (c) out += ',';
        append_json_string(r.columns[c], out);
        out += ':';
        append_json(r.rows[i][c], out);
      }
      out += '}';
    }
    return out + "]\n";
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(r.rows.size());
  for (const auto& row : r.rows) {
    std::vector<std::string> cells;
    for (const auto& v : row)
      cells.push_back(v.is_null() && format == "table" ? "NULL" : v.to_text());
    rows.push_back(std::move(cells));
  }
  if (format == "csv") {
    std::string out;
    for (size_t c = 0; c < r.columns.size(); ++c) out += (c ? "," : "") + csv_cell(r.columns[c]);
    out += '\n';
    for (const auto& row : rows) {
      for (size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + csv_cell(row[c]);
      out += '\n';
    }
    return out;
  }
  if (format == "table") {
    std::string out = format_table(r.columns, rows);
    out += fmt::format("({} row{})\n", r.rows.size(), r.rows.size() == 1 ? "" : "s");
    return out;
  }
  throw std::invalid_argument("unknown format '" + format + "' (expected table, csv or json)");
}

static std::vector<std::string> counter_cells(const std::string& name, const StageCounters& c) {
  return {name,
          std::to_string(c.messages),
          std::to_string(c.requests),
          std::to_string(c.records),
          std::to_string(c.new_rows),
          std::to_string(c.changed),
          std::to_string(c.unchanged),
          std::to_string(c.gone),
          std::to_string(c.held),
          std::to_string(c.retried),
          std::to_string(c.dead_lettered)};
}

std::string summary_text(const std::string& pipeline, const RunSummary& s,
                         const std::string& verb) {
  StageCounters t = s.total();
  std::string out =
      fmt::format("{} {}: run {} {} in {:.2f} s\n", verb, pipeline, s.run_id,
                  s.completed ? "completed" : "stopped before the queues drained", s.seconds);
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, c] : s.stages) rows.push_back(counter_cells(name, c));
  rows.push_back(counter_cells("total", t));
  out += format_table({"stage", "messages", "requests", "records", "new", "changed", "unchanged",
                       "gone", "held", "retried", "dead-lettered"},
                      rows);
  double rate = s.seconds > 0 ? static_cast<double>(t.records) / s.seconds : 0;
  out += fmt::format(
      "{} requests, {} records ({:.0f} records/s): {} new, {} changed, {} unchanged, {} gone; {} "
      "dead-lettered\n",
      t.requests, t.records, rate, t.new_rows, t.changed, t.unchanged, t.gone, t.dead_lettered);
  if (t.held)
    out += fmt::format(
        "{} deletion{} held awaiting confirmation by the next run: listings shrank by more than "
        "deletions.hold_above allows, so their rows stay unless the next run sees the same "
        "listings\n",
        t.held, t.held == 1 ? "" : "s");
  if (s.quota_exhausted_until)
    out += fmt::format(
        "{} is spent until {}: the remaining messages wait in their queues for the next run\n",
        s.quota_by_vendor ? "the vendor's quota (its Retry-After or RateLimit-Reset)" : "the quota",
        format_time(*s.quota_exhausted_until));
  for (const auto& [name, c] : s.stages)
    if (c.dead_lettered && !c.last_error.empty())
      out += fmt::format("last error in {}: {}\n", name, c.last_error);
  return out;
}

static void counters_json(const StageCounters& c, std::string& out) {
  out += fmt::format(
      "{{\"messages\":{},\"requests\":{},\"records\":{},\"filtered\":{},\"new\":{},\"changed\":{},"
      "\"unchanged\":{},\"gone\":{},\"held\":{},\"children\":{},\"retried\":{},"
      "\"dead_lettered\":{},\"throttled\":{}",
      c.messages, c.requests, c.records, c.filtered, c.new_rows, c.changed, c.unchanged, c.gone,
      c.held, c.children, c.retried, c.dead_lettered, c.throttled);
  if (!c.last_error.empty()) {
    out += ",\"last_error\":";
    append_json_string(c.last_error, out);
  }
  out += '}';
}

std::string summary_json(const std::string& pipeline, const RunSummary& s) {
  std::string out = "{\"pipeline\":";
  append_json_string(pipeline, out);
  out += fmt::format(
      ",\"run_id\":{},\"completed\":{},\"seconds\":{:.3f},\"peak_rss_mb\":{:.1f},\"total\":",
      s.run_id, s.completed ? "true" : "false", s.seconds,
      static_cast<double>(s.peak_rss_kb) / 1024.0);
  counters_json(s.total(), out);
  if (s.quota_exhausted_until) {
    out += ",\"quota_exhausted_until\":";
    append_json_string(format_time(*s.quota_exhausted_until), out);
    out += fmt::format(",\"quota_exhausted_by\":\"{}\"", s.quota_by_vendor ? "vendor" : "pipeline");
  }
  out += ",\"stages\":{";
  for (size_t i = 0; i < s.stages.size(); ++i) {
    if (i) out += ',';
    append_json_string(s.stages[i].first, out);
    out += ':';
    counters_json(s.stages[i].second, out);
  }
  out += "}}\n";
  return out;
}

}  // namespace cascade
