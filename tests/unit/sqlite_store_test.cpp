// Staging, change log, warehouse, units of work and durability of the sqlite store, on real files.
#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/json.h"
#include "store/names.h"

using namespace cascade;
using namespace std::chrono_literals;

namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cascade_sqlite_s_XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/store.db";
    store_ = open_sqlite_store(path_, clock_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void reopen(StoreOptions o = {}) {
    store_.reset();
    store_ = open_sqlite_store(path_, clock_, o);
  }
  Staging& st() { return store_->staging(); }
  Warehouse& wh() { return store_->warehouse(); }
  std::vector<Value> query(const std::string& sql, size_t col = 0) {
    std::vector<Value> out;
    for (auto& r : wh().query(sql).rows) out.push_back(r.at(col));
    return out;
  }
  void upsert(std::string_view table, std::vector<Value> rows) {
    std::vector<const Value*> ptrs;
    for (auto& r : rows) ptrs.push_back(&r);
    wh().upsert(table, ptrs);
  }

  ManualClock clock_;
  std::string dir_, path_;
  std::unique_ptr<Store> store_;
};

std::unordered_map<std::string, uint64_t> hashes(Staging& s, std::vector<std::string> keys) {
  std::unordered_map<std::string, uint64_t> out;
  s.get_hashes("sales", keys, out);
  return out;
}

TEST_F(SqliteStoreTest, StagingScopesHashesGoneAndCount) {
  st().create_stage("sales");
  st().create_stage("sales");                     // idempotent
  const uint64_t big = 0xF000'0000'0000'0001ull;  // does not fit a signed 64-bit integer
  std::vector<StagedRow> a{{"[1]", 11}, {"[2]", big}};
  std::vector<StagedRow> b{{"[3]", 33}};
  st().upsert("sales", 100, a);
  st().upsert("sales", 200, b);
  EXPECT_EQ(st().count("sales"), 3);

  std::vector<StagedRow> rows;
  st().scope_rows("sales", 100, rows);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].key == "[1]" ? rows[1].hash : rows[0].hash, big);

  auto h = hashes(st(), {"[1]", "[2]", "[3]", "[4]"});
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h["[1]"], 11u);
  EXPECT_EQ(h["[2]"], big);
  EXPECT_EQ(h.count("[4]"), 0u);

  std::vector<std::string> gone{"[1]"};
  st().mark_gone("sales", gone);
  EXPECT_EQ(st().count("sales"), 2);
  EXPECT_EQ(hashes(st(), {"[1]"}).size(), 0u);
  rows.clear();
  st().scope_rows("sales", 100, rows);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, "[2]");

  // Upserting again revives the row, under its new scope and hash.
  std::vector<StagedRow> again{{"[1]", 12}};
  st().upsert("sales", 200, again);
  EXPECT_EQ(st().count("sales"), 3);
  EXPECT_EQ(hashes(st(), {"[1]"})["[1]"], 12u);
  rows.clear();
  st().scope_rows("sales", 200, rows);
  EXPECT_EQ(rows.size(), 2u);
}

TEST_F(SqliteStoreTest, HeldListingsArePerStageAndScopeDurableAndPartOfTheUnitOfWork) {
  st().create_stage("sales");
  const uint64_t big = 0xF000'0000'0000'0002ull;
  EXPECT_FALSE(st().held_listing("sales", 7).has_value());
  st().hold_listing("sales", 7, HeldListing{big, 3});
  st().hold_listing("branches", 7, HeldListing{1, 3});
  auto h = st().held_listing("sales", 7);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->fingerprint, big);
  EXPECT_EQ(h->run_id, 3);
  st().hold_listing("sales", 7, HeldListing{5, 4});  // replaces
  EXPECT_EQ(st().held_listing("sales", 7)->fingerprint, 5u);
  // A hold written in a rolled-back unit of work never happened.
  store_->begin();
  st().hold_listing("sales", 8, HeldListing{9, 4});
  st().release_listing("sales", 7);
  store_->rollback();
  reopen();
  std::vector<uint64_t> scopes;
  st().held_scopes("sales", scopes);
  EXPECT_EQ(scopes, std::vector<uint64_t>{7});
  EXPECT_EQ(st().held_listing("sales", 7)->run_id, 4);
  st().release_listing("sales", 7);
  st().release_listing("sales", 7);  // nothing held: no effect
  EXPECT_FALSE(st().held_listing("sales", 7).has_value());
  EXPECT_TRUE(st().held_listing("branches", 7).has_value());
}

