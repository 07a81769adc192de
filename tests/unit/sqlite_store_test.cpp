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

std::vector<StagedRow> listing_of(Staging& s, std::string_view stage, uint64_t scope) {
  std::vector<StagedRow> rows;
  s.scope_rows(stage, scope, rows);
  return rows;
}

std::vector<StagedRow> listing(Staging& s, uint64_t scope) {
  std::vector<StagedRow> rows;
  s.scope_rows("sales", scope, rows);
  return rows;
}

TEST_F(SqliteStoreTest, StagingRecordsEachListingSortedAndReplacesOrDropsIt) {
  st().create_stage("sales");
  st().create_stage("sales");                     // idempotent
  const uint64_t big = 0xF000'0000'0000'0001ull;  // does not fit a signed 64-bit integer
  std::vector<StagedRef> a{{"[2]", big}, {"[1]", 11}, {"[\"odd\\u0000key\"]", 0}};
  std::vector<StagedRef> b{{"[3]", 33}};
  st().set_scope_rows("sales", 100, a);
  st().set_scope_rows("sales", 200, b);
  EXPECT_TRUE(listing(st(), 300).empty());

  auto rows = listing(st(), 100);
  ASSERT_EQ(rows.size(), 3u);  // in key order
  EXPECT_EQ(rows[0].key, "[\"odd\\u0000key\"]");
  EXPECT_EQ(rows[1].key, "[1]");
  EXPECT_EQ(rows[1].hash, 11u);
  EXPECT_EQ(rows[2].key, "[2]");
  EXPECT_EQ(rows[2].hash, big);

  std::vector<uint64_t> scopes;
  st().scopes("sales", scopes);
  std::sort(scopes.begin(), scopes.end());
  EXPECT_EQ(scopes, (std::vector<uint64_t>{100, 200}));

  // A new record replaces the old one; an empty listing removes it.
  std::vector<StagedRef> again{{"[1]", 12}};
  st().set_scope_rows("sales", 100, again);
  rows = listing(st(), 100);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].hash, 12u);
  st().set_scope_rows("sales", 200, {});
  scopes.clear();
  st().scopes("sales", scopes);
  EXPECT_EQ(scopes, std::vector<uint64_t>{100});
  // Another stage's listings are its own.
  scopes.clear();
  st().scopes("branches", scopes);
  EXPECT_TRUE(scopes.empty());
}

TEST_F(SqliteStoreTest, AListingRecordedWithADigestGivesItBackWithoutItsRows) {
  std::vector<StagedRef> rows{{"[2]", 22}, {"[1]", 11}};
  st().set_scope_rows("sales", 5, rows);
  EXPECT_FALSE(st().listing_digest("sales", 5));  // recorded without one
  EXPECT_FALSE(st().listing_digest("sales", 6));  // never recorded

  const uint64_t digest = 0xFFFF'FFFF'0000'0007ull;  // starts like the header's mark
  st().record_listing("sales", 5, rows, digest);
  auto d = st().listing_digest("sales", 5);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->digest, digest);
  EXPECT_EQ(d->rows, 2u);
  auto back = listing(st(), 5);  // the header is no row
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].key, "[1]");
  EXPECT_EQ(back[1].hash, 22u);

  // Recorded again without a digest (a held deletion), it has none any more.
  st().set_scope_rows("sales", 5, rows);
  EXPECT_FALSE(st().listing_digest("sales", 5));
  // An empty listing is no record at all.
  st().record_listing("sales", 5, {}, digest);
  EXPECT_FALSE(st().listing_digest("sales", 5));
  EXPECT_TRUE(listing(st(), 5).empty());
}

