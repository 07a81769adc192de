// StreamReader: loads the inner warehouse from the item tables' DynamoDB Streams (NEW_IMAGE), the
// change log of the AWS design. Each table's stream is read shard by shard (a parent before its
// children), from a checkpoint per shard kept in the warehouse's own metadata
// (`aws_stream:TABLE:SHARD`: the last sequence number applied, or `end` for a closed shard read
// to its end). Each GetRecords batch is applied with its checkpoint in one unit of work of the
// warehouse's store, so a reader killed at any instant resumes exactly: no change lost, none
// applied twice. A new image is an upsert (compare-and-set on its `_hash`, which the warehouse
// writes to its own change log), an image with `_deleted_at` a soft deletion. Not thread-safe:
// one owner thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <limits>

#include "aws/dynamo_tables.h"
#include "store/store.h"

namespace cascade::aws {

inline constexpr std::string_view kStreamsService = "streams.dynamodb";
inline constexpr std::string_view kStreamsTarget = "DynamoDBStreams_20120810.";

struct StreamReadOptions {
  int limit = 1000;  // records per GetRecords (1..1000)
  // Stop after this many applied batches (a caller that reads a little at a time).
  size_t max_batches = std::numeric_limits<size_t>::max();
  // Called inside each batch's unit of work after its rows and checkpoint, before the commit: a
  // test stands in a crash there.
  std::function<void()> before_commit;
  const std::atomic<bool>* stop = nullptr;  // ends the read between batches
};

struct StreamReadResult {
  size_t records = 0;  // stream records applied
  size_t batches = 0;
  bool caught_up = false;  // every shard read to its current end
};

class StreamReader {
 public:
  // `tables` addresses the item tables (its Client makes the calls); `warehouse` is the inner
  // store, which receives the rows and the checkpoints. Both outlive the reader.
  StreamReader(DynamoTables& tables, Store& warehouse) : tables_(tables), store_(warehouse) {}

  // Applies what the streams hold now. Throws AwsError / StorageError; what was applied before
  // stays applied, with its checkpoint.
  StreamReadResult catch_up(const StreamReadOptions& options = {});

 private:
  Value call(std::string_view op, const std::string& body);
  // Reads one shard from its checkpoint; false when the read stopped early (limits, stop).
  bool read_shard(const ItemTable& t, const std::string& arn, const std::string& shard,
                  const StreamReadOptions& options, StreamReadResult& result);
  void apply(const ItemTable& t, const Value& records);

  DynamoTables& tables_;
  Store& store_;
};

}  // namespace cascade::aws
