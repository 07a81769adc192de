// The command line as a user meets it: exit codes, messages with file:line:column, --help.
#include <gtest/gtest.h>

#include <fstream>

#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade::testing;

namespace {

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Cli, ValidateAcceptsTheExampleAndDescribesTheCascade) {
  RunResult r = run(
      {CASCADE_BIN, "validate", std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("3 stages"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("branches: GET /branches?branch={branch} -> salespersons"),
            std::string::npos)
      << r.out;
}

TEST(Cli, BrokenPipelinesAreRefusedWithPositionAndExitCode2BeforeAnythingRuns) {
  std::string dir = temp_dir();
  struct Case {
    std::string yaml, where, phrase;
  };
  const std::string head =
      "name: t\nsource: { base_url: http://127.0.0.1:1 }\nstorage: sqlite:" + dir + "/never.db\n";
  std::vector<Case> cases = {
      {head + "stages:\n  a:\n    request: GET /a\n    key: { id: id }\n    concurency: 3\n",
       ":8:5", "concurency"},
      {head + "stages:\n  a:\n    request: GET /a\n    key: { id: id }\n    emit: { nope: { x: "
              "\"{record.id}\" } }\n",
       ":8:", "nope"},
      {head + "stages:\n  a:\n    request: GET /a?x={x\n    key: { id: id }\n", ":6:23",
       "unclosed"},
      {head + "stages:\n  a:\n    request: GET /a\n    key: { id: id }\n    where: occupation ==\n",
       ":8:", "where"},
      {head + "queues: { visibility_timeout: soon }\nstages:\n  a:\n    request: GET /a\n    key: "
              "{ id: id }\n",
       ":4:", "duration"},
      {"name: t\nsource: { base_url: \"${NO_SUCH_VAR_FOR_CASCADE}\" }\nstages: {}\n",
       ":2:", "NO_SUCH_VAR_FOR_CASCADE"},
      {"name: [unclosed\n", ":2:1", "invalid YAML"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string file = write(dir, "broken" + std::to_string(i) + ".yaml", cases[i].yaml);
    for (const char* cmd : {"validate", "sync"}) {
      RunResult r = run({CASCADE_BIN, cmd, file});
      EXPECT_EQ(r.exit_code, 2) << cmd << " " << file << "\n" << r.err;
      EXPECT_NE(r.err.find(file + cases[i].where), std::string::npos)
          << "case " << i << ": " << r.err;
      EXPECT_NE(r.err.find(cases[i].phrase), std::string::npos) << "case " << i << ": " << r.err;
    }
  }
  // Nothing ran: no database was created.
  EXPECT_FALSE(std::ifstream(dir + "/never.db").good());
}

TEST(Cli, ValidateRefusesSchedulesEventBridgeRefusesAndCascadesOwnTableNames) {
  std::string dir = temp_dir();
  const std::string head =
      "name: t\nsource: { base_url: http://127.0.0.1:1 }\nstages:\n  a:\n"
      "    inputs: { n: [1] }\n    request: GET /a\n    key: { id: id }\n";
  struct Case {
    std::string line, where, phrase;
  };
  std::vector<Case> cases = {
      {"    schedule: cron(61 * * * ? *)\n", ":8:15", "minutes must be 0-59, found '61'"},
      {"    schedule: cron(0 25 * * ? *)\n", ":8:15", "hours must be 0-23, found '25'"},
      {"    schedule: cron(0 0 * * ? 2200)\n", ":8:15", "year must be 1970-2199"},
      {"    schedule: cron(0 0 ? * ? *)\n", ":8:15", "cannot both be '?'"},
      {"    schedule: rate(5 minute)\n", ":8:15", "rate(5 minutes)"},
      {"    table: Cascade_Changes\n", ":8:12", "table name 'Cascade_Changes' is reserved"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string file = write(dir, "bad" + std::to_string(i) + ".yaml", head + cases[i].line);
    RunResult r = run({CASCADE_BIN, "validate", file});
    EXPECT_EQ(r.exit_code, 2) << file << "\n" << r.err;
    EXPECT_NE(r.err.find(file + cases[i].where), std::string::npos)
        << "case " << i << ": " << r.err;
    EXPECT_NE(r.err.find(cases[i].phrase), std::string::npos) << "case " << i << ": " << r.err;
  }
  // The AWS samples pass.
  for (const char* ok : {"cron(0/5 8-17 ? * MON-FRI *)", "cron(0 9 ? * 2#1 *)",
                         "cron(0 0 LW * ? *)", "rate(1 day)"}) {
    std::string file = write(dir, "ok.yaml", head + "    schedule: " + ok + "\n");
    RunResult r = run({CASCADE_BIN, "validate", file});
    EXPECT_EQ(r.exit_code, 0) << ok << "\n" << r.err;
  }
}

TEST(Cli, EveryCommandHasHelpAndUnknownOptionsAreUsageErrors) {
  for (const char* cmd : {"validate", "sync", "invoke", "sql", "export", "queues", "demo", "dlq"}) {
    RunResult r = run({CASCADE_BIN, cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << cmd;
  }
  RunResult bad = run({CASCADE_BIN, "sync", "--no-such-option"});
  EXPECT_EQ(bad.exit_code, 2);
}
