// Metadata columns, history intervals, effective dates and soft deletes of the sqlite warehouse,
// on real files, through the Loader as the engine drives it.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/json.h"
#include "load/loader.h"
#include "store/sqlite/sqlite_store.h"

using namespace cascade;

namespace {

class WarehouseHistory : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cascade_history_XXXXXX";
    dir_ = mkdtemp(tmpl);
    store_ = open_sqlite_store(dir_ + "/w.db", clock_);
    loader_ = std::make_unique<Loader>(store_->warehouse());
  }
  void TearDown() override {
    loader_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void write(const TableSpec& t, const char* json, int64_t run, const char* at) {
    Value v = parse_json(json);
    const Value* p = &v;
    loader_->upsert(t, std::span<const Value* const>(&p, 1), WriteStamp{run, at});
  }
  void remove(const TableSpec& t, const char* key, int64_t run, const char* at) {
    Value v = parse_json(key);
    const Value* p = &v;
    loader_->mark_deleted(t, std::span<const Value* const>(&p, 1), WriteStamp{run, at});
  }
  // Rows as one text line each: every cell's text, NULL as ~.
  std::vector<std::string> rows(const std::string& sql) {
    std::vector<std::string> out;
    for (const auto& r : store_->warehouse().query(sql).rows) {
      std::string line;
      for (const auto& v : r) line += (line.empty() ? "" : " ") + (v.is_null() ? "~" : v.to_text());
      out.push_back(line);
    }
    return out;
  }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Loader> loader_;
};

using Lines = std::vector<std::string>;

TEST_F(WarehouseHistory, EveryVersionIsKeptWithItsIntervalAndTheCurrentRowCarriesItsMetadata) {
  TableSpec t{"items", {"id"}, std::nullopt};
  write(t, R"({"id":1,"price":10})", 1, "2026-01-01T00:00:00.000Z");
  write(t, R"({"id":2,"price":5})", 1, "2026-01-01T00:00:00.000Z");
  write(t, R"({"id":1,"price":12})", 2, "2026-01-02T00:00:00.000Z");
  remove(t, R"({"id":1})", 3, "2026-01-03T00:00:00.000Z");
  remove(t, R"({"id":1})", 4, "2026-01-04T00:00:00.000Z");  // deleted already: unchanged
  remove(t, R"({"id":9})", 4, "2026-01-04T00:00:00.000Z");  // never seen: nothing
  EXPECT_EQ(rows("SELECT id, price, _version, _first_seen, _last_changed, _run_id, _deleted_at "
                 "FROM items ORDER BY id"),
            (Lines{"1 12 2 2026-01-01T00:00:00.000Z 2026-01-02T00:00:00.000Z 3 "
                   "2026-01-03T00:00:00.000Z",
                   "2 5 1 2026-01-01T00:00:00.000Z 2026-01-01T00:00:00.000Z 1 ~"}));
  // Back in a listing: a new version, no longer deleted, its history reopened.
  write(t, R"({"id":1,"price":12})", 5, "2026-01-05T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT _version, _deleted_at, _run_id FROM items WHERE id = 1"),
            (Lines{"3 ~ 5"}));
  EXPECT_EQ(rows("SELECT id, price, _version, _valid_from, _valid_to, _run_id FROM items_history "
                 "ORDER BY id, _version"),
            (Lines{"1 10 1 2026-01-01T00:00:00.000Z 2026-01-02T00:00:00.000Z 1",
                   "1 12 2 2026-01-02T00:00:00.000Z 2026-01-03T00:00:00.000Z 2",
                   "1 12 3 2026-01-05T00:00:00.000Z ~ 5", "2 5 1 2026-01-01T00:00:00.000Z ~ 1"}));
  // The table as it was at any moment, from the history alone.
  auto as_of = [&](const char* when) {
    return rows(std::string("SELECT id, price FROM items_history WHERE _valid_from <= '") + when +
                "' AND (_valid_to IS NULL OR _valid_to > '" + when + "') ORDER BY id");
  };
  EXPECT_EQ(as_of("2026-01-01T12:00:00.000Z"), (Lines{"1 10", "2 5"}));
  EXPECT_EQ(as_of("2026-01-03T12:00:00.000Z"), (Lines{"2 5"}));
  EXPECT_EQ(as_of("2026-01-06T00:00:00.000Z"), (Lines{"1 12", "2 5"}));
}

TEST_F(WarehouseHistory, AnEffectiveDateStartsTheVersionItDescribesAndOnlyThatOne) {
  TableSpec t{"people", {"id"}, std::string("since")};
  // Hired in Scranton on March 1st, seen on March 5th.
  write(t, R"({"id":7,"branch":1,"since":"2026-03-01","salary":100})", 1,
        "2026-03-05T00:00:00.000Z");
  // A raise, seen on April 10th: the date still describes the hire, not the raise.
  write(t, R"({"id":7,"branch":1,"since":"2026-03-01","salary":110})", 2,
        "2026-04-10T00:00:00.000Z");
  // A transfer on May 1st, seen on May 3rd: the new version starts at the vendor's date.
  write(t, R"({"id":7,"branch":2,"since":"2026-05-01","salary":110})", 3,
        "2026-05-03T00:00:00.000Z");
  // A date before the previous version began cannot end it before it started.
  write(t, R"({"id":7,"branch":3,"since":"2026-01-01","salary":110})", 4,
        "2026-06-01T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT _version, branch, salary, _valid_from, _valid_to, _effective FROM "
                 "people_history ORDER BY _version"),
            (Lines{"1 1 100 2026-03-01 2026-04-10T00:00:00.000Z 2026-03-01",
                   "2 1 110 2026-04-10T00:00:00.000Z 2026-05-01 2026-03-01",
                   "3 2 110 2026-05-01 2026-05-01 2026-05-01", "4 3 110 2026-01-01 ~ 2026-01-01"}));
  // A record without the field falls back to the time it was seen.
  write(t, R"({"id":8,"branch":1})", 5, "2026-07-01T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT _valid_from, _effective FROM people_history WHERE id = 8"),
            (Lines{"2026-07-01T00:00:00.000Z ~"}));
}

TEST_F(WarehouseHistory, NewFieldsReachTheHistoryTooAndOldRowsKeepNull) {
  TableSpec t{"items", {"id"}, std::nullopt};
  write(t, R"({"id":1,"price":10})", 1, "2026-01-01T00:00:00.000Z");
  write(t, R"({"id":1,"price":10,"colour":"red"})", 2, "2026-01-02T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT _version, colour FROM items_history ORDER BY _version"),
            (Lines{"1 ~", "2 red"}));
}

TEST_F(WarehouseHistory, ATableFromBeforeHistoryGainsItsMetadataAndHistoryOnFirstWrite) {
  store_->warehouse().query("CREATE TABLE old(id, name TEXT, PRIMARY KEY(id))");
  store_->warehouse().query("INSERT INTO old VALUES(1, 'a')");
  TableSpec t{"old", {"id"}, std::nullopt};
  write(t, R"({"id":1,"name":"b"})", 1, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT name, _version FROM old"), (Lines{"b 1"}));
  EXPECT_EQ(rows("SELECT name, _version, _valid_to FROM old_history"), (Lines{"b 1 ~"}));
}

}  // namespace
