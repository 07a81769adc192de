// gzip (RFC 1952) by zlib at gzip's default level, for what cascade writes to S3: JSON Lines
// compress several times over, and every gzip reader (Athena, gzip -d, zcat) reads the result.
// Thread-safe (no state).
#pragma once

#include <string>
#include <string_view>

namespace cascade::aws {

// One complete gzip member holding `data`. Members concatenated are a valid gzip file too
// (how a large export is compressed part by part).
std::string gzip(std::string_view data);

}  // namespace cascade::aws
