// Incremental loading: the `incremental:` key, cursor values and their order, the store's
// cursors inside units of work, and the simulator's updated_since filter.
#include <gtest/gtest.h>

#include <filesystem>

#include "config/loader.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/cursor.h"
#include "engine/plan.h"
#include "sim/company.h"
#include "store/sqlite/sqlite_store.h"

using namespace cascade;

namespace {

#define HEAD "name: p\nsource: { base_url: \"http://h\" }\nstages:\n"
#define ROOT "  a:\n    inputs: { n: [1, 2] }\n    request: /a?n={n}\n    key: { id: id }\n"

std::optional<std::string> no_env(std::string_view) {
  return std::nullopt;
}

PipelineSpec load(const std::string& yaml) {
  return load_pipeline_text(yaml, "p.yaml", no_env);
}

struct Broken {
  const char* yaml;
  const char* at;
  const char* phrase;
};

const Broken kBroken[] = {
    {HEAD ROOT "    incremental: { param: since }\n", "8:18",
     "missing required key 'cursor_path' in stage 'a' incremental"},
    {HEAD ROOT "    incremental: { cursor_path: updated_at }\n", "8:18",
     "missing required key 'param' in stage 'a' incremental"},
    {HEAD ROOT "    incremental: { cursor_path: updated_at, param: since, intial_value: 0 }\n",
     "8:59", "unknown key 'intial_value' in stage 'a' incremental: did you mean 'initial_value'?"},
    {HEAD ROOT "    incremental: { cursor_path: \"a..b\", param: since }\n", "8:33",
     "incremental.cursor_path must be a record path"},
    {HEAD ROOT "    incremental: { cursor_path: updated_at, param: \"\" }\n", "8:52",
     "incremental.param must be a query parameter name"},
    {HEAD ROOT "    incremental: { cursor_path: u, param: s, initial_value: [1] }\n", "8:61",
     "expected a string or a number for incremental.initial_value, found a list"},
    {HEAD ROOT "    incremental: { cursor_path: u, param: s, initial_value: true }\n", "8:61",
     "incremental.initial_value must be a string or a number"},
    {HEAD ROOT "    incremental: { cursor_path: u, param: n }\n", "8:43",
     "incremental.param 'n' is also in the request of stage 'a'"},
    {HEAD ROOT "    params: { s: \"1\" }\n    incremental: { cursor_path: u, param: s }\n", "9:43",
     "incremental.param 's' is also in stage 'a' params"},
    {HEAD ROOT "    incremental: { cursor_path: u, param: s }\n    deletions: { hold_above: 1 }\n",
     "9:5", "stage 'a' is incremental: its listings hold only what changed"},
    {HEAD ROOT "    incremental: updated_at\n", "8:18",
     "expected a map for stage 'a' incremental, found a scalar"},
};

}  // namespace

TEST(IncrementalConfig, BrokenKeysAreRefusedAtTheirPosition) {
  int index = 0;
  for (const Broken& b : kBroken) {
    SCOPED_TRACE("case " + std::to_string(++index) + ":\n" + b.yaml);
    try {
      load(b.yaml);
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.pos().str(), std::string("p.yaml:") + b.at) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.phrase), std::string::npos) << e.what();
    }
  }
}

TEST(IncrementalConfig, KeysAreReadWithTheirTypes) {
  PipelineSpec s =
      load(HEAD ROOT
           "    incremental: { cursor_path: record.meta.updated, param: updated_since, "
           "initial_value: \"2020-01-01T00:00:00Z\" }\n");
  ASSERT_TRUE(s.stages[0].incremental);
  EXPECT_EQ(s.stages[0].incremental->cursor_path, "meta.updated");
  EXPECT_EQ(s.stages[0].incremental->param, "updated_since");
  EXPECT_EQ(s.stages[0].incremental->initial_value, Value("2020-01-01T00:00:00Z"));
  s = load(HEAD ROOT "    incremental: { cursor_path: seq, param: after, initial_value: 0 }\n");
  EXPECT_EQ(s.stages[0].incremental->initial_value, Value(0));
  s = load(HEAD ROOT "    incremental: { cursor_path: seq, param: after }\n");
  EXPECT_TRUE(s.stages[0].incremental->initial_value.is_null());
  s = load(HEAD ROOT);
  EXPECT_FALSE(s.stages[0].incremental);
}

