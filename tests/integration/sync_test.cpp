// End to end: the real cascade binary syncs the example pipeline from the real simulator into a
// real SQLite file; the warehouse is compared with the simulator's ground truth.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "core/json.h"
#include "load/column_names.h"
#include "store/store.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

const std::string kPipeline = std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml";

struct Env {
  std::string dir = temp_dir();
  std::string db = dir + "/cascade.db";
  std::map<std::string, std::string> vars(const SimServer& sim) const {
    return {{"DM_API_URL", sim.url()}, {"CASCADE_STORAGE", "sqlite:" + db}};
  }
};

Value sync_json(const SimServer& sim, const Env& env, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{CASCADE_BIN, "sync", kPipeline, "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  RunResult r = run(argv, env.vars(sim));
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  return parse_json(r.out);
}

QueryResult query(const Env& env, const std::string& sql) {
  ManualClock clock;
  auto store = open_store("sqlite:" + env.db, clock, StoreOptions{true});
  return store->warehouse().query(sql);
}

// Warehouse table as key -> row object.
std::map<std::string, Value> table(const Env& env, const std::string& name,
                                   const std::vector<std::string>& key) {
  // Rows the API still lists, with the fields it sends (not cascade's metadata columns).
  QueryResult r = query(env, "SELECT * FROM " + name + " WHERE _deleted_at IS NULL");
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

// What the warehouse should hold, derived from the ground truth alone: key -> expected columns.
struct Expected {
  std::map<std::string, Value> branches, salespersons, sales;
};

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
int compare(const std::map<std::string, Value>& expected,
            const std::map<std::string, Value>& actual, const std::string& what, bool exact) {
  int bad = 0;
  for (const auto& [k, row] : expected) {
    auto it = actual.find(k);
    if (it == actual.end()) {
      if (++bad < 5) ADD_FAILURE() << what << ": missing row " << k;
      continue;
    }
    for (const auto& [col, v] : row.as_object()) {
      const Value* got = it->second.find(col);
      if (!got || !(*got == v)) {
        if (++bad < 5)
          ADD_FAILURE() << what << " " << k << " column " << col << ": expected " << to_json(v)
                        << ", got " << (got ? to_json(*got) : "(no column)");
        break;
      }
    }
  }
  if (exact) {
    for (const auto& [k, row] : actual)
      if (!expected.count(k) && ++bad < 5) ADD_FAILURE() << what << ": unexpected row " << k;
  }
  return bad;
}

int64_t stage_stat(const Value& summary, const std::string& stage, const std::string& field) {
  return summary.find("stages")->find(stage)->find(field)->as_int();
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

TEST(Sync, WarehouseEqualsGroundTruthThenResyncWritesNothingThenPicksUpExactlyWhatChanged) {
  SimServer sim({"--seed", "7", "--employees-per-branch", "12", "--sales-per-salesperson", "30"});
  Env env;
  Value truth1 = sim.truth();
  Expected e1 = expected_from(truth1);
  ASSERT_EQ(e1.branches.size(), 13u);
  ASSERT_GT(e1.sales.size(), 500u);

  Value s1 = sync_json(sim, env);
  EXPECT_TRUE(s1.find("completed")->as_bool());
  EXPECT_EQ(s1.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_EQ(stage_stat(s1, "branches", "new"), 13);
  EXPECT_EQ(stage_stat(s1, "salespersons", "new"), static_cast<int64_t>(e1.salespersons.size()));
  EXPECT_EQ(stage_stat(s1, "sales", "new"), static_cast<int64_t>(e1.sales.size()));

  EXPECT_EQ(compare(e1.branches, table(env, "branches", {"branch_id"}), "branches", true), 0);
  EXPECT_EQ(compare(e1.salespersons, table(env, "salespersons", {"employee_id", "branch_id"}),
                    "salespersons", true),
            0);
  EXPECT_EQ(compare(e1.sales, table(env, "sales", {"sale_id", "employee_id"}), "sales", true), 0);
  EXPECT_EQ(query(env, "SELECT count(*) FROM salespersons WHERE occupation <> 'salesperson'")
                .rows[0][0]
                .as_int(),
            0);

  // Unchanged data: no change appended, no warehouse row rewritten.
  int64_t changes_before =
      query(env, "SELECT count(*) FROM cascade_change_log").rows[0][0].as_int();
  const std::string written = "SELECT sum(_version), max(_seq), max(_last_changed) FROM sales";
  auto wh_before = query(env, written).rows[0];
  Value s2 = sync_json(sim, env);
  EXPECT_TRUE(s2.find("completed")->as_bool());
  for (const char* f : {"new", "changed", "gone"})
    EXPECT_EQ(s2.find("total")->find(f)->as_int(), 0) << f;
  EXPECT_EQ(s2.find("total")->find("unchanged")->as_int(),
            static_cast<int64_t>(e1.branches.size() + e1.salespersons.size() + e1.sales.size()));
  EXPECT_EQ(query(env, "SELECT count(*) FROM cascade_change_log").rows[0][0].as_int(),
            changes_before);
  EXPECT_EQ(canonical_json(Value(Array(query(env, written).rows[0]))),
            canonical_json(Value(Array(wh_before))));

  // The vendor moves on: the next sync writes exactly the difference.
  sim.advance(48);
  Value truth2 = sim.truth();
  Expected e2 = expected_from(truth2);
  Value s3 = sync_json(sim, env);
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
  EXPECT_EQ(compare(e2.branches, table(env, "branches", {"branch_id"}), "branches", true), 0);
  EXPECT_EQ(compare(e2.salespersons, table(env, "salespersons", {"employee_id", "branch_id"}),
                    "salespersons", true),
            0);
  // Sales of salespersons who left stay in the warehouse (they happened); all others are exact.
  auto sales = table(env, "sales", {"sale_id", "employee_id"});
  EXPECT_EQ(compare(e2.sales, sales, "sales", false), 0);
  std::set<std::string> current;
  for (const auto& [k, v] : e2.salespersons) current.insert(v.find("employee_id")->to_text());
  for (const auto& [k, row] : sales) {
    if (!e2.sales.count(k)) {
      EXPECT_FALSE(current.count(row.find("employee_id")->to_text())) << "stale sale " << k;
    }
  }
}

TEST(Sync, InvokeRunsOneStageOnAnAwsStyleEventAndQueuesChildren) {
  SimServer sim({"--seed", "3", "--employees-per-branch", "10", "--sales-per-salesperson", "5"});
  Env env;
  std::string event = env.dir + "/event.json";
  {
    std::ofstream f(event);
    f << R"({"branches": ["Scranton", "Stamford"]})";
  }
  RunResult r =
      run({CASCADE_BIN, "invoke", "branches", "--event", event, "-p", kPipeline, "--json"},
          env.vars(sim));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = query(env, "SELECT branch_name FROM branches ORDER BY branch_name");
  ASSERT_EQ(rows.rows.size(), 2u);
  EXPECT_EQ(rows.rows[0][0].as_string(), "Scranton");
  EXPECT_EQ(rows.rows[1][0].as_string(), "Stamford");
  RunResult q = run({CASCADE_BIN, "queues", kPipeline, "--json"}, env.vars(sim));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Value queues = parse_json(q.out);
  std::map<std::string, int64_t> depth;
  for (const auto& e : queues.as_array())
    depth[e.find("stage")->as_string()] = e.find("depth")->as_int();
  EXPECT_EQ(depth["salespersons"], 2);  // one message per branch, not yet processed
  EXPECT_EQ(depth["sales"], 0);
  // A sync then drains what invoke queued (and the default inputs).
  Value s = sync_json(sim, env);
  EXPECT_TRUE(s.find("completed")->as_bool());
  EXPECT_EQ(query(env, "SELECT count(*) FROM branches").rows[0][0].as_int(), 13);
}

TEST(Sync, SqlCommandPrintsCsvAndJson) {
  SimServer sim({"--seed", "5", "--employees-per-branch", "5", "--sales-per-salesperson", "3"});
  Env env;
  sync_json(sim, env);
  RunResult csv =
      run({CASCADE_BIN, "sql", "--storage", "sqlite:" + env.db, "-f", "csv",
           "SELECT branch_id, branch_name FROM branches WHERE branch_id <= 2 ORDER BY branch_id"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out, "branch_id,branch_name\n1,Scranton\n2,Akron\n");
  RunResult js = run({CASCADE_BIN, "sql", "--storage", "sqlite:" + env.db, "-f", "json",
                      "SELECT branch_name FROM branches WHERE branch_id = 13"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  EXPECT_EQ(parse_json(js.out).as_array()[0].find("branch_name")->as_string(), "New York");
  RunResult bad = run({CASCADE_BIN, "sql", "--storage", "sqlite:" + env.db, "SELECT * FROM nope"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("nope"), std::string::npos);
}
