// The embedded default backend: queues, staging, change log and warehouse in one SQLite file
// (WAL mode). One SqliteStore per thread; several processes may open the same file.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace cascade {

// Opens (creating if needed) the database at `path`. Throws std::runtime_error on failure.
std::unique_ptr<Store> open_sqlite_store(const std::string& path, Clock& clock,
                                         StoreOptions options = {});

}  // namespace cascade
