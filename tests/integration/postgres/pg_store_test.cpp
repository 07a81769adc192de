// PgStaging and PgStore (src/store/postgres) on a real PostgreSQL 15: the Staging contract as on
// SQLite, a listing applied by one worker at a time, the unit of work and its savepoint, meta,
// the schema version, a stop that ends a wait for another worker's lock, and describe() without
// the password.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "store/postgres/pg_conn.h"
#include "store/postgres/pg_staging.h"
#include "store/store.h"
#include "support/postgres.h"

using namespace cascade;
using namespace std::chrono_literals;

namespace {

std::string test_db_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string("p_") + info->test_suite_name() + "_" + info->name();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  return name.substr(0, 60);
}

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    url_ = server_->create_database(test_db_name());
  }
  cascade::testing::PostgresServer* server_ = nullptr;
  std::string url_;
  ManualClock clock_;
};

}  // namespace

TEST_F(PgStoreTest, StagingKeepsListingsHoldsAndCursorsPerScope) {
  pg::Conn conn(url_);
  pg::PgStaging s(conn);
  const uint64_t big = 0xfedcba9876543210ull;  // beyond int64: stored bit for bit
  std::vector<StagedRef> rows{{"[3]", 30}, {"[1]", 0xffffffffffffffffull}, {"[\"b\\u00e9\"]", 7}};
  s.set_scope_rows("sales", big, rows);
  s.set_scope_rows("sales", 5, std::vector<StagedRef>{{"[9]", 9}});
  std::vector<StagedRow> got;
  s.scope_rows("sales", big, got);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].key, "[\"b\\u00e9\"]");  // byte order of the key text
  EXPECT_EQ(got[1].key, "[1]");
  EXPECT_EQ(got[1].hash, 0xffffffffffffffffull);
  EXPECT_EQ(got[2].key, "[3]");
  EXPECT_EQ(got[2].hash, 30u);
  std::vector<uint64_t> scopes;
  s.scopes("sales", scopes);
  std::sort(scopes.begin(), scopes.end());
  EXPECT_EQ(scopes, (std::vector<uint64_t>{5, big}));
  got.clear();
  s.scope_rows("other", big, got);
  EXPECT_TRUE(got.empty());
  s.set_scope_rows("sales", 5, {});  // an empty listing removes the record
  scopes.clear();
  s.scopes("sales", scopes);
  EXPECT_EQ(scopes, std::vector<uint64_t>{big});

  EXPECT_FALSE(s.held_listing("sales", big));
  s.hold_listing("sales", big, HeldListing{0x8000000000000001ull, 4});
  auto held = s.held_listing("sales", big);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->fingerprint, 0x8000000000000001ull);
  EXPECT_EQ(held->run_id, 4);
  std::vector<uint64_t> hs;
  s.held_scopes("sales", hs);
  EXPECT_EQ(hs, std::vector<uint64_t>{big});
  s.release_listing("sales", big);
  EXPECT_FALSE(s.held_listing("sales", big));

  s.set_cursor("sales", big, "\"2024-01-01\"");
  s.set_cursor("sales", big, "\"2024-02-01\"");
  s.set_cursor("sales", 1, "3");
  EXPECT_EQ(s.cursor("sales", big), "\"2024-02-01\"");
  EXPECT_EQ(s.clear_cursors("sales"), 2u);
  EXPECT_FALSE(s.cursor("sales", 1));
}

TEST_F(PgStoreTest, AListingRecordedWithADigestGivesItBackWithoutItsRows) {
  pg::Conn conn(url_);
  pg::PgStaging s(conn);
  std::vector<StagedRef> rows{{"[2]", 22}, {"[1]", 11}};
  s.set_scope_rows("sales", 5, rows);
  EXPECT_FALSE(s.listing_digest("sales", 5));  // recorded without one
  EXPECT_FALSE(s.listing_digest("sales", 6));  // never recorded
  const uint64_t digest = 0xffffffff00000007ull;
  s.record_listing("sales", 5, rows, digest);
  auto d = s.listing_digest("sales", 5);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->digest, digest);
  EXPECT_EQ(d->rows, 2u);
  std::vector<StagedRow> got;
  s.scope_rows("sales", 5, got);  // the header is no row
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "[1]");
  s.set_scope_rows("sales", 5, rows);
  EXPECT_FALSE(s.listing_digest("sales", 5));
}

