// The names cascade's store gives its own tables and indexes, in one place, so that the pipeline
// loader can refuse a warehouse table that would land on one of them. Every object the store
// creates for itself is named `cascade_...`; SQLite keeps `sqlite_...` for its own. Queue names
// (`stage-env`) are rows of cascade_queues, never tables, so `env` adds no table names.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cascade {

// The prefix of every table and index cascade creates for itself.
inline constexpr std::string_view kOwnTablePrefix = "cascade_";

// True when `name` is taken, or could be taken, by cascade (`cascade_...`) or by SQLite
// (`sqlite_...`). Compared ASCII case-insensitively, as SQLite compares identifiers.
bool is_reserved_table_name(std::string_view name);

// The history beside warehouse table `table` (`sales` -> `sales_history`): a view of every
// version, the past ones (past_table_name()) and the current one (the table's own row).
std::string history_table_name(std::string_view table);
// The table holding the past versions of warehouse table `table` (`cascade_past_sales`).
std::string past_table_name(std::string_view table);

}  // namespace cascade