TEST_F(SqliteStoreTest, StagingBatchLookupOfManyKeys) {
  st().create_stage("sales");
  std::vector<StagedRow> rows;
  for (int i = 0; i < 1000; ++i) rows.push_back({"[" + std::to_string(i) + "]", uint64_t(i) * 7});
  st().upsert("sales", 1, rows);
  std::vector<std::string> keys;
  for (int i = 500; i < 1500; ++i) keys.push_back("[" + std::to_string(i) + "]");
  std::unordered_map<std::string, uint64_t> out;
  st().get_hashes("sales", keys, out);
  EXPECT_EQ(out.size(), 500u);
  EXPECT_EQ(out["[999]"], 999u * 7);
}

TEST_F(SqliteStoreTest, StagingUnknownStageThrows) {
  std::vector<StagedRow> rows{{"[1]", 1}};
  EXPECT_THROW(st().upsert("nope", 1, rows), std::runtime_error);
  EXPECT_THROW(st().count("nope"), std::runtime_error);
}

TEST_F(SqliteStoreTest, ChangeLogOrderCursorAndCounts) {
  ChangeLog& log = store_->change_log();
  EXPECT_EQ(log.last_seq(), 0);
  std::vector<Change> c(5);
  for (int i = 0; i < 5; ++i) {
    c[i].stage = i < 3 ? "sales" : "branches";
    c[i].kind = i == 4 ? ChangeKind::Gone : ChangeKind::New;
    c[i].key = "[" + std::to_string(i) + "]";
    c[i].image = "{\"id\":" + std::to_string(i) + "}";
    c[i].run_id = i < 2 ? 1 : 2;
    c[i].at = clock_.now() + Duration(i);
  }
  log.append(c);
  for (int i = 1; i < 5; ++i) EXPECT_GT(c[i].seq, c[i - 1].seq);
  EXPECT_EQ(log.last_seq(), c[4].seq);

  auto first = log.read(0, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].seq, c[0].seq);
  EXPECT_EQ(first[1].key, "[1]");
  auto rest = log.read(first.back().seq, 100);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[2].kind, ChangeKind::Gone);
  EXPECT_EQ(rest[2].stage, "branches");
  EXPECT_EQ(rest[2].image, "{\"id\":4}");
  EXPECT_EQ(rest[2].run_id, 2);
  EXPECT_EQ(rest[2].at, c[4].at);
  EXPECT_TRUE(log.read(c[4].seq, 10).empty());

  EXPECT_EQ(log.count(), 5);
  EXPECT_EQ(log.count("sales"), 3);
  EXPECT_EQ(log.count({}, 2), 3);
  EXPECT_EQ(log.count("sales", 2), 1);
}

