#include "core/error.h"

#include <fmt/format.h>

namespace cascade {

std::string SourcePos::str() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

}  // namespace cascade
