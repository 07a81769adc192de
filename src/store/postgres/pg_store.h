// The PostgreSQL backend: queues (PgQueue), staging (PgStaging), change log and warehouse
// (PgWarehouse, PgChangeLog) on one connection, for many workers on one database, on one host or
// many. The database does the coordinating: queues hand each message to one worker (SKIP LOCKED),
// a listing is applied by one worker at a time (PgStaging), each message's effects commit in the
// caller's transaction.
//
// Not thread-safe: one PgStore per thread (each has its own connection); any number of processes
// may open the same database.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace cascade {

// True for the storage URLs this backend takes: postgres://... and postgresql://...
bool is_postgres_url(std::string_view url);

// The URL without its password (user:***@host), for messages and describe().
std::string redact_postgres_url(std::string_view url);

// Connects to `conninfo` (anything libpq takes; PG* environment variables fill the rest), creates
// the tables it lacks and checks the schema version. Throws StorageError (connection) or
// std::runtime_error (a database written by a newer cascade), never quoting the password.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo, Clock& clock,
                                           StoreOptions options = {});

}  // namespace cascade
