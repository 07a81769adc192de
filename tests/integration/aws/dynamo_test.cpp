// The DynamoDB side of the `aws:` storage against moto, in process: items written through the
// store's Warehouse with exact numbers and conditional writes, the unit of work, listing
// records, and the stream reader that loads the warehouse (sqlite) exactly once per change, even
// when it dies half-way. The whole pipeline on `aws:` is in aws_sync_test.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "aws/aws_store.h"
#include "aws/client.h"
#include "core/clock.h"
#include "core/json.h"
#include "store/store.h"
#include "support/moto.h"
#include "support/sim.h"

namespace cascade {
namespace {

using aws::AwsConfig;
using aws::Client;

// A store on moto without queues (the DynamoDB parts alone), its warehouse in a fresh SQLite
// file. `prefix` keeps each test's tables apart on the shared server.
std::unique_ptr<Store> open_dynamo(testing::MotoServer& moto, const std::string& file,
                                   const std::string& prefix, Clock& clock) {
  return aws::open_aws_store(
      "aws:?warehouse=sqlite:" + file + "&prefix=" + prefix, clock, {}, moto.config(),
      [](Client&, const aws::AwsStorageUrl&, Clock&) { return std::unique_ptr<Queue>(); });
}

std::vector<Column> sales_key() {
  return {Column("sale_id", ColumnType::Integer), Column("employee_id", ColumnType::Integer)};
}

void define_sales(Store& s) {
  s.begin();
  auto key = sales_key();
  s.warehouse().create_table("sales", key);
  s.warehouse().add_columns("sales", std::vector<Column>{Column("amount", ColumnType::Decimal),
                                                         Column("order", ColumnType::Text),
                                                         Column("note", ColumnType::Json)});
  s.commit();
}

Value sale(int64_t id, const std::string& amount, const std::string& order = "o") {
  return parse_json(R"({"sale_id":)" + std::to_string(id) + R"(,"employee_id":7,"amount":)" +
                    amount + R"(,"order":")" + order + R"(","note":{"a":[1,2.5,"x"]}})");
}

void upsert(Store& s, const Value& row, uint64_t hash, int64_t run,
            WriteOutcome* outcome = nullptr) {
  RowWrite w{&row, {}, hash, 1, false};
  WriteOutcome o{};
  s.warehouse().upsert("sales", std::span<const RowWrite>(&w, 1),
                       WriteStamp{run, "2026-11-29T10:00:00.000Z"}, std::span<WriteOutcome>(&o, 1));
  if (outcome) *outcome = o;
}

Value get_item(testing::MotoServer& moto, const std::string& table, int64_t sale_id) {
  Client c(moto.config());
  std::string body = R"({"TableName":")" + table +
                     R"(","ConsistentRead":true,"Key":{"sale_id":{"N":")" +
                     std::to_string(sale_id) + R"("},"employee_id":{"N":"7"}}})";
  return parse_json(c.json("dynamodb", "DynamoDB_20120810.GetItem", body));
}

// Every record the table's stream holds, from its start.
size_t stream_records(testing::MotoServer& moto, const std::string& table) {
  Client c(moto.config());
  Value d = parse_json(
      c.json("dynamodb", "DynamoDB_20120810.DescribeTable", R"({"TableName":")" + table + R"("})"));
  std::string arn = d.find("Table")->find("LatestStreamArn")->as_string();
  Value s = parse_json(c.json("streams.dynamodb", "DynamoDBStreams_20120810.DescribeStream",
                              R"({"StreamArn":")" + arn + R"("})"));
  size_t n = 0;
  for (const auto& shard : s.find("StreamDescription")->find("Shards")->as_array()) {
    Value it = parse_json(c.json("streams.dynamodb", "DynamoDBStreams_20120810.GetShardIterator",
                                 R"({"StreamArn":")" + arn + R"(","ShardId":")" +
                                     shard.find("ShardId")->as_string() +
                                     R"(","ShardIteratorType":"TRIM_HORIZON"})"));
    std::string iter = it.find("ShardIterator")->as_string();
    for (int i = 0; i < 1000; ++i) {
      Value r = parse_json(c.json("streams.dynamodb", "DynamoDBStreams_20120810.GetRecords",
                                  R"({"ShardIterator":")" + iter + R"("})"));
      size_t got = r.find("Records")->as_array().size();
      n += got;
      const Value* next = r.find("NextShardIterator");
      if (!got || !next || !next->is_string()) break;
      iter = next->as_string();
    }
  }
  return n;
}