TEST_F(SqliteStoreTest, StagingKeepsListingsOfManyKeys) {
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back("[" + std::to_string(i) + "]");
  std::vector<StagedRef> refs;
  for (size_t i = 0; i < keys.size(); ++i) refs.push_back({keys[i], uint64_t(i) * 7});
  st().set_scope_rows("sales", 1, refs);
  auto rows = listing(st(), 1);
  ASSERT_EQ(rows.size(), 5000u);
  std::unordered_map<std::string, uint64_t> got;
  for (auto& r : rows) got.emplace(r.key, r.hash);
  EXPECT_EQ(got.size(), 5000u);
  EXPECT_EQ(got["[999]"], 999u * 7);
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

TEST_F(SqliteStoreTest, ChangeLogIsTheVersionsAndDeletionsInCommitOrder) {
  ChangeLog& log = store_->change_log();
  EXPECT_EQ(log.last_seq(), 0);
  std::vector<Column> key{{"id", ColumnType::Integer}};
  wh().create_table("sales", key);
  wh().create_table("branches", key);
  wh().add_columns("sales", std::vector<Column>{{"amount", ColumnType::Real}});
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
  wh().upsert("branches", std::vector<const Value*>{&b4},
              WriteStamp{2, "2026-01-02T00:00:00.000Z"});
  wh().mark_deleted("branches", std::vector<const Value*>{&b4},
                    WriteStamp{2, "2026-01-03T00:00:00.000Z"});

  auto first = log.read(0, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].table, "sales");
  EXPECT_EQ(first[0].key, "[0]");
  EXPECT_EQ(first[0].kind, ChangeKind::New);
  EXPECT_EQ(first[0].image, R"({"id":0,"amount":0.30000000000000004})");  // not rounded
  EXPECT_EQ(first[1].key, "[1]");
  auto rest = log.read(first.back().seq, 100);
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
  EXPECT_EQ(log.last_seq(), rest[2].seq);
  EXPECT_TRUE(log.read(rest[2].seq, 10).empty());

  EXPECT_EQ(log.count(), 5);
  EXPECT_EQ(log.count("sales"), 3);
  EXPECT_EQ(log.count({}, 2), 3);
  EXPECT_EQ(log.count("sales", 2), 1);
  // A rolled-back write takes no seq that a later commit could reuse behind a reader.
  store_->begin();
  Value r9 = parse_json(R"({"id":9})");
  wh().upsert("branches", std::vector<const Value*>{&r9});
  store_->rollback();
  wh().upsert("branches", std::vector<const Value*>{&r9});
  auto last = log.read(rest[2].seq, 10);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].seq, rest[2].seq + 1);
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
  auto r = wh().query("SELECT sale_id, amount, note, paid, extra FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.columns[2], "note");
  EXPECT_EQ(r.rows[0][0].as_int(), 1);
  EXPECT_DOUBLE_EQ(r.rows[0][1].as_double(), 9.5);
  EXPECT_EQ(r.rows[0][2].as_string(), "x");
  EXPECT_EQ(r.rows[0][3].as_int(), 1);
  EXPECT_EQ(r.rows[0][4].as_string(), R"({"a":null,"b":[1,2]})");
  EXPECT_TRUE(r.rows[1][2].is_null());

  // Update in place: version 2, absent columns become NULL, schema evolution invalidates the
  // statement, the first version moves to the history.
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
  std::vector<StagedRef> rows{{"[1]", 1}};
  st().set_scope_rows("s", 1, rows);
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
  EXPECT_TRUE(listing_of(st(), "s", 1).empty());
  EXPECT_EQ(store_->change_log().last_seq(), 0);
  EXPECT_EQ(query("SELECT count(*) FROM t")[0].as_int(), 0);
  EXPECT_EQ(wh().columns("t").size(), 1u);
  EXPECT_FALSE(store_->get_meta("cursor"));
  // The store is usable after the rollback, with the schema it really has.
  upsert("t", {parse_json(R"({"id":2})")});
  EXPECT_THROW(upsert("t", {parse_json(R"({"id":3,"late":"x"})")}), std::runtime_error);

  store_->begin();
  st().set_scope_rows("s", 1, rows);
  store_->commit();
  EXPECT_EQ(listing_of(st(), "s", 1).size(), 1u);
}

