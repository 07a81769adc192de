// The PostgreSQL warehouse and change log (src/store/postgres/pg_warehouse.h) on a real
// PostgreSQL 15: what the SQLite warehouse tests check (outcomes, history intervals, deletes,
// schema evolution, catalog, odd names, exact numbers, the change log), plus what only a shared
// server brings: seqs in commit order across connections writing at once.
#include "store/postgres/pg_warehouse.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "core/json.h"
#include "store/names.h"
#include "store/postgres/pg_conn.h"
#include "support/postgres.h"

using namespace cascade;
using namespace std::chrono_literals;
using cascade::pg::Conn;
using cascade::pg::PgChangeLog;
using cascade::pg::PgWarehouse;

namespace {

std::string db_name_of_test() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string("w_") + info->name();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  return name.substr(0, 60);
}

using Lines = std::vector<std::string>;

class PgWarehouseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    url_ = server_->create_database(db_name_of_test());
    conn_ = connect();
    wh_ = std::make_unique<PgWarehouse>(*conn_);
    log_ = std::make_unique<PgChangeLog>(*conn_);
  }
  std::unique_ptr<Conn> connect() {
    auto c = std::make_unique<Conn>(url_);
    c->query("SET TimeZone='UTC'");
    return c;
  }
  Warehouse& wh() { return *wh_; }
  ChangeLog& log() { return *log_; }
  std::vector<Value> query(const std::string& sql, size_t col = 0) {
    std::vector<Value> out;
    for (auto& r : wh().query(sql).rows) out.push_back(r.at(col));
    return out;
  }
  // Rows as one text line each: every cell's text, NULL as ~.
  Lines rows(const std::string& sql) {
    Lines out;
    for (const auto& r : wh().query(sql).rows) {
      std::string line;
      for (const auto& v : r) line += (line.empty() ? "" : " ") + (v.is_null() ? "~" : v.to_text());
      out.push_back(line);
    }
    return out;
  }
  void upsert(std::string_view table, std::vector<Value> rows, WriteStamp stamp = {}) {
    std::vector<const Value*> ptrs;
    for (auto& r : rows) ptrs.push_back(&r);
    wh().upsert(table, ptrs, stamp);
  }
  // One write with an effective-date field, as the loader makes it.
  void write(std::string_view table, const char* json, int64_t run, const char* at,
             const char* effective = nullptr) {
    Value v = parse_json(json);
    std::string_view claim;
    if (effective)
      if (const Value* e = v.find(effective); e && e->is_string()) claim = e->as_string();
    std::vector<RowWrite> w{{&v, claim}};
    wh().upsert(table, std::span<const RowWrite>(w), WriteStamp{run, at});
  }
  void remove(std::string_view table, const char* key, int64_t run, const char* at) {
    Value v = parse_json(key);
    std::vector<const Value*> keys{&v};
    wh().mark_deleted(table, keys, WriteStamp{run, at});
  }
  void make(std::string_view table, std::vector<Column> key, std::vector<Column> more = {}) {
    wh().create_table(table, key);
    if (!more.empty()) wh().add_columns(table, more);
  }

  cascade::testing::PostgresServer* server_ = nullptr;
  std::string url_;
  std::unique_ptr<Conn> conn_;
  std::unique_ptr<PgWarehouse> wh_;
  std::unique_ptr<PgChangeLog> log_;
};

const std::vector<Column> kId{{"id", ColumnType::Integer}};

TEST_F(PgWarehouseTest, CreateAddColumnsUpsertInPlaceAndRemove) {
  std::vector<Column> key{{"sale_id", ColumnType::Integer}, {"employee_id", ColumnType::Integer}};
  wh().create_table("sales", key);
  wh().create_table("sales", key);  // idempotent
  std::vector<Column> more{{"amount", ColumnType::Real},
                           {"note", ColumnType::Text},
                           {"paid", ColumnType::Boolean},
                           {"extra", ColumnType::Json},
                           {"price", ColumnType::Decimal}};
  wh().add_columns("sales", more);
  wh().add_columns("sales", more);  // idempotent
  auto cols = wh().columns("sales");
  ASSERT_EQ(cols.size(), 7u);
  EXPECT_EQ(cols[0].name, "sale_id");
  EXPECT_EQ(cols[0].type, ColumnType::Integer);
  EXPECT_EQ(cols[2].type, ColumnType::Real);
  EXPECT_EQ(cols[4].type, ColumnType::Boolean);
  EXPECT_EQ(cols[5].type, ColumnType::Json);
  EXPECT_EQ(cols[6].type, ColumnType::Decimal);
  EXPECT_TRUE(wh().columns("missing").empty());
  // PostgreSQL's own types, and the metadata columns with theirs.
  EXPECT_EQ(rows("SELECT column_name || ':' || data_type FROM information_schema.columns WHERE "
                 "table_name='sales' ORDER BY ordinal_position"),
            (Lines{"sale_id:bigint", "employee_id:bigint", "_first_seen:timestamp with time zone",
                   "_last_changed:timestamp with time zone", "_version:bigint", "_run_id:bigint",
                   "_deleted_at:timestamp with time zone", "_valid_from:text", "_effective:text",
                   "_seq:bigint", "_hash:bigint", "_scope:bigint", "amount:double precision",
                   "note:text", "paid:boolean", "extra:jsonb", "price:numeric"}));

  upsert("sales", {parse_json(R"({"sale_id":1,"employee_id":7,"amount":9.5,"note":"x",
                                  "paid":true,"extra":{"b":[1,2],"a":null},"price":1.10})"),
                   parse_json(R"({"sale_id":2,"employee_id":7,"amount":1})")});
  auto r = wh().query(
      "SELECT sale_id, amount, note, paid, extra::text, price FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.columns[2], "note");
  EXPECT_EQ(r.rows[0][0].as_int(), 1);
  EXPECT_DOUBLE_EQ(r.rows[0][1].as_double(), 9.5);
  EXPECT_EQ(r.rows[0][2].as_string(), "x");
  EXPECT_EQ(r.rows[0][3].as_int(), 1);
  EXPECT_EQ(r.rows[0][4].as_string(), R"({"a": null, "b": [1, 2]})");
  EXPECT_EQ(r.rows[0][5].as_string(), "1.1");  // exact, as text
  EXPECT_TRUE(r.rows[1][2].is_null());

  // Update in place: version 2, absent columns become NULL, the first version in the history.
  wh().add_columns("sales", std::vector<Column>{{"region", ColumnType::Text}});
  upsert("sales", {parse_json(R"({"employee_id":7,"sale_id":1,"amount":10,"region":"NE"})")});
  EXPECT_EQ(query("SELECT _version FROM sales WHERE sale_id=1")[0].as_int(), 2);
  EXPECT_EQ(query("SELECT count(*) FROM sales")[0].as_int(), 2);
  EXPECT_EQ(query("SELECT count(*) FROM sales_history WHERE sale_id=1")[0].as_int(), 2);
  EXPECT_EQ(query("SELECT note FROM sales_history WHERE sale_id=1 AND _version=1")[0].as_string(),
            "x");
  EXPECT_TRUE(query("SELECT note FROM sales WHERE sale_id=1")[0].is_null());
  EXPECT_EQ(query("SELECT region FROM sales WHERE sale_id=1")[0].as_string(), "NE");

  Value k = parse_json(R"({"sale_id":2,"employee_id":7})");
  std::vector<const Value*> keys{&k};
  EXPECT_EQ(wh().mark_deleted("sales", keys, WriteStamp{3, "2026-01-02T00:00:00.000Z"}), 1u);
  EXPECT_EQ(query("SELECT count(*) FROM sales")[0].as_int(), 2);
  EXPECT_EQ(query("SELECT count(*) FROM sales WHERE _deleted_at IS NULL")[0].as_int(), 1);
  EXPECT_EQ(rows("SELECT _deleted_at, _run_id FROM sales WHERE sale_id=2"),
            (Lines{"2026-01-02 00:00:00+00 3"}));
}