int64_t scalar(Store& s, const std::string& sql) {
  return s.warehouse().query(sql).rows.at(0).at(0).as_int();
}

TEST(AwsStorageUrl, ParsesItsParametersAndRefusesWrongOnes) {
  auto u = aws::parse_aws_url(
      "aws:?warehouse=postgresql://u@h/db?sslmode=disable&application_name=x"
      "&create=false&prefix=prod-");
  EXPECT_EQ(u.warehouse, "postgresql://u@h/db?sslmode=disable&application_name=x");
  EXPECT_FALSE(u.create);
  EXPECT_EQ(u.prefix, "prod-");
  EXPECT_EQ(aws::parse_aws_url("aws:?warehouse=sqlite%3A%2Ftmp%2Fa.db").warehouse,
            "sqlite:/tmp/a.db");
  EXPECT_TRUE(aws::parse_aws_url("aws:?warehouse=sqlite:a.db").create);
  auto refused = [](const std::string& url, const std::string& why) {
    try {
      aws::parse_aws_url(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refused("aws:", "needs warehouse=URL");
  refused("aws:?prefix=x", "needs warehouse=URL");
  refused("aws:?warehouse=sqlite:a.db&create=maybe", "expected true or false");
  refused("aws:?region=eu&warehouse=sqlite:a.db", "unknown parameter 'region'");
  refused("aws:?warehouse=sqlite:a.db&prefix=a/b", "only letters, digits");
  refused("aws:?warehouse=aws:?warehouse=sqlite:a.db", "cannot itself be an aws: storage");
  // A PostgreSQL warehouse's password is never shown.
  std::string shown = redact_storage_url("aws:?warehouse=postgresql://u:s3cret@h/db&prefix=p-");
  EXPECT_EQ(shown.find("s3cret"), std::string::npos) << shown;
}

TEST(AwsDynamo, ThirtyDigitNumbersAreStoredExactly) {
  CASCADE_REQUIRE_MOTO(moto);
  ManualClock clock;
  std::string dir = testing::temp_dir();
  auto s = open_dynamo(*moto, dir + "/wh.db", "exact-", clock);
  define_sales(*s);
  const std::string thirty = "123456789012345678901234567890";
  const std::string forty_five = "123456789012345678901234567890123456789012345";
  s->begin();
  upsert(*s, sale(1, thirty), 11, 1);
  upsert(*s, sale(2, forty_five), 12, 1);
  upsert(*s, sale(3, "0.1000000000000000000000000000001"), 13, 1);
  s->commit();
  // In DynamoDB: a number of 30 digits is an N holding exactly its digits; beyond 38 digits S.
  Value got = get_item(*moto, "exact-sales", 1);
  ASSERT_TRUE(got.find("Item")) << to_json(got);
  Value item = *got.find("Item");
  EXPECT_EQ(item.find("amount")->find("N")->as_string(), thirty);
  EXPECT_EQ(item.find("_hash")->find("N")->as_string(), "11");
  Value big = *get_item(*moto, "exact-sales", 2).find("Item");
  // Exact, in cascade's normalized spelling of a Decimal.
  EXPECT_EQ(big.find("amount")->find("S")->as_string(), normalize_decimal(forty_five));
  // In the warehouse, after the stream is read: the same numbers, digit for digit.
  s->settle();
  auto r = s->warehouse().query("SELECT sale_id, amount, note FROM sales ORDER BY sale_id");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0][1].to_text(), thirty);
  EXPECT_EQ(r.rows[1][1].to_text(), normalize_decimal(forty_five));
  EXPECT_EQ(r.rows[2][1].to_text(), "0.1000000000000000000000000000001");
  EXPECT_EQ(canonical_json(parse_json(r.rows[0][2].as_string())), R"({"a":[1,2.5,"x"]})");
}

TEST(AwsDynamo, ReplayedWriteChangesNothing) {
  CASCADE_REQUIRE_MOTO(moto);
  ManualClock clock;
  std::string dir = testing::temp_dir();
  auto a = open_dynamo(*moto, dir + "/wh.db", "replay-", clock);
  define_sales(*a);
  a->begin();
  WriteOutcome o{};
  upsert(*a, sale(1, "10"), 100, 1, &o);
  EXPECT_EQ(o, WriteOutcome::Inserted);
  // A second consumer applies the same message before the first commits (a message seen
  // twice): both read "absent", both write; the conditional write lets one through.
  // (Its warehouse is another file: one SQLite file takes one writer at a time.)
  auto b = open_dynamo(*moto, dir + "/wh2.db", "replay-", clock);
  define_sales(*b);
  b->begin();
  upsert(*b, sale(1, "10"), 100, 1, &o);
  EXPECT_EQ(o, WriteOutcome::Inserted);
  a->commit();
  b->commit();
  EXPECT_EQ(stream_records(*moto, "replay-sales"), 1u);
  // A replay after the commit reads the stored hash: nothing to write at all.
  a->begin();
  upsert(*a, sale(1, "10"), 100, 2, &o);
  EXPECT_EQ(o, WriteOutcome::Unchanged);
  a->commit();
  EXPECT_EQ(stream_records(*moto, "replay-sales"), 1u);
  a->settle();
  EXPECT_EQ(a->change_log().count("sales"), 1);
  // New content is a new version.
  a->begin();
  upsert(*a, sale(1, "11"), 101, 3, &o);
  EXPECT_EQ(o, WriteOutcome::Updated);
  a->commit();
  a->settle();
  EXPECT_EQ(a->change_log().count("sales"), 2);
  EXPECT_EQ(scalar(*a, "SELECT _version FROM sales WHERE sale_id = 1"), 2);
}

TEST(AwsDynamo, RollbackAndSavepointDiscardBufferedWrites) {
  CASCADE_REQUIRE_MOTO(moto);
  ManualClock clock;
  std::string dir = testing::temp_dir();
  auto s = open_dynamo(*moto, dir + "/wh.db", "unit-", clock);
  define_sales(*s);
  s->begin();
  upsert(*s, sale(1, "1"), 1, 1);
  s->rollback();
  s->begin();
  upsert(*s, sale(2, "2"), 2, 1);
  s->savepoint();
  upsert(*s, sale(3, "3"), 3, 1);
  s->rollback_to_savepoint();
  s->commit();
  EXPECT_TRUE(get_item(*moto, "unit-sales", 1).find("Item") == nullptr);
  EXPECT_TRUE(get_item(*moto, "unit-sales", 2).find("Item") != nullptr);
  EXPECT_TRUE(get_item(*moto, "unit-sales", 3).find("Item") == nullptr);
  // Deletion is soft: the item stays, marked, and the warehouse row is marked deleted.
  Value key = parse_json(R"({"sale_id":2,"employee_id":7})");
  const Value* k = &key;
  s->begin();
  EXPECT_EQ(s->warehouse().mark_deleted("sales", std::span<const Value* const>(&k, 1),
                                        WriteStamp{2, "2026-11-29T11:00:00.000Z"}),
            1u);
  // Within the unit, it is deleted already.
  EXPECT_EQ(s->warehouse().mark_deleted("sales", std::span<const Value* const>(&k, 1),
                                        WriteStamp{2, "2026-11-29T11:00:00.000Z"}),
            0u);
  s->commit();
  Value item = *get_item(*moto, "unit-sales", 2).find("Item");
  EXPECT_EQ(item.find("_deleted_at")->find("S")->as_string(), "2026-11-29T11:00:00.000Z");
  s->settle();
  EXPECT_EQ(scalar(*s, "SELECT count(*) FROM sales WHERE _deleted_at IS NOT NULL"), 1);
  EXPECT_EQ(scalar(*s, "SELECT count(*) FROM cascade_change_log WHERE operation = 'delete'"), 1);
}

TEST(AwsDynamo, ListingRecordsCursorsAndHoldsRoundTrip) {
  CASCADE_REQUIRE_MOTO(moto);
  ManualClock clock;
  std::string dir = testing::temp_dir();
  auto s = open_dynamo(*moto, dir + "/wh.db", "listing-", clock);
  Staging& st = s->staging();
  st.create_stage("sales");
  // A listing larger than one item holds (400 KB): split in chunks, read back whole.
  std::vector<std::string> keys;
  for (int i = 0; i < 40000; ++i) keys.push_back("[" + std::to_string(i) + ",123456789]");
  std::vector<StagedRef> rows;
  for (size_t i = 0; i < keys.size(); ++i) rows.push_back({keys[i], i * 7919});
  s->begin();
  st.set_scope_rows("sales", 42, rows);
  std::vector<StagedRow> inside;
  st.scope_rows("sales", 42, inside);  // the unit sees its own write
  EXPECT_EQ(inside.size(), keys.size());
  st.set_cursor("sales", 42, "\"2026-01-01\"");
  st.hold_listing("sales", 43, HeldListing{99, 5});
  s->commit();
  auto t = open_dynamo(*moto, dir + "/wh.db", "listing-", clock);
  std::vector<StagedRow> back;
  t->staging().scope_rows("sales", 42, back);
  ASSERT_EQ(back.size(), keys.size());
  std::vector<uint64_t> scopes;
  t->staging().scopes("sales", scopes);
  EXPECT_EQ(scopes, std::vector<uint64_t>{42});
  EXPECT_EQ(t->staging().cursor("sales", 42), "\"2026-01-01\"");
  auto held = t->staging().held_listing("sales", 43);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->fingerprint, 99u);
  EXPECT_EQ(held->run_id, 5);
  // A shorter listing replaces it, chunks past its end removed; an empty one removes it.
  t->begin();
  t->staging().set_scope_rows("sales", 42, std::span<const StagedRef>(rows).first(3));
  EXPECT_EQ(t->staging().clear_cursors("sales"), 1u);
  t->staging().release_listing("sales", 43);
  t->commit();
  back.clear();
  s->staging().scope_rows("sales", 42, back);
  EXPECT_EQ(back.size(), 3u);
  EXPECT_FALSE(s->staging().cursor("sales", 42));
  EXPECT_FALSE(s->staging().held_listing("sales", 43));
  s->begin();
  s->staging().set_scope_rows("sales", 42, {});
  s->commit();
  scopes.clear();
  s->staging().scopes("sales", scopes);
  EXPECT_TRUE(scopes.empty());
}

