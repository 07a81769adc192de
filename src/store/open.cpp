#include <map>
#include <mutex>
#include <stdexcept>

#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace cascade {
namespace {

std::mutex registry_mu;
std::map<std::string, StoreOpener, std::less<>>& registry() {
  static std::map<std::string, StoreOpener, std::less<>> schemes;
  return schemes;
}

}  // namespace

void register_store_scheme(std::string_view scheme, StoreOpener opener) {
  std::lock_guard lock(registry_mu);
  registry()[std::string(scheme)] = opener;
}

std::unique_ptr<Store> open_store(std::string_view url, Clock& clock, StoreOptions options) {
  std::string_view path = url;
  StoreOpener registered = nullptr;
  {
    std::lock_guard lock(registry_mu);
    for (const auto& [scheme, opener] : registry())
      if (url.starts_with(scheme)) registered = opener;
  }
  if (registered) return registered(url, clock, options);
  if (is_postgres_url(url)) return open_postgres_store(std::string(url), clock, options);
  if (url.starts_with("sqlite:")) {
    path = url.substr(7);
    if (path.starts_with("//")) path.remove_prefix(2);
  } else if (url.find("://") != std::string_view::npos || url.starts_with("aws:") ||
             url.starts_with("postgres")) {
    throw std::runtime_error(
        "storage '" + std::string(url.substr(0, url.find(':'))) +
        "' is not supported by this build (supported: sqlite:PATH, postgres://...)");
  }
  if (path.empty())
    throw std::runtime_error("storage 'sqlite:' needs a file path, e.g. sqlite:cascade.db");
  return open_sqlite_store(std::string(path), clock, options);
}

std::string redact_storage_url(std::string_view url) {
  // An aws: storage's warehouse may be a PostgreSQL URL with its password.
  return is_postgres_url(url) || url.starts_with("aws:") ? redact_postgres_url(url)
                                                         : std::string(url);
}

}  // namespace cascade
