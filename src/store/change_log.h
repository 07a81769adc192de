// ChangeLog: the ordered stream of changes (new, changed, gone, with the new image) that the
// warehouse is loaded from; DynamoDB Streams (NEW_IMAGE) in the AWS design. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cascade {

inline constexpr std::string_view kChangeLogView = "cascade_change_log";

enum class ChangeKind : uint8_t { New = 1, Changed = 2, Gone = 3 };
const char* change_kind_name(ChangeKind k);

// One entry of the change log: a new version of a row (insert: its first; update: a later one,
// a revival after a delete included) or its soft deletion.
struct Change {
  int64_t seq = 0;  // commit-ordered: a later commit never has a smaller seq
  std::string table;
  ChangeKind kind = ChangeKind::New;
  std::string key;    // JSON array of the key values, in key order
  std::string image;  // JSON object of the row's columns; for Gone, the key columns only
  int64_t run_id = 0;
  std::string at;  // ISO 8601 UTC, when the change was observed
};

// The change log is written by the writes themselves (Warehouse::upsert, mark_deleted): every
// new version and every deletion takes the next sequence number in the same unit of work, so a
// reader that follows seq never skips a committed change. Not thread-safe.
class ChangeLog {
 public:
  virtual ~ChangeLog() = default;
  // Up to `limit` changes with seq > after, in seq order.
  virtual std::vector<Change> read(int64_t after, size_t limit) = 0;
  // Number of changes of a table (all tables when empty) with run_id == run (any run when 0).
  virtual int64_t count(std::string_view table = {}, int64_t run = 0) = 0;
  // The highest seq written so far (0 if none).
  virtual int64_t last_seq() = 0;

  // (Re)defines kChangeLogView, the change log as analysts read it: seq, table_name, key,
  // operation ('insert', 'update' or 'delete'), image (JSON text), run_id and at (ISO 8601 UTC
  // text), in seq order, which is commit order.
  virtual void define_view() = 0;
};

}  // namespace cascade
