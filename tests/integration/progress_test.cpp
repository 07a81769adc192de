// `cascade sync` on a terminal redraws live per-stage progress; piped, its output stays the
// summary alone. The terminal is a real pseudo-terminal (util-linux `script`).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

struct Slow {
  std::string dir = temp_dir();
  std::string pipeline = dir + "/items.yaml";
  CannedServer vendor{[](const sim::HttpRequest& req, sim::HttpResponse& res) {
    const std::string* x = req.param("x");
    // Long enough for the engine's one-second tick to draw a frame.
    if (x && *x == "3") std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    res.body = R"({"result":[{"id":)" + (x ? *x : std::string("0")) + R"(,"v":"a"}]})";
  }};
  Slow() {
    std::ofstream(pipeline) << "name: items\nsource:\n  base_url: " << vendor.url()
                            << "\n  timeout: 10s\nstorage: sqlite:" << dir
                            << "/items.db\nstages:\n  items:\n    inputs: { x: [1, 2, 3] }\n"
                               "    request: GET /items?x={x}\n    records: result\n"
                               "    key: { item_id: id }\n";
  }
};

}  // namespace

TEST(Progress, ATerminalSeesPerStageProgressRedrawnInPlace) {
  if (run({"sh", "-c", "command -v script"}, {}, std::chrono::seconds(10)).exit_code != 0)
    GTEST_SKIP() << "util-linux `script` is not installed: no pseudo-terminal to test with";
  Slow fx;
  std::string cmd = std::string(CASCADE_BIN) + " sync " + fx.pipeline;
  RunResult r = run({"script", "-qec", cmd, "/dev/null"}, {}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\x1b[2K"), std::string::npos) << "no line was redrawn";
  EXPECT_NE(r.out.find("items"), std::string::npos);
  EXPECT_NE(r.out.find("pending"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("records/s"), std::string::npos) << r.out;
}

TEST(Progress, PipedOutputIsTheSummaryWithoutRedraws) {
  Slow fx;
  RunResult r = run({CASCADE_BIN, "sync", fx.pipeline}, {}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("progress:"), std::string::npos) << "a 3-second run prints no plain line";
}

TEST(Progress, PipedOutputOfALongRunPrintsPlainLinesAsOftenAsAsked) {
  Slow fx;
  RunResult r = run({CASCADE_BIN, "sync", fx.pipeline, "--progress-every", "1s"}, {},
                    std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << r.out;
  // The 2.5-second request keeps the run going past a 1-second interval at least once.
  size_t at = r.out.find("progress: items");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_LT(at, r.out.find("items: ")) << "progress comes before the summary:\n" << r.out;
  RunResult bad = run({CASCADE_BIN, "sync", fx.pipeline, "--progress-every", "soon"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--progress-every"), std::string::npos) << bad.err;
}
