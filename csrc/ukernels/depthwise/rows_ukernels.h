// The 1-D row filter micro-kernel of each ISA (rows_impl.h); chosen with FASTCONV_KERNEL_BY_ISA.
#pragma once
#include <cstdint>

#define FASTCONV_DECLARE_ROWS(ns)                                                              \
  namespace fastconv::ns {                                                                     \
  void rows_f32(const float* src, const float* f, float* y, int64_t w_out, int64_t k,          \
                int64_t stride, int64_t dilation);                                             \
  void rows_f64(const double* src, const double* f, double* y, int64_t w_out, int64_t k,       \
                int64_t stride, int64_t dilation);                                             \
  }
FASTCONV_DECLARE_ROWS(scalar)
FASTCONV_DECLARE_ROWS(avx2)
FASTCONV_DECLARE_ROWS(avx512)
#undef FASTCONV_DECLARE_ROWS
