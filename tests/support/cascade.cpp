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

std::set<std::pair<int64_t, int64_t>> truth_sales(const Value& truth) {
  std::set<int64_t> sp;
  for (const auto& e : truth.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson") sp.insert(e.find("id")->as_int());
  std::set<std::pair<int64_t, int64_t>> out;
  for (const auto& s : truth.find("sales")->as_array())
    if (sp.count(s.find("employee_id")->as_int()))
      out.emplace(s.find("id")->as_int(), s.find("employee_id")->as_int());
  return out;
}

std::set<std::pair<int64_t, int64_t>> storage_sales(const std::string& url) {
  ManualClock clock;
  auto store = open_store(url, clock, StoreOptions{true});
  std::set<std::pair<int64_t, int64_t>> out;
  for (const auto& r :
       store->warehouse()
           .query("SELECT sale_id, employee_id FROM sales WHERE _deleted_at IS NULL")
           .rows)
    out.emplace(r[0].as_int(), r[1].as_int());
  return out;
}

std::set<std::pair<int64_t, int64_t>> warehouse_sales(const std::string& db) {
  return storage_sales("sqlite:" + db);
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