// A child table (the items of a list field) has the parent's key and `_index`: three columns
// here, so the item table's range key is `_range`; items past a list's new end are deleted.
TEST(AwsDynamo, ChildItemsPastTheListEndAreMarkedDeleted) {
  CASCADE_REQUIRE_MOTO(moto);
  ManualClock clock;
  std::string dir = testing::temp_dir();
  auto s = open_dynamo(*moto, dir + "/wh.db", "items-", clock);
  std::vector<Column> key = {Column("sale_id", ColumnType::Integer),
                             Column("employee_id", ColumnType::Integer),
                             Column("_index", ColumnType::Integer)};
  s->begin();
  s->warehouse().create_table("sales__lines", key);
  s->warehouse().add_columns("sales__lines", std::vector<Column>{Column("sku", ColumnType::Text)});
  std::vector<Value> rows;
  for (int sale = 1; sale <= 2; ++sale)
    for (int i = 0; i < 3; ++i)
      rows.push_back(parse_json(R"({"sale_id":)" + std::to_string(sale) +
                                R"(,"employee_id":7,"_index":)" + std::to_string(i) +
                                R"(,"sku":"s)" + std::to_string(sale * 10 + i) + R"("})"));
  std::vector<RowWrite> writes;
  for (size_t i = 0; i < rows.size(); ++i) writes.push_back({&rows[i], {}, 100 + i, 0, false});
  s->warehouse().upsert("sales__lines", writes, WriteStamp{1, "2026-11-29T10:00:00.000Z"});
  s->commit();
  // Sale 1's list shrank to one item.
  Value parent = parse_json(R"({"sale_id":1,"employee_id":7})");
  const Value* p = &parent;
  int64_t from = 1;
  s->begin();
  s->warehouse().mark_deleted_items("sales__lines", std::span<const Value* const>(&p, 1),
                                    std::span<const int64_t>(&from, 1),
                                    WriteStamp{2, "2026-11-29T11:00:00.000Z"});
  s->commit();
  s->settle();
  auto r = s->warehouse().query(
      "SELECT sale_id, _index, sku, _deleted_at IS NOT NULL FROM sales__lines "
      "ORDER BY sale_id, _index");
  ASSERT_EQ(r.rows.size(), 6u);
  std::string got;
  for (const auto& row : r.rows)
    got += row[0].to_text() + "/" + row[1].to_text() + "/" + row[2].to_text() + "/" +
           row[3].to_text() + " ";
  EXPECT_EQ(got, "1/0/s10/0 1/1/s11/1 1/2/s12/1 2/0/s20/0 2/1/s21/0 2/2/s22/0 ");
}

