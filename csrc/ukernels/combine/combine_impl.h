// The combination kernels of one ISA level: included once by combine_<isa>.cc, which names the
// level's namespace (FASTCONV_COMBINE_NS) and kernel names (FASTCONV_COMBINE_NAME). Plain loops:
// the level's compile flags (cmake/sources.cmake) vectorise them.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/combine/combine_ukernels.h"

namespace fastconv::FASTCONV_COMBINE_NS {
namespace {

// Blocks of dst short enough to stay in L1 while every source adds into them.
constexpr int64_t kBlock = 512;

template <typename T>
void combine(const T* const* src, const T* coef, int count, int64_t n, T add, T* dst) {
  const T* s[kCombineMaxSources];
  T c[kCombineMaxSources];
  int k = 0;
  for (int j = 0; j < count && j < kCombineMaxSources; ++j)
    if (src[j] != nullptr && coef[j] != T(0)) s[k] = src[j], c[k] = coef[j], ++k;
  for (int64_t p0 = 0; p0 < n; p0 += kBlock) {
    const int64_t len = std::min(kBlock, n - p0);
    T* __restrict d = dst + p0;
    if (k == 0) {
      for (int64_t p = 0; p < len; ++p) d[p] = add;
      continue;
    }
    {
      const T* __restrict a = s[0] + p0;
      const T ca = c[0];
      for (int64_t p = 0; p < len; ++p) d[p] = add + ca * a[p];
    }
    int i = 1;
    for (; i + 1 < k; i += 2) {  // two sources per sweep: half the stores
      const T* __restrict a = s[i] + p0;
      const T* __restrict b = s[i + 1] + p0;
      const T ca = c[i], cb = c[i + 1];
      for (int64_t p = 0; p < len; ++p) d[p] = (d[p] + ca * a[p]) + cb * b[p];
    }
    if (i < k) {
      const T* __restrict a = s[i] + p0;
      const T ca = c[i];
      for (int64_t p = 0; p < len; ++p) d[p] += ca * a[p];
    }
  }
}

// The runs of R interleaved taps, R fixed so that the loads and stores are a constant stride the
// level's vectoriser splits and joins with permutes.
template <typename T, int R>
void runs_to_points_r(const T* src, const T* coef, int points, int64_t n, T* const* dst) {
  for (int64_t p0 = 0; p0 < n; p0 += kBlock) {
    const int64_t len = std::min(kBlock, n - p0);
    const T* __restrict s = src + p0 * R;
    for (int a = 0; a < points; ++a) {
      T c[R];
      for (int j = 0; j < R; ++j) c[j] = coef[a * R + j];
      T* __restrict d = dst[a] + p0;
      for (int64_t p = 0; p < len; ++p) {
        T sum = c[0] * s[p * R];
        for (int j = 1; j < R; ++j) sum += c[j] * s[p * R + j];
        d[p] = sum;
      }
    }
  }
}

template <typename T>
void runs_to_points(const T* src, int taps, const T* coef, int points, int64_t n,
                    T* const* dst) {
  if (taps == 3) return runs_to_points_r<T, 3>(src, coef, points, n, dst);
  if (taps == 2) return runs_to_points_r<T, 2>(src, coef, points, n, dst);
  runs_to_points_r<T, 1>(src, coef, points, n, dst);
}

template <typename T, int R>
void points_to_runs_r(const T* const* src, int points, const T* coef, int64_t n, T* dst) {
  for (int64_t p0 = 0; p0 < n; p0 += kBlock) {
    const int64_t len = std::min(kBlock, n - p0);
    T sum[R][kBlock];
    for (int a = 0; a < points; ++a) {
      const T* __restrict s = src[a] + p0;
      for (int j = 0; j < R; ++j) {
        const T c = coef[j * points + a];
        T* __restrict acc = sum[j];
        if (a == 0) {
          for (int64_t p = 0; p < len; ++p) acc[p] = c * s[p];
        } else {
          for (int64_t p = 0; p < len; ++p) acc[p] += c * s[p];
        }
      }
    }
    T* __restrict d = dst + p0 * R;
    for (int64_t p = 0; p < len; ++p)
      for (int j = 0; j < R; ++j) d[p * R + j] = sum[j][p];
  }
}

template <typename T>
void points_to_runs(const T* const* src, int points, const T* coef, int taps, int64_t n,
                    T* dst) {
  if (taps == 3) return points_to_runs_r<T, 3>(src, points, coef, n, dst);
  if (taps == 2) return points_to_runs_r<T, 2>(src, points, coef, n, dst);
  points_to_runs_r<T, 1>(src, points, coef, n, dst);
}

}  // namespace

const CombineKernels<float> combine_f32_kernels{combine<float>, runs_to_points<float>,
                                                points_to_runs<float>,
                                                FASTCONV_COMBINE_NAME("f32")};
const CombineKernels<double> combine_f64_kernels{combine<double>, runs_to_points<double>,
                                                 points_to_runs<double>,
                                                 FASTCONV_COMBINE_NAME("f64")};

}  // namespace fastconv::FASTCONV_COMBINE_NS
