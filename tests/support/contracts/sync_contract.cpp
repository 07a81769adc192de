// The end-to-end scenarios every storage backend runs (sync_contract.h): a whole sync against
// the simulator's ground truth, an unchanged re-sync, ticks with corrections and departures,
// history, dead letters with their reasons and a redrive, incremental listings, and what
// `cascade sql` and `cascade export` print.
#include "support/contracts/sync_contract.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <string>

#include "core/json.h"
#include "support/cascade.h"
#include "support/incremental.h"
#include "support/sim.h"
#include "support/sync_check.h"

namespace cascade::testing {

void SyncContract::SetUp() {
  std::string why;
  url_ = GetParam().fresh_url("", why);
  if (url_.empty()) GTEST_SKIP() << why;
  dir_ = temp_dir();
}

std::string SyncContract::fresh_storage(const std::string& tag) const {
  std::string why;
  std::string url = GetParam().fresh_url(tag, why);
  EXPECT_NE(url, "") << why;
  return url;
}

std::map<std::string, std::string> SyncContract::env(const std::string& api) const {
  return {{"DM_API_URL", api}, {"CASCADE_STORAGE", url_}};
}

RunResult SyncContract::cli(const std::string& api, std::vector<std::string> args) const {
  args.insert(args.begin(), CASCADE_BIN);
  return run(args, env(api));
}

Value SyncContract::sync(const std::string& api, const std::string& pipeline,
                         std::vector<std::string> extra) const {
  std::vector<std::string> args{"sync", pipeline, "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = cli(api, args);
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  try {
    Value v = parse_json(r.out);
    EXPECT_TRUE(v.find("completed")->as_bool()) << r.out;
    return v;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "sync printed no JSON summary: " << e.what() << "\n" << r.out << r.err;
    return Value(Object{});
  }
}

int64_t SyncContract::scalar(const std::string& sql) const {
  return query_storage(url_, sql).rows.at(0).at(0).as_int();
}

namespace {

// The reference pipeline with a vendor limit that never slows these tests down.
std::string fast_pipeline(const std::string& dir) {
  return example_pipeline(dir, {{"rate_limit: { per_second: 50, burst: 50 }",
                                 "rate_limit: { per_second: 2000, burst: 200 }"}});
}

}  // namespace

TEST_P(SyncContract,
       WarehouseEqualsGroundTruthThenResyncWritesNothingThenPicksUpExactlyWhatChanged) {
  check_sync_equals_truth_and_resync_writes_nothing(url_);
}

TEST_P(SyncContract, HistoryKeepsEveryVersionNothingIsHardDeletedAndAnUnchangedResyncAddsNothing) {
  SimServer sim(moving_sim());
  std::string pipeline = fast_pipeline(dir_);
  sync(sim.url(), pipeline);
  int64_t departures = 0;
  for (int i = 0; i < 6; ++i) {
    departures += sim.advance(4).find("departures")->as_int();
    sync(sim.url(), pipeline);
  }
  ASSERT_GT(departures, 0);
  // Every row ever listed is still there; those no longer listed are marked, not removed.
  for (const char* t : {"branches", "salespersons", "sales"}) {
    std::string table(t);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + table),
              scalar("SELECT count(DISTINCT key) FROM cascade_change_log WHERE table_name = '" +
                     table + "'"))
        << table;
    // Current rows and open history versions agree, version for version.
    EXPECT_EQ(scalar("SELECT count(*) FROM " + table + " WHERE _deleted_at IS NULL"),
              scalar("SELECT count(*) FROM " + table + "_history WHERE _valid_to IS NULL"))
        << table;
    // A sum is numeric on PostgreSQL: cast back to an integer, as on SQLite.
    EXPECT_EQ(scalar("SELECT CAST(sum(_version) AS bigint) FROM " + table),
              scalar("SELECT count(*) FROM " + table + "_history"))
        << table;
    // Every insert and update in the change log is one history version.
    EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log WHERE operation <> 'delete' AND "
                     "table_name = '" +
                     table + "'"),
              scalar("SELECT count(*) FROM " + table + "_history"))
        << table;
  }
  EXPECT_GT(scalar("SELECT count(*) FROM salespersons WHERE _deleted_at IS NOT NULL"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log WHERE operation = 'delete'"),
            scalar("SELECT (SELECT count(*) FROM branches WHERE _deleted_at IS NOT NULL) + "
                   "(SELECT count(*) FROM salespersons WHERE _deleted_at IS NOT NULL) + "
                   "(SELECT count(*) FROM sales WHERE _deleted_at IS NOT NULL)"));
  // The change log view reads in commit order, with names an analyst understands, and a time
  // in the backend's own spelling (ISO text on SQLite, timestamptz on PostgreSQL) on every entry.
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log WHERE operation NOT IN "
                   "('insert', 'update', 'delete') OR table_name NOT IN "
                   "('branches', 'salespersons', 'sales') OR at IS NULL"),
            0);
  const std::regex time_form(GetParam().time_form);
  int badly_timed = 0;
  for (const auto& row : query_storage(url_, "SELECT DISTINCT at FROM cascade_change_log").rows)
    if (!row[0].is_string() || !std::regex_match(row[0].as_string(), time_form))
      if (++badly_timed < 5) ADD_FAILURE() << "change log time " << to_json(row[0]);
  EXPECT_EQ(badly_timed, 0);

  int64_t versions = scalar("SELECT count(*) FROM sales_history");
  int64_t changes = scalar("SELECT count(*) FROM cascade_change_log");
  Value again = sync(sim.url(), pipeline);
  EXPECT_EQ(again.find("total")->find("new")->as_int(), 0);
  EXPECT_EQ(again.find("total")->find("changed")->as_int(), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM sales_history"), versions);
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log"), changes);
}

