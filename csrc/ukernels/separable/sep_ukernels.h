// The separable-convolution micro-kernels of each ISA (sep_impl.h); chosen with
// FASTCONV_KERNEL_BY_ISA. Widest vector of each ISA: the scratch rows' tail padding.
#pragma once
#include <cstdint>

#define FASTCONV_DECLARE_SEPARABLE(ns)                                                         \
  namespace fastconv::ns {                                                                     \
  void sep_vertical_f32(const float* const* rows, const float* f, int64_t k, int64_t stride,   \
                        int64_t dilation, int64_t n_rows, int64_t width, float* out,           \
                        int64_t out_stride);                                                   \
  void sep_vertical_f64(const double* const* rows, const double* f, int64_t k, int64_t stride, \
                        int64_t dilation, int64_t n_rows, int64_t width, double* out,          \
                        int64_t out_stride);                                                   \
  void sep_horizontal_f32(const float* src, const float* f, int64_t k, int64_t dilation,       \
                          int64_t n, float* y, bool accumulate);                               \
  void sep_horizontal_f64(const double* src, const double* f, int64_t k, int64_t dilation,     \
                          int64_t n, double* y, bool accumulate);                              \
  }
FASTCONV_DECLARE_SEPARABLE(scalar)
FASTCONV_DECLARE_SEPARABLE(avx2)
FASTCONV_DECLARE_SEPARABLE(avx512)
#undef FASTCONV_DECLARE_SEPARABLE

namespace fastconv {
constexpr int64_t kSeparableMaxVectorBytes = 64;  // avx512: what horizontal may read past n
}
