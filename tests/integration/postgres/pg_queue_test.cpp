// The PostgreSQL queue (src/store/postgres) on a real PostgreSQL 15 started for this process:
// the Queue contract every backend keeps (tests/support/contracts/queue_contract.h), with time
// moved by hand, plus what only a shared server brings: the caller's transaction, concurrent
// receivers on their own connections, and connections that die.
#include "store/postgres/pg_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdlib>
#include <set>
#include <thread>

#include "store/postgres/pg_conn.h"
#include "support/contracts/queue_contract.h"
#include "support/postgres.h"

using namespace cascade;
using namespace std::chrono_literals;
using cascade::pg::Conn;
using cascade::pg::PgQueue;
using cascade::testing::QueueContract;

namespace {

// A database of its own per test, through open_store() as `cascade` opens it.
const cascade::testing::QueueBackend kPostgres{
    "postgres", [](std::string& why) -> std::unique_ptr<cascade::testing::QueueUnderTest> {
      cascade::testing::PostgresServer* server = cascade::testing::shared_postgres(why);
      if (!server) {
        why = "PostgreSQL unavailable: " + why;
        return nullptr;
      }
      return cascade::testing::store_queue(
          server->create_database(cascade::testing::test_database_name("t_")),
          std::make_unique<ManualClock>());
    }};

INSTANTIATE_TEST_SUITE_P(Postgres, QueueContract, ::testing::Values(kPostgres));

// The PostgreSQL queue on a connection the test holds, to open transactions on it and to cut it.
class PgQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
    db_ = cascade::testing::test_database_name("t_");
    url_ = server_->create_database(db_);
    conn_ = std::make_unique<Conn>(url_);
    queue_ = std::make_unique<PgQueue>(*conn_, clock_);
    QueueOptions o;
    o.visibility_timeout = 30s;
    o.max_receive_count = 3;
    o.retention = 1h;
    q().create("work", o);
  }
  Queue& q() { return *queue_; }
  size_t send(std::vector<std::string> bodies, Duration delay = Duration::zero()) {
    return q().send("work", bodies, delay);
  }

  ManualClock clock_;
  cascade::testing::PostgresServer* server_ = nullptr;
  std::string db_, url_;
  std::unique_ptr<Conn> conn_;
  std::unique_ptr<PgQueue> queue_;
};

TEST_F(PgQueueTest, OperationsJoinTheCallersTransactionAndRollBackWithIt) {
  send({"kept"});
  {
    pg::Tx tx(*conn_);
    send({"a", "b"});
    auto m = q().receive("work", 10);
    ASSERT_EQ(m.size(), 3u);
    EXPECT_TRUE(q().remove("work", m[0].receipt));
    // no commit: everything above is undone
  }
  QueueStats s = q().stats("work");
  EXPECT_EQ(s.depth, 1);
  EXPECT_EQ(s.in_flight, 0);
  auto m = q().receive("work", 10);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].body, "kept");
  EXPECT_EQ(m[0].receive_count, 1);
}

// SKIP LOCKED, deterministically: while one worker's receive is uncommitted, another receives
// the remaining messages at once instead of waiting (a statement timeout turns a wait into a
// failure rather than a hang).
TEST_F(PgQueueTest, AReceiverSkipsMessagesAnotherHoldsWithoutWaiting) {
  std::vector<std::string> bodies;
  for (int i = 0; i < 10; ++i) bodies.push_back("m" + std::to_string(i));
  ASSERT_EQ(send(bodies), 10u);
  Conn other_conn(url_);
  other_conn.query("SET statement_timeout = '5s'");
  PgQueue other(other_conn, clock_);
  pg::Tx tx(*conn_);
  auto mine = q().receive("work", 4);
  ASSERT_EQ(mine.size(), 4u);
  auto theirs = other.receive("work", 10);
  ASSERT_EQ(theirs.size(), 6u);
  std::set<std::string> ids;
  for (auto& m : mine) ids.insert(m.id);
  for (auto& m : theirs) EXPECT_TRUE(ids.insert(m.id).second) << "received twice: " << m.body;
  EXPECT_TRUE(other.receive("work", 10).empty());
}

