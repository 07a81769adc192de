// Helpers for tests that drive the real cascade binary: pipeline files derived from the example,
// read-only queries of a warehouse file, and a canned HTTP server. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "sim/http_server.h"
#include "store/warehouse.h"

namespace cascade::testing {

// Writes DIR/pipeline.yaml: examples/dunder-mifflin.yaml with each `from` text replaced by its
// `to` (a missing `from` fails the test). Returns the path.
std::string example_pipeline(const std::string& dir,
                             const std::map<std::string, std::string>& replace = {});

// Runs SQL on a SQLite warehouse file, read-only. Throws std::runtime_error on SQL errors.
QueryResult query_db(const std::string& db, const std::string& sql);

// The sales a cascade of the example pipeline can reach in the simulator's truth (GET
// /admin/truth): (sale id, employee id) pairs of salespersons' sales.
std::set<std::pair<int64_t, int64_t>> truth_sales(const Value& truth);
// The live (not deleted) sales of the storage `url` names (sqlite:FILE, postgresql://...), as
// the same pairs.
std::set<std::pair<int64_t, int64_t>> storage_sales(const std::string& url);
// The same of a SQLite warehouse file.
std::set<std::pair<int64_t, int64_t>> warehouse_sales(const std::string& db);

// An HTTP server on 127.0.0.1 (a free port) answering with a test-provided handler.
class CannedServer {
 public:
  explicit CannedServer(sim::HttpHandler fn);
  ~CannedServer();
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  sim::HttpServer server_;
  int port_ = 0;
};

}  // namespace cascade::testing