TEST(IncrementalCursor, NumbersCompareByExactValueStringsByBytes) {
  auto num = [](const char* t) { return parse_json(t); };
  EXPECT_EQ(compare_cursor_values(num("1000"), num("1e3")), 0);
  EXPECT_LT(compare_cursor_values(num("999.999"), num("1e3")), 0);
  EXPECT_LT(compare_cursor_values(num("-5"), num("0.1")), 0);
  EXPECT_GT(compare_cursor_values(num("-0.001"), num("-0.01")), 0);
  // Beyond doubles: 2^63 + 1 against 2^63, and decimals that differ in the 30th digit.
  EXPECT_GT(compare_cursor_values(num("9223372036854775809"), num("9223372036854775808")), 0);
  EXPECT_LT(compare_cursor_values(num("0.100000000000000000000000000001"),
                                  num("0.100000000000000000000000000002")),
            0);
  EXPECT_GT(compare_cursor_values(num("12345678901234567890123"), num("9.99e21")), 0);
  EXPECT_LT(compare_cursor_values(Value("2024-01-01 00:00:00"), Value("2024-01-01 00:00:01")), 0);
  EXPECT_GT(compare_cursor_values(Value("2024-02-01T00:00:00Z"), Value("2024-01-31T23:59:59Z")), 0);
  EXPECT_THROW(compare_cursor_values(Value("1"), Value(1)), DataError);
  EXPECT_THROW(compare_cursor_values(Value(true), Value(1)), DataError);
}

