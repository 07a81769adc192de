// The unit of work of the `aws:` storage. DynamoDB and SQS have no transaction spanning a
// message's effects, so every effect is buffered and flushed at commit in an order that makes
// any crash converge on replay: item writes (conditional on the stored `_hash`, so a replay
// writes nothing), then listing records, then child messages, then acknowledgements. Rollback
// discards the buffer; a savepoint marks it. What the unit wrote stays readable inside it
// through the overlays (items' states, listing records). Not thread-safe: one owner thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aws/dynamo_tables.h"
#include "store/queue.h"

namespace cascade::aws {

// What the unit knows of one item: as written by it, or as read from DynamoDB.
struct ItemState {
  bool exists = false;
  bool deleted = false;
  uint64_t hash = 0;
  uint64_t scope = 0;
};

class UnitOfWork {
 public:
  explicit UnitOfWork(DynamoTables& tables) : tables_(tables) {}

  void begin();
  // Flushes every buffered effect in order; on failure the buffer is dropped and the error
  // propagates (what was flushed stays: every write in it is safe to repeat).
  void commit();
  void rollback();
  bool active() const { return active_; }
  void savepoint();
  void release_savepoint();
  void rollback_to_savepoint();

  // A conditional DynamoDB write of one item (`op`: PutItem, UpdateItem, DeleteItem) in the item
  // phase; `identity` names the item, so two writes of one item keep their order. Outside a unit
  // it is made at once.
  void write_item(std::string_view op, std::string body, std::string identity);
  // A write of the listings table, in the listing phase.
  void write_listing(std::string_view op, std::string body, std::string identity);
  // A queue effect: sends in the send phase, anything else (acks, visibility, dead letters) in
  // the ack phase.
  void queue_send(std::function<void()> fn);
  void queue_ack(std::function<void()> fn);

  // Overlays: what this unit wrote, readable before it is flushed. Each set is undone by
  // rollback and rollback_to_savepoint.
  const ItemState* item(const std::string& identity) const;
  void set_item(const std::string& identity, const ItemState& s);
  // A listing record by its name: nullopt inside = removed in this unit; nullptr = untouched.
  const std::optional<std::string>* record(const std::string& name) const;
  void set_record(const std::string& name, std::optional<std::string> value);
  // Records touched by this unit whose names start with `prefix`.
  std::vector<std::pair<std::string, std::optional<std::string>>> records_with(
      std::string_view prefix) const;

 private:
  struct Write {
    std::string op;
    std::string body;
    std::string identity;
  };
  struct Mark {
    size_t items = 0, listings = 0, sends = 0, acks = 0, undo = 0;
  };
  void run_writes(std::vector<Write>& writes);
  void clear();

  DynamoTables& tables_;
  bool active_ = false;
  std::vector<Write> items_, listings_;
  std::vector<std::function<void()>> sends_, acks_;
  std::unordered_map<std::string, ItemState> item_overlay_;
  std::unordered_map<std::string, std::optional<std::string>> record_overlay_;
  std::vector<std::function<void()>> undo_;
  std::optional<Mark> mark_;
};

// The store's Queue: receives, statistics and dead-letter management go straight to the queue
// (SQS); sends and every effect on a received message wait for the unit's commit.
class BufferedQueue final : public Queue {
 public:
  BufferedQueue(Queue& inner, UnitOfWork& unit) : inner_(inner), unit_(unit) {}

  void create(std::string_view queue, const QueueOptions& options) override;
  size_t send(std::string_view queue, std::span<const std::string> bodies, Duration delay) override;
  std::vector<ReceivedMessage> receive(std::string_view queue, size_t max,
                                       std::optional<Duration> visibility) override;
  bool remove(std::string_view queue, std::string_view receipt) override;
  bool change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                         std::string_view error) override;
  bool release(std::string_view queue, std::string_view receipt, Duration delay) override;
  bool dead_letter(std::string_view queue, std::string_view receipt,
                   std::string_view reason) override;
  QueueStats stats(std::string_view queue) override;
  std::vector<DeadLetter> dead_letters(std::string_view queue, size_t limit) override;
  size_t redrive(std::string_view queue, std::span<const std::string> ids) override;
  size_t purge_dead_letters(std::string_view queue, std::span<const std::string> ids) override;
  size_t release_in_flight(std::string_view queue) override;

 private:
  Queue& inner_;
  UnitOfWork& unit_;
};

}  // namespace cascade::aws
