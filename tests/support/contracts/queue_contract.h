// The Queue contract (src/store/queue.h), written once and run against every backend: each test
// binary instantiates QueueContract with its backend's factory,
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, QueueContract, ::testing::Values(QueueBackend{...}));
//
// and compiles queue_contract.cpp itself (tests/CMakeLists.txt): registrations in a static
// library would be dropped by the linker, and a binary holding these tests without an
// instantiation fails. What only one backend has (a file, a shared server's locking) stays in
// that backend's own tests. Not thread-safe: one test at a time.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "store/queue.h"
#include "store/store.h"

namespace cascade::testing {

// One backend's queue for one test, on storage of its own.
class QueueUnderTest {
 public:
  virtual ~QueueUnderTest() = default;
  virtual Queue& queue() = 0;
  // The clock the backend reads, when a test may move it by hand; null for a backend on real
  // time (a remote service), where the tests that move time skip, saying so.
  virtual ManualClock* clock() = 0;
  // The Store holding the queue, or null for a backend that is a queue only.
  virtual Store* store() = 0;
  // Drops this client and opens the same storage again, as a restarted process would.
  virtual void reopen() = 0;
};

// A queue in a Store that open_store() opens from `url`, on `clock` (ManualClock: movable).
std::unique_ptr<QueueUnderTest> store_queue(std::string url, std::unique_ptr<Clock> clock);

struct QueueBackend {
  std::string name;  // for messages: "sqlite", "postgres"
  // Fresh, empty storage for the current test, or null with `why` set when the backend cannot
  // run here (the test skips with that reason).
  std::function<std::unique_ptr<QueueUnderTest>(std::string& why)> open;
};

// How gtest names the parameter of a failed test.
inline void PrintTo(const QueueBackend& b, std::ostream* os) {
  *os << b.name;
}

class QueueContract : public ::testing::TestWithParam<QueueBackend> {
 protected:
  void SetUp() override;
  void TearDown() override { under_test_.reset(); }

  Queue& q() { return under_test_->queue(); }
  // The backend's movable clock; only after CASCADE_NEEDS_MANUAL_CLOCK().
  ManualClock& clock() { return *under_test_->clock(); }
  // Sends to the test's queue "work" (visibility 30 s, max_receive_count 3, retention 1 h).
  size_t send(std::vector<std::string> bodies, Duration delay = Duration::zero()) {
    return q().send("work", bodies, delay);
  }

  std::unique_ptr<QueueUnderTest> under_test_;
};

}  // namespace cascade::testing

// Skips the current contract test on a backend whose clock cannot be moved by hand.
#define CASCADE_NEEDS_MANUAL_CLOCK()                                  \
  if (!under_test_->clock())                                          \
  GTEST_SKIP() << GetParam().name                                     \
               << " runs on real time; this test moves the clock by " \
                  "hand"