TEST_F(PgWarehouseTest, RejectsUnknownFieldsAndMissingKeysAndLeavesNothing) {
  make("t", kId);
  try {
    upsert("t", {parse_json(R"({"id":1,"surprise":2})")});
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("surprise"), std::string::npos);
  }
  EXPECT_THROW(upsert("t", {parse_json(R"({"id":2})"), parse_json(R"({"other":1})")}),
               std::runtime_error);
  EXPECT_THROW(upsert("missing", {parse_json(R"({"id":1})")}), std::runtime_error);
  EXPECT_EQ(query("SELECT count(*) FROM t")[0].as_int(), 0);  // the failed batch left nothing
  EXPECT_EQ(log().last_seq(), 0);
}

TEST_F(PgWarehouseTest, OddIdentifiers) {
  const std::vector<std::string> names{"select", "a\"b", "semi;colon", "caf\xc3\xa9 \xe2\x82\xac"};
  for (const auto& table : names) {
    std::vector<Column> key{{table, ColumnType::Text}};
    wh().create_table(table, key);
    std::vector<Column> more;
    for (const auto& c : names)
      if (c != table) more.push_back({c, ColumnType::Integer});
    wh().add_columns(table, more);
    Value row = Object{};
    row.set(table, "k");
    for (size_t i = 0; i < more.size(); ++i) row.set(more[i].name, int64_t(i));
    upsert(table, {row});
    upsert(table, {row});
    auto cols = wh().columns(table);
    ASSERT_EQ(cols.size(), names.size());
    EXPECT_EQ(cols[0].name, table);
    const std::string q = wh().quote(table);
    auto r = wh().query("SELECT * FROM " + q);
    ASSERT_EQ(r.rows.size(), 1u) << table;
    EXPECT_EQ(r.columns[0], table);
    EXPECT_EQ(r.rows[0][0].as_string(), "k");
    Value key_only = Object{};
    key_only.set(table, "k");
    std::vector<const Value*> keys{&key_only};
    wh().mark_deleted(table, keys, WriteStamp{1, "2026-01-01T00:00:00.000Z"});
    EXPECT_TRUE(wh().query("SELECT * FROM " + q + " WHERE _deleted_at IS NULL").rows.empty());
    EXPECT_EQ(
        wh().query("SELECT count(*) FROM " + wh().quote(table + "_history")).rows[0][0].as_int(),
        2);
  }
  // Every change of every odd table is in the change log, its key as JSON.
  EXPECT_EQ(log().count(), 3 * static_cast<int64_t>(names.size()));
  EXPECT_EQ(log().read(0, 1).at(0).key, R"(["k"])");
}