TEST_P(SyncContract, PermanentFaultsAreDeadLetteredWithAReasonAndARedriveCompletesTheWarehouse) {
  SimServer sim(
      {"--seed", "22", "--employees-per-branch", "12", "--sales-per-salesperson", "40", "--faults",
       R"({"malformed":{"p":0.15,"path":"/sales"},"wrong_shape":{"p":0.15,"path":"/sales","variant":"null_list"},
                     "html":{"p":0.1,"path":"/employees"}})"});
  std::string pipeline =
      example_pipeline(dir_, {{"per_second: 50, burst: 50", "per_second: 300, burst: 50"}});
  std::map<std::string, std::string> env = this->env(sim.url());
  env["DM_API_TOKEN"] = "tok-Zx81-secret";
  RunResult r = run({CASCADE_BIN, "sync", pipeline, "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;  // the run goes on and completes
  Value s = parse_json(r.out);
  EXPECT_TRUE(s.find("completed")->as_bool());
  int64_t dead = s.find("total")->find("dead_lettered")->as_int();
  EXPECT_GT(dead, 0);

  RunResult list = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"}, env);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  Value letters = parse_json(list.out);
  EXPECT_EQ(static_cast<int64_t>(letters.as_array().size()), dead);
  int malformed = 0, null_list = 0;
  for (const auto& d : letters.as_array()) {
    const std::string& reason = d.find("reason")->as_string();
    EXPECT_EQ(d.find("receive_count")->as_int(), 1)
        << "permanent failures burn no retries: " << reason;
    EXPECT_NE(reason.find("GET http://127.0.0.1"), std::string::npos) << reason;
    if (reason.find("malformed JSON") != std::string::npos) ++malformed;
    if (reason.find("is null") != std::string::npos) ++null_list;
    EXPECT_EQ(reason.find("tok-Zx81-secret"), std::string::npos);
  }
  EXPECT_GT(malformed, 0);
  EXPECT_GT(null_list, 0);
  // HTML error pages come with 5xx: transient, retried, never dead-lettered.
  for (const auto& d : letters.as_array()) EXPECT_NE(d.find("stage")->as_string(), "salespersons");
  EXPECT_EQ(list.out.find("tok-Zx81-secret"), std::string::npos);
  RunResult q = run({CASCADE_BIN, "queues", pipeline, "--json"}, env);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  int64_t dlq_depth = 0;
  Value queues = parse_json(q.out);
  for (const auto& s : queues.as_array()) dlq_depth += s.find("dlq_depth")->as_int();
  EXPECT_EQ(dlq_depth, dead);
  RunResult reasons = run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json", "--stage", "sales",
                           "--reason", "is null"},
                          env);
  ASSERT_EQ(reasons.exit_code, 0);
  EXPECT_EQ(static_cast<int>(parse_json(reasons.out).as_array().size()), null_list);

  // The vendor is fixed: a redrive and a drain complete the warehouse.
  sim.clear_faults();
  RunResult redrive = run({CASCADE_BIN, "dlq", "redrive", "-p", pipeline}, env);
  ASSERT_EQ(redrive.exit_code, 0) << redrive.err;
  EXPECT_NE(redrive.out.find("redrove " + std::to_string(dead)), std::string::npos) << redrive.out;
  RunResult drain = run({CASCADE_BIN, "sync", "--drain", pipeline, "--json"}, env);
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_EQ(parse_json(run({CASCADE_BIN, "dlq", "list", "-p", pipeline, "--json"}, env).out)
                .as_array()
                .size(),
            0u);
  EXPECT_EQ(storage_sales(url_), truth_sales(sim.truth()));
}