TEST_F(SqliteStoreTest, RollbackUndoesDeclarations) {
  store_->begin();
  store_->queue().create("q", QueueOptions{});
  st().create_stage("s");
  store_->rollback();
  std::vector<std::string> b{"x"};
  EXPECT_THROW(store_->queue().send("q", b), std::runtime_error);
}

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  store_->set_meta("cursor", "42");
  store_->set_meta("cursor", "43");
  st().create_stage("s");
  std::vector<StagedRef> rows{{"[1]", 99}};
  st().set_scope_rows("s", 7, rows);
  wh().create_table("t", std::vector<Column>{{"id", ColumnType::Text}});
  upsert("t", {parse_json(R"({"id":"a"})")});
  int64_t seq = store_->change_log().last_seq();
  EXPECT_GT(seq, 0);
  reopen();
  EXPECT_EQ(store_->get_meta("cursor").value_or(""), "43");
  EXPECT_FALSE(store_->get_meta("absent"));
  EXPECT_EQ(listing_of(st(), "s", 7).size(), 1u);
  EXPECT_EQ(store_->change_log().last_seq(), seq);
  EXPECT_EQ(query("SELECT id FROM t")[0].as_string(), "a");
  EXPECT_EQ(query("SELECT value FROM cascade_meta WHERE key='schema_version'")[0].as_string(), "2");
  EXPECT_EQ(query("PRAGMA journal_mode")[0].as_string(), "wal");
  EXPECT_EQ(store_->describe(), "sqlite:" + path_);
}

TEST_F(SqliteStoreTest, ReadOnlyStoreReadsButRefusesWrites) {
  st().create_stage("s");
  std::vector<StagedRef> rows{{"[1]", 99}};
  st().set_scope_rows("s", 7, rows);
  store_->queue().create("q", QueueOptions{});
  // A writer keeps the file open while the reader works, as during a sync.
  auto writer = std::move(store_);
  store_ = open_sqlite_store(path_, clock_, StoreOptions{.read_only = true});
  EXPECT_EQ(listing_of(st(), "s", 7).size(), 1u);
  EXPECT_EQ(store_->queue().stats("q").depth, 0);
  EXPECT_THROW(st().set_scope_rows("s", 1, rows), std::runtime_error);
  std::vector<std::string> b{"x"};
  EXPECT_THROW(store_->queue().send("q", b), std::runtime_error);
  EXPECT_THROW(store_->set_meta("k", "v"), std::runtime_error);
  EXPECT_THROW(wh().query("CREATE TABLE z(a)"), std::runtime_error);
  // It sees what the writer commits later.
  std::vector<StagedRef> two{{"[1]", 99}, {"[2]", 1}};
  writer->staging().set_scope_rows("s", 7, two);
  EXPECT_EQ(listing_of(st(), "s", 7).size(), 2u);
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
  EXPECT_EQ(query("SELECT type FROM sqlite_master WHERE name = 'sales_history'").at(0),
            Value("view"));
  EXPECT_EQ(
      query("SELECT count(*) FROM sqlite_master WHERE name = '" + past_table_name("sales") + "'")
          .at(0),
      Value(int64_t(1)));
}

TEST(StoreNames, ReservedNamesAreCascadesAndSqlitesPrefixesInAnyCase) {
  for (const char* name : {"cascade_changes", "CASCADE_META", "Cascade_Queues", "cascade_",
                           "cascade_staging_sales", "sqlite_master", "SQLite_stat1"})
    EXPECT_TRUE(is_reserved_table_name(name)) << name;
  for (const char* name : {"sales", "cascade", "cascades_x", "my_cascade_changes", "sqlite",
                           "sqlitex", "_cascade_meta", ""})
    EXPECT_FALSE(is_reserved_table_name(name)) << name;
  EXPECT_EQ(past_table_name("Sales"), "cascade_past_Sales");
  EXPECT_TRUE(is_reserved_table_name(past_table_name("Sales")));
}