TEST_F(PgStoreTest, AListingIsAppliedByOneWorkerAtATime) {
  pg::Conn a(url_), b(url_);
  pg::PgStaging sa(a), sb(b);
  sa.set_scope_rows("sales", 1, std::vector<StagedRef>{{"[1]", 1}});
  a.query("BEGIN");
  b.query("BEGIN");
  std::vector<StagedRow> rows;
  sa.scope_rows("sales", 1, rows);
  // Another worker reading the same listing in its unit of work is told at once, not made to
  // wait; another listing is free.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(sb.scope_rows("sales", 1, rows), ContendedError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  b.query("ROLLBACK");
  b.query("BEGIN");
  EXPECT_NO_THROW(sb.scope_rows("sales", 2, rows));
  EXPECT_NO_THROW(sb.scope_rows("other", 1, rows));
  sa.set_scope_rows("sales", 1, std::vector<StagedRef>{{"[1]", 1}, {"[2]", 2}});
  a.query("COMMIT");
  rows.clear();
  EXPECT_NO_THROW(sb.scope_rows("sales", 1, rows));
  EXPECT_EQ(rows.size(), 2u);  // what the other worker committed
  b.query("COMMIT");
}

TEST_F(PgStoreTest, UnitOfWorkSavepointMetaAndDescription) {
  auto store = open_store(url_, clock_);
  EXPECT_FALSE(store->claim_consumer());
  std::string d = store->describe();
  EXPECT_EQ(d.find(server_->password()), std::string::npos) << d;
  EXPECT_NE(d.find("127.0.0.1"), std::string::npos) << d;
  EXPECT_EQ(store->get_meta("schema_version"), "1");

  store->begin();
  store->set_meta("a", "1");
  store->savepoint();
  store->set_meta("b", "2");
  store->rollback_to_savepoint();
  store->savepoint();
  store->set_meta("c", "3");
  store->release_savepoint();
  store->commit();
  EXPECT_EQ(store->get_meta("a"), "1");
  EXPECT_FALSE(store->get_meta("b"));
  EXPECT_EQ(store->get_meta("c"), "3");
  store->begin();
  store->set_meta("a", "changed");
  store->rollback();
  EXPECT_EQ(store->get_meta("a"), "1");
  EXPECT_FALSE(store->in_transaction());
  EXPECT_TRUE(store->compact());

  // A statement the server refuses fails the unit: commit says so instead of losing it quietly.
  store->begin();
  store->set_meta("d", "4");
  EXPECT_THROW(store->set_meta("e", "\xff"), pg::QueryError);  // not UTF-8: refused
  EXPECT_THROW(store->commit(), StorageError);
  EXPECT_FALSE(store->in_transaction());
  EXPECT_FALSE(store->get_meta("d"));
}

TEST_F(PgStoreTest, ADatabaseOfANewerCascadeIsRefused) {
  {
    auto store = open_store(url_, clock_);
    store->set_meta("schema_version", "99");
  }
  try {
    open_store(url_, clock_);
    FAIL() << "opened a database of schema version 99";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("newer cascade"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(server_->password()), std::string::npos) << e.what();
  }
}

TEST_F(PgStoreTest, AStopEndsAWaitForAnotherWorkersLockWithinSeconds) {
  auto holder = open_store(url_, clock_);
  auto waiter = open_store(url_, clock_);
  holder->begin();
  holder->set_meta("hot", "holder");  // the row stays locked until the holder ends its unit
  std::atomic<bool> stop{false};
  waiter->set_stop_flag(&stop);
  waiter->begin();
  std::thread stopper([&] {
    std::this_thread::sleep_for(500ms);
    stop = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(waiter->set_meta("hot", "waiter"), StorageError);
  auto waited = std::chrono::steady_clock::now() - t0;
  stopper.join();
  EXPECT_GE(waited, 500ms);
  EXPECT_LT(waited, 5s);
  waiter->rollback();
  waiter->set_stop_flag(nullptr);
  holder->commit();
  EXPECT_EQ(waiter->get_meta("hot"), "holder");
}

// A connection lost while the store is idle between units of work is reconnected by the next
// one; a connection lost inside a unit fails it with ConnectionLost, and the next reconnects.
TEST_F(PgStoreTest, ALostConnectionIsReconnectedAtTheNextUnitOfWork) {
  auto store = open_store(url_, clock_);
  store->begin();
  store->set_meta("k", "1");
  store->commit();
  const std::string others =
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
      "current_database() AND pid <> pg_backend_pid()";
  const std::string db = url_.substr(url_.rfind('/') + 1);
  server_->exec(db, others);
  std::this_thread::sleep_for(200ms);
  store->begin();
  EXPECT_EQ(store->get_meta("k"), "1");
  store->set_meta("k", "2");
  store->commit();

  store->begin();
  store->set_meta("k", "3");
  server_->exec(db, others);
  std::this_thread::sleep_for(200ms);
  EXPECT_THROW(store->commit(), ConnectionLost);
  EXPECT_FALSE(store->in_transaction());
  store->begin();
  EXPECT_EQ(store->get_meta("k"), "2");
  store->commit();
  // Idle, read outside a unit of work.
  server_->exec(db, others);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(store->get_meta("k"), "2");
}
