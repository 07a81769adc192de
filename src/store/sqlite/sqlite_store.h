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

// The PRAGMA statements every store connection runs before anything else, in order: read-only
// connections get the waiting and caching settings, writers also the journal settings. One
// definition, so bench/'s SQLite peer runs with exactly the store's settings.
std::string sqlite_store_pragmas(bool read_only);

}  // namespace cascade
