#include "core/hash.h"

#include <xxhash.h>

#include "core/json.h"

namespace cascade {

uint64_t hash_bytes(std::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

uint64_t hash_value(const Value& v) {
  thread_local std::string buf;
  buf.clear();
  append_canonical_json(v, buf);
  return hash_bytes(buf);
}

}  // namespace cascade
