// 1-D depthwise filtering along the last dim (see depthwise_rows.h).
#include "algo/depthwise_rows.h"

#include <algorithm>
#include <cstring>

#include "fastconv/parallel.h"
#include "isa/isa_dispatch.h"
#include "ukernels/depthwise/rows_ukernels.h"

namespace fastconv::algo {

namespace {

constexpr int64_t kMaxPadded = 4096;  // rows up to this padded length go through a stack copy

// The active ISA's row filter (csrc/ukernels/depthwise/rows_*.cc), chosen once.
void padded_row(const float* src, const float* f, float* y, int64_t w_out, int64_t k,
                int64_t stride, int64_t dilation) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(rows_f32);
  kernel(src, f, y, w_out, k, stride, dilation);
}
void padded_row(const double* src, const double* f, double* y, int64_t w_out, int64_t k,
                int64_t stride, int64_t dilation) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(rows_f64);
  kernel(src, f, y, w_out, k, stride, dilation);
}

template <typename T>
void row(const T* x, const T* f, T* y, int64_t w_in, int64_t w_out, int64_t k, int64_t stride,
         int64_t pad_lo, int64_t dilation) {
  // The input positions the outputs read: [-pad_lo, -pad_lo + length).
  const int64_t length = (w_out - 1) * stride + (k - 1) * dilation + 1;
  if (length <= kMaxPadded) {
    T buf[kMaxPadded];
    // buf[j] = x[j - pad_lo] inside x, 0 outside
    const int64_t begin = std::min(pad_lo, length);
    const int64_t end = std::max(begin, std::min(length, pad_lo + w_in));
    std::fill(buf, buf + begin, T(0));
    if (end > begin) std::memcpy(buf + begin, x + (begin - pad_lo), size_t(end - begin) * sizeof(T));
    std::fill(buf + end, buf + length, T(0));
    return padded_row(buf, f, y, w_out, k, stride, dilation);  // NOLINT
  }
  for (int64_t o = 0; o < w_out; ++o) {  // long rows: bounds-checked
    T acc = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad_lo + t * dilation;
      if (i >= 0 && i < w_in) acc += f[t] * x[i];
    }
    y[o] = acc;
  }
}

}  // namespace

template <typename T>
void depthwise_rows(int64_t batch, int64_t channels, int64_t mult, int64_t lines, int64_t w_in,
                    int64_t w_out, int64_t k, int64_t stride, int64_t pad_lo, int64_t dilation,
                    const T* x, const T* f, T* y) {
  const int64_t planes = batch * channels * mult;
  parallel_for(planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t n = p / (channels * mult), q = p % (channels * mult);
      const T* xp = x + (n * channels + q / mult) * lines * w_in;
      T* yp = y + p * lines * w_out;
      for (int64_t l = 0; l < lines; ++l)
        row(xp + l * w_in, f + q * k, yp + l * w_out, w_in, w_out, k, stride, pad_lo, dilation);
    }
  });
}

template void depthwise_rows<float>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, const float*, const float*, float*);
template void depthwise_rows<double>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, const double*, const double*,
                                     double*);

}  // namespace fastconv::algo