TEST_F(SqliteStoreTest, WarehouseCreateAddColumnsUpsertInPlaceAndRemove) {
  std::vector<Column> key{{"sale_id", ColumnType::Integer}, {"employee_id", ColumnType::Integer}};
  wh().create_table("sales", key);
  wh().create_table("sales", key);  // idempotent
  std::vector<Column> more{{"amount", ColumnType::Real},
                           {"note", ColumnType::Text},
                           {"paid", ColumnType::Boolean},
                           {"extra", ColumnType::Json}};
  wh().add_columns("sales", more);
  wh().add_columns("sales", more);  // idempotent
  auto cols = wh().columns("sales");
  ASSERT_EQ(cols.size(), 6u);
  EXPECT_EQ(cols[0].name, "sale_id");
  EXPECT_EQ(cols[0].type, ColumnType::Integer);
  EXPECT_EQ(cols[2].type, ColumnType::Real);
  EXPECT_EQ(cols[4].type, ColumnType::Boolean);
  EXPECT_EQ(cols[5].type, ColumnType::Json);
  EXPECT_TRUE(wh().columns("missing").empty());

  upsert("sales", {parse_json(R"({"sale_id":1,"employee_id":7,"amount":9.5,"note":"x",
                                  "paid":true,"extra":{"b":[1,2],"a":null}})"),
                   parse_json(R"({"sale_id":2,"employee_id":7,"amount":1})")});
  int64_t rowid = query("SELECT rowid FROM sales WHERE sale_id=1")[0].as_int();
  auto r = wh().query("SELECT sale_id, amount, note, paid, extra FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.columns[2], "note");
  EXPECT_EQ(r.rows[0][0].as_int(), 1);
  EXPECT_DOUBLE_EQ(r.rows[0][1].as_double(), 9.5);
  EXPECT_EQ(r.rows[0][2].as_string(), "x");
  EXPECT_EQ(r.rows[0][3].as_int(), 1);
  EXPECT_EQ(r.rows[0][4].as_string(), R"({"a":null,"b":[1,2]})");
  EXPECT_TRUE(r.rows[1][2].is_null());

  // Update: same rowid, absent columns become NULL, schema evolution invalidates the statement.
  wh().add_columns("sales", std::vector<Column>{{"region", ColumnType::Text}});
  upsert("sales", {parse_json(R"({"employee_id":7,"sale_id":1,"amount":10,"region":"NE"})")});
  EXPECT_EQ(query("SELECT rowid FROM sales WHERE sale_id=1")[0].as_int(), rowid);
  EXPECT_EQ(query("SELECT count(*) FROM sales")[0].as_int(), 2);
  EXPECT_TRUE(query("SELECT note FROM sales WHERE sale_id=1")[0].is_null());
  EXPECT_EQ(query("SELECT region FROM sales WHERE sale_id=1")[0].as_string(), "NE");

  Value k = parse_json(R"({"sale_id":2,"employee_id":7})");
  std::vector<const Value*> keys{&k};
  wh().mark_deleted("sales", keys, WriteStamp{3, "2026-01-02T00:00:00.000Z"});
  EXPECT_EQ(query("SELECT count(*) FROM sales")[0].as_int(), 2);
  EXPECT_EQ(query("SELECT count(*) FROM sales WHERE _deleted_at IS NULL")[0].as_int(), 1);
  EXPECT_EQ(query("SELECT _deleted_at FROM sales WHERE sale_id=2")[0].as_string(),
            "2026-01-02T00:00:00.000Z");
}

TEST_F(SqliteStoreTest, WarehouseRejectsUnknownFieldsAndMissingKeys) {
  wh().create_table("t", std::vector<Column>{{"id", ColumnType::Integer}});
  try {
    upsert("t", {parse_json(R"({"id":1,"surprise":2})")});
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("surprise"), std::string::npos);
  }
  EXPECT_THROW(upsert("t", {parse_json(R"({"other":1})")}), std::runtime_error);
  EXPECT_THROW(upsert("missing", {parse_json(R"({"id":1})")}), std::runtime_error);
  EXPECT_EQ(query("SELECT count(*) FROM t")[0].as_int(), 0);  // the failed batch left nothing
}

TEST_F(SqliteStoreTest, WarehouseOddIdentifiers) {
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
    std::string q;
    for (char c : table) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    auto r = wh().query("SELECT * FROM \"" + q + "\"");
    ASSERT_EQ(r.rows.size(), 1u) << table;
    EXPECT_EQ(r.columns[0], table);
    EXPECT_EQ(r.rows[0][0].as_string(), "k");
    Value key_only = Object{};
    key_only.set(table, "k");
    std::vector<const Value*> keys{&key_only};
    wh().mark_deleted(table, keys, WriteStamp{1, "2026-01-01T00:00:00.000Z"});
    EXPECT_TRUE(wh().query("SELECT * FROM \"" + q + "\" WHERE _deleted_at IS NULL").rows.empty());
    EXPECT_EQ(wh().query("SELECT count(*) FROM \"" + q + "_history\"").rows[0][0].as_int(), 2);
  }
}

TEST_F(SqliteStoreTest, QueryReturnsTypedValuesAndErrors) {
  auto r = wh().query("SELECT 1, 2.5, 'txt', NULL, x'6869'");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0].as_int(), 1);
  EXPECT_DOUBLE_EQ(r.rows[0][1].as_double(), 2.5);
  EXPECT_EQ(r.rows[0][2].as_string(), "txt");
  EXPECT_TRUE(r.rows[0][3].is_null());
  EXPECT_EQ(r.rows[0][4].as_string(), "hi");
  try {
    wh().query("SELEC nonsense");
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("syntax error"), std::string::npos);
  }
  EXPECT_THROW(wh().query("SELECT * FROM no_such_table"), std::runtime_error);
  // Several statements: the last one with columns is the result.
  auto m = wh().query("CREATE TABLE x(a); INSERT INTO x VALUES(4); SELECT a FROM x;");
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_EQ(m.rows[0][0].as_int(), 4);
}