TEST_F(PgWarehouseTest, QueryReturnsTypedValuesAndErrors) {
  auto r = wh().query(
      "SELECT 1, 2.5::float8, 'txt', NULL, '\\x6869'::bytea, true, 12345678901234567890.5, "
      "7::int2");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0].as_int(), 1);
  EXPECT_DOUBLE_EQ(r.rows[0][1].as_double(), 2.5);
  EXPECT_EQ(r.rows[0][2].as_string(), "txt");
  EXPECT_TRUE(r.rows[0][3].is_null());
  EXPECT_EQ(r.rows[0][4].as_string(), "hi");
  EXPECT_EQ(r.rows[0][5].as_int(), 1);
  EXPECT_EQ(r.rows[0][6].as_string(), "12345678901234567890.5");  // numeric stays exact
  EXPECT_EQ(r.rows[0][7].as_int(), 7);
  try {
    wh().query("SELEC nonsense");
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("syntax error"), std::string::npos);
  }
  EXPECT_THROW(wh().query("SELECT * FROM no_such_table"), std::runtime_error);
  // Several statements: the last one with columns is the result.
  auto m = wh().query("CREATE TABLE x(a int); INSERT INTO x VALUES(4); SELECT a FROM x;");
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_EQ(m.rows[0][0].as_int(), 4);
  // A sink that stops early ends a long query at once, and the connection goes on.
  struct First : RowSink {
    int rows = 0;
    void columns(std::span<const std::string>) override {}
    bool row(std::span<const Cell>) override { return ++rows < 3; }
  } first;
  auto t0 = std::chrono::steady_clock::now();
  // (Whole, it would take minutes: the rows are streamed, and the rest is never made.)
  wh().query_rows("SELECT generate_series(1, 1000000000)", first);
  EXPECT_EQ(first.rows, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(query("SELECT 5")[0].as_int(), 5);
  // Inside a unit of work too, and neither that nor a failed query ends the unit of work.
  conn_->query("BEGIN");
  wh().query("INSERT INTO x VALUES(5)");
  First again;
  t0 = std::chrono::steady_clock::now();
  wh().query_rows("SELECT generate_series(1, 1000000000)", again);
  EXPECT_EQ(again.rows, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  wh().query("INSERT INTO x VALUES(6)");
  conn_->query("COMMIT");
  EXPECT_EQ(query("SELECT count(*) FROM x")[0].as_int(), 3);
  // A statement the server refuses fails the unit of work, as on the store's own statements.
  conn_->query("BEGIN");
  wh().query("INSERT INTO x VALUES(7)");
  EXPECT_THROW(wh().query("SELECT * FROM no_such_table"), std::runtime_error);
  EXPECT_THROW(wh().query("INSERT INTO x VALUES(8)"), std::runtime_error);
  conn_->query("ROLLBACK");
  EXPECT_EQ(query("SELECT count(*) FROM x")[0].as_int(), 3);

  auto rel = wh().relations();
  std::vector<std::string> names;
  for (const auto& x : rel) names.push_back(x.name + (x.view ? "(v)" : ""));
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_NE(std::find(names.begin(), names.end(), "cascade_change_log(v)"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "x"), names.end());
  EXPECT_EQ(wh().quote("a\"b"), "\"a\"\"b\"");
}

TEST_F(PgWarehouseTest, EveryVersionIsKeptWithItsIntervalAndTheCurrentRowCarriesItsMetadata) {
  make("items", kId, {{"price", ColumnType::Integer}});
  write("items", R"({"id":1,"price":10})", 1, "2026-01-01T00:00:00.000Z");
  write("items", R"({"id":2,"price":5})", 1, "2026-01-01T00:00:00.000Z");
  write("items", R"({"id":1,"price":12})", 2, "2026-01-02T00:00:00.000Z");
  remove("items", R"({"id":1})", 3, "2026-01-03T00:00:00.000Z");
  remove("items", R"({"id":1})", 4, "2026-01-04T00:00:00.000Z");  // deleted already
  remove("items", R"({"id":9})", 4, "2026-01-04T00:00:00.000Z");  // never seen
  EXPECT_EQ(rows("SELECT id, price, _version, _first_seen, _last_changed, _run_id, _deleted_at "
                 "FROM items ORDER BY id"),
            (Lines{"1 12 2 2026-01-01 00:00:00+00 2026-01-02 00:00:00+00 3 2026-01-03 00:00:00+00",
                   "2 5 1 2026-01-01 00:00:00+00 2026-01-01 00:00:00+00 1 ~"}));
  // Back in a listing: a new version, no longer deleted, its history reopened.
  write("items", R"({"id":1,"price":12})", 5, "2026-01-05T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT _version, _deleted_at, _run_id FROM items WHERE id = 1"),
            (Lines{"3 ~ 5"}));
  EXPECT_EQ(rows("SELECT id, price, _version, _valid_from, _valid_to, _run_id FROM items_history "
                 "ORDER BY id, _version"),
            (Lines{"1 10 1 2026-01-01T00:00:00.000Z 2026-01-02T00:00:00.000Z 1",
                   "1 12 2 2026-01-02T00:00:00.000Z 2026-01-03T00:00:00.000Z 2",
                   "1 12 3 2026-01-05T00:00:00.000Z ~ 5", "2 5 1 2026-01-01T00:00:00.000Z ~ 1"}));
  auto as_of = [&](const char* when) {
    return rows(std::string("SELECT id, price FROM items_history WHERE _valid_from <= '") + when +
                "' AND (_valid_to IS NULL OR _valid_to > '" + when + "') ORDER BY id");
  };
  EXPECT_EQ(as_of("2026-01-01T12:00:00.000Z"), (Lines{"1 10", "2 5"}));
  EXPECT_EQ(as_of("2026-01-03T12:00:00.000Z"), (Lines{"2 5"}));
  EXPECT_EQ(as_of("2026-01-06T00:00:00.000Z"), (Lines{"1 12", "2 5"}));
  // New fields reach the history too; old versions keep NULL.
  wh().add_columns("items", std::vector<Column>{{"colour", ColumnType::Text}});
  write("items", R"({"id":2,"price":5,"colour":"red"})", 6, "2026-01-06T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT _version, colour FROM items_history WHERE id = 2 ORDER BY _version"),
            (Lines{"1 ~", "2 red"}));
}