TEST(IncrementalCursor, AdvancesToTheLargestValueAndNeverBack) {
  auto rows = [](std::vector<const char*> images) {
    std::vector<Row> out;
    for (const char* j : images) {
      Row r;
      r.image = parse_json(j);
      r.key = canonical_json(*r.image.find("id"));
      out.push_back(std::move(r));
    }
    return out;
  };
  auto some = rows({R"({"id":1,"u":"2024-01-02"})", R"({"id":2,"u":"2024-01-05"})", R"({"id":3})",
                    R"({"id":4,"u":null})", R"({"id":5,"u":"2024-01-03"})"});
  auto moved = advance_cursor(some, "u", nullptr);
  ASSERT_TRUE(moved);
  EXPECT_EQ(*moved, Value("2024-01-05"));
  Value later("2024-01-09");
  EXPECT_FALSE(advance_cursor(some, "u", &later)) << "a cursor never moves back";
  Value same("2024-01-05");
  EXPECT_FALSE(advance_cursor(some, "u", &same));
  EXPECT_FALSE(advance_cursor({}, "u", &same)) << "an empty listing leaves the cursor";
  auto nested = rows({R"({"id":1,"m":{"v":7}})", R"({"id":2,"m":{"v":12}})"});
  Value zero(0);
  EXPECT_EQ(*advance_cursor(nested, "m.v", &zero), Value(12));
  try {
    advance_cursor(rows({R"({"id":1,"u":"x"})", R"({"id":2,"u":5})"}), "u", nullptr);
    ADD_FAILURE() << "mixed types accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("record 2: cursor field 'u' is a number"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(advance_cursor(rows({R"({"id":1,"u":{"a":1}})"}), "u", nullptr), DataError);
  EXPECT_THROW(advance_cursor(rows({R"({"id":1,"u":3})"}), "u", &later), DataError);
}

TEST(IncrementalCursor, ACursorRenamedIntoAKeyColumnIsReadThere) {
  PipelineSpec s = load(HEAD
                        "  a:\n    inputs: { n: [1] }\n    request: /a\n    key: { seq: id }\n"
                        "    incremental: { cursor_path: id, param: after }\n");
  Plan plan(s);
  EXPECT_EQ(cursor_image_path(plan.stages()[0]), "seq");
}

TEST(IncrementalStore, CursorsArePerScopeAndPartOfTheUnitOfWork) {
  char tmpl[] = "/tmp/cascade_incr_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  ManualClock clock;
  {
    auto store = open_sqlite_store(dir + "/s.db", clock);
    Staging& st = store->staging();
    EXPECT_FALSE(st.cursor("sales", 1));
    store->begin();
    for (uint64_t scope = 1; scope <= 20000; ++scope)
      st.set_cursor("sales", scope, "\"c" + std::to_string(scope) + "\"");
    st.set_cursor("other", 1, "7");
    store->commit();
    EXPECT_EQ(*st.cursor("sales", 1), "\"c1\"");
    EXPECT_EQ(*st.cursor("sales", 20000), "\"c20000\"");
    // A rolled-back unit leaves the cursor where it was.
    store->begin();
    store->savepoint();
    st.set_cursor("sales", 1, "\"moved\"");
    store->rollback_to_savepoint();
    store->commit();
    EXPECT_EQ(*st.cursor("sales", 1), "\"c1\"");
    store->begin();
    EXPECT_EQ(st.clear_cursors("sales"), 20000u);
    store->commit();
    EXPECT_FALSE(st.cursor("sales", 5));
    EXPECT_EQ(*st.cursor("other", 1), "7") << "another stage's cursors stay";
  }
  std::filesystem::remove_all(dir);
}

TEST(IncrementalSim, UpdatedSinceIsParsedAsAUtcTime) {
  using sim::parse_timestamp;
  EXPECT_EQ(parse_timestamp("2024-01-01T00:00:00Z"), 1704067200);
  EXPECT_EQ(parse_timestamp("2024-01-01 00:00:00"), 1704067200);
  EXPECT_EQ(parse_timestamp("2024-01-01"), 1704067200);
  EXPECT_EQ(parse_timestamp("2024-03-01T12:30:05+00:00"), 1709296205);
  EXPECT_EQ(parse_timestamp("1999-12-31T23:59:59Z"), 946684799);
  // A fraction rounds up: whole seconds at or after it.
  EXPECT_EQ(parse_timestamp("2024-01-01T00:00:00.250Z"), 1704067201);
  EXPECT_EQ(parse_timestamp("2024-01-01T00:00:00.000Z"), 1704067200);
  for (const char* bad : {"", "2024", "2024-13-01", "2024-01-01T25:00:00Z", "2024-01-01T00:00",
                          "2024-01-01T00:00:00+02:00", "yesterday", "2024-01-01x"})
    EXPECT_FALSE(parse_timestamp(bad)) << bad;
}

TEST(IncrementalSim, SalesListingKeepsOnlyWhatChangedSince) {
  sim::SimConfig cfg;
  cfg.branches = 2;
  cfg.employees_per_branch = 10;
  sim::Company c(cfg);
  int64_t emp = 0;
  for (int64_t id = 1001; id < c.employee_id_end() && !emp; ++id)
    if (c.is_current_salesperson(id)) emp = id;
  ASSERT_NE(emp, 0);
  auto count = [&](std::optional<int64_t> since) {
    std::string out;
    c.write_sales_response(emp, out, since);
    return parse_json(out).find_path("result.sales")->as_array().size();
  };
  size_t all = count(std::nullopt);
  ASSERT_GT(all, 10u);
  EXPECT_EQ(count(0), all);
  EXPECT_EQ(count(c.now() + 1), 0u) << "nothing was updated after the start";
  // A cursor at exactly a sale's updated_at sees that sale again (>=).
  std::string out;
  c.write_sales_response(emp, out);
  Value listing = parse_json(out);
  const Array& sales = listing.find_path("result.sales")->as_array();
  int64_t at = *sim::parse_timestamp(sales[sales.size() / 2].find("updated_at")->as_string());
  size_t at_or_after = 0;
  for (const auto& s : sales)
    at_or_after += *sim::parse_timestamp(s.find("updated_at")->as_string()) >= at;
  EXPECT_EQ(count(at), at_or_after);
  EXPECT_GE(at_or_after, 1u);
  EXPECT_LT(at_or_after, all);
}
