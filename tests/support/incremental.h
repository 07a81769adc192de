// Helpers for tests of incremental loading per parent: the reference pipeline with incremental
// sales, a simulator that changes only what a test asks for, and what the ground truth says each
// salesperson's cursor and listing should be. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/value.h"

namespace cascade::testing {

// Writes DIR/pipeline.yaml: the reference pipeline whose sales stage lists only what changed
// since each salesperson's own cursor (the simulator's `updated_since`), with vendor limit `rate`.
std::string incremental_pipeline(
    const std::string& dir, const std::string& rate = "rate_limit: { per_second: 400, burst: 20 }");

// Simulator flags: a few new sales and corrections per tick, no transfers, departures, hires or
// promotions.
std::vector<std::string> quiet_sim(const std::string& seed, const std::string& sales);

// The salespersons the cascade reaches and their sales, from the truth.
struct Truth {
  std::map<int64_t, int64_t> branch_of;              // salesperson -> branch
  std::map<int64_t, Value> sales;                    // sale id -> truth record
  std::map<int64_t, std::vector<int64_t>> sales_of;  // salesperson -> sale ids
};
Truth truth_of(const Value& truth);

// Per salesperson: the largest updated_at of its sales (the cursor its listing leaves).
std::map<int64_t, std::string> cursors_of(const Truth& t);

// How many sales a listing from `cursors` returns: those updated at or after their own
// salesperson's cursor (all of them for a salesperson without one).
int64_t listed_since(const Truth& t, const std::map<int64_t, std::string>& cursors);

// The live sales table of storage `url` (sqlite:FILE, postgresql://...) equals the truth: same
// keys, same values in every column the vendor sends, branch_id attached from the salesperson.
void expect_sales_equal_truth(const std::string& url, const Truth& t);

}  // namespace cascade::testing