TEST_F(PgWarehouseTest, AnEffectiveDateStartsTheVersionItDescribesAndOnlyThatOne) {
  make("people", kId,
       {{"branch", ColumnType::Integer},
        {"since", ColumnType::Text},
        {"salary", ColumnType::Integer}});
  write("people", R"({"id":7,"branch":1,"since":"2026-03-01","salary":100})", 1,
        "2026-03-05T00:00:00.000Z", "since");
  write("people", R"({"id":7,"branch":1,"since":"2026-03-01","salary":110})", 2,
        "2026-04-10T00:00:00.000Z", "since");
  write("people", R"({"id":7,"branch":2,"since":"2026-05-01","salary":110})", 3,
        "2026-05-03T00:00:00.000Z", "since");
  write("people", R"({"id":7,"branch":3,"since":"2026-01-01","salary":110})", 4,
        "2026-06-01T00:00:00.000Z", "since");
  EXPECT_EQ(rows("SELECT _version, branch, salary, _valid_from, _valid_to, _effective FROM "
                 "people_history ORDER BY _version"),
            (Lines{"1 1 100 2026-03-01 2026-04-10T00:00:00.000Z 2026-03-01",
                   "2 1 110 2026-04-10T00:00:00.000Z 2026-05-01 2026-03-01",
                   "3 2 110 2026-05-01 2026-05-01 2026-05-01", "4 3 110 2026-01-01 ~ 2026-01-01"}));
  write("people", R"({"id":8,"branch":1})", 5, "2026-07-01T00:00:00.000Z", "since");
  EXPECT_EQ(rows("SELECT _valid_from, _effective FROM people_history WHERE id = 8"),
            (Lines{"2026-07-01T00:00:00.000Z ~"}));
}

