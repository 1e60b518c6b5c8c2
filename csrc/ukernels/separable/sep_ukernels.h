// The separable-convolution micro-kernels of each ISA (sep_impl.h); chosen with
// FASTCONV_KERNEL_BY_ISA. Widest vector of each ISA: the scratch rows' tail padding.
#pragma once
#include <cstdint>

namespace fastconv {

// One 1-D pass: k taps at `stride` and `dilation`; inputs outside [valid_begin, valid_end) are
// padding zeros. Vertical: `count` output rows of `width` columns, out_stride apart, the
// valid range in row indices into rows[]. Horizontal (stride 1): `count` outputs in each of
// `lines` rows (in_stride apart in src, out_stride in y), the valid range in positions of a
// src row.
struct SeparableTaps {
  int64_t k = 1, stride = 1, dilation = 1;
  int64_t valid_begin = 0, valid_end = 0;
  int64_t count = 0, width = 0, lines = 1, in_stride = 0, out_stride = 0;
  bool cached = false;  // horizontal: the output is read next (never streamed past the caches)
};

// A weight gradient's sums of products: for each tap t < k,
//   acc[t * lanes + lane] += sum_{r < rows} sum_{j < width} a_rows[r][j] * b(r, t)[j]
// with b(r, t) = b_rows[r + t * row_step] + t * col_step, the lanes those of the ISA's vectors
// (one lane per j modulo the vector length; the caller sums them). Vectors run over
// [0, width rounded down to the vector length) and scalars over the rest.
struct SeparableCorrelation {
  int64_t k = 1, rows = 0, width = 0, row_step = 0, col_step = 0;
};

}  // namespace fastconv

#define FASTCONV_DECLARE_SEPARABLE(ns)                                                         \
  namespace fastconv::ns {                                                                     \
  void sep_vertical_f32(const float* const* rows, const float* f, const SeparableTaps& a,      \
                        float* out);                                                           \
  void sep_vertical_f64(const double* const* rows, const double* f, const SeparableTaps& a,    \
                        double* out);                                                          \
  void sep_horizontal_f32(const float* src, const float* f, const SeparableTaps& a, float* y,  \
                          bool accumulate);                                                    \
  void sep_horizontal_f64(const double* src, const double* f, const SeparableTaps& a,          \
                          double* y, bool accumulate);                                         \
  void sep_correlate_f32(const float* const* a_rows, const float* const* b_rows,               \
                         const SeparableCorrelation& c, float* acc);                           \
  void sep_correlate_f64(const double* const* a_rows, const double* const* b_rows,             \
                         const SeparableCorrelation& c, double* acc);                          \
  }
FASTCONV_DECLARE_SEPARABLE(scalar)
FASTCONV_DECLARE_SEPARABLE(avx2)
FASTCONV_DECLARE_SEPARABLE(avx512)
#undef FASTCONV_DECLARE_SEPARABLE

namespace fastconv {
constexpr int64_t kSeparableMaxVectorBytes = 64;  // avx512: what horizontal reads past its taps
template <typename T>
constexpr int64_t kSeparableLanes = kSeparableMaxVectorBytes / int64_t(sizeof(T));  // acc[] lanes
}
