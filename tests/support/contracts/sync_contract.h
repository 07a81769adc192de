// End-to-end scenarios written once and run on every storage backend: the real cascade binary
// syncs into the storage a URL names (sqlite:FILE, postgresql://...) from the real simulator or a
// canned vendor, and the warehouse is compared with what the vendor holds, with the same
// assertions on each backend. Each binary instantiates SyncContract with its backend,
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, SyncContract, ::testing::Values(StorageBackend{...}));
//
// and compiles the contract's sources itself (tests/CMakeLists.txt: a static library would drop
// the registrations). The SQL the tests run is read through open_store() and written to run on
// every backend. Not thread-safe: one test at a time.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/value.h"
#include "support/subprocess.h"

namespace cascade::testing {

struct StorageBackend {
  std::string name;  // for messages: "sqlite", "postgres"
  // How a time cascade observes (the change log's `at`) reads back through a query: a regex.
  std::string time_form;
  // The URL of fresh, empty storage for the running test (one per `tag`, for a test that needs
  // several), or "" with `why` set when the backend cannot run here (the test skips with that
  // reason).
  std::function<std::string(const std::string& tag, std::string& why)> fresh_url;
};

// How gtest names the parameter of a failed test.
inline void PrintTo(const StorageBackend& b, std::ostream* os) {
  *os << b.name;
}

class SyncContract : public ::testing::TestWithParam<StorageBackend> {
 protected:
  void SetUp() override;

  // Another fresh storage for this test, besides url_ (a failure when there is none).
  std::string fresh_storage(const std::string& tag) const;
  // The environment of a cascade run against the vendor at `api`, on this test's storage.
  std::map<std::string, std::string> env(const std::string& api) const;
  // `cascade ARGS...` with env(api).
  RunResult cli(const std::string& api, std::vector<std::string> args) const;
  // `cascade sync PIPELINE --json EXTRA...`: exit 0, a completed run; its summary.
  Value sync(const std::string& api, const std::string& pipeline,
             std::vector<std::string> extra = {}) const;
  // The first column of the first row of `sql` on this test's storage, as an integer.
  int64_t scalar(const std::string& sql) const;

  std::string url_;  // this test's storage
  std::string dir_;  // a directory of this test's own (pipeline files, exports)
};

}  // namespace cascade::testing
