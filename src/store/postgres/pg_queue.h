// PgQueue: the Queue contract (store/queue.h) on PostgreSQL, for many workers on one database.
//
// Tables (created on first use, under an advisory lock so concurrent first uses do not race):
// cascade_queues, cascade_messages, cascade_dead_letters, the same names and roles as on SQLite.
// Coalescing is a partial unique index on (queue, sha256(body)) over never-received messages
// with INSERT ... ON CONFLICT DO NOTHING (a digest, not the body: btree entries are limited to
// about 2.7 kB and bodies are not).
//
// Concurrency: receive picks rows with FOR UPDATE SKIP LOCKED, so workers each on their own
// connection get disjoint messages without waiting on one another. Every operation is one
// statement or one short transaction; when the connection is already inside a transaction (the
// caller's unit of work) they join it, and their effects commit or roll back with it. A worker
// that dies after receiving keeps its messages hidden until their visibility deadline.
//
// Time: deadlines, sent_at and retention are epoch milliseconds (bigint) from the Clock given to
// the constructor, not the server's now(), so tests move time by hand as on SQLite. Workers on
// several hosts must therefore keep their clocks in sync (NTP): a clock that runs ahead by X
// sees messages of others come back X early.
//
// Receipts are "<message id>.<random 128-bit hex token>"; each receive stores a new token, which
// makes every earlier receipt of the message stale.
//
// Not thread-safe: one PgQueue per connection, one owner thread.
#pragma once

#include <map>
#include <random>
#include <string>

#include "store/postgres/pg_conn.h"
#include "store/queue.h"

namespace cascade::pg {

class PgQueue final : public Queue {
 public:
  // Creates the tables if missing. Throws StorageError if the database cannot be used.
  PgQueue(Conn& conn, const Clock& clock);

  void create(std::string_view queue, const QueueOptions& options) override;
  size_t send(std::string_view queue, std::span<const std::string> bodies,
              Duration delay = Duration::zero()) override;
  std::vector<ReceivedMessage> receive(std::string_view queue, size_t max,
                                       std::optional<Duration> visibility = {}) override;
  bool remove(std::string_view queue, std::string_view receipt) override;
  bool change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                         std::string_view error = {}) override;
  bool release(std::string_view queue, std::string_view receipt, Duration delay) override;
  bool dead_letter(std::string_view queue, std::string_view receipt,
                   std::string_view reason) override;
  QueueStats stats(std::string_view queue) override;
  std::vector<DeadLetter> dead_letters(std::string_view queue, size_t limit) override;
  size_t redrive(std::string_view queue, std::span<const std::string> ids = {}) override;
  size_t purge_dead_letters(std::string_view queue, std::span<const std::string> ids = {}) override;
  size_t release_in_flight(std::string_view queue) override;

 private:
  struct Info {
    int64_t id = 0;
    QueueOptions options;
  };
  Info& info(std::string_view queue);
  int64_t now() const { return to_millis(clock_.now()); }
  std::string token();

  Conn& c_;
  const Clock& clock_;
  std::mt19937_64 rng_;
  std::map<std::string, Info, std::less<>> queues_;
};

}  // namespace cascade::pg