TEST_F(PgWarehouseTest, ATableMadeByHandGainsItsMetadataAndHistoryOnFirstWrite) {
  wh().query("CREATE TABLE old(id bigint PRIMARY KEY, name text)");
  wh().query("INSERT INTO old VALUES(1, 'a')");
  make("old", kId);
  write("old", R"({"id":1,"name":"b"})", 1, "2026-01-01T00:00:00.000Z");
  write("old", R"({"id":2,"name":"c"})", 1, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(rows("SELECT id, name, _version FROM old ORDER BY id"), (Lines{"1 b 1", "2 c 1"}));
  EXPECT_EQ(rows("SELECT id, name, _version, _valid_to FROM old_history ORDER BY id"),
            (Lines{"1 b 1 ~", "2 c 1 ~"}));
  EXPECT_EQ(log().count("old"), 2);
}

TEST_F(PgWarehouseTest, OutcomesCompareAndSetScopedDeletesAndRevival) {
  make("t", kId, {{"v", ColumnType::Text}});
  Value a = parse_json(R"({"id":1,"v":"a"})"), b = parse_json(R"({"id":2,"v":"b"})");
  Value a2 = parse_json(R"({"id":1,"v":"a2"})");
  const WriteStamp s1{1, "2026-01-01T00:00:00.000Z"}, s2{2, "2026-01-02T00:00:00.000Z"};
  std::vector<WriteOutcome> out(2);
  std::vector<RowWrite> w{{&a, {}, 11, 100}, {&b, {}, 22, 200}};
  wh().upsert("t", w, s1, out);
  EXPECT_EQ(out, (std::vector<WriteOutcome>{WriteOutcome::Inserted, WriteOutcome::Inserted}));
  wh().upsert("t", w, s2, out);  // a replay: same hashes
  EXPECT_EQ(out, (std::vector<WriteOutcome>{WriteOutcome::Unchanged, WriteOutcome::Unchanged}));
  std::vector<RowWrite> w2{{&a2, {}, 12, 100, true}, {&b, {}, 22, 200, true}};
  wh().upsert("t", w2, s2, out);
  EXPECT_EQ(out, (std::vector<WriteOutcome>{WriteOutcome::Updated, WriteOutcome::Unchanged}));
  // The uint64 hash and scope round-trip through bigint, the high bit included.
  Value c = parse_json(R"({"id":3,"v":"c"})");
  std::vector<RowWrite> w3{{&c, {}, ~uint64_t{0}, uint64_t{1} << 63}};
  wh().upsert("t", w3, s2, std::span<WriteOutcome>(out.data(), 1));
  wh().upsert("t", w3, s2, std::span<WriteOutcome>(out.data(), 1));
  EXPECT_EQ(out[0], WriteOutcome::Unchanged);
  EXPECT_EQ(rows("SELECT _hash, _scope FROM t WHERE id = 3"), (Lines{"-1 -9223372036854775808"}));
  // Deletes: only the rows the listing (scope) wrote; each key once.
  Value k1 = parse_json(R"({"id":1})"), k2 = parse_json(R"({"id":2})"),
        k9 = parse_json(R"({"id":9})");
  std::vector<const Value*> keys{&k1, &k2, &k9, &k1};
  std::vector<char> deleted(keys.size(), 7);
  EXPECT_EQ(wh().mark_deleted("t", keys, WriteStamp{3, "2026-01-03T00:00:00.000Z"}, 100, deleted),
            1u);
  EXPECT_EQ(deleted, (std::vector<char>{1, 0, 0, 0}));
  EXPECT_EQ(wh().mark_deleted("t", keys, WriteStamp{3, "2026-01-03T00:00:00.000Z"}, std::nullopt,
                              deleted),
            1u);
  EXPECT_EQ(deleted, (std::vector<char>{0, 1, 0, 0}));
  // A deleted row written again, with the same content and hash, is revived.
  wh().upsert("t", w, WriteStamp{4, "2026-01-04T00:00:00.000Z"}, out);
  EXPECT_EQ(out, (std::vector<WriteOutcome>{WriteOutcome::Revived, WriteOutcome::Revived}));
  EXPECT_EQ(rows("SELECT id, v, _version, _deleted_at, _run_id FROM t ORDER BY id"),
            (Lines{"1 a 3 ~ 4", "2 b 2 ~ 4", "3 c 1 ~ 2"}));
  // The same key twice in one call: the second write sees the first.
  Value a3 = parse_json(R"({"id":1,"v":"a3"})");
  std::vector<RowWrite> twice{{&a2, {}, 12}, {&a3, {}, 13}};
  wh().upsert("t", twice, WriteStamp{5, "2026-01-05T00:00:00.000Z"}, out);
  EXPECT_EQ(out, (std::vector<WriteOutcome>{WriteOutcome::Updated, WriteOutcome::Updated}));
  EXPECT_EQ(rows("SELECT v, _version FROM t WHERE id = 1"), (Lines{"a3 5"}));
}

TEST_F(PgWarehouseTest, ChildTablesAndTheirDeletedItems) {
  make("orders", kId);
  make("orders__lines", {{"id", ColumnType::Integer}, {"_index", ColumnType::Integer}},
       {{"sku", ColumnType::Text}});
  wh().link_child_table({"orders__lines", "orders", "lines", R"(["lines"])"});
  wh().link_child_table({"orders__lines", "orders", "lines", R"(["lines"])"});  // idempotent
  auto children = wh().child_tables("orders");
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(children[0].table, "orders__lines");
  EXPECT_EQ(children[0].field, "lines");
  EXPECT_EQ(children[0].field_json, R"(["lines"])");
  EXPECT_TRUE(wh().child_tables("orders__lines").empty());
  std::vector<Value> items;
  for (int order = 1; order <= 2; ++order)
    for (int i = 0; i < 3; ++i)
      items.push_back(parse_json("{\"id\":" + std::to_string(order) + ",\"_index\":" +
                                 std::to_string(i) + ",\"sku\":\"s" + std::to_string(i) + "\"}"));
  upsert("orders__lines", items, WriteStamp{1, "2026-01-01T00:00:00.000Z"});
  // Order 1 now has one line, order 2 still three.
  Value p1 = parse_json(R"({"id":1})"), p2 = parse_json(R"({"id":2})");
  std::vector<const Value*> parents{&p1, &p2};
  std::vector<int64_t> from{1, 3};
  wh().mark_deleted_items("orders__lines", parents, from,
                          WriteStamp{2, "2026-01-02T00:00:00.000Z"});
  EXPECT_EQ(rows("SELECT id, _index FROM orders__lines WHERE _deleted_at IS NULL ORDER BY 1, 2"),
            (Lines{"1 0", "2 0", "2 1", "2 2"}));
  auto gone = log().read(0, 100);
  ASSERT_EQ(gone.size(), 8u);
  EXPECT_EQ(gone[6].kind, ChangeKind::Gone);
  EXPECT_EQ(gone[6].key, "[1,1]");
  EXPECT_EQ(gone[7].key, "[1,2]");
  EXPECT_EQ(gone[7].image, R"({"_index":2,"id":1})");
  EXPECT_THROW(wh().mark_deleted_items("orders", parents, from, {}), std::runtime_error);
}

TEST_F(PgWarehouseTest, CatalogAndTypeConflicts) {
  Column key{"id", ColumnType::Integer};
  wh().create_table("t", std::vector<Column>{key});
  Column nested{"manager_name", ColumnType::Text, "manager.name"};
  nested.field_json = R"(["manager","name"])";
  std::vector<Column> more{{"n", ColumnType::Integer},
                           nested,
                           {"_overflow", ColumnType::Json, "extra1"},
                           {"_overflow", ColumnType::Json, "extra2"}};
  wh().add_columns("t", more);
  auto cat = wh().catalog("t");
  ASSERT_EQ(cat.size(), 5u);
  EXPECT_EQ(cat[0].field_name(), "id");
  EXPECT_EQ(cat[2].name, "manager_name");
  EXPECT_EQ(cat[2].field_name(), "manager.name");
  EXPECT_EQ(cat[2].field_json, R"(["manager","name"])");
  EXPECT_EQ(cat[3].name, "_overflow");
  EXPECT_EQ(cat[4].field_name(), "extra2");
  EXPECT_EQ(wh().columns("t").size(), 4u);  // the overflow column once
  std::vector<TypeConflict> c{{"t", "n", "n", ColumnType::Integer, ColumnType::Text, 2}};
  wh().record_type_conflicts(c, WriteStamp{1, "2026-01-01T00:00:00.000Z"});
  c[0].count = 1;
  c.push_back(c[0]);  // twice in one call: added up
  c[1].count = 2;
  wh().record_type_conflicts(c, WriteStamp{2, "2026-01-02T00:00:00.000Z"});
  EXPECT_EQ(rows("SELECT table_name, column_name, expected_type, seen_type, first_seen, "
                 "last_seen, count FROM cascade_type_conflicts"),
            (Lines{"t n INTEGER TEXT 2026-01-01 00:00:00+00 2026-01-02 00:00:00+00 5"}));
}

TEST_F(PgWarehouseTest, ExactNumbersWidenTheirColumnAndSurviveEverywhere) {
  make("n", kId,
       {{"big", ColumnType::Integer},
        {"real", ColumnType::Real},
        {"dec", ColumnType::Decimal},
        {"word", ColumnType::Integer},
        {"j", ColumnType::Json}});
  upsert("n", {parse_json(R"({"id":1,"big":5,"real":0.5,"dec":1,"word":1,"j":1})")},
         WriteStamp{1, "2026-01-01T00:00:00.000Z"});
  // An analyst's view over the table lives through the columns' widening.
  wh().define_view("n_view", "SELECT id, big, real FROM n");
  upsert("n",
         {parse_json(R"({"id":2,"big":123456789012345678901234567890,
                      "real":0.1000000000000000055511151231257827,
                      "dec":-0.000000000000000000000000000001,"word":"ten",
                      "j":123456789012345678901234567890.5})"),
          parse_json(R"({"id":3,"big":9007199254740993,"real":9007199254740993})")},
         WriteStamp{2, "2026-01-02T00:00:00.000Z"});
  EXPECT_EQ(rows("SELECT id, big::text, real::text, dec::text, word, j::text FROM n ORDER BY id"),
            (Lines{"1 5 0.5 1 1 1",
                   "2 123456789012345678901234567890 0.1000000000000000055511151231257827 "
                   "-0.000000000000000000000000000001 ten 123456789012345678901234567890.5",
                   "3 9007199254740993 9007199254740993 ~ ~ ~"}));
  EXPECT_EQ(rows("SELECT column_name || ':' || data_type FROM information_schema.columns WHERE "
                 "table_name='cascade_past_n' AND column_name IN ('big', 'real', 'word') ORDER "
                 "BY 1"),
            (Lines{"big:numeric", "real:numeric", "word:text"}));
  // The catalog still says what the fields are.
  EXPECT_EQ(wh().columns("n")[1].type, ColumnType::Integer);
  EXPECT_EQ(rows("SELECT big::text FROM n_view WHERE id = 2"),
            (Lines{"123456789012345678901234567890"}));
  // The history and the change log carry them as they are.
  upsert("n", {parse_json(R"({"id":2,"big":1})")}, WriteStamp{3, "2026-01-03T00:00:00.000Z"});
  EXPECT_EQ(rows("SELECT big::text FROM n_history WHERE id = 2 ORDER BY _version"),
            (Lines{"123456789012345678901234567890", "1"}));
  auto changes = log().read(0, 10);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(
      changes[1].image,
      R"({"id":2,"big":123456789012345678901234567890,"real":0.1000000000000000055511151231257827,"dec":-1e-30,"word":"ten","j":123456789012345678901234567890.5})");
  // Beyond what numeric (and jsonb) can hold: their columns become text, every digit kept.
  upsert("n", {parse_json(R"({"id":4,"dec":1e-20000,"j":{"x":1e400000}})")},
         WriteStamp{4, "2026-01-04T00:00:00.000Z"});
  EXPECT_EQ(rows("SELECT dec, j FROM n WHERE id = 4"), (Lines{R"(1e-20000 {"x":1e400000})"}));
  EXPECT_EQ(rows("SELECT dec, j FROM n_history WHERE id = 2 AND _version = 1"),
            (Lines{"-0.000000000000000000000000000001 123456789012345678901234567890.5"}));
  // Text PostgreSQL cannot hold at all is refused, naming the column, and nothing is written.
  Value nul = Object{};
  nul.set("id", int64_t{5});
  nul.set("word", std::string("a\0b", 3));
  try {
    upsert("n", {nul});
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'word'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
  }
  EXPECT_EQ(query("SELECT count(*) FROM n")[0].as_int(), 4);
}

