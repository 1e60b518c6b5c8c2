// The transpose kernels of one ISA level: included once by transpose_<isa>.cc, which names the
// level's namespace (FASTCONV_TRANSPOSE_NS) and kernel names (FASTCONV_TRANSPOSE_NAME), sets
// FASTCONV_TRANSPOSE_AVX where it is compiled with AVX (cmake/sources.cmake) and includes this.
#pragma once
#include <cstdint>
#if FASTCONV_TRANSPOSE_AVX
#include <immintrin.h>
#endif

#include "ukernels/transpose/transpose_ukernels.h"

namespace fastconv::FASTCONV_TRANSPOSE_NS {
namespace {

template <typename T>
void transpose_edge(const T* src, int64_t lds, int64_t rows, int64_t cols, const T* bias, T* dst,
                    int64_t ldd) {
  for (int64_t j = 0; j < cols; ++j) {
    const T b = bias ? bias[j] : T(0);
    for (int64_t i = 0; i < rows; ++i) dst[j * ldd + i] = src[i * lds + j] + b;
  }
}

#if FASTCONV_TRANSPOSE_AVX
template <typename T>
struct Tile;

// 8 x 8 floats: pairs of rows interleaved, then pairs of pairs, then the 128-bit halves.
template <>
struct Tile<float> {
  static constexpr int64_t kSize = 8;
  static void run(const float* src, int64_t lds, const float* bias, float* dst, int64_t ldd) {
    __m256 r[8], t[8], s[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; ++j) {  // s[j]: columns j and j + 4 of rows 0-3, s[j + 4] of rows 4-7
      store(dst + j * ldd, _mm256_permute2f128_ps(s[j], s[j + 4], 0x20), bias, j);
      store(dst + (j + 4) * ldd, _mm256_permute2f128_ps(s[j], s[j + 4], 0x31), bias, j + 4);
    }
  }
  static void store(float* d, __m256 v, const float* bias, int j) {
    _mm256_storeu_ps(d, bias ? _mm256_add_ps(v, _mm256_set1_ps(bias[j])) : v);
  }
};

// 4 x 4 doubles: pairs of rows interleaved, then the 128-bit halves.
template <>
struct Tile<double> {
  static constexpr int64_t kSize = 4;
  static void run(const double* src, int64_t lds, const double* bias, double* dst, int64_t ldd) {
    const __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + lds);
    const __m256d r2 = _mm256_loadu_pd(src + 2 * lds), r3 = _mm256_loadu_pd(src + 3 * lds);
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    store(dst, _mm256_permute2f128_pd(t0, t2, 0x20), bias, 0);
    store(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20), bias, 1);
    store(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31), bias, 2);
    store(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31), bias, 3);
  }
  static void store(double* d, __m256d v, const double* bias, int j) {
    _mm256_storeu_pd(d, bias ? _mm256_add_pd(v, _mm256_set1_pd(bias[j])) : v);
  }
};

template <typename T>
void transpose(const T* src, int64_t lds, int64_t rows, int64_t cols, const T* bias, T* dst,
               int64_t ldd) {
  constexpr int64_t L = Tile<T>::kSize;
  int64_t j0 = 0;
  for (; j0 + L <= cols; j0 += L) {
    const T* b = bias ? bias + j0 : nullptr;
    int64_t i0 = 0;
    for (; i0 + L <= rows; i0 += L)
      Tile<T>::run(src + i0 * lds + j0, lds, b, dst + j0 * ldd + i0, ldd);
    transpose_edge(src + i0 * lds + j0, lds, rows - i0, L, b, dst + j0 * ldd + i0, ldd);
  }
  transpose_edge(src + j0, lds, rows, cols - j0, bias ? bias + j0 : nullptr, dst + j0 * ldd, ldd);
}
#else
template <typename T>
void transpose(const T* src, int64_t lds, int64_t rows, int64_t cols, const T* bias, T* dst,
               int64_t ldd) {
  transpose_edge(src, lds, rows, cols, bias, dst, ldd);
}
#endif

}  // namespace

const TransposeKernels<float> transpose_f32_kernels{transpose<float>,
                                                    FASTCONV_TRANSPOSE_NAME("f32")};
const TransposeKernels<double> transpose_f64_kernels{transpose<double>,
                                                     FASTCONV_TRANSPOSE_NAME("f64")};

}  // namespace fastconv::FASTCONV_TRANSPOSE_NS
