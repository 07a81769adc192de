#include "store/listing_blob.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

namespace cascade {

namespace {
constexpr uint32_t kHeaderMark = 0xFFFFFFFFu;
}

std::string encode_listing(std::span<const StagedRef> rows, uint64_t digest) {
  std::vector<const StagedRef*> sorted;
  sorted.reserve(rows.size());
  size_t bytes = 0;
  for (const auto& r : rows) {
    sorted.push_back(&r);
    bytes += 12 + r.key.size();
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const StagedRef* a, const StagedRef* b) { return a->key < b->key; });
  std::string blob;
  blob.reserve(bytes + kListingHeaderBytes);
  auto put = [&](uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) blob += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  if (digest != 0 && rows.size() <= UINT32_MAX) {
    put(kHeaderMark, 4);
    put(digest, 8);
    put(rows.size(), 4);
  }
  for (const StagedRef* r : sorted) {
    put(r->key.size(), 4);
    blob += r->key;
    put(r->hash, 8);
  }
  return blob;
}

void decode_listing(std::string_view bytes, std::string_view stage, std::vector<StagedRow>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t size = bytes.size();
  auto read = [&](size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[at + i]) << (8 * i);
    return v;
  };
  size_t at = 0;
  if (size >= kListingHeaderBytes && read(0, 4) == kHeaderMark) at = kListingHeaderBytes;
  while (at + 4 <= size) {
    size_t len = static_cast<size_t>(read(at, 4));
    if (len > size || at + 4 + len + 8 > size) break;
    out.push_back(StagedRow{std::string(bytes.substr(at + 4, len)), read(at + 4 + len, 8)});
    at += 4 + len + 8;
  }
  if (at != size)
    throw std::runtime_error("staging: the recorded listing of a scope of stage '" +
                             std::string(stage) + "' is damaged");
}

std::optional<ListingDigest> listing_blob_digest(std::string_view bytes) {
  if (bytes.size() < kListingHeaderBytes) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  auto read = [&](size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[at + i]) << (8 * i);
    return v;
  };
  if (read(0, 4) != kHeaderMark) return std::nullopt;
  return ListingDigest{read(4, 8), static_cast<uint32_t>(read(12, 4))};
}

}  // namespace cascade
