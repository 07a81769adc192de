// Errors that carry where they come from. ConfigError points into a pipeline file; all are
// plain exceptions, caught at the CLI (config: exit 2) or at the message boundary (data: DLQ).
#pragma once

#include <stdexcept>
#include <string>

namespace cascade {

// A position in a text file, 1-based (0 = unknown).
struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;  // "file:line:column"
};

// A pipeline file (or command line) that cannot be used as written.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(SourcePos pos, const std::string& what)
      : std::runtime_error(pos.str() + ": " + what), pos_(std::move(pos)), detail_(what) {}
  const SourcePos& pos() const { return pos_; }
  const std::string& detail() const { return detail_; }

 private:
  SourcePos pos_;
  std::string detail_;
};

// Data from the API that cannot be used: permanent for this message (goes to the DLQ, no retry).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The storage itself failed (disk full, I/O error, database locked or corrupt, read-only): no
// message is to blame, so nothing is dead-lettered; the unit of work is rolled back and the run
// stops with this error.
class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The connection to a database server was lost (server restart, network cut, the backend
// terminated). Whether the unit under way committed is unknown; the store reconnects at its next
// unit of work, so a caller whose writes are idempotent may retry. Any other StorageError (disk
// full, out of memory) is no such invitation.
class ConnectionLost final : public StorageError {
 public:
  using StorageError::StorageError;
};

// Contention with another worker sharing the storage: what a message needs is held by another
// worker right now (the same listing), or the database failed a statement to break a lock cycle
// among workers. Nothing is wrong with the message or the storage: only the unit (or the
// message's savepoint) is undone, and it is retried shortly without counting a receive. Mixed
// into the exceptions that mean it (ContendedError here, a backend's own query error there), so
// callers catch this type.
class Contention {
 public:
  virtual ~Contention() = default;
  virtual const char* what() const noexcept = 0;
};

class ContendedError : public std::runtime_error, public Contention {
 public:
  using std::runtime_error::runtime_error;
  const char* what() const noexcept override { return std::runtime_error::what(); }
};

}  // namespace cascade
