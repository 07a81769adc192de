// SqsQueue: cascade::Queue on Amazon SQS standard queues (JSON protocol). Queue `q` is the SQS
// queue `{prefix}q`, its dead letters the queue `{prefix}q-dlq`, tied by a RedrivePolicy with
// maxReceiveCount = max_receive_count, so SQS itself moves a message received too often.
//
// Where SQS differs from the Queue contract (documented per method below):
// - Bodies are not coalesced: SQS deduplication exists only on FIFO queues. A repeated body is
//   harmless because the engine's writes are conditional (a replay writes nothing).
// - SQS never lowers a receive count: release() replaces the message with a copy that carries
//   the receives that counted (a message attribute), and receive() adds them to SQS's count and
//   dead-letters a message past max_receive_count itself, since the redrive policy sees only
//   the copy's own receives.
// - release_in_flight() cannot exist on SQS (in-flight receipts are held by their receivers):
//   messages come back when their visibility timeout ends.
// - A message that SQS moved by its redrive policy carries no reason; its DeadLetter says so.
// - oldest_age_ms is 0: SQS exposes the age of the oldest message only as the CloudWatch metric
//   ApproximateAgeOfOldestMessage (the generated template alarms on it), not as an attribute.
// - Delays and visibility timeouts are capped at what SQS takes: a send delay at 900 s, a
//   visibility at 12 h.
// - The counts of stats() are SQS's approximate ones.
//
// Not thread-safe (one owner thread, like its Client). It remembers the messages it received
// (by receipt) until they are removed, released or dead-lettered, since SQS cannot return a
// message's body from a receipt.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aws/client.h"
#include "store/queue.h"

namespace cascade::aws {

struct SqsQueueOptions {
  std::string prefix;  // put before every queue name (e.g. "prod-")
  bool create = true;  // false: create() refuses a queue that does not exist yet
};

class SqsQueue : public Queue {
 public:
  // The largest body SQS takes (256 KiB).
  static constexpr size_t kMaxBody = 256 * 1024;
  // The message attribute that carries the reason of a dead letter.
  static constexpr const char* kReasonAttribute = "cascade_reason";

  // `client` must outlive this queue.
  SqsQueue(Client& client, SqsQueueOptions options);

  // Creates the DLQ (MessageRetentionPeriod = retention) and the queue (VisibilityTimeout,
  // MessageRetentionPeriod, RedrivePolicy to the DLQ) when missing, and sets those attributes
  // when they exist. With create=false, a missing queue or DLQ throws std::runtime_error naming
  // it. Options SQS cannot hold (a visibility above 12 h, a retention outside 60 s..14 days, a
  // max_receive_count outside 1..1000, a name SQS refuses) throw std::invalid_argument.
  void create(std::string_view queue, const QueueOptions& options) override;

  // SendMessageBatch, 10 bodies (and at most 256 KiB) per call; entries SQS failed on its side
  // are sent again (bounded), entries it refused throw std::runtime_error with SQS's code. A body
  // over 256 KiB is refused before anything is sent (std::invalid_argument). No coalescing:
  // returns bodies.size().
  size_t send(std::string_view queue, std::span<const std::string> bodies,
              Duration delay = Duration::zero()) override;

  // ReceiveMessage (short poll), up to 10 per call, until `max` or an empty answer. SQS hands out
  // messages in no particular order. A message whose receives, with those its released copies
  // carried, pass the max_receive_count create() was given is dead-lettered, not returned.
  std::vector<ReceivedMessage> receive(std::string_view queue, size_t max,
                                       std::optional<Duration> visibility = {}) override;

  // DeleteMessage. False when SQS calls the receipt invalid.
  bool remove(std::string_view queue, std::string_view receipt) override;

  // ChangeMessageVisibility. `error` is not kept: SQS messages cannot be changed.
  bool change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                         std::string_view error = {}) override;

  // Sends a copy, visible after `delay` (at most 15 minutes), carrying the receives before this
  // one, then deletes the message (see above). A message this queue did not receive (its body
  // is unknown here) is made visible again instead, its receive still counted.
  bool release(std::string_view queue, std::string_view receipt, Duration delay) override;

  // Sends the body to the DLQ with `reason` (and the receive count and first send time) as
  // message attributes, then deletes it from the queue. False when this queue did not receive
  // the message (its body is unknown here) or the delete finds the receipt invalid.
  bool dead_letter(std::string_view queue, std::string_view receipt,
                   std::string_view reason) override;

  // GetQueueAttributes of the queue and its DLQ: depth = ApproximateNumberOfMessages,
  // in_flight = ...NotVisible + ...Delayed, dlq_depth = the DLQ's visible + not visible.
  QueueStats stats(std::string_view queue) override;

  // Receives from the DLQ (hidden 30 s while listing, made visible again at the end), sorted by
  // first send time. DeadLetter.id is the DLQ message id. For a message SQS moved itself, reason
  // says so, receive_count is SQS's count less this listing's receive, and dead_at is unknown
  // (its send time).
  std::vector<DeadLetter> dead_letters(std::string_view queue, size_t limit) override;

  // Sends dead letters (all, or those with the given ids) back to the queue as new messages
  // (receive count 0) and deletes them from the DLQ. Returns how many moved.
  size_t redrive(std::string_view queue, std::span<const std::string> ids = {}) override;

  // Deletes dead letters (all, or those ids) by receiving and deleting them, so the count is
  // exact (PurgeQueue would be neither immediate nor counted).
  size_t purge_dead_letters(std::string_view queue, std::span<const std::string> ids = {}) override;

  // Not possible on SQS: returns 0 (see above).
  size_t release_in_flight(std::string_view queue) override;

  // Remembers a message received outside this queue (the records of a Lambda SQS event), so that
  // dead_letter() can move it by its receipt.
  void adopt(const ReceivedMessage& message);

  // The queue URL of `{prefix}name` (cached; GetQueueUrl on first use). Throws
  // std::runtime_error when it does not exist.
  const std::string& url(std::string_view name);

 private:
  struct Held {
    std::string id, body;
    int receive_count = 0;
    TimePoint sent_at;
  };
  struct Listed {
    DeadLetter letter;
    std::string receipt;
  };
  std::string sqs_name(std::string_view queue) const;
  // Receives up to `limit` DLQ messages whose id is not in `latest` (hidden for 30 s); `latest`
  // gets the newest receipt of every message received, to make them visible again.
  std::vector<Listed> list_dlq(std::string_view queue, size_t limit,
                               std::map<std::string, std::string>& latest);
  // redrive (to_queue) and purge_dead_letters.
  size_t move_dead_letters(std::string_view queue, std::span<const std::string> ids, bool to_queue);
  void make_visible(const std::string& queue_url, const std::vector<std::string>& receipts);
  size_t delete_batch(const std::string& queue_url, const std::vector<std::string>& receipts);
  void send_entries(const std::string& queue_url, std::span<const std::string> entries);
  void remember(const std::string& receipt, Held held);
  std::optional<Held> forget(std::string_view receipt);

  Client& client_;
  SqsQueueOptions options_;
  std::map<std::string, std::string, std::less<>> urls_;
  std::map<std::string, int, std::less<>> max_receives_;  // by queue, from create()
  std::unordered_map<std::string, Held> held_;
  std::deque<std::string> held_order_;  // receipts, oldest first, to bound held_
};

}  // namespace cascade::aws
