// The loader against a real SQLite warehouse on a temp file: table creation, schema evolution,
// type inference, upserts and deletes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "load/loader.h"
#include "store/store.h"

using namespace cascade;

namespace {

class LoadLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cascade_loader_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = open_store("sqlite:" + dir_ + "/store.db", clock_);
    loader_ = std::make_unique<Loader>(store_->warehouse());
  }
  void TearDown() override {
    loader_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Warehouse& wh() { return store_->warehouse(); }
  void upsert(const std::vector<const char*>& rows, Loader* loader = nullptr) {
    std::vector<Value> values;
    for (const char* r : rows) values.push_back(parse_json(r));
    std::vector<const Value*> ptrs;
    for (const auto& v : values) ptrs.push_back(&v);
    (loader ? *loader : *loader_).upsert(sales_, ptrs);
  }
  void remove(const std::vector<const char*>& keys) {
    std::vector<Value> values;
    for (const char* k : keys) values.push_back(parse_json(k));
    std::vector<const Value*> ptrs;
    for (const auto& v : values) ptrs.push_back(&v);
    loader_->mark_deleted(sales_, ptrs);
  }
  // "name TYPE" per column, in table order.
  std::vector<std::string> schema(std::string_view table = "sales") {
    std::vector<std::string> out;
    for (const auto& c : wh().columns(table))
      out.push_back(c.name + " " + column_type_name(c.type));
    return out;
  }
  std::vector<std::vector<Value>> rows(const std::string& sql) { return wh().query(sql).rows; }
  // Rows still listed (deleted ones stay, marked).
  int64_t count() {
    return rows("SELECT count(*) FROM sales WHERE _deleted_at IS NULL")[0][0].as_int();
  }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Loader> loader_;
  TableSpec sales_{"sales", {"sale_id", "employee_id"}, std::nullopt};
};

