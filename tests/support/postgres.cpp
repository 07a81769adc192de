#include "support/postgres.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <stdexcept>

#include "support/subprocess.h"

namespace fs = std::filesystem;

namespace cascade::testing {
namespace {

// The directory holding initdb, pg_ctl and postgres: Debian's versioned one first (its
// /usr/bin wrappers need a cluster configuration), then PATH.
std::string find_bin_dir() {
  // An explicit choice (another version, or a directory without them to check the skip).
  if (const char* dir = std::getenv("CASCADE_TEST_POSTGRES_BIN"))
    return fs::exists(fs::path(dir) / "initdb") && fs::exists(fs::path(dir) / "pg_ctl") ? dir : "";
  if (fs::exists("/usr/lib/postgresql/15/bin/initdb") &&
      fs::exists("/usr/lib/postgresql/15/bin/pg_ctl"))
    return "/usr/lib/postgresql/15/bin";
  std::string initdb = find_in_path("initdb");
  if (initdb.empty()) return "";
  fs::path dir = fs::path(initdb).parent_path();
  return fs::exists(dir / "pg_ctl") ? dir.string() : "";
}

std::string random_password() {
  static const char alnum[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string s = "pw";
  for (int i = 0; i < 20; ++i) s += alnum[rd() % (sizeof alnum - 1)];
  return s;
}

// A test process killed before its destructor ran (ctest timeout, SIGKILL) leaves a postmaster
// behind: stop those whose owner is gone, and remove their directories.
void sweep_orphans(const std::string& bin, bool as_nobody) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("cascade-pg-", 0) != 0) continue;
    std::ifstream in(entry.path() / "owner.pid");
    long pid = 0;
    if (!(in >> pid) || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::string data = (entry.path() / "data").string();
    if (fs::exists(entry.path() / "data" / "postmaster.pid", ec)) {
      std::vector<std::string> argv{bin + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"};
      if (as_nobody) argv.insert(argv.begin(), {"runuser", "-u", "nobody", "--"});
      RunOptions ro;
      ro.cwd = "/";
      ro.timeout = std::chrono::seconds(30);
      ro.fail_test_on_timeout = false;
      run(argv, ro);
    }
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

std::unique_ptr<PostgresServer> PostgresServer::start(std::string& why) {
  std::string bin = find_bin_dir();
  if (bin.empty()) {
    why =
        "initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/15/bin "
        "(scripts/setup.sh installs Debian's postgresql)";
    return nullptr;
  }
  std::unique_ptr<PostgresServer> s(new PostgresServer());
  s->bin_ = bin;
  s->as_nobody_ = ::geteuid() == 0;
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  if (s->as_nobody_) {
    if (!fs::exists("/usr/sbin/runuser") && !fs::exists("/sbin/runuser") &&
        !fs::exists("/usr/bin/runuser")) {
      why = "running as root and runuser is missing (initdb refuses to run as root)";
      return nullptr;
    }
    passwd* pw = ::getpwnam("nobody");
    if (!pw) {
      why = "running as root and there is no user 'nobody' to run initdb as";
      return nullptr;
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    // Some containers keep the binaries out of an unprivileged user's reach: nothing here can
    // run PostgreSQL, which is this machine's limit, not a failure of the code under test.
    RunOptions po;
    po.cwd = "/";
    po.timeout = std::chrono::seconds(30);
    RunResult probe = run({"runuser", "-u", "nobody", "--", bin + "/initdb", "--version"}, po);
    if (probe.exit_code != 0) {
      std::string err = probe.err.substr(0, probe.err.find('\n'));
      why = "running as root, and user nobody cannot run " + bin + "/initdb here (" + err + ")";
      return nullptr;
    }
  }
  sweep_orphans(bin, s->as_nobody_);
  // Short: the unix socket path (dir + "/.s.PGSQL.PORT") must fit in 107 bytes.
  std::string tmpl = "/tmp/cascade-pg-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  s->dir_ = tmpl;
  std::ofstream(s->dir_ + "/owner.pid") << ::getpid() << "\n";
  s->password_ = random_password();
  std::string pwfile = s->dir_ + "/pwfile";
  std::ofstream(pwfile) << s->password_ << "\n";
  if (s->as_nobody_) {
    if (::chown(s->dir_.c_str(), uid, gid) != 0 || ::chown(pwfile.c_str(), uid, gid) != 0)
      throw std::runtime_error("chown of " + s->dir_ + " to nobody failed");
  }
  auto cmd = [&](std::vector<std::string> argv) {
    if (s->as_nobody_) argv.insert(argv.begin(), {"runuser", "-u", "nobody", "--"});
    return argv;
  };
  RunOptions ro;
  ro.cwd = s->dir_;
  ro.timeout = std::chrono::seconds(60);
  RunResult r = run(
      cmd({bin + "/initdb", "-D", s->dir_ + "/data", "-U", s->user_, "-E", "UTF8", "--locale=C",
           "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile}),
      ro);
  fs::remove(pwfile);
  if (r.exit_code != 0)
    throw std::runtime_error("initdb failed (" + std::to_string(r.exit_code) + "): " + r.err);
  // Another process may take the port between free_port() and the bind: try a few.
  std::string last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    s->port_ = free_loopback_port();
    std::string opts = "-c listen_addresses=127.0.0.1 -p " + std::to_string(s->port_) + " -k " +
                       s->dir_ +
                       " -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=60 -c shared_buffers=32MB";
    r = run(cmd({bin + "/pg_ctl", "-D", s->dir_ + "/data", "-l", s->dir_ + "/log", "-w", "-t", "30",
                 "-o", opts, "start"}),
            ro);
    if (r.exit_code == 0) {
      s->running_ = true;
      return s;
    }
    last = r.out + r.err + tail_of(s->dir_ + "/log");
  }
  throw std::runtime_error("pg_ctl start failed: " + last);
}

PostgresServer::~PostgresServer() {
  if (running_) {
    std::vector<std::string> argv{bin_ + "/pg_ctl", "-D", dir_ + "/data", "-m",
                                  "fast",           "-w", "stop"};
    if (as_nobody_) argv.insert(argv.begin(), {"runuser", "-u", "nobody", "--"});
    RunOptions ro;
    ro.cwd = dir_;
    ro.timeout = std::chrono::seconds(30);
    ro.fail_test_on_timeout = false;
    try {
      run(argv, ro);
    } catch (...) {
    }
  }
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string PostgresServer::conninfo(const std::string& db) const {
  return "postgresql://" + user_ + ":" + password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
         db;
}

void PostgresServer::exec(const std::string& db, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo(db).c_str());
  std::string err;
  if (PQstatus(c) != CONNECTION_OK) {
    err = PQerrorMessage(c);
  } else {
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    PGresult* res = PQexec(c, sql.c_str());
    auto st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) err = PQresultErrorMessage(res);
    PQclear(res);
  }
  PQfinish(c);
  if (!err.empty()) throw std::runtime_error("postgres: " + sql + ": " + err);
}

std::string PostgresServer::create_database(const std::string& db) {
  exec("postgres", "DROP DATABASE IF EXISTS \"" + db + "\" WITH (FORCE)");
  exec("postgres", "CREATE DATABASE \"" + db + "\"");
  return conninfo(db);
}

PostgresServer* shared_postgres(std::string& why) {
  static std::mutex mu;
  static std::unique_ptr<PostgresServer> server;
  static std::string reason;
  static bool tried = false;
  std::lock_guard lock(mu);
  if (!tried) {
    tried = true;
    try {
      server = PostgresServer::start(reason);
    } catch (const std::exception& e) {
      // Binaries present but no server: a failure to report, not a skip. Remember it so every
      // test that needs the server fails with the cause.
      reason = std::string("FAILED: ") + e.what();
      throw;
    }
  }
  if (!server && reason.rfind("FAILED: ", 0) == 0) throw std::runtime_error(reason);
  why = reason;
  return server.get();
}

std::string test_database_name(const std::string& prefix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = prefix + info->test_suite_name() + "_" + info->name();
  for (char& ch : name)
    ch = std::isalnum(static_cast<unsigned char>(ch))
             ? static_cast<char>(std::tolower(static_cast<unsigned char>(ch)))
             : '_';
  if (name.size() <= 63) return name;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(name));
  return name.substr(0, 46) + "_" + hash;
}

}  // namespace cascade::testing
