// Transpose micro-kernels: compiled once per ISA level (transpose_<isa>.cc) and picked at run
// time (transpose_table.cc). Pure: pointers and counts in. They move a conv's NCHW planes to and
// from the channels-last blocks of its GEMM paths (csrc/algo/plane_transpose.h).
#pragma once
#include <cstdint>

namespace fastconv {

template <typename T>
struct TransposeKernels {
  // dst[j * ldd + i] = src[i * lds + j] (+ bias[j] where bias is not null) for i < rows and
  // j < cols, any sizes: register tiles (8 x 8 floats, 4 x 4 doubles on x86) column block by
  // column block, so that the rows of dst a block writes are finished while in L1; element by
  // element at the edges.
  void (*transpose)(const T* src, int64_t lds, int64_t rows, int64_t cols, const T* bias, T* dst,
                    int64_t ldd);
  // dst[2 * t] = even[t], dst[2 * t + 1] = odd[t] for t < n: a row's two stride phases joined
  // (a 2 x n block transposed). No other element of dst is written.
  void (*interleave2)(const T* even, const T* odd, int64_t n, T* dst);
  // even[t] = src[2 * t], odd[t] = src[2 * t + 1] for t < n: a row split into its two phases.
  // No element of src past 2 * n - 1 is read.
  void (*deinterleave2)(const T* src, int64_t n, T* even, T* odd);
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const TransposeKernels<T>& transpose_kernels();

#define FASTCONV_DECLARE_TRANSPOSE(ns)                         \
  namespace ns {                                               \
  extern const TransposeKernels<float> transpose_f32_kernels;  \
  extern const TransposeKernels<double> transpose_f64_kernels; \
  }
FASTCONV_DECLARE_TRANSPOSE(scalar)
FASTCONV_DECLARE_TRANSPOSE(avx2)
FASTCONV_DECLARE_TRANSPOSE(avx512)
#undef FASTCONV_DECLARE_TRANSPOSE

}  // namespace fastconv
