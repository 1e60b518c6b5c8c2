// 1-D depthwise filtering along the last (contiguous) dim: the last pass of separable_conv's
// chain (fastconv/separable.py). The depthwise conv algorithms vectorise along that dim, so a
// 1 x k kernel makes them slide k taps over short rows; this one register-blocks outputs and
// runs the taps innermost.
#pragma once
#include <cstdint>

namespace fastconv::algo {

// y[n, q, l, o] = sum_t f[q, t] * x[n, q / mult, l, o * stride - pad_lo + t * dilation]
// (zero outside x), for n < batch, q < channels * mult, l < lines, o < w_out.
template <typename T>
void depthwise_rows(int64_t batch, int64_t channels, int64_t mult, int64_t lines, int64_t w_in,
                    int64_t w_out, int64_t k, int64_t stride, int64_t pad_lo, int64_t dilation,
                    const T* x, const T* f, T* y);

}  // namespace fastconv::algo
