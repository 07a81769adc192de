// The Queue contract (tests/support/contracts/queue_contract.h) on the SQLite backend: a real
// database file of its own per test, with time moved by hand.
#include "support/contracts/queue_contract.h"
#include "support/sim.h"

namespace cascade::testing {
namespace {

const QueueBackend kSqlite{"sqlite", [](std::string&) {
                             return store_queue("sqlite:" + temp_dir() + "/store.db",
                                                std::make_unique<ManualClock>());
                           }};

INSTANTIATE_TEST_SUITE_P(Sqlite, QueueContract, ::testing::Values(kSqlite));

}  // namespace
}  // namespace cascade::testing
