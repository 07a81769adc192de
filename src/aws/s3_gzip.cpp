#include "aws/s3_gzip.h"

#include <algorithm>
#include <array>
#include <vector>

namespace cascade::aws {
namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

constexpr uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                   2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

constexpr size_t kWindow = 32768;
constexpr int kMinMatch = 3;
constexpr int kMaxMatch = 258;
constexpr int kHashBits = 15;
constexpr int kMaxChain = 48;  // candidates tried per position: speed over the last percent

class BitWriter {
 public:
  explicit BitWriter(std::string& out) : out_(out) {}
  // `n` bits of `v`, least significant first (DEFLATE's order for everything but Huffman codes).
  void bits(uint32_t v, int n) {
    acc_ |= static_cast<uint64_t>(v) << count_;
    count_ += n;
    while (count_ >= 8) {
      out_ += static_cast<char>(acc_ & 0xFF);
      acc_ >>= 8;
      count_ -= 8;
    }
  }
  // A Huffman code, most significant bit first.
  void code(uint32_t c, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; ++i) r |= ((c >> i) & 1u) << (n - 1 - i);
    bits(r, n);
  }
  void flush() {
    if (count_ > 0) out_ += static_cast<char>(acc_ & 0xFF);
    acc_ = 0;
    count_ = 0;
  }

 private:
  std::string& out_;
  uint64_t acc_ = 0;
  int count_ = 0;
};

// The fixed literal/length code of RFC 1951 3.2.6.
void literal(BitWriter& w, int sym) {
  if (sym < 144) {
    w.code(0x30 + sym, 8);
  } else if (sym < 256) {
    w.code(0x190 + (sym - 144), 9);
  } else if (sym < 280) {
    w.code(sym - 256, 7);
  } else {
    w.code(0xC0 + (sym - 280), 8);
  }
}

void match(BitWriter& w, int length, int distance) {
  int li = 28;
  while (kLenBase[li] > length) --li;
  literal(w, 257 + li);
  if (kLenExtra[li]) w.bits(length - kLenBase[li], kLenExtra[li]);
  int di = 29;
  while (kDistBase[di] > distance) --di;
  w.code(di, 5);
  if (kDistExtra[di]) w.bits(distance - kDistBase[di], kDistExtra[di]);
}

uint32_t hash3(const unsigned char* p) {
  return ((uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2]) * 2654435761u) >> (32 - kHashBits);
}

}  // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  crc = ~crc;
  for (unsigned char c : data) crc = kCrcTable[(crc ^ c) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string gzip(std::string_view data) {
  std::string out;
  out.reserve(data.size() / 3 + 64);
  // Header: magic, deflate, no flags, no mtime (the same input gives the same bytes), OS unknown.
  const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  out.append(reinterpret_cast<const char*>(header), sizeof header);

  BitWriter w(out);
  w.bits(1, 1);  // BFINAL: one block holds everything
  w.bits(1, 2);  // BTYPE 01: fixed Huffman codes
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  std::vector<int32_t> head(size_t{1} << kHashBits, -1);
  std::vector<int32_t> prev(kWindow, -1);
  auto insert = [&](size_t pos) {
    uint32_t h = hash3(p + pos);
    prev[pos & (kWindow - 1)] = head[h];
    head[h] = static_cast<int32_t>(pos);
  };
  size_t i = 0;
  while (i < n) {
    int best_len = 0;
    size_t best_dist = 0;
    if (i + kMinMatch <= n) {
      int32_t cand = head[hash3(p + i)];
      int limit = static_cast<int>(std::min<size_t>(kMaxMatch, n - i));
      for (int chain = 0; cand >= 0 && chain < kMaxChain; ++chain) {
        size_t dist = i - static_cast<size_t>(cand);
        if (dist == 0 || dist > kWindow) break;
        const unsigned char* a = p + cand;
        const unsigned char* b = p + i;
        if (a[best_len] == b[best_len] || best_len == 0) {
          int len = 0;
          while (len < limit && a[len] == b[len]) ++len;
          if (len > best_len) {
            best_len = len;
            best_dist = dist;
            if (len == limit) break;
          }
        }
        int32_t next = prev[static_cast<size_t>(cand) & (kWindow - 1)];
        if (next >= cand) break;  // the slot was reused by a newer position
        cand = next;
      }
      insert(i);
    }
    if (best_len >= kMinMatch) {
      match(w, best_len, static_cast<int>(best_dist));
      for (size_t k = i + 1; k < i + static_cast<size_t>(best_len) && k + kMinMatch <= n; ++k)
        insert(k);
      i += static_cast<size_t>(best_len);
    } else {
      literal(w, p[i]);
      ++i;
    }
  }
  literal(w, 256);  // end of block
  w.flush();

  uint32_t crc = crc32(data);
  uint32_t size = static_cast<uint32_t>(n);  // ISIZE: the length modulo 2^32
  for (int k = 0; k < 4; ++k) out += static_cast<char>((crc >> (8 * k)) & 0xFF);
  for (int k = 0; k < 4; ++k) out += static_cast<char>((size >> (8 * k)) & 0xFF);
  return out;
}

}  // namespace cascade::aws