TEST_F(SqliteStoreTest, RollbackUndoesEverythingTogether) {
  store_->queue().create("q", QueueOptions{});
  st().create_stage("s");
  wh().create_table("t", std::vector<Column>{{"id", ColumnType::Integer}});
  std::vector<std::string> first{"m0"};
  store_->queue().send("q", first);

  store_->begin();
  EXPECT_TRUE(store_->in_transaction());
  EXPECT_THROW(store_->begin(), std::logic_error);
  std::vector<std::string> bodies{"m1", "m2"};
  EXPECT_EQ(store_->queue().send("q", bodies), 2u);
  auto got = store_->queue().receive("q", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(store_->queue().remove("q", got[0].receipt));
  std::vector<StagedRow> rows{{"[1]", 1}};
  st().upsert("s", 1, rows);
  std::vector<Change> c(1);
  c[0].stage = "s";
  c[0].key = "[1]";
  c[0].image = "{}";
  store_->change_log().append(c);
  upsert("t", {parse_json(R"({"id":1})")});
  wh().add_columns("t", std::vector<Column>{{"late", ColumnType::Text}});
  store_->set_meta("cursor", "5");
  store_->rollback();
  EXPECT_FALSE(store_->in_transaction());

  EXPECT_EQ(store_->queue().stats("q").depth, 1);  // m0 is back, m1/m2 never were
  auto again = store_->queue().receive("q", 10);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].body, "m0");
  EXPECT_EQ(again[0].receive_count, 1);
  EXPECT_EQ(st().count("s"), 0);
  EXPECT_EQ(store_->change_log().last_seq(), 0);
  EXPECT_EQ(query("SELECT count(*) FROM t")[0].as_int(), 0);
  EXPECT_EQ(wh().columns("t").size(), 1u);
  EXPECT_FALSE(store_->get_meta("cursor"));
  // The store is usable after the rollback, with the schema it really has.
  upsert("t", {parse_json(R"({"id":2})")});
  EXPECT_THROW(upsert("t", {parse_json(R"({"id":3,"late":"x"})")}), std::runtime_error);

  store_->begin();
  st().upsert("s", 1, rows);
  store_->commit();
  EXPECT_EQ(st().count("s"), 1);
}

TEST_F(SqliteStoreTest, RollbackUndoesDeclarations) {
  store_->begin();
  store_->queue().create("q", QueueOptions{});
  st().create_stage("s");
  store_->rollback();
  std::vector<std::string> b{"x"};
  EXPECT_THROW(store_->queue().send("q", b), std::runtime_error);
  EXPECT_THROW(st().count("s"), std::runtime_error);
}

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  store_->set_meta("cursor", "42");
  store_->set_meta("cursor", "43");
  st().create_stage("s");
  std::vector<StagedRow> rows{{"[1]", 99}};
  st().upsert("s", 7, rows);
  wh().create_table("t", std::vector<Column>{{"id", ColumnType::Text}});
  upsert("t", {parse_json(R"({"id":"a"})")});
  std::vector<Change> c(1);
  c[0].stage = "s";
  store_->change_log().append(c);
  reopen();
  EXPECT_EQ(store_->get_meta("cursor").value_or(""), "43");
  EXPECT_FALSE(store_->get_meta("absent"));
  EXPECT_EQ(st().count("s"), 1);
  EXPECT_EQ(store_->change_log().last_seq(), c[0].seq);
  EXPECT_EQ(query("SELECT id FROM t")[0].as_string(), "a");
  EXPECT_EQ(query("SELECT value FROM cascade_meta WHERE key='schema_version'")[0].as_string(), "1");
  EXPECT_EQ(query("PRAGMA journal_mode")[0].as_string(), "wal");
  EXPECT_EQ(store_->describe(), "sqlite:" + path_);
}

