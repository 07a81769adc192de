// ChangeLogShipper: the change log shipped to S3 as gzip JSON Lines that Athena can query, as
// the original design shipped its DynamoDB streams. Objects are
//   s3://BUCKET/PREFIX/table=TABLE/date=YYYY-MM-DD/SEQ.json.gz
// (Hive partitions by table and by the UTC date the change was observed; SEQ, 20 digits, the
// first change in the object), one line per change:
//   {"seq":N,"table":"sales","operation":"insert|update|delete","key":[...],"image":{...},
//    "run_id":N,"at":"2026-11-29T18:00:00Z"}
// The checkpoint (the last seq shipped) is the object PREFIX/_cascade/checkpoint.json, written
// after the objects it covers. Exact across crashes: a round read again from the same checkpoint
// names its objects by the same first seq and rewrites them with the same changes (and any
// committed since), so no change is lost or shipped twice. Not thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "aws/s3_objects.h"
#include "store/change_log.h"

namespace cascade::aws {

struct ShipOptions {
  std::string bucket;
  std::string prefix;     // without leading or trailing '/'; may be empty
  size_t batch = 10'000;  // changes read per round, so memory stays bounded
};

struct ShipResult {
  int64_t changes = 0;   // shipped by this call
  size_t objects = 0;    // written by this call
  int64_t last_seq = 0;  // the checkpoint after this call
};

class ChangeLogShipper {
 public:
  // `log` and `s3` must outlive the shipper. Throws std::invalid_argument for a batch of 0.
  ChangeLogShipper(ChangeLog& log, S3& s3, ShipOptions options);

  // Ships every change after the checkpoint, round by round, until none is left or *stop is set
  // (checked between rounds). Throws AwsError / std::runtime_error on failure; what was shipped
  // before stays checkpointed.
  ShipResult ship(const std::atomic<bool>* stop = nullptr);

  // The last seq shipped (0 when nothing was).
  int64_t checkpoint();

  // The object key of a table's changes of one date starting at `first_seq`.
  std::string object_key(const std::string& table, const std::string& date,
                         int64_t first_seq) const;
  std::string checkpoint_key() const;

 private:
  ChangeLog& log_;
  S3& s3_;
  ShipOptions options_;
};

}  // namespace cascade::aws
