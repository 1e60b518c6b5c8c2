// Integer division rounded down or up for a positive divisor and a dividend of either sign (C++'s
// `/` rounds toward zero): the index arithmetic of stride phases and of taps reaching into
// padding, where offsets go negative; and the plain non-negative ceil_div / round_up.
#pragma once
#include <cstdint>

namespace fastconv {

// floor(a / b) and ceil(a / b) for b > 0.
inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return q * b > a ? q - 1 : q;
}
inline int64_t ceil_div_signed(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return q * b < a ? q + 1 : q;
}

// ceil(a / b) for a >= 0, b > 0, and a rounded up to a multiple of b: the block and tile counts.
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace fastconv