TEST_F(LoadLoader, FirstUpsertCreatesTableWithTypedKeyColumns) {
  EXPECT_TRUE(wh().columns("sales").empty());
  upsert({R"({"sale_id":1,"employee_id":"E7","amount":2.5})",
          R"({"sale_id":2,"employee_id":"E7","amount":4.0})"});
  EXPECT_EQ(schema(),
            (std::vector<std::string>{"sale_id INTEGER", "employee_id TEXT", "amount REAL"}));
  EXPECT_EQ(count(), 2);
  // The key is (sale_id, employee_id): the same key replaces, another employee does not.
  upsert({R"({"sale_id":1,"employee_id":"E7","amount":9.5})",
          R"({"sale_id":1,"employee_id":"E8","amount":1.5})"});
  EXPECT_EQ(count(), 3);
  auto r = rows("SELECT amount FROM sales WHERE sale_id=1 AND employee_id='E7'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_DOUBLE_EQ(r[0][0].as_number(), 9.5);
}

TEST_F(LoadLoader, NewFieldAddsColumnAndEarlierRowsReadNull) {
  upsert({R"({"sale_id":1,"employee_id":5,"amount":2})"});
  upsert({R"({"sale_id":2,"employee_id":5,"amount":3,"note":"rush"})"});
  EXPECT_EQ(schema(), (std::vector<std::string>{"sale_id INTEGER", "employee_id INTEGER",
                                                "amount INTEGER", "note TEXT"}));
  auto r = rows("SELECT sale_id, note FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0][1].is_null());
  EXPECT_EQ(r[1][1].as_string(), "rush");
}

TEST_F(LoadLoader, SameFieldCountWithADifferentNameStillAddsTheColumn) {
  // Rows of one shape take a fast path; a row of equal size but another field must not.
  upsert({R"({"sale_id":1,"employee_id":5,"amount":2})",
          R"({"sale_id":2,"employee_id":5,"amount":3})"});
  upsert({R"({"sale_id":3,"employee_id":5,"amount":4})",
          R"({"sale_id":4,"employee_id":5,"region":"east"})"});
  auto r = rows("SELECT region, amount FROM sales WHERE sale_id=4");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as_string(), "east");
  EXPECT_TRUE(r[0][1].is_null());
  EXPECT_EQ(count(), 4);
}

TEST_F(LoadLoader, NullOnlyFieldCreatesNoColumn) {
  upsert({R"({"sale_id":1,"employee_id":5,"discount":null})",
          R"({"sale_id":2,"employee_id":5,"discount":null})"});
  EXPECT_EQ(schema(), (std::vector<std::string>{"sale_id INTEGER", "employee_id INTEGER"}));
  EXPECT_EQ(count(), 2);
  // Once a value appears the column is typed from it; the earlier rows stay NULL.
  upsert({R"({"sale_id":3,"employee_id":5,"discount":0.25})"});
  EXPECT_EQ(schema().back(), "discount REAL");
  auto r = rows("SELECT sale_id, discount FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_TRUE(r[0][1].is_null());
  EXPECT_DOUBLE_EQ(r[2][1].as_number(), 0.25);
}

TEST_F(LoadLoader, NullThenValueInOneBatchTypesFromTheValue) {
  upsert({R"({"sale_id":1,"employee_id":5,"discount":null})",
          R"({"sale_id":2,"employee_id":5,"discount":3})"});
  EXPECT_EQ(schema().back(), "discount INTEGER");
  auto r = rows("SELECT discount FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0][0].is_null());
  EXPECT_EQ(r[1][0].as_int(), 3);
}

TEST_F(LoadLoader, MarkDeletedKeepsTheRowMarked) {
  upsert({R"({"sale_id":1,"employee_id":5,"amount":1})",
          R"({"sale_id":2,"employee_id":5,"amount":2})",
          R"({"sale_id":2,"employee_id":6,"amount":3})"});
  remove({R"({"sale_id":2,"employee_id":5})"});
  EXPECT_EQ(rows("SELECT count(*) FROM sales")[0][0].as_int(), 3);  // nothing hard-deleted
  auto r = rows(
      "SELECT sale_id, employee_id FROM sales WHERE _deleted_at IS NULL "
      "ORDER BY sale_id, employee_id");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0][0].as_int(), 1);
  EXPECT_EQ(r[1][0].as_int(), 2);
  EXPECT_EQ(r[1][1].as_int(), 6);
  remove({R"({"sale_id":99,"employee_id":5})"});  // absent: nothing happens
  EXPECT_EQ(count(), 2);
}

TEST_F(LoadLoader, RemoveFromMissingTableIsANoOp) {
  EXPECT_NO_THROW(remove({R"({"sale_id":1,"employee_id":5})"}));
  EXPECT_TRUE(wh().columns("sales").empty());  // and creates nothing
}

TEST_F(LoadLoader, ColumnTypesAreInferred) {
  sales_.flatten_depth = 0;  // an object in one JSON column (load_schema_test: flattened)
  upsert({R"({"sale_id":1,"employee_id":"E1","qty":3,"price":1.25,"name":"paper",)"
          R"("paid":true,"tags":["a","b"],"meta":{"k":1}})"});
  EXPECT_EQ(schema(), (std::vector<std::string>{"sale_id INTEGER", "employee_id TEXT",
                                                "qty INTEGER", "price REAL", "name TEXT",
                                                "paid BOOLEAN", "tags JSON", "meta JSON"}));
  auto r = rows("SELECT tags, meta, paid FROM sales");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(parse_json(r[0][0].as_string()), parse_json(R"(["a","b"])"));
  EXPECT_EQ(parse_json(r[0][1].as_string()), parse_json(R"({"k":1})"));
  EXPECT_EQ(column_type_for(Value(false)), ColumnType::Boolean);
  EXPECT_EQ(column_type_for(Value(int64_t{1} << 40)), ColumnType::Integer);
  EXPECT_EQ(column_type_for(Value(0.5)), ColumnType::Real);
  EXPECT_EQ(column_type_for(Value("x")), ColumnType::Text);
  EXPECT_EQ(column_type_for(Value(Array{})), ColumnType::Json);
  EXPECT_EQ(column_type_for(Value(Object{})), ColumnType::Json);
}

TEST_F(LoadLoader, ANewLoaderPicksUpTheExistingSchema) {
  upsert({R"({"sale_id":1,"employee_id":5,"amount":1})"});
  Loader second(wh());
  upsert({R"({"sale_id":2,"employee_id":5,"amount":2,"note":"n"})"}, &second);
  EXPECT_EQ(schema(), (std::vector<std::string>{"sale_id INTEGER", "employee_id INTEGER",
                                                "amount INTEGER", "note TEXT"}));
  EXPECT_EQ(count(), 2);
}

TEST_F(LoadLoader, ResetRereadsSchemaAfterRollback) {
  upsert({R"({"sale_id":1,"employee_id":5})"});
  store_->begin();
  upsert({R"({"sale_id":2,"employee_id":5,"note":"x"})"});
  store_->rollback();
  loader_->reset();
  // The rolled-back column is gone; the loader must add it again rather than trust its cache.
  upsert({R"({"sale_id":3,"employee_id":5,"note":"y"})"});
  auto r = rows("SELECT note FROM sales WHERE sale_id=3");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as_string(), "y");
}

}  // namespace
