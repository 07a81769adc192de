// Logs are JSON lines that carry the run, the stage, the message id and the duration of what
// they report; LOGGING_LEVEL (the old design's variable, Python's level names) sets the level
// when --log-level is not given.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "core/json.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

TEST(Logging, LinesCarryRunStageMessageAndSecondsAndLoggingLevelIsHonoured) {
  std::string dir = temp_dir();
  std::string pipeline = dir + "/items.yaml";
  CannedServer vendor([](const sim::HttpRequest& req, sim::HttpResponse& res) {
    const std::string* x = req.param("x");
    if (x && *x == "2") {
      res.status = 404;
      res.body = "{}";
      return;
    }
    res.body = R"({"result":[{"id":1}]})";
  });
  std::ofstream(pipeline) << "name: items\nsource:\n  base_url: " << vendor.url()
                          << "\n  retry: { attempts: 1, backoff: 1ms..2ms }\nstorage: sqlite:"
                          << dir
                          << "/items.db\nstages:\n  items:\n    inputs: { x: [1, 2] }\n"
                             "    request: GET /items?x={x}\n    records: result\n"
                             "    key: { item_id: id }\n";
  RunResult quiet =
      run({CASCADE_BIN, "sync", pipeline}, {{"LOGGING_LEVEL", "ERROR"}}, std::chrono::seconds(60));
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("dead-lettered"), std::string::npos) << "ERROR hides warnings";

  RunResult r =
      run({CASCADE_BIN, "sync", pipeline}, {{"LOGGING_LEVEL", "INFO"}}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The second run has nothing to dead-letter (the first did it); its info lines still carry
  // the run id.
  std::istringstream lines(quiet.err + r.err);
  std::string line;
  bool saw_run = false;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    Value v = parse_json(line);
    if (v.find("run")) saw_run = true;
  }
  EXPECT_TRUE(saw_run) << r.err;

  // A fresh database: the dead letter's warning names its run, stage, message and duration.
  std::string pipeline2 = dir + "/items2.yaml";
  {
    std::ifstream in(pipeline);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    text.replace(text.find("/items.db"), 9, "/items2.db");
    std::ofstream(pipeline2) << text;
  }
  RunResult w = run({CASCADE_BIN, "sync", pipeline2}, {{"LOGGING_LEVEL", "WARNING"}},
                    std::chrono::seconds(60));
  ASSERT_EQ(w.exit_code, 0) << w.err;
  bool found = false;
  std::istringstream wl(w.err);
  while (std::getline(wl, line)) {
    if (line.find("dead-lettered") == std::string::npos) continue;
    Value v = parse_json(line);
    ASSERT_NE(v.find("run"), nullptr) << line;
    EXPECT_EQ(v.find("run")->as_int(), 1) << line;
    ASSERT_NE(v.find("stage"), nullptr) << line;
    EXPECT_EQ(v.find("stage")->as_string(), "items");
    ASSERT_NE(v.find("message"), nullptr) << line;
    EXPECT_FALSE(v.find("message")->as_string().empty());
    ASSERT_NE(v.find("seconds"), nullptr) << line;
    EXPECT_GE(v.find("seconds")->as_number(), 0.0);
    found = true;
  }
  EXPECT_TRUE(found) << w.err;
}
