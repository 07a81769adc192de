// The end-to-end sync assertions shared by every storage backend: the real cascade binary syncs
// the example pipeline from a real simulator into the storage a URL names (sqlite:PATH or
// postgresql://...), and the warehouse is compared with the simulator's ground truth. One
// definition, so each backend is held to exactly the same assertions. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/value.h"
#include "store/warehouse.h"
#include "support/sim.h"

namespace cascade::testing {

// A stage's figure in a `cascade sync --json` summary; -1 when it is not there.
int64_t stage_stat(const Value& summary, const std::string& stage, const std::string& field);

// Simulator flags for a vendor whose people move: every tick brings new sales, transfers (with
// sales reported late under the old branch), departures and hires.
std::vector<std::string> moving_sim();

// Runs SQL read-only on the warehouse of storage `url`. Throws on SQL errors.
QueryResult query_storage(const std::string& url, const std::string& sql);

// What the warehouse should hold, derived from the ground truth alone: key -> expected columns.
struct Expected {
  std::map<std::string, Value> branches, salespersons, sales;
};
Expected expected_from(const Value& truth);

// The live rows of warehouse table `name` of storage `url` as key -> row object (the API's fields,
// without cascade's metadata columns); a duplicate key fails the test.
std::map<std::string, Value> live_table(const std::string& url, const std::string& name,
                                        const std::vector<std::string>& key);

// Every expected row is in `actual` with equal values (and, when `exact`, nothing else); returns
// how many differ, reporting the first few as test failures unless `report` is false (a caller
// that expects some difference and checks the count itself).
int compare_rows(const std::map<std::string, Value>& expected,
                 const std::map<std::string, Value>& actual, const std::string& what, bool exact,
                 bool report = true);

// The three tables of storage `url` equal `e` exactly; returns how many rows differ (reported as
// test failures unless `report` is false).
int compare_warehouse(const std::string& url, const Expected& e, bool report = true);

// The whole scenario: a first sync equals the truth, an unchanged re-sync writes nothing, and
// after the vendor moves on a sync writes exactly the difference. `url` is the storage URL given
// to the pipeline through CASCADE_STORAGE.
void check_sync_equals_truth_and_resync_writes_nothing(const std::string& url);

}  // namespace cascade::testing
