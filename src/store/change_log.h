// ChangeLog: the ordered stream of changes (new, changed, gone, with the new image) that the
// warehouse is loaded from; DynamoDB Streams (NEW_IMAGE) in the AWS design. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace cascade {

inline constexpr std::string_view kChangeLogView = "cascade_change_log";

enum class ChangeKind : uint8_t { New = 1, Changed = 2, Gone = 3 };
const char* change_kind_name(ChangeKind k);

struct Change {
  int64_t seq = 0;  // assigned by append, increasing
  std::string stage;
  ChangeKind kind = ChangeKind::New;
  std::string key;    // as in Staging
  std::string image;  // canonical JSON object of the row; for Gone, the key fields only
  int64_t run_id = 0;
  TimePoint at;
};

class ChangeLog {
 public:
  virtual ~ChangeLog() = default;
  // Appends changes in order, setting each one's seq.
  virtual void append(std::span<Change> changes) = 0;
  // Up to `limit` changes with seq > after, in seq order.
  virtual std::vector<Change> read(int64_t after, size_t limit) = 0;
  // Number of changes of a stage (all stages when empty) with run_id == run (any run when 0).
  virtual int64_t count(std::string_view stage = {}, int64_t run = 0) = 0;
  // The highest seq appended so far (0 if none).
  virtual int64_t last_seq() = 0;

  // (Re)defines kChangeLogView, the change log as analysts read it: seq, table_name, key,
  // operation ('insert', 'update' or 'delete'), image (JSON text), run_id and at (ISO 8601 UTC
  // text), in seq order, which is commit order. `tables` maps each stage to its table.
  virtual void define_view(std::span<const std::pair<std::string, std::string>> tables) = 0;
};

}  // namespace cascade
