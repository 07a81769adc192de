#include "support/sync_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/clock.h"
#include "core/json.h"
#include "load/column_names.h"
#include "store/store.h"
#include "support/subprocess.h"

namespace cascade::testing {
namespace {

const std::string kPipeline = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";

Value sync_json(const SimServer& sim, const std::string& url) {
  RunResult r = run({CASCADE_BIN, "sync", kPipeline, "--json"},
                    {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", url}});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  try {
    return parse_json(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "sync printed no JSON: " << e.what() << "\n" << r.out << r.err;
    return Value(Object{});
  }
}

struct Diff {
  int64_t added = 0, changed = 0, removed = 0;
};
Diff diff(const std::map<std::string, Value>& before, const std::map<std::string, Value>& after) {
  Diff d;
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end())
      ++d.added;
    else if (!(it->second == v))
      ++d.changed;
  }
  for (const auto& [k, v] : before)
    if (!after.count(k)) ++d.removed;
  return d;
}

}  // namespace

int64_t stage_stat(const Value& summary, const std::string& stage, const std::string& field) {
  const Value* stages = summary.find("stages");
  const Value* s = stages ? stages->find(stage) : nullptr;
  const Value* f = s ? s->find(field) : nullptr;
  return f ? f->as_int() : -1;
}

std::vector<std::string> moving_sim() {
  return {"--seed",
          "11",
          "--employees-per-branch",
          "10",
          "--sales-per-salesperson",
          "8",
          "--new-sales-per-tick",
          "4",
          "--transfers-per-tick",
          "0.6",
          "--late-sales-per-transfer",
          "3",
          "--departures-per-tick",
          "0.3",
          "--hires-per-tick",
          "0.3"};
}

QueryResult query_storage(const std::string& url, const std::string& sql) {
  ManualClock clock;
  auto store = open_store(url, clock, StoreOptions{true});
  return store->warehouse().query(sql);
}

std::map<std::string, Value> live_table(const std::string& url, const std::string& name,
                                        const std::vector<std::string>& key) {
  // Rows the API still lists, with the fields it sends (not cascade's metadata columns).
  QueryResult r = query_storage(url, "SELECT * FROM " + name + " WHERE _deleted_at IS NULL");
  std::map<std::string, Value> out;
  for (const auto& row : r.rows) {
    Value obj{Object{}};
    for (size_t i = 0; i < r.columns.size(); ++i)
      if (!is_reserved_column(r.columns[i])) obj.set(r.columns[i], row[i]);
    std::string k;
    for (const auto& col : key) k += obj.find(col)->to_text() + "|";
    EXPECT_TRUE(out.emplace(k, obj).second) << "duplicate row " << k << " in " << name;
  }
  return out;
}

Expected expected_from(const Value& truth) {
  Expected e;
  std::map<int64_t, int64_t> branch_of;  // salesperson id -> branch id
  for (const auto& b : truth.find("branches")->as_array()) {
    Value row = b;
    row.as_object().erase(std::remove_if(row.as_object().begin(), row.as_object().end(),
                                         [](const Member& m) { return m.first == "id"; }),
                          row.as_object().end());
    row.set("branch_id", *b.find("id"));
    e.branches.emplace(b.find("id")->to_text() + "|", row);
  }
  for (const auto& emp : truth.find("employees")->as_array()) {
    if (emp.find("occupation")->as_string() != "salesperson") continue;
    Value row{Object{}};
    for (const auto& [k, v] : emp.as_object())
      if (k != "id" && k != "branch_history") row.set(k, v);  // branch_history: truth-only
    row.set("employee_id", *emp.find("id"));
    branch_of[emp.find("id")->as_int()] = emp.find("branch_id")->as_int();
    e.salespersons.emplace(emp.find("id")->to_text() + "|" + emp.find("branch_id")->to_text() + "|",
                           row);
  }
  for (const auto& s : truth.find("sales")->as_array()) {
    int64_t emp = s.find("employee_id")->as_int();
    auto b = branch_of.find(emp);
    if (b == branch_of.end()) continue;  // not reachable through the cascade
    Value row{Object{}};
    for (const auto& [k, v] : s.as_object())
      if (k != "id" && k != "branch_at_sale") row.set(k, v);  // branch_at_sale: truth-only
    row.set("sale_id", *s.find("id"));
    row.set("branch_id", Value(b->second));
    e.sales.emplace(s.find("id")->to_text() + "|" + std::to_string(emp) + "|", row);
  }
  return e;
}

// Every expected row is in the warehouse with equal values; returns how many differ.
int compare_rows(const std::map<std::string, Value>& expected,
                 const std::map<std::string, Value>& actual, const std::string& what, bool exact,
                 bool report) {
  int bad = 0;
  for (const auto& [k, row] : expected) {
    auto it = actual.find(k);
    if (it == actual.end()) {
      if (++bad < 5 && report) ADD_FAILURE() << what << ": missing row " << k;
      continue;
    }
    for (const auto& [col, v] : row.as_object()) {
      const Value* got = it->second.find(col);
      if (!got || !(*got == v)) {
        if (++bad < 5 && report)
          ADD_FAILURE() << what << " " << k << " column " << col << ": expected " << to_json(v)
                        << ", got " << (got ? to_json(*got) : "(no column)");
        break;
      }
    }
  }
  if (exact) {
    for (const auto& [k, row] : actual)
      if (!expected.count(k) && ++bad < 5 && report)
        ADD_FAILURE() << what << ": unexpected row " << k;
  }
  return bad;
}

int compare_warehouse(const std::string& url, const Expected& e, bool report) {
  return compare_rows(e.branches, live_table(url, "branches", {"branch_id"}), "branches", true,
                      report) +
         compare_rows(e.salespersons, live_table(url, "salespersons", {"employee_id", "branch_id"}),
                      "salespersons", true, report) +
         compare_rows(e.sales, live_table(url, "sales", {"sale_id", "employee_id"}), "sales", true,
                      report);
}

void check_sync_equals_truth_and_resync_writes_nothing(const std::string& url) {
  SimServer sim({"--seed", "7", "--employees-per-branch", "12", "--sales-per-salesperson", "30"});
  Value truth1 = sim.truth();
  Expected e1 = expected_from(truth1);
  ASSERT_EQ(e1.branches.size(), 13u);
  ASSERT_GT(e1.sales.size(), 500u);

  Value s1 = sync_json(sim, url);
  EXPECT_TRUE(s1.find("completed")->as_bool());
  EXPECT_EQ(s1.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_EQ(stage_stat(s1, "branches", "new"), 13);
  EXPECT_EQ(stage_stat(s1, "salespersons", "new"), static_cast<int64_t>(e1.salespersons.size()));
  EXPECT_EQ(stage_stat(s1, "sales", "new"), static_cast<int64_t>(e1.sales.size()));

  EXPECT_EQ(compare_rows(e1.branches, live_table(url, "branches", {"branch_id"}), "branches", true),
            0);
  EXPECT_EQ(
      compare_rows(e1.salespersons, live_table(url, "salespersons", {"employee_id", "branch_id"}),
                   "salespersons", true),
      0);
  EXPECT_EQ(
      compare_rows(e1.sales, live_table(url, "sales", {"sale_id", "employee_id"}), "sales", true),
      0);
  EXPECT_EQ(
      query_storage(url, "SELECT count(*) FROM salespersons WHERE occupation <> 'salesperson'")
          .rows[0][0]
          .as_int(),
      0);

  // Unchanged data: no change appended, no warehouse row rewritten.
  int64_t changes_before =
      query_storage(url, "SELECT count(*) FROM cascade_change_log").rows[0][0].as_int();
  const std::string written = "SELECT sum(_version), max(_seq), max(_last_changed) FROM sales";
  auto wh_before = query_storage(url, written).rows[0];
  Value s2 = sync_json(sim, url);
  EXPECT_TRUE(s2.find("completed")->as_bool());
  for (const char* f : {"new", "changed", "gone"})
    EXPECT_EQ(s2.find("total")->find(f)->as_int(), 0) << f;
  EXPECT_EQ(s2.find("total")->find("unchanged")->as_int(),
            static_cast<int64_t>(e1.branches.size() + e1.salespersons.size() + e1.sales.size()));
  EXPECT_EQ(query_storage(url, "SELECT count(*) FROM cascade_change_log").rows[0][0].as_int(),
            changes_before);
  EXPECT_EQ(canonical_json(Value(Array(query_storage(url, written).rows[0]))),
            canonical_json(Value(Array(wh_before))));

  // The vendor moves on: the next sync writes exactly the difference.
  sim.advance(48);
  Value truth2 = sim.truth();
  Expected e2 = expected_from(truth2);
  Value s3 = sync_json(sim, url);
  EXPECT_TRUE(s3.find("completed")->as_bool());
  Diff db = diff(e1.branches, e2.branches), dp = diff(e1.salespersons, e2.salespersons),
       ds = diff(e1.sales, e2.sales);
  EXPECT_GT(ds.added + ds.changed, 0) << "the simulator should have changed some sales in 48 ticks";
  EXPECT_EQ(stage_stat(s3, "branches", "changed"), db.changed);
  EXPECT_EQ(stage_stat(s3, "salespersons", "new"), dp.added);
  EXPECT_EQ(stage_stat(s3, "salespersons", "changed"), dp.changed);
  EXPECT_EQ(stage_stat(s3, "salespersons", "gone"), dp.removed);
  EXPECT_EQ(stage_stat(s3, "sales", "new"), ds.added);
  EXPECT_EQ(stage_stat(s3, "sales", "changed"), ds.changed);
  EXPECT_EQ(compare_rows(e2.branches, live_table(url, "branches", {"branch_id"}), "branches", true),
            0);
  EXPECT_EQ(
      compare_rows(e2.salespersons, live_table(url, "salespersons", {"employee_id", "branch_id"}),
                   "salespersons", true),
      0);
  // Sales of salespersons who left stay in the warehouse (they happened); all others are exact.
  auto sales = live_table(url, "sales", {"sale_id", "employee_id"});
  EXPECT_EQ(compare_rows(e2.sales, sales, "sales", false), 0);
  std::set<std::string> current;
  for (const auto& [k, v] : e2.salespersons) current.insert(v.find("employee_id")->to_text());
  for (const auto& [k, row] : sales) {
    if (!e2.sales.count(k)) {
      EXPECT_FALSE(current.count(row.find("employee_id")->to_text())) << "stale sale " << k;
    }
  }
}

}  // namespace cascade::testing