// A widening undone by the caller's rollback leaves this object's layout stale: the next write
// sees it and reads the table again, rather than cast 2.5 for a numeric column into the bigint
// one (which PostgreSQL would round to 3).
TEST_F(PgWarehouseTest, AWideningUndoneByARollbackIsNoticedBeforeWriting) {
  make("t", kId, {{"n", ColumnType::Integer}});
  conn_->query("BEGIN");
  upsert("t", {parse_json(R"({"id":1,"n":123456789012345678901234567890})")});
  conn_->query("ROLLBACK");
  upsert("t", {parse_json(R"({"id":2,"n":2.5})")});
  EXPECT_EQ(rows("SELECT id, n::text FROM t"), (Lines{"2 2.5"}));
  EXPECT_EQ(rows("SELECT data_type FROM information_schema.columns WHERE table_name = 't' AND "
                 "column_name = 'n'"),
            (Lines{"numeric"}));
}

TEST_F(PgWarehouseTest, ChangeLogIsTheVersionsAndDeletionsInCommitOrder) {
  EXPECT_EQ(log().last_seq(), 0);
  make("sales", kId, {{"amount", ColumnType::Real}});
  make("branches", kId);
  Value r0 = parse_json(R"({"id":0,"amount":0.30000000000000004})");
  Value r1 = parse_json(R"({"id":1,"amount":2.5})");
  Value r1b = parse_json(R"({"id":1,"amount":3})");
  Value b4 = parse_json(R"({"id":4})");
  std::vector<RowWrite> w{{&r0, {}, 5}, {&r1, {}, 6}};
  wh().upsert("sales", w, WriteStamp{1, "2026-01-01T00:00:00.000Z"});
  std::vector<RowWrite> w2{{&r1b, {}, 7}, {&r0, {}, 5}};  // r0 unchanged: no entry
  std::vector<WriteOutcome> out(2);
  wh().upsert("sales", w2, WriteStamp{2, "2026-01-02T00:00:00.000Z"}, out);
  EXPECT_EQ(out[0], WriteOutcome::Updated);
  EXPECT_EQ(out[1], WriteOutcome::Unchanged);
  upsert("branches", {b4}, WriteStamp{2, "2026-01-02T00:00:00.000Z"});
  remove("branches", R"({"id":4})", 2, "2026-01-03T00:00:00.000Z");

  auto first = log().read(0, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].table, "sales");
  EXPECT_EQ(first[0].key, "[0]");
  EXPECT_EQ(first[0].kind, ChangeKind::New);
  EXPECT_EQ(first[0].image, R"({"id":0,"amount":0.30000000000000004})");  // not rounded
  EXPECT_EQ(first[0].at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(first[1].key, "[1]");
  auto rest = log().read(first.back().seq, 100);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_GT(rest[0].seq, first[1].seq);
  EXPECT_EQ(rest[0].kind, ChangeKind::Changed);
  EXPECT_EQ(rest[0].image, R"({"id":1,"amount":3})");
  EXPECT_EQ(rest[0].at, "2026-01-02T00:00:00.000Z");
  EXPECT_EQ(rest[1].table, "branches");
  EXPECT_EQ(rest[2].kind, ChangeKind::Gone);
  EXPECT_EQ(rest[2].image, R"({"id":4})");
  EXPECT_EQ(rest[2].run_id, 2);
  EXPECT_EQ(rest[2].at, "2026-01-03T00:00:00.000Z");
  EXPECT_EQ(log().last_seq(), rest[2].seq);
  EXPECT_TRUE(log().read(rest[2].seq, 10).empty());
  EXPECT_EQ(log().count(), 5);
  EXPECT_EQ(log().count("sales"), 3);
  EXPECT_EQ(log().count({}, 2), 3);
  EXPECT_EQ(log().count("sales", 2), 1);
  // The view as analysts read it.
  EXPECT_EQ(rows("SELECT seq, table_name, key, operation, run_id FROM cascade_change_log"),
            (Lines{std::to_string(first[0].seq) + " sales [0] insert 1",
                   std::to_string(first[1].seq) + " sales [1] insert 1",
                   std::to_string(rest[0].seq) + " sales [1] update 2",
                   std::to_string(rest[1].seq) + " branches [4] insert 2",
                   std::to_string(rest[2].seq) + " branches [4] delete 2"}));
  // A rolled-back write leaves no entry, and the next one comes after every earlier one.
  conn_->query("BEGIN");
  Value r9 = parse_json(R"({"id":9})");
  upsert("branches", {r9});
  conn_->query("ROLLBACK");
  wh_->forget();
  upsert("branches", {r9});
  auto last = log().read(rest[2].seq, 10);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_GT(last[0].seq, rest[2].seq);
}

