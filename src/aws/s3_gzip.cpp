#include "aws/s3_gzip.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace cascade::aws {

std::string gzip(std::string_view data) {
  z_stream z{};
  // 15 window bits + 16: a gzip header and trailer around the DEFLATE stream. Level 6 is
  // gzip's own default: most of level 9's ratio at a fraction of its time.
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: cannot start the compressor (out of memory)");
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  // The counts are 32-bit: input beyond that goes in by slices, and the output grows if the
  // bound was short.
  size_t left = data.size();
  while (true) {
    if (z.avail_in == 0 && left > 0) {
      z.avail_in = static_cast<uInt>(std::min<size_t>(left, std::numeric_limits<uInt>::max()));
      left -= z.avail_in;
    }
    size_t written = static_cast<size_t>(reinterpret_cast<char*>(z.next_out) - out.data());
    if (written == out.size()) out.resize(out.size() * 2 + 64);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + written);
    z.avail_out =
        static_cast<uInt>(std::min<size_t>(out.size() - written, std::numeric_limits<uInt>::max()));
    int rc = deflate(&z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      deflateEnd(&z);
      throw std::runtime_error("gzip: the compressor failed");
    }
  }
  out.resize(static_cast<size_t>(reinterpret_cast<char*>(z.next_out) - out.data()));
  deflateEnd(&z);
  return out;
}

}  // namespace cascade::aws
