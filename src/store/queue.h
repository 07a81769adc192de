// Queue: durable per-stage message queues with SQS semantics (visibility timeout, receive
// count, dead-lettering past max_receive_count, retention, coalescing of identical pending
// bodies). Implementations are not thread-safe: one owner thread per Store.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace cascade {

struct QueueOptions {
  Duration visibility_timeout = std::chrono::minutes(15);  // SQS VisibilityTimeout 900
  int max_receive_count = 10;                              // RedrivePolicy maxReceiveCount
  Duration retention = std::chrono::days(14);              // MessageRetentionPeriod 1209600
};

struct ReceivedMessage {
  std::string id;       // stable message id
  std::string receipt;  // opaque; valid until the message is received again
  std::string body;
  int receive_count = 0;  // including this receive
  TimePoint sent_at;
};

struct QueueStats {
  int64_t depth = 0;          // visible now (ApproximateNumberOfMessages)
  int64_t in_flight = 0;      // received and not yet visible again, or delayed
  int64_t oldest_age_ms = 0;  // age of the oldest message not yet deleted; 0 if none
  int64_t dlq_depth = 0;
};

struct DeadLetter {
  std::string id;
  std::string queue;
  std::string body;
  int receive_count = 0;
  std::string reason;  // the last error that was recorded for the message
  TimePoint sent_at;
  TimePoint dead_at;
};

class Queue {
 public:
  virtual ~Queue() = default;

  // Declares a queue and its options (idempotent; options of an existing queue are replaced).
  virtual void create(std::string_view queue, const QueueOptions& options) = 0;

  // Enqueues bodies, visible after `delay`. A body byte-identical to one already waiting
  // (sent and never received) in the same queue is coalesced into it. Returns how many new
  // messages were created.
  virtual size_t send(std::string_view queue, std::span<const std::string> bodies,
                      Duration delay = Duration::zero()) = 0;

  // Receives up to `max` visible messages, oldest first, hiding each for the visibility timeout
  // (the queue's, unless given) and raising its receive count. A message whose receive count
  // would pass max_receive_count moves to the dead-letter queue instead, with its last error.
  // Messages older than the retention period are deleted.
  virtual std::vector<ReceivedMessage> receive(std::string_view queue, size_t max,
                                               std::optional<Duration> visibility = {}) = 0;

  // Deletes a received message. False if the receipt is stale (received again since) or gone.
  virtual bool remove(std::string_view queue, std::string_view receipt) = 0;

  // Makes a received message visible again after `timeout` (0 = now), recording `error` as its
  // last error when non-empty. False if the receipt is stale.
  virtual bool change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                                 std::string_view error = {}) = 0;

  // Returns a received message as if that receive had not happened: visible again after `delay`
  // (0 = now), its receive count back to what it was before. For a try that is no failure of
  // the message (cancelled by a stop, or turned away by the vendor's own limits), so that
  // receive_count keeps counting real failed attempts. A message back at zero receives
  // coalesces like a fresh send: an identical waiting body absorbs it, visible at the earlier
  // of both times. False if the receipt is stale.
  virtual bool release(std::string_view queue, std::string_view receipt, Duration delay) = 0;

  // Moves a received message to the dead-letter queue now, with `reason`. False if stale.
  virtual bool dead_letter(std::string_view queue, std::string_view receipt,
                           std::string_view reason) = 0;

  virtual QueueStats stats(std::string_view queue) = 0;

  // Dead letters of a queue, oldest first.
  virtual std::vector<DeadLetter> dead_letters(std::string_view queue, size_t limit) = 0;

  // Moves dead letters (all when `ids` is empty) back to their queue with a zero receive count.
  // Returns how many moved.
  virtual size_t redrive(std::string_view queue, std::span<const std::string> ids = {}) = 0;

  // Deletes dead letters (all when `ids` is empty). Returns how many were deleted.
  virtual size_t purge_dead_letters(std::string_view queue,
                                    std::span<const std::string> ids = {}) = 0;

  // Makes every in-flight message of the queue visible now, keeping receive counts. For a
  // consumer that knows no other consumer holds messages (restart after a crash).
  virtual size_t release_in_flight(std::string_view queue) = 0;
};

}  // namespace cascade