TEST_F(PgWarehouseTest, ViewsMayPrecedeTheirTablesAndFollowTheirColumns) {
  wh().define_view("recent", "SELECT * FROM later");
  EXPECT_THROW(wh().query("SELECT * FROM recent"), std::runtime_error);
  make("later", kId);
  upsert("later", {parse_json(R"({"id":1})")});
  EXPECT_EQ(query("SELECT count(*) FROM recent")[0].as_int(), 1);
  wh().add_columns("later", std::vector<Column>{{"name", ColumnType::Text}});
  upsert("later", {parse_json(R"({"id":1,"name":"x"})")});
  EXPECT_EQ(query("SELECT name FROM recent")[0].as_string(), "x");
  wh().define_view("recent", "SELECT id FROM later WHERE name = 'x'");
  EXPECT_EQ(wh().query("SELECT * FROM recent").columns, std::vector<std::string>{"id"});
  // A view over the change log lives through its redefinition.
  wh().define_view("log_count", "SELECT count(*) AS n FROM cascade_change_log");
  make("another", kId);
  EXPECT_EQ(query("SELECT n FROM log_count")[0].as_int(), 2);
}

// Every worker declares its tables and views when it starts: declaring them again as they are
// takes no lock, so a worker starting never waits for another one's schema work.
TEST_F(PgWarehouseTest, DeclaringTheSchemaAgainAsItIsTakesNoLock) {
  Column key{"id", ColumnType::Integer};
  wh().create_table("t", std::vector<Column>{key});
  wh().define_view("v", "SELECT id FROM t");
  log().define_view();
  auto other = connect();
  other->query("SELECT pg_advisory_lock(hashtext('cascade_schema'))");
  conn_->query("SET lock_timeout = '1s'");
  auto c2 = connect();
  c2->query("SET lock_timeout = '1s'");
  EXPECT_NO_THROW({
    PgWarehouse again(*c2);
    PgChangeLog log2(*c2);
    again.create_table("t", std::vector<Column>{key});
    again.define_view("v", "SELECT id FROM t");
    log2.define_view();
  });
  // A change does wait for the lock (and gives up here).
  EXPECT_ANY_THROW(wh().define_view("v", "SELECT id, _version FROM t"));
  other->query("SELECT pg_advisory_unlock(hashtext('cascade_schema'))");
  wh().define_view("v", "SELECT id, _version FROM t");
  EXPECT_EQ(wh().query("SELECT * FROM v").columns, (std::vector<std::string>{"id", "_version"}));
}

// The seq counter serialises writers until they commit: a second writer's seqs come after the
// first one's commit, so a reader following seq never sees a gap filled later.
TEST_F(PgWarehouseTest, SeqIsCommitOrderedAcrossConnections) {
  make("t", kId);
  auto c1 = connect(), c2 = connect(), reader = connect();
  PgWarehouse w1(*c1), w2(*c2);
  PgChangeLog follow(*reader);
  Value x = parse_json(R"({"id":1})"), y = parse_json(R"({"id":2})");
  c1->query("BEGIN");
  w1.upsert("t", std::vector<const Value*>{&x});
  std::atomic<bool> second_done{false};
  std::thread second([&] {
    c2->query("BEGIN");
    w2.upsert("t", std::vector<const Value*>{&y});
    c2->query("COMMIT");
    second_done = true;
  });
  std::this_thread::sleep_for(500ms);
  // The second writer waits for the first: nothing it wrote is visible, nor committed.
  EXPECT_FALSE(second_done.load());
  EXPECT_TRUE(follow.read(0, 10).empty());
  c1->query("COMMIT");
  second.join();
  auto all = follow.read(0, 10);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key, "[1]");
  EXPECT_EQ(all[1].key, "[2]");
  EXPECT_LT(all[0].seq, all[1].seq);

  // A replay of unchanged rows takes no lock: it passes a writer that holds the counter.
  Value xh = parse_json(R"({"id":3})");
  std::vector<RowWrite> hashed{{&xh, {}, 42}};
  w2.upsert("t", hashed, {});
  c1->query("BEGIN");
  w1.upsert("t", std::vector<const Value*>{&y});
  c2->query("SET lock_timeout = '2s'");
  std::vector<WriteOutcome> out(1);
  EXPECT_NO_THROW(w2.upsert("t", hashed, {}, out));
  EXPECT_EQ(out[0], WriteOutcome::Unchanged);
  c1->query("COMMIT");
}

