// The transpose kernels of one ISA level: included once by transpose_<isa>.cc, which names the
// level's namespace (FASTCONV_TRANSPOSE_NS) and kernel names (FASTCONV_TRANSPOSE_NAME), sets
// FASTCONV_TRANSPOSE_AVX where it is compiled with AVX (cmake/sources.cmake) and includes this.
#pragma once
#include <cstdint>
#if FASTCONV_TRANSPOSE_AVX
#include <immintrin.h>
#endif
#if FASTCONV_TRANSPOSE_AVX && defined(__AVX512F__)
#include "ukernels/pairs_avx512.h"
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

#if FASTCONV_TRANSPOSE_AVX && defined(__AVX512F__)
// 16 floats (8 doubles) of each phase a step through two-source permutes (pairs_avx512.h); the
// last partial step with masked loads and stores (the rows these join and split are 8-40 pairs
// long: stride-2 phase windows of small images, where scalar tails took most of the time).
template <typename T>
struct Pairs;

template <>
struct Pairs<float> {
  static constexpr int64_t kL = 16;
  using V = __m512;
  static V load(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
  static void store(float* p, __mmask16 k, V v) { _mm512_mask_storeu_ps(p, k, v); }
};

template <>
struct Pairs<double> {
  static constexpr int64_t kL = 8;
  using V = __m512d;
  static V load(const double* p, __mmask16 k) { return _mm512_maskz_loadu_pd(__mmask8(k), p); }
  static void store(double* p, __mmask16 k, V v) { _mm512_mask_storeu_pd(p, __mmask8(k), v); }
};

// The first m of kL lanes (m <= kL).
inline __mmask16 first_lanes(int64_t m) { return __mmask16((1u << m) - 1u); }

template <typename T>
void interleave2(const T* even, const T* odd, int64_t n, T* dst) {
  using P = Pairs<T>;
  constexpr int64_t L = P::kL;
  const __mmask16 all = first_lanes(L);
  for (int64_t t = 0; t < n; t += L) {
    const int64_t m = n - t < L ? n - t : L;  // pairs this step
    const __mmask16 k = first_lanes(m);
    typename P::V lo, hi;
    interleave_pairs(P::load(even + t, k), P::load(odd + t, k), lo, hi);  // pairs_avx512.h
    // 2m outputs: the first L from lo, the rest from hi.
    P::store(dst + 2 * t, 2 * m >= L ? all : first_lanes(2 * m), lo);
    if (2 * m > L) P::store(dst + 2 * t + L, first_lanes(2 * m - L), hi);
  }
}

template <typename T>
void deinterleave2(const T* src, int64_t n, T* even, T* odd) {
  using P = Pairs<T>;
  constexpr int64_t L = P::kL;
  const __mmask16 all = first_lanes(L);
  for (int64_t t = 0; t < n; t += L) {
    const int64_t m = n - t < L ? n - t : L;
    const typename P::V a = P::load(src + 2 * t, 2 * m >= L ? all : first_lanes(2 * m));
    const typename P::V b =
        2 * m > L ? P::load(src + 2 * t + L, first_lanes(2 * m - L)) : typename P::V{};
    typename P::V ev, od;
    deinterleave_pairs(a, b, ev, od);
    const __mmask16 k = first_lanes(m);
    P::store(even + t, k, ev);
    P::store(odd + t, k, od);
  }
}
#else
// Below AVX-512 the compiler vectorises the loops with this level's flags.
template <typename T>
void interleave2(const T* __restrict even, const T* __restrict odd, int64_t n, T* __restrict dst) {
  for (int64_t t = 0; t < n; ++t) dst[2 * t] = even[t], dst[2 * t + 1] = odd[t];
}

template <typename T>
void deinterleave2(const T* __restrict src, int64_t n, T* __restrict even, T* __restrict odd) {
  for (int64_t t = 0; t < n; ++t) even[t] = src[2 * t], odd[t] = src[2 * t + 1];
}
#endif

}  // namespace

const TransposeKernels<float> transpose_f32_kernels{
    transpose<float>, interleave2<float>, deinterleave2<float>, FASTCONV_TRANSPOSE_NAME("f32")};
const TransposeKernels<double> transpose_f64_kernels{
    transpose<double>, interleave2<double>, deinterleave2<double>, FASTCONV_TRANSPOSE_NAME("f64")};

}  // namespace fastconv::FASTCONV_TRANSPOSE_NS
