// Printing query results and run summaries as aligned tables, CSV or JSON. Pure functions.
#pragma once

#include <string>

#include "engine/engine.h"
#include "store/warehouse.h"

namespace cascade {

// format: "table", "csv" or "json" (an array of objects). Throws std::invalid_argument otherwise.
std::string format_result(const QueryResult& r, const std::string& format);
// Plain-text table: header, a dashed rule, rows; numbers right-aligned.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);
std::string summary_text(const std::string& pipeline, const RunSummary& s, const std::string& verb);
std::string summary_json(const std::string& pipeline, const RunSummary& s);

}  // namespace cascade
