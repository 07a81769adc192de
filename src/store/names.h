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

// The staging table of stage `stage`, and the index on its scope column.
std::string staging_table_name(std::string_view stage);
std::string staging_index_name(std::string_view stage);

// The history table beside warehouse table `table` (`sales` -> `sales_history`).
std::string history_table_name(std::string_view table);

// Every table and index the store creates for stage `stage` (all reserved names). Two stages
// whose lists share a name, compared case-insensitively, would share storage.
std::vector<std::string> stage_object_names(std::string_view stage);

}  // namespace cascade
