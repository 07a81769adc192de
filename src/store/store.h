// Store: one backend's Queue, Staging, ChangeLog and Warehouse, plus small metadata, opened from
// a storage URL ("sqlite:PATH"). A unit of work (begin/commit) makes every effect in it atomic
// where the backend can. Not thread-safe: one owner thread.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "store/change_log.h"
#include "store/coordination.h"
#include "store/queue.h"
#include "store/staging.h"
#include "store/warehouse.h"

namespace cascade {

class Store {
 public:
  virtual ~Store() = default;

  virtual Queue& queue() = 0;
  virtual Staging& staging() = 0;
  virtual ChangeLog& change_log() = 0;
  virtual Warehouse& warehouse() = 0;

  // Unit of work. Nested begin() is an error. rollback() undoes everything since begin().
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() = 0;
  virtual bool in_transaction() const = 0;

  // A nested unit inside begin()/commit(), one message's effects: rollback_to_savepoint() undoes
  // everything since savepoint() and leaves the outer unit open, release_savepoint() keeps it.
  // One level only. A failure of the storage itself (StorageError) means the outer unit is lost
  // too: the caller rolls it back.
  virtual void savepoint() = 0;
  virtual void release_savepoint() = 0;
  virtual void rollback_to_savepoint() = 0;

  // Waits for a lock another process holds (at most a few seconds) end at once while *flag is
  // true, failing with StorageError, so a stop request is never held up by another writer. The
  // flag must outlive its use; nullptr clears it.
  virtual void set_stop_flag(const std::atomic<bool>* flag) = 0;

  // Small durable key/value metadata (cursors, run counter, pipeline fingerprint).
  virtual std::optional<std::string> get_meta(std::string_view key) = 0;
  virtual void set_meta(std::string_view key, std::string_view value) = 0;

  // Claims the queues of this store for this process, until the Store is destroyed (or the
  // process dies: the claim never outlives it). Returns true when the backend makes this
  // process their only consumer (SQLite: one process per file), which may then release messages
  // a dead run had received; false when many consumers share the queues (a database many
  // workers use, SQS), where a received message is only ever returned by its visibility
  // deadline. Throws std::runtime_error saying who holds it when an exclusive claim is taken.
  virtual bool claim_consumer() = 0;

  // Housekeeping for an idle moment, outside any unit of work: the backend moves what it
  // buffered for commits back into its main storage and returns the space (SQLite: a TRUNCATE
  // checkpoint of the write-ahead log). Best effort: returns false when it could not (a reader
  // holds the log, a read-only store, inside a unit of work).
  virtual bool compact() = 0;

  // A human description of where the data lives (never includes secrets).
  virtual std::string describe() const = 0;

  // What the processes sharing this store agree on (request budget, leader, markers), or null
  // when one process owns the store (SQLite) and everything stays process-local. Owned by the
  // Store; valid while it lives.
  virtual Coordination* coordination() { return nullptr; }

  // Brings the warehouse up to date with what this unit of work's writes left elsewhere, outside
  // any unit of work. Nothing for the backends whose writes are the warehouse's own (SQLite,
  // PostgreSQL); the AWS backend reads its staging tables' DynamoDB Streams into the warehouse
  // here. The engine calls it at the end of every sync. Throws StorageError or
  // std::runtime_error when the warehouse cannot be brought up to date.
  virtual void settle() {}
};

struct StoreOptions {
  bool read_only = false;
  bool claim_consumer = false;  // claim_consumer() before anything else is opened
};

// Opens the backend named by `url`: "sqlite:PATH" (or a bare path), or "postgres://..." /
// "postgresql://..." (anything libpq takes; PG* environment variables fill the rest). Throws
// std::runtime_error with a readable message when the URL is unknown or the storage cannot be
// opened.
std::unique_ptr<Store> open_store(std::string_view url, Clock& clock, StoreOptions options = {});

// Opens a storage whose URL starts with `scheme` (e.g. "aws:"). Parts above the store (the AWS
// part) register their backend here, so the store never depends on them; open_store() tries the
// registered schemes before its own. Registering a scheme again replaces it. Thread-safe.
using StoreOpener = std::unique_ptr<Store> (*)(std::string_view url, Clock& clock,
                                               StoreOptions options);
void register_store_scheme(std::string_view scheme, StoreOpener opener);

// `url` as it may be shown (messages, logs, status pages): a password it holds replaced by ***.
std::string redact_storage_url(std::string_view url);

}  // namespace cascade