TEST_P(SyncContract, SqlAndExportPrintTheWarehouse) {
  SimServer sim({"--seed", "5", "--employees-per-branch", "5", "--sales-per-salesperson", "3"});
  sync(sim.url(), fast_pipeline(dir_));
  RunResult csv =
      run({CASCADE_BIN, "sql", "--storage", url_, "-f", "csv",
           "SELECT branch_id, branch_name FROM branches WHERE branch_id <= 2 ORDER BY branch_id"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out, "branch_id,branch_name\n1,Scranton\n2,Akron\n");
  RunResult js = run({CASCADE_BIN, "sql", "--storage", url_, "-f", "json",
                      "SELECT branch_name FROM branches WHERE branch_id = 13"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  EXPECT_EQ(parse_json(js.out).as_array()[0].find("branch_name")->as_string(), "New York");
  RunResult bad = run({CASCADE_BIN, "sql", "--storage", url_, "SELECT * FROM nope"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("nope"), std::string::npos) << bad.err;
  RunResult exp = run({CASCADE_BIN, "export", "branches", "--storage", url_, "-f", "jsonl",
                       "--where", "branch_id = 13"});
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  EXPECT_EQ(parse_json(exp.out).find("branch_name")->as_string(), "New York") << exp.out;
}

TEST_P(SyncContract, EachSalespersonListsFromItsOwnCursorAndTheWarehouseStaysExact) {
  SimServer sim(quiet_sim("7", "30"));
  std::string pipeline = incremental_pipeline(dir_);
  Truth t1 = truth_of(sim.truth());
  ASSERT_GT(t1.sales.size(), 500u);

  // First sync: no cursor anywhere, every sale since the initial value.
  Value s1 = sync(sim.url(), pipeline);
  EXPECT_EQ(stage_stat(s1, "sales", "records"), static_cast<int64_t>(t1.sales.size()));
  EXPECT_EQ(stage_stat(s1, "sales", "new"), static_cast<int64_t>(t1.sales.size()));
  expect_sales_equal_truth(url_, t1);
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_cursors WHERE stage='sales'"),
            static_cast<int64_t>(t1.sales_of.size()))
      << "one cursor per salesperson";
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_listings WHERE stage='sales'"), 0)
      << "an incremental stage keeps no listing records";

  // Nothing changed: each salesperson's request carries its own cursor, so the vendor returns
  // only the sales updated at exactly that cursor (>=), and nothing is written.
  auto c1 = cursors_of(t1);
  int64_t own = listed_since(t1, c1);
  std::string global;
  for (const auto& [emp, c] : c1) global = std::max(global, c);
  std::map<int64_t, std::string> one_cursor;
  for (const auto& [emp, c] : c1) one_cursor[emp] = global;
  ASSERT_LT(own, static_cast<int64_t>(t1.sales.size()) / 4) << "the test needs a selective cursor";
  ASSERT_NE(own, listed_since(t1, one_cursor)) << "the test must tell per-parent cursors apart";
  int64_t changes = scalar("SELECT count(*) FROM cascade_change_log");
  Value s2 = sync(sim.url(), pipeline);
  EXPECT_EQ(stage_stat(s2, "sales", "records"), own);
  for (const char* f : {"new", "changed", "gone"}) EXPECT_EQ(stage_stat(s2, "sales", f), 0) << f;
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log"), changes);

  // The vendor corrects a few sales and adds some: only those (and the ones at a cursor) are
  // fetched, and the change log gains exactly them.
  sim.advance(3);
  Truth t2 = truth_of(sim.truth());
  int64_t added = 0, changed = 0;
  for (const auto& [id, s] : t2.sales) {
    auto it = t1.sales.find(id);
    if (it == t1.sales.end())
      ++added;
    else if (!(it->second == s))
      ++changed;
  }
  ASSERT_GT(added, 0);
  ASSERT_GT(changed, 0);
  Value s3 = sync(sim.url(), pipeline);
  EXPECT_EQ(stage_stat(s3, "sales", "records"), listed_since(t2, c1));
  EXPECT_EQ(stage_stat(s3, "sales", "new"), added);
  EXPECT_EQ(stage_stat(s3, "sales", "changed"), changed);
  EXPECT_EQ(stage_stat(s3, "sales", "gone"), 0);
  expect_sales_equal_truth(url_, t2);
  int64_t run3 = s3.find("run_id")->as_int();
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log WHERE table_name='sales' AND "
                   "operation='update' AND run_id=" +
                   std::to_string(run3)),
            changed);
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log WHERE table_name='sales' AND "
                   "operation='insert' AND run_id=" +
                   std::to_string(run3)),
            added);
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log WHERE table_name='sales' AND "
                   "operation='delete'"),
            0);

  // --full-refresh: every sale is fetched again and nothing is written.
  changes = scalar("SELECT count(*) FROM cascade_change_log");
  Value s4 = sync(sim.url(), pipeline, {"--full-refresh"});
  EXPECT_EQ(stage_stat(s4, "sales", "records"), static_cast<int64_t>(t2.sales.size()));
  EXPECT_EQ(stage_stat(s4, "sales", "unchanged"), static_cast<int64_t>(t2.sales.size()));
  for (const char* f : {"new", "changed", "gone"}) EXPECT_EQ(stage_stat(s4, "sales", f), 0) << f;
  EXPECT_EQ(scalar("SELECT count(*) FROM cascade_change_log"), changes);
  // ...and the cursors it leaves make the next run incremental again.
  Value s5 = sync(sim.url(), pipeline);
  EXPECT_EQ(stage_stat(s5, "sales", "records"), listed_since(t2, cursors_of(t2)));
}

}  // namespace cascade::testing
