#include "support/cascade.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "store/store.h"

namespace cascade::testing {

std::string example_pipeline(const std::string& dir,
                             const std::map<std::string, std::string>& replace) {
  std::ifstream in(std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (const auto& [from, to] : replace) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "not in the example pipeline: " << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  std::string path = dir + "/pipeline.yaml";
  std::ofstream(path) << text;
  return path;
}

QueryResult query_db(const std::string& db, const std::string& sql) {
  ManualClock clock;
  auto store = open_store("sqlite:" + db, clock, StoreOptions{true});
  return store->warehouse().query(sql);
}

CannedServer::CannedServer(sim::HttpHandler fn) : server_(std::move(fn), 2) {
  port_ = server_.listen("127.0.0.1", 0);
  server_.start();
}

CannedServer::~CannedServer() {
  server_.stop();
  server_.wait();
}

}  // namespace cascade::testing
