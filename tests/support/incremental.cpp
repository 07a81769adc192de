#include "support/incremental.h"

#include <gtest/gtest.h>

#include "core/json.h"
#include "load/column_names.h"
#include "support/cascade.h"
#include "support/sync_check.h"

namespace cascade::testing {
namespace {

constexpr const char* kIncremental =
    "    concurrency: 3\n"
    "    incremental: { cursor_path: updated_at, param: updated_since,\n"
    "                   initial_value: \"2020-01-01T00:00:00Z\" }\n";

}  // namespace

std::string incremental_pipeline(const std::string& dir, const std::string& rate) {
  return example_pipeline(dir, {{"    concurrency: 3\n", kIncremental},
                                {"rate_limit: { per_second: 50, burst: 50 }", rate}});
}

std::vector<std::string> quiet_sim(const std::string& seed, const std::string& sales) {
  return {"--seed",
          seed,
          "--employees-per-branch",
          "12",
          "--sales-per-salesperson",
          sales,
          "--new-sales-per-tick",
          "1",
          "--late-sales-per-tick",
          "1",
          "--corrections-per-tick",
          "2",
          "--transfers-per-tick",
          "0",
          "--departures-per-tick",
          "0",
          "--hires-per-tick",
          "0",
          "--promotions-per-tick",
          "0"};
}

Truth truth_of(const Value& truth) {
  Truth t;
  for (const auto& e : truth.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson")
      t.branch_of[e.find("id")->as_int()] = e.find("branch_id")->as_int();
  for (const auto& s : truth.find("sales")->as_array()) {
    int64_t emp = s.find("employee_id")->as_int();
    if (!t.branch_of.count(emp)) continue;
    t.sales[s.find("id")->as_int()] = s;
    t.sales_of[emp].push_back(s.find("id")->as_int());
  }
  return t;
}

std::map<int64_t, std::string> cursors_of(const Truth& t) {
  std::map<int64_t, std::string> out;
  for (const auto& [emp, ids] : t.sales_of)
    for (int64_t id : ids) {
      const std::string& u = t.sales.at(id).find("updated_at")->as_string();
      if (u > out[emp]) out[emp] = u;
    }
  return out;
}

int64_t listed_since(const Truth& t, const std::map<int64_t, std::string>& cursors) {
  int64_t n = 0;
  for (const auto& [emp, ids] : t.sales_of) {
    auto c = cursors.find(emp);
    for (int64_t id : ids)
      n += c == cursors.end() || t.sales.at(id).find("updated_at")->as_string() >= c->second;
  }
  return n;
}

void expect_sales_equal_truth(const std::string& url, const Truth& t) {
  QueryResult r = query_storage(url, "SELECT * FROM sales WHERE _deleted_at IS NULL");
  std::map<int64_t, Value> rows;
  for (const auto& row : r.rows) {
    Value obj{Object{}};
    for (size_t i = 0; i < r.columns.size(); ++i)
      if (!is_reserved_column(r.columns[i])) obj.set(r.columns[i], row[i]);
    int64_t id = obj.find("sale_id")->as_int();
    EXPECT_TRUE(rows.emplace(id, obj).second) << "duplicate sale " << id;
  }
  EXPECT_EQ(rows.size(), t.sales.size());
  int bad = 0;
  for (const auto& [id, s] : t.sales) {
    auto it = rows.find(id);
    if (it == rows.end()) {
      if (++bad < 5) ADD_FAILURE() << "missing sale " << id;
      continue;
    }
    for (const auto& [k, v] : s.as_object()) {
      if (k == "id" || k == "branch_at_sale") continue;
      const Value* got = it->second.find(k);
      if ((!got || !(*got == v)) && ++bad < 5)
        ADD_FAILURE() << "sale " << id << " column " << k << ": expected " << to_json(v) << ", got "
                      << (got ? to_json(*got) : "(none)");
    }
    int64_t emp = s.find("employee_id")->as_int();
    if (!(*it->second.find("branch_id") == Value(t.branch_of.at(emp))) && ++bad < 5)
      ADD_FAILURE() << "sale " << id << " has the wrong branch";
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace cascade::testing
