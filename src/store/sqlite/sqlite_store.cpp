#include "store/sqlite/sqlite_store.h"

#include <stdexcept>

namespace cascade {

std::unique_ptr<Store> open_sqlite_store(const std::string&, Clock&, StoreOptions) {
  throw std::runtime_error("sqlite store: not built yet");
}

}  // namespace cascade