// Four connections write batches at once while a reader follows seq: every entry the reader
// ever misses would be one committed behind its cursor.
TEST_F(PgWarehouseTest, AReaderFollowingSeqNeverSkipsAnEntryUnderConcurrentWriters) {
  make("t", kId, {{"v", ColumnType::Integer}});
  constexpr int kWriters = 4, kRounds = 25, kRows = 20;
  std::atomic<int> running{kWriters};
  std::vector<std::thread> writers;
  std::atomic<bool> failed{false};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      try {
        auto c = connect();
        PgWarehouse wh(*c);
        for (int round = 0; round < kRounds; ++round) {
          std::vector<Value> rows;
          // Overlapping keys across writers, so that they also update one another's rows.
          for (int i = 0; i < kRows; ++i)
            rows.push_back(parse_json("{\"id\":" + std::to_string((w * 7 + round * 3 + i) % 60) +
                                      ",\"v\":" + std::to_string(w * 1000 + round) + "}"));
          std::vector<const Value*> ptrs;
          for (auto& r : rows) ptrs.push_back(&r);
          c->query("BEGIN");
          wh.upsert("t", ptrs, WriteStamp{w + 1, "2026-01-01T00:00:00.000Z"});
          std::this_thread::sleep_for(std::chrono::milliseconds(round % 3));
          c->query("COMMIT");
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        failed = true;
      }
      --running;
    });
  }
  auto rc = connect();
  PgChangeLog follow(*rc);
  std::vector<int64_t> seen;
  int64_t cursor = 0;
  for (int polls = 0; polls < 100000; ++polls) {
    bool done = running.load() == 0;
    for (const auto& ch : follow.read(cursor, 1000)) {
      seen.push_back(ch.seq);
      cursor = ch.seq;
    }
    if (done) break;
  }
  for (auto& t : writers) t.join();
  ASSERT_FALSE(failed.load());
  std::vector<int64_t> all;
  for (const auto& ch : follow.read(0, 100000)) all.push_back(ch.seq);
  EXPECT_EQ(all.size(), static_cast<size_t>(kWriters * kRounds * kRows));
  EXPECT_EQ(seen, all);
}

// Workers starting at once on an empty database, each batch one unit of work that may create
// the table, add its own column and write: the schema is made once, every row lands, and the
// change log holds each write once. A unit of work PostgreSQL ends to break a deadlock (DDL
// after the seq counter) is retried, as the engine retries a failed message.
TEST_F(PgWarehouseTest, ConcurrentWorkersCreateTheSchemaOnceAndLoseNoWrite) {
  constexpr int kWriters = 4, kRounds = 10;
  std::atomic<int> retries{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      try {
        auto c = connect();
        PgWarehouse wh(*c);
        const std::string col = "c" + std::to_string(w);
        for (int round = 0; round < kRounds; ++round) {
          Value row = parse_json("{\"id\":" + std::to_string(w * 100 + round) + ",\"" + col +
                                 "\":" + std::to_string(round) + "}");
          for (int attempt = 0;; ++attempt) {
            try {
              c->query("BEGIN");
              wh.create_table("t", kId);
              wh.add_columns("t", std::vector<Column>{{col, ColumnType::Integer}});
              wh.upsert("t", std::vector<const Value*>{&row});
              c->query("COMMIT");
              break;
            } catch (const std::runtime_error& e) {
              c->query("ROLLBACK");
              wh.forget();
              // A deadlock victim or a serialization failure, whatever class reports it.
              std::string what = e.what();
              bool retry = what.find("[40P01]") != std::string::npos ||
                           what.find("[40001]") != std::string::npos;
              if (!retry || attempt > 20) throw;
              ++retries;
            }
          }
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(query("SELECT count(*) FROM t")[0].as_int(), kWriters * kRounds);
  EXPECT_EQ(wh().columns("t").size(), 1u + kWriters);
  EXPECT_EQ(log().count("t"), kWriters * kRounds);
  EXPECT_EQ(query("SELECT count(*) FROM cascade_tables WHERE table_name = 't'")[0].as_int(), 1);
  EXPECT_EQ(query("SELECT count(DISTINCT seq) FROM cascade_change_log")[0].as_int(),
            kWriters * kRounds);
  std::fprintf(stderr, "deadlock retries: %d\n", retries.load());
}

// Run by hand (--gtest_also_run_disabled_tests): 100k rows in batches of 1000, each its own
// unit of work, first written, then replayed unchanged, then all changed.
TEST_F(PgWarehouseTest, DISABLED_BatchedWritesBenchmark) {
  make("sales", {{"id", ColumnType::Integer}},
       {{"amount", ColumnType::Real}, {"note", ColumnType::Text}, {"n", ColumnType::Integer}});
  std::vector<Value> rows;
  for (int i = 0; i < 100000; ++i)
    rows.push_back(parse_json("{\"id\":" + std::to_string(i) + ",\"amount\":" + std::to_string(i) +
                              ".25,\"note\":\"note " + std::to_string(i) +
                              "\",\"n\":" + std::to_string(i * 3) + "}"));
  auto run = [&](const char* what, uint64_t salt, WriteOutcome expected) {
    std::vector<RowWrite> w;
    for (size_t i = 0; i < rows.size(); ++i) w.push_back({&rows[i], {}, i + salt});
    std::vector<WriteOutcome> out(w.size());
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < w.size(); i += 1000) {
      conn_->query("BEGIN");
      wh().upsert("sales", std::span<const RowWrite>(w).subspan(i, 1000),
                  WriteStamp{1, "2026-01-01T00:00:00.000Z"},
                  std::span<WriteOutcome>(out).subspan(i, 1000));
      conn_->query("COMMIT");
    }
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::fprintf(stderr, "%s: %lld ms for %zu rows\n", what, static_cast<long long>(ms),
                 rows.size());
    EXPECT_EQ(std::count(out.begin(), out.end(), expected), static_cast<long>(rows.size()));
  };
  run("insert", 1, WriteOutcome::Inserted);
  run("unchanged", 1, WriteOutcome::Unchanged);
  run("update", 2, WriteOutcome::Updated);
  EXPECT_EQ(log().count(), 200000);
}

}  // namespace
