#include "cli/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/json.h"
#include "core/utf8.h"
#include "core/value.h"

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

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t n = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

// Tables made by older versions hold exact decimals in number columns as BLOBs of their digits
// (a BLOB escapes SQLite's rounding affinity): those are numbers, not binary data.
bool blob_is_number(std::string_view bytes) {
  return !bytes.empty() && bytes.size() < 4096 && !number_from_token(bytes).is_null();
}

void append_real(double d, std::string& out) {
  if (std::isnan(d)) return;  // SQLite stores NaN as NULL: never reached from a table
  if (std::isinf(d)) {
    out += d > 0 ? "Infinity" : "-Infinity";
    return;
  }
  fmt::format_to(std::back_inserter(out), "{}", d);
}

}  // namespace

void append_csv_text(std::string_view s, std::string& out) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += s;
    return;
  }
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void append_csv_cell(const Cell& c, std::string& out) {
  switch (c.kind) {
    case Cell::Kind::Null:
      return;
    case Cell::Kind::Integer:
      fmt::format_to(std::back_inserter(out), "{}", c.integer);
      return;
    case Cell::Kind::Real:
      append_real(c.real, out);
      return;
    case Cell::Kind::Text:
      if (c.bytes.empty())
        out += "\"\"";
      else
        append_csv_text(c.bytes, out);
      return;
    case Cell::Kind::Blob:
      if (blob_is_number(c.bytes))
        out += c.bytes;
      else if (c.bytes.empty())
        out += "\"\"";
      else
        out += base64(c.bytes);
      return;
  }
}

void append_json_cell(const Cell& c, std::string& out) {
  switch (c.kind) {
    case Cell::Kind::Null:
      out += "null";
      return;
    case Cell::Kind::Integer:
      fmt::format_to(std::back_inserter(out), "{}", c.integer);
      return;
    case Cell::Kind::Real:
      if (std::isnan(c.real)) {
        out += "null";
      } else if (std::isinf(c.real)) {
        out += c.real > 0 ? "\"Infinity\"" : "\"-Infinity\"";
      } else {
        append_real(c.real, out);
      }
      return;
    case Cell::Kind::Text:
      append_json_string(c.bytes, out);
      return;
    case Cell::Kind::Blob:
      append_json_string(blob_is_number(c.bytes) ? std::string(c.bytes) : base64(c.bytes), out);
      return;
  }
}

namespace {

bool hidden_format_char(uint32_t cp) {
  return cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

size_t code_points(std::string_view s) {
  size_t w = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++w;
  return w;
}

// The first `width` code points of `s` (already terminal-safe), ending in `…` when cut.
std::string cut(std::string s, size_t width) {
  if (width == 0 || code_points(s) <= width) return s;
  size_t kept = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (kept == width - 1) break;
    ++kept;
  }
  s.resize(i);
  return s + "\u2026";
}

bool numeric_cell(const Cell& c) {
  if (c.kind == Cell::Kind::Integer || c.kind == Cell::Kind::Real) return true;
  // Exact decimals are stored as text holding their digits.
  return c.kind == Cell::Kind::Text && !c.bytes.empty() && c.bytes.size() < 4096 &&
         !number_from_token(c.bytes).is_null();
}

}  // namespace

std::string terminal_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_at(s, i, cp);
    if (n == 0) {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7F) {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", cp);
    } else if ((cp >= 0x80 && cp <= 0x9F) || hidden_format_char(cp)) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", cp);
    } else {
      out.append(s.data() + i, n);
    }
    i += n;
  }
  return out;
}

void TablePrinter::columns(std::span<const std::string> names) {
  header_.clear();
  // Names are never cut: a column must stay recognizable, and names are short (63 bytes at most
  // for a stage's columns).
  for (const auto& n : names) header_.push_back(terminal_safe(n));
  rows_.clear();
  numeric_.assign(names.size(), kNoValues);
  total_ = 0;
}

bool TablePrinter::row(std::span<const Cell> cells) {
  ++total_;
  if (o_.limit && rows_.size() >= o_.limit) return true;
  std::vector<std::string> shown;
  shown.reserve(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    const Cell& c = cells[i];
    if (c.kind == Cell::Kind::Null) {
      shown.push_back(o_.null);
      continue;
    }
    // Right-aligned only when every value shown is a number: a column of NULLs is not one.
    if (numeric_[i] != kText) numeric_[i] = numeric_cell(c) ? kNumbers : kText;
    std::string text;
    if (c.kind == Cell::Kind::Text)
      text = terminal_safe(c.bytes);
    else
      append_csv_cell(c, text);  // numbers as exported; BLOBs in base64
    shown.push_back(cut(std::move(text), o_.max_width));
  }
  rows_.push_back(std::move(shown));
  return true;
}

std::string TablePrinter::render() const {
  std::string out;
  size_t n = header_.size();
  if (n > 0) {
    std::vector<size_t> width(n);
    for (size_t i = 0; i < n; ++i) width[i] = code_points(header_[i]);
    for (const auto& r : rows_)
      for (size_t i = 0; i < n; ++i) width[i] = std::max(width[i], code_points(r[i]));
    auto cell = [&](const std::string& s, size_t i) {
      size_t pad = width[i] - code_points(s);
      bool right = numeric_[i] == kNumbers;
      if (right) out.append(pad, ' ');
      out += s;
      if (i + 1 < n) {
        if (!right) out.append(pad, ' ');
        out += "  ";
      }
    };
    for (size_t i = 0; i < n; ++i) cell(header_[i], i);
    out += '\n';
    for (size_t i = 0; i < n; ++i) {
      out.append(width[i], '-');
      if (i + 1 < n) out += "  ";
    }
    out += '\n';
    for (const auto& r : rows_) {
      for (size_t i = 0; i < n; ++i) cell(r[i], i);
      out += '\n';
    }
  }
  if (rows_.size() < total_)
    out += fmt::format("(showing first {} of {} rows)\n", rows_.size(), total_);
  else
    out += fmt::format("({} row{})\n", total_, total_ == 1 ? "" : "s");
  return out;
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
  for (const auto& [name, c] : s.stages)
    if (c.discarded_fields)
      out += fmt::format(
          "{}: {} value{} of fields its table has no column for discarded (contract: discard)\n",
          name, c.discarded_fields, c.discarded_fields == 1 ? "" : "s");
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
      "\"dead_lettered\":{},\"throttled\":{},\"discarded_fields\":{}",
      c.messages, c.requests, c.records, c.filtered, c.new_rows, c.changed, c.unchanged, c.gone,
      c.held, c.children, c.retried, c.dead_lettered, c.throttled, c.discarded_fields);
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