TEST_F(PgQueueTest, FourConcurrentReceiversGetDisjointSetsCoveringAllMessages) {
  constexpr int kMessages = 2000, kThreads = 4;
  std::vector<std::string> bodies;
  for (int i = 0; i < kMessages; ++i) bodies.push_back("{\"n\":" + std::to_string(i) + "}");
  ASSERT_EQ(send(bodies), static_cast<size_t>(kMessages));

  std::vector<std::vector<ReceivedMessage>> got(kThreads);
  std::vector<std::string> errors(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        Conn c(url_);
        PgQueue queue(c, clock_);
        start.arrive_and_wait();
        // Bounded: 2000 messages need at most 2000 non-empty receives in all; an empty one
        // while others still hold rows is retried, up to a limit.
        for (int round = 0, empty = 0; round < 5000 && empty < 200; ++round) {
          auto batch = queue.receive("work", 7);
          if (batch.empty()) {
            if (queue.stats("work").depth == 0) break;
            ++empty;
            continue;
          }
          for (auto& m : batch) {
            if (!queue.remove("work", m.receipt)) errors[t] += "remove refused " + m.id + "; ";
            got[t].push_back(std::move(m));
          }
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> ids, bodies_seen;
  size_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    total += got[t].size();
    for (auto& m : got[t]) {
      EXPECT_TRUE(ids.insert(m.id).second) << "message " << m.id << " received twice";
      bodies_seen.insert(m.body);
      EXPECT_EQ(m.receive_count, 1);
    }
    std::cout << "[          ] thread " << t << " received " << got[t].size() << "\n";
  }
  EXPECT_EQ(total, static_cast<size_t>(kMessages));
  EXPECT_EQ(bodies_seen.size(), static_cast<size_t>(kMessages));
  QueueStats s = q().stats("work");
  EXPECT_EQ(s.depth + s.in_flight, 0);
}

TEST_F(PgQueueTest, AReceiverWhoseConnectionDiesKeepsItsMessagesHiddenUntilTheDeadline) {
  send({"a", "b", "c", "d"});
  auto dying = std::make_unique<Conn>(url_);
  auto dying_q = std::make_unique<PgQueue>(*dying, clock_);
  auto held = dying_q->receive("work", 3);
  ASSERT_EQ(held.size(), 3u);
  // The worker is in the middle of its unit of work when its server process goes away.
  dying->query("BEGIN");
  dying->query("SELECT 1");
  server_->exec(db_, "SELECT pg_terminate_backend(" + std::to_string(dying->backend_pid()) + ")");
  EXPECT_THROW(dying_q->remove("work", held[0].receipt), StorageError);
  EXPECT_TRUE(dying->broken());

  // Another worker sees only the message that was never held...
  auto now = q().receive("work", 10);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].body, "d");
  EXPECT_EQ(q().stats("work").in_flight, 4);
  clock_.advance(29s);
  EXPECT_TRUE(q().receive("work", 10).empty());
  // ...and the held ones once their visibility deadline (30 s) passes, counted once more.
  clock_.advance(1s);
  auto back = q().receive("work", 10);
  ASSERT_EQ(back.size(), 4u);
  std::set<std::string> held_ids;
  for (auto& m : held) held_ids.insert(m.id);
  for (auto& m : back) {
    EXPECT_EQ(m.receive_count, 2) << m.body;
    held_ids.erase(m.id);
  }
  EXPECT_TRUE(held_ids.empty());
  // The dead worker's receipts are stale everywhere.
  for (auto& m : held) EXPECT_FALSE(q().remove("work", m.receipt));
}

TEST_F(PgQueueTest, AReceiveWhoseConnectionDiesBeforeCommitLeavesNoTrace) {
  send({"a", "b"});
  Conn dying(url_);
  PgQueue dying_q(dying, clock_);
  dying.query("BEGIN");
  ASSERT_EQ(dying_q.receive("work", 2).size(), 2u);
  server_->exec(db_, "SELECT pg_terminate_backend(" + std::to_string(dying.backend_pid()) + ")");
  EXPECT_THROW(dying.query("COMMIT"), StorageError);
  // The receive never committed: both are visible now, never counted.
  auto m = q().receive("work", 10);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].receive_count, 1);
  EXPECT_EQ(m[1].receive_count, 1);
}

TEST_F(PgQueueTest, TablesAreCreatedOnceByConcurrentFirstUsers) {
  std::string url = server_->create_database(db_ + "_fresh");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::vector<std::string> errors(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      try {
        Conn c(url);
        PgQueue queue(c, clock_);
        queue.create("q" + std::to_string(t), QueueOptions{});
        ++ok;
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 4) << errors[0] << errors[1] << errors[2] << errors[3];
  server_->exec("postgres", "DROP DATABASE \"" + db_ + "_fresh\" WITH (FORCE)");
}

// pg::Conn itself: errors carry the server's words, never the password.
class PgConnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CASCADE_REQUIRE_POSTGRES(server);
    server_ = server;
  }
  cascade::testing::PostgresServer* server_ = nullptr;
};

