// PostgresServer: a real PostgreSQL 15 for one test process, started with initdb + pg_ctl in a
// fresh temporary directory on a free 127.0.0.1 port (its unix socket inside that directory,
// fsync off). Password authentication over TCP (scram-sha-256), so connection strings carry a
// password as they would in production. As root, initdb and pg_ctl run as `nobody` through
// runuser (initdb refuses root). The destructor stops it (pg_ctl stop -m fast) and removes the
// directory. The binaries: $CASCADE_TEST_POSTGRES_BIN when set, else /usr/lib/postgresql/15/bin,
// else PATH. A server left running by a killed test process (its owner.pid gone) is stopped and
// removed by the next start. Not thread-safe to construct or destroy; conninfo() may be called from
// any thread.
#pragma once

#include <memory>
#include <string>

namespace cascade::testing {

class PostgresServer {
 public:
  // A started server, or null with `why` saying what is missing (no initdb/pg_ctl found, no
  // runuser as root): the caller skips with that reason. Throws std::runtime_error when the
  // binaries are there but the server does not come up (a real failure, never a skip).
  static std::unique_ptr<PostgresServer> start(std::string& why);
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  // "postgresql://USER:PASSWORD@127.0.0.1:PORT/DB".
  std::string conninfo(const std::string& db) const;
  // Creates database `db` (dropping one of that name first); its conninfo.
  std::string create_database(const std::string& db);
  // Runs one SQL statement as the superuser on database `db` (e.g. pg_terminate_backend).
  // Throws std::runtime_error with the server's message on failure.
  void exec(const std::string& db, const std::string& sql);

 private:
  PostgresServer() = default;
  std::string dir_, bin_, user_ = "cascade", password_;
  int port_ = 0;
  bool as_nobody_ = false;
  bool running_ = false;
};

// The server shared by every test of this process (started on first use, stopped at exit), or
// null with `why` (see PostgresServer::start).
PostgresServer* shared_postgres(std::string& why);

// A database name for the running test alone: `prefix`, its suite and its name in lower case,
// other characters as '_', within PostgreSQL's 63 bytes (a long one shortened and told apart by a
// hash of the whole).
std::string test_database_name(const std::string& prefix);

}  // namespace cascade::testing

// Skips the current test, with the reason, when no PostgreSQL can be started here.
#define CASCADE_REQUIRE_POSTGRES(var)                                                       \
  std::string var##_why;                                                                    \
  ::cascade::testing::PostgresServer* var = ::cascade::testing::shared_postgres(var##_why); \
  if (!var) GTEST_SKIP() << "PostgreSQL unavailable: " << var##_why
