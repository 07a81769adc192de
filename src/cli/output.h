// Printing query results and run summaries as aligned tables, CSV or JSON. Pure functions.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "store/warehouse.h"

namespace cascade {

// format: "table", "csv" or "json" (an array of objects). Throws std::invalid_argument otherwise.
std::string format_result(const QueryResult& r, const std::string& format);
// Plain-text table: header, a dashed rule, rows; numbers right-aligned.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);
// Appends one CSV field (RFC 4180): NULL as an empty field and the empty text as "", so the two
// stay apart; a field holding a comma, quote, CR or LF is quoted with its quotes doubled.
// Integers in decimal, reals in shortest round-trip form, text byte for byte (exact decimals
// stored as text keep every digit), BLOBs in base64 unless they spell a number.
void append_csv_cell(const Cell& c, std::string& out);
void append_csv_text(std::string_view s, std::string& out);
// Appends one cell as a JSON value: integers and reals as numbers (reals in shortest
// round-trip form; the infinities as the strings "Infinity" and "-Infinity"), NULL as null,
// text as a string (so exact decimals stored as text stay strings, digit for digit), BLOBs as
// base64 strings unless they spell a number.
void append_json_cell(const Cell& c, std::string& out);
std::string base64(std::string_view bytes);

// `s` made safe to show on a terminal: control characters (C0, DEL, C1), bidirectional
// overrides and bytes that are not UTF-8 become visible escapes (\n, \t, \x1b, \u202e), so a
// cell can never move the cursor or recolour the screen.
std::string terminal_safe(std::string_view s);

struct TableOptions {
  size_t limit = 1000;    // rows shown; the rest are counted (0: no limit)
  size_t max_width = 40;  // code points per cell before it is cut with `…` (0: no limit)
  std::string null = "NULL";
};

// Collects a streamed result for a person to read: the first `limit` rows kept, the others only
// counted, so that the footer can say how many rows there were.
class TablePrinter final : public RowSink {
 public:
  explicit TablePrinter(TableOptions o) : o_(std::move(o)) {}
  void columns(std::span<const std::string> names) override;
  bool row(std::span<const Cell> cells) override;
  // Aligned columns (width from the shown rows in code points; numbers right-aligned), then
  // "(N rows)", or "(showing first L of N rows)" when rows were left out.
  std::string render() const;

 private:
  TableOptions o_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  enum : char { kNoValues, kNumbers, kText };
  std::vector<char> numeric_;  // per column: what its non-NULL shown values are
  size_t total_ = 0;
};

std::string summary_text(const std::string& pipeline, const RunSummary& s, const std::string& verb);
std::string summary_json(const std::string& pipeline, const RunSummary& s);

}  // namespace cascade
