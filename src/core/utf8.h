// UTF-8 decoding of one sequence at a time, strict as RFC 3629 is. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cascade {

// Length of the valid UTF-8 sequence at s[i] (i < s.size()) and its code point in `cp`; 0 when
// the bytes there are not UTF-8 (a stray continuation, an overlong form, a surrogate, beyond
// U+10FFFF, cut short), `cp` then unspecified.
size_t utf8_at(std::string_view s, size_t i, uint32_t& cp);

}  // namespace cascade
