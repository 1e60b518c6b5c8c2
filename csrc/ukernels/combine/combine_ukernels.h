// Slice combinations: dst = add + sum_j coef[j] * src[j] over runs of n elements, the sums of
// whole planes or rows that Winograd along one axis (csrc/algo/winograd_axis.h) transforms with,
// and its kernel transforms between runs of interleaved taps and point rows.
// Compiled once per ISA level (combine_<isa>.cc: the loops vectorised by that level's flags)
// and picked at run time (combine_table.cc). Pure: pointers and counts in.
#pragma once
#include <cstdint>

namespace fastconv {

template <typename T>
struct CombineKernels {
  // dst[p] = add + sum_j coef[j] * src[j][p] for p < n over the count sources; a null source or
  // a zero coefficient is skipped (a zero slice); dst = add when none is left. Terms are added
  // in source order, block by block of n; dst does not overlap a source.
  void (*combine)(const T* const* src, const T* coef, int count, int64_t n, T add, T* dst);
  // dst[a][p] = sum_j coef[a * taps + j] * src[p * taps + j] for p < n and a < points: the
  // combinations of n runs of `taps` interleaved elements (a kernel transform of weights stored
  // with their taps contiguous), 1 <= taps <= kCombineMaxTaps, 1 <= points <= kCombineMaxSources.
  // Unlike combine, zero coefficients are multiplied, not skipped (a non-finite weight reaches
  // every point).
  void (*runs_to_points)(const T* src, int taps, const T* coef, int points, int64_t n,
                         T* const* dst);
  // The way back: dst[p * taps + j] = sum_a coef[j * points + a] * src[a][p] (a weight gradient's
  // points folded into its interleaved taps), the terms added in point order.
  void (*points_to_runs)(const T* const* src, int points, const T* coef, int taps, int64_t n,
                         T* dst);
  const char* name;
};

// Sources one call takes at most.
constexpr int kCombineMaxSources = 8;
// Interleaved taps one call takes at most.
constexpr int kCombineMaxTaps = 3;

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const CombineKernels<T>& combine_kernels();

#define FASTCONV_DECLARE_COMBINE(ns)                       \
  namespace ns {                                           \
  extern const CombineKernels<float> combine_f32_kernels;  \
  extern const CombineKernels<double> combine_f64_kernels; \
  }
FASTCONV_DECLARE_COMBINE(scalar)
FASTCONV_DECLARE_COMBINE(avx2)
FASTCONV_DECLARE_COMBINE(avx512)
#undef FASTCONV_DECLARE_COMBINE

}  // namespace fastconv