TEST_F(SqliteStoreTest, ReadOnlyStoreReadsButRefusesWrites) {
  st().create_stage("s");
  std::vector<StagedRow> rows{{"[1]", 99}};
  st().upsert("s", 7, rows);
  store_->queue().create("q", QueueOptions{});
  // A writer keeps the file open while the reader works, as during a sync.
  auto writer = std::move(store_);
  store_ = open_sqlite_store(path_, clock_, StoreOptions{.read_only = true});
  EXPECT_EQ(st().count("s"), 1);
  EXPECT_EQ(store_->queue().stats("q").depth, 0);
  EXPECT_THROW(st().upsert("s", 1, rows), std::runtime_error);
  std::vector<std::string> b{"x"};
  EXPECT_THROW(store_->queue().send("q", b), std::runtime_error);
  EXPECT_THROW(store_->set_meta("k", "v"), std::runtime_error);
  EXPECT_THROW(wh().query("CREATE TABLE z(a)"), std::runtime_error);
  // It sees what the writer commits later.
  writer->staging().upsert("s", 7, std::vector<StagedRow>{{"[2]", 1}});
  EXPECT_EQ(st().count("s"), 2);
}

TEST_F(SqliteStoreTest, ReadOnlyOpenAfterWriterClosed) {
  store_->set_meta("k", "v");
  reopen(StoreOptions{.read_only = true});
  EXPECT_EQ(store_->get_meta("k").value_or(""), "v");
  EXPECT_THROW(store_->set_meta("k", "w"), std::runtime_error);
}

TEST_F(SqliteStoreTest, CompactEmptiesTheWriteAheadLog) {
  wh().create_table("t", std::vector<Column>{{"id", ColumnType::Integer}});
  for (int64_t i = 0; i < 200; ++i) upsert("t", {parse_json("{\"id\":" + std::to_string(i) + "}")});
  ASSERT_GT(std::filesystem::file_size(path_ + "-wal"), 0u);
  store_->begin();
  EXPECT_FALSE(store_->compact()) << "not inside a unit of work";
  store_->rollback();
  EXPECT_TRUE(store_->compact());
  EXPECT_EQ(std::filesystem::file_size(path_ + "-wal"), 0u);
  EXPECT_EQ(query("SELECT count(*) FROM t")[0].as_int(), 200);
}

TEST_F(SqliteStoreTest, ReadOnlyOpenOfMissingFileFails) {
  EXPECT_THROW(open_sqlite_store(dir_ + "/absent.db", clock_, StoreOptions{.read_only = true}),
               std::runtime_error);
}

}  // namespace

// The loader refuses reserved warehouse table names (store/names.h); that only protects the
// store's own tables if every one of them carries a reserved name.
TEST_F(SqliteStoreTest, EveryTableAndIndexTheStoreCreatesForItselfHasAReservedName) {
  st().create_stage("sales");
  st().create_stage("Mixed_Case");
  wh().create_table("sales", std::vector<Column>{{"sale_id", ColumnType::Integer}});
  std::vector<Value> own =
      query("SELECT name FROM sqlite_master WHERE tbl_name NOT IN ('sales', 'sales_history')");
  ASSERT_GE(own.size(), 10u);
  for (const Value& name : own)
    EXPECT_TRUE(is_reserved_table_name(name.as_string())) << name.as_string();
  for (const auto& stage : {"sales", "Mixed_Case"})
    for (const std::string& name : stage_object_names(stage))
      EXPECT_EQ(query("SELECT count(*) FROM sqlite_master WHERE name = '" + name + "'").at(0),
                Value(int64_t(1)))
          << name;
}

TEST(StoreNames, ReservedNamesAreCascadesAndSqlitesPrefixesInAnyCase) {
  for (const char* name : {"cascade_changes", "CASCADE_META", "Cascade_Queues", "cascade_",
                           "cascade_staging_sales", "sqlite_master", "SQLite_stat1"})
    EXPECT_TRUE(is_reserved_table_name(name)) << name;
  for (const char* name : {"sales", "cascade", "cascades_x", "my_cascade_changes", "sqlite",
                           "sqlitex", "_cascade_meta", ""})
    EXPECT_FALSE(is_reserved_table_name(name)) << name;
  EXPECT_EQ(staging_table_name("sales"), "cascade_staging_sales");
  EXPECT_EQ(staging_index_name("sales"), "cascade_staging_sales_scope");
  for (const auto& name : stage_object_names("Sales"))
    EXPECT_TRUE(is_reserved_table_name(name)) << name;
}
