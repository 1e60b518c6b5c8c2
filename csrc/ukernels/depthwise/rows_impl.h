// Body of the 1-D row filter micro-kernel (csrc/algo/depthwise_rows.cc), compiled once per ISA
// by rows_{scalar,avx2,avx512}.cc with that file's flags. Pure: no allocation, no threads.
#pragma once
#include <cstdint>
#include <cstring>

namespace fastconv::rows_detail {

// y[o] = sum_t f[t] * src[o * stride + t * dilation], o < w_out (src zero-padded by the caller).
// Stride 1: four vectors of kBytes (the ISA's register width: GCC/Clang vector extensions) of
// outputs per step, then one, the taps innermost; the rest scalar.
template <typename T, int kBytes>
inline void filter_row(const T* __restrict src, const T* __restrict f, T* __restrict y,
                       int64_t w_out, int64_t k, int64_t stride, int64_t dilation) {
  int64_t o = 0;
#if defined(__GNUC__)
  typedef T V __attribute__((vector_size(kBytes)));
  constexpr int64_t L = kBytes / sizeof(T);
  auto load = [](const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  };
  if (stride == 1) {
    for (; o + 4 * L <= w_out; o += 4 * L) {
      V a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (int64_t t = 0; t < k; ++t) {
        const T* s = src + o + t * dilation;
        const V ft = V{} + f[t];
        a0 += ft * load(s);
        a1 += ft * load(s + L);
        a2 += ft * load(s + 2 * L);
        a3 += ft * load(s + 3 * L);
      }
      std::memcpy(y + o, &a0, sizeof(V));
      std::memcpy(y + o + L, &a1, sizeof(V));
      std::memcpy(y + o + 2 * L, &a2, sizeof(V));
      std::memcpy(y + o + 3 * L, &a3, sizeof(V));
    }
    for (; o + L <= w_out; o += L) {
      V a0 = {};
      for (int64_t t = 0; t < k; ++t) a0 += (V{} + f[t]) * load(src + o + t * dilation);
      std::memcpy(y + o, &a0, sizeof(V));
    }
  }
#endif
  for (; o < w_out; ++o) {
    T acc = 0;
    const T* s = src + o * stride;
    for (int64_t t = 0; t < k; ++t) acc += f[t] * s[t * dilation];
    y[o] = acc;
  }
}

}  // namespace fastconv::rows_detail

// Defines rows_f32 / rows_f64 of one ISA namespace with vectors of `bytes` (its register width).
#define FASTCONV_DEFINE_ROWS(ns, bytes)                                                     \
  namespace fastconv::ns {                                                                     \
  void rows_f32(const float* src, const float* f, float* y, int64_t w_out, int64_t k,          \
                int64_t stride, int64_t dilation) {                                            \
    rows_detail::filter_row<float, bytes>(src, f, y, w_out, k, stride, dilation);                \
  }                                                                                            \
  void rows_f64(const double* src, const double* f, double* y, int64_t w_out, int64_t k,       \
                int64_t stride, int64_t dilation) {                                            \
    rows_detail::filter_row<double, bytes>(src, f, y, w_out, k, stride, dilation);               \
  }                                                                                            \
  }
