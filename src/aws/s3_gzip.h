// gzip (RFC 1952) with DEFLATE (RFC 1951) fixed-Huffman blocks and LZ77 matching, written here
// because cascade takes no compression library. JSON Lines compress several times over this
// way, and every gzip reader (Athena, gzip -d, zcat) reads the result. Thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cascade::aws {

// One complete gzip member holding `data`. Members concatenated are a valid gzip file too
// (how a large export is compressed part by part).
std::string gzip(std::string_view data);

// CRC-32 (IEEE, as gzip uses), continuing from `crc` (0 to start).
uint32_t crc32(std::string_view data, uint32_t crc = 0);

}  // namespace cascade::aws