TEST_F(PgConnTest, ParametersRoundTripAndErrorsCarryTheSqlstate) {
  Conn c(server_->conninfo("postgres"));
  auto r = c.query("SELECT $1::text, $2::bigint, $3::text IS NULL", "it's \"quoted\"",
                   int64_t{-9007199254740993}, std::nullopt);
  ASSERT_EQ(r.rows(), 1);
  EXPECT_EQ(r.text(0, 0), "it's \"quoted\"");
  EXPECT_EQ(r.integer(0, 1), -9007199254740993);
  EXPECT_EQ(r.text(0, 2), "t");
  try {
    c.query("SELEC 1");
    FAIL() << "no throw";
  } catch (const pg::QueryError& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_NE(std::string(e.what()).find("syntax error"), std::string::npos) << e.what();
  }
  // The connection is still usable after a refused statement.
  EXPECT_EQ(c.query("SELECT 2").integer(0, 0), 2);
}

TEST_F(PgConnTest, ATransactionRollsBackUnlessCommitted) {
  Conn c(server_->conninfo("postgres"));
  c.query("CREATE TEMP TABLE t(x int)");
  {
    pg::Tx tx(c);
    c.query("INSERT INTO t VALUES (1)");
  }
  {
    pg::Tx tx(c);
    c.query("INSERT INTO t VALUES (2)");
    tx.commit();
  }
  EXPECT_EQ(c.query("SELECT sum(x) FROM t").integer(0, 0), 2);
  EXPECT_FALSE(c.in_transaction());
}

TEST_F(PgConnTest, LoginAndConnectionFailuresAreStorageErrorsWithoutThePassword) {
  std::string wrong = "Wr0ngSecretPw";
  std::string url = "postgresql://" + server_->user() + ":" + wrong +
                    "@127.0.0.1:" + std::to_string(server_->port()) + "/postgres";
  try {
    Conn c(url);
    FAIL() << "logged in with a wrong password";
  } catch (const StorageError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("password authentication failed"), std::string::npos) << what;
    EXPECT_EQ(what.find(wrong), std::string::npos) << what;
  }
  // Nothing listens on port 1.
  try {
    Conn c("postgresql://u:" + wrong + "@127.0.0.1:1/db?connect_timeout=5");
    FAIL() << "connected to nothing";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()).find(wrong), std::string::npos) << e.what();
  }
  // A malformed string quoting the password back.
  try {
    Conn c("postgresql://u:" + wrong + "@127.0.0.1:notaport/db");
    FAIL() << "accepted a bad port";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()).find(wrong), std::string::npos) << e.what();
  }
  try {
    Conn c("host=127.0.0.1 password=" + wrong + " bogus");
    FAIL() << "accepted a malformed conninfo";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()).find(wrong), std::string::npos) << e.what();
  }
}

TEST_F(PgConnTest, ServerErrorsNeverQuoteThePassword) {
  // The real password, as a value the server echoes back in its error.
  Conn c(server_->conninfo("postgres"));
  try {
    c.query("SELECT $1::int", server_->password());
    FAIL() << "no throw";
  } catch (const pg::QueryError& e) {
    EXPECT_EQ(e.sqlstate(), "22P02");
    EXPECT_EQ(std::string(e.what()).find(server_->password()), std::string::npos) << e.what();
  }
}

TEST_F(PgConnTest, PgEnvironmentVariablesFillTheConnectionString) {
  ::setenv("PGPASSWORD", server_->password().c_str(), 1);
  ::setenv("PGPORT", std::to_string(server_->port()).c_str(), 1);
  std::string err;
  try {
    Conn c("host=127.0.0.1 user=" + server_->user() + " dbname=postgres");
    EXPECT_EQ(c.query("SELECT current_setting('port')").text(0, 0),
              std::to_string(server_->port()));
  } catch (const std::exception& e) {
    err = e.what();
  }
  ::unsetenv("PGPASSWORD");
  ::unsetenv("PGPORT");
  EXPECT_EQ(err, "");
}

TEST_F(PgConnTest, ALostConnectionIsAStorageError) {
  Conn c(server_->conninfo("postgres"));
  server_->exec("postgres", "SELECT pg_terminate_backend(" + std::to_string(c.backend_pid()) + ")");
  EXPECT_THROW(c.query("SELECT 1"), StorageError);
  EXPECT_TRUE(c.broken());
}

}  // namespace