TEST(AwsDynamo, KilledStreamReaderResumesExactly) {
  CASCADE_REQUIRE_MOTO(moto);
  ManualClock clock;
  std::string dir = testing::temp_dir();
  const std::string file = dir + "/wh.db";
  auto s = open_dynamo(*moto, file, "resume-", clock);
  define_sales(*s);
  // 60 changes: 50 inserts, then 10 updates.
  for (int unit = 0; unit < 5; ++unit) {
    s->begin();
    for (int i = 0; i < 10; ++i) upsert(*s, sale(unit * 10 + i, "1"), 1000 + unit * 10 + i, 1);
    s->commit();
  }
  s->begin();
  for (int i = 0; i < 10; ++i) upsert(*s, sale(i, "2"), 5000 + i, 2);
  s->commit();
  s.reset();
  // Readers die at every point: after some batches, and inside a batch before its commit.
  int crashes = 0;
  for (int round = 0; round < 100; ++round) {
    auto r = open_dynamo(*moto, file, "resume-", clock);
    try {
      aws::StreamReadOptions o;
      o.limit = 7;
      int batch = 0;
      o.before_commit = [&] {
        if (++batch == 3) throw std::runtime_error("killed before commit");
      };
      aws::settle_aws_store(*r, o);
      break;
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "killed before commit");
      ++crashes;
    }
  }
  EXPECT_GT(crashes, 2);
  auto r = open_dynamo(*moto, file, "resume-", clock);
  EXPECT_EQ(r->change_log().count("sales"), 60);
  EXPECT_EQ(scalar(*r, "SELECT count(*) FROM sales"), 50);
  EXPECT_EQ(scalar(*r, "SELECT count(*) FROM sales WHERE _version = 2"), 10);
  EXPECT_EQ(scalar(*r, "SELECT count(*) FROM sales WHERE CAST(amount AS TEXT) = '2'"), 10);
  // Nothing left: a reader now applies nothing.
  EXPECT_EQ(aws::settle_aws_store(*r, {}), 0u);
  EXPECT_EQ(r->change_log().count("sales"), 60);
}

}  // namespace
}  // namespace cascade
