// Vector primitives of the depthwise kernels: V<T> maps to AVX-512, AVX2 or plain scalars by the
// flags of the file that includes it (dw_<isa>.cc), so one kernel body serves every level.
// Besides arithmetic: partial loads that read only the lanes asked for (edges of a source row),
// partial stores, and the 2-way (de)interleave of stride-2 rows.
#pragma once
#include <algorithm>
#include <cstdint>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__)
#include "ukernels/hsum_avx512.h"
#include "ukernels/pairs_avx512.h"
#endif

#ifndef FASTCONV_DW_NS
#error "define FASTCONV_DW_NS (the ISA namespace) before including dw_vector.h"
#endif

namespace fastconv::FASTCONV_DW_NS {
namespace {

// pin(v): v as a register value, so a loaded vector used by several multiply-adds is loaded
// once (GCC otherwise folds the load into each of them: 2 loads per multiply-add in the AVX2
// weight gradient, the load ports' limit on Zen 4; grouped 3x3 weight gradient 588 -> 431 us).
#if defined(__GNUC__)
#define FASTCONV_DW_PIN(v, constraint) __asm__("" : constraint(v))
#else
#define FASTCONV_DW_PIN(v, constraint)
#endif

// V<T>::type holds V<T>::lanes elements. load_span(p, lo, hi): lanes [lo, hi) from p, zeros
// elsewhere, reading only those lanes (0 <= lo, hi <= lanes; p itself may lie outside the row);
// load_mask(p, span(lo, hi)) the same with the mask made once for many loads; keep(v, span(lo,
// hi)) zeroes the lanes of v outside [lo, hi) (a bitwise and: exact even for inf and NaN).
template <typename T>
struct V;
#if defined(__AVX512F__)
template <>
struct V<float> {
  using type = __m512;
  static constexpr int64_t lanes = 16;
  static __mmask16 span(int64_t lo, int64_t hi) {
    return hi <= lo ? 0 : static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  }
  static type load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, type v) { _mm512_storeu_ps(p, v); }
  static type set1(float v) { return _mm512_set1_ps(v); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_ps(a, b, c); }
  static type load_n(const float* p, int64_t n) { return load_span(p, 0, n); }
  static type load_mask(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static type load_span(const float* p, int64_t lo, int64_t hi) {
    return load_mask(p, span(lo, hi));
  }
  // AVX-512 masked stores run at the speed of plain ones (Zen 4 and Intel alike).
  static void store_n(float* p, type v, int64_t n) { _mm512_mask_storeu_ps(p, span(0, n), v); }
  static type keep(type v, __mmask16 m) { return _mm512_maskz_mov_ps(m, v); }
  static type pin(type v) {
    FASTCONV_DW_PIN(v, "+v");
    return v;
  }
  static float sum(type v) { return hsum_avx512(v); }  // ukernels/hsum_avx512.h
  static void deinterleave(type a, type b, type& even, type& odd) {
    deinterleave_pairs(a, b, even, odd);  // ukernels/pairs_avx512.h
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    interleave_pairs(even, odd, lo, hi);
  }
};
template <>
struct V<double> {
  using type = __m512d;
  static constexpr int64_t lanes = 8;
  static __mmask8 span(int64_t lo, int64_t hi) {
    return hi <= lo ? 0 : static_cast<__mmask8>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  }
  static type load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, type v) { _mm512_storeu_pd(p, v); }
  static type set1(double v) { return _mm512_set1_pd(v); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_pd(a, b, c); }
  static type load_n(const double* p, int64_t n) { return load_span(p, 0, n); }
  static type load_mask(const double* p, __mmask8 m) { return _mm512_maskz_loadu_pd(m, p); }
  static type load_span(const double* p, int64_t lo, int64_t hi) {
    return load_mask(p, span(lo, hi));
  }
  static void store_n(double* p, type v, int64_t n) { _mm512_mask_storeu_pd(p, span(0, n), v); }
  static type keep(type v, __mmask8 m) { return _mm512_maskz_mov_pd(m, v); }
  static type pin(type v) {
    FASTCONV_DW_PIN(v, "+v");
    return v;
  }
  static double sum(type v) { return hsum_avx512(v); }
  static void deinterleave(type a, type b, type& even, type& odd) {
    deinterleave_pairs(a, b, even, odd);
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    interleave_pairs(even, odd, lo, hi);
  }
};
#elif defined(__AVX2__)
template <typename T, int64_t L>
struct V256 {
  static constexpr int64_t lanes = L;
};
// Partial stores: the first n (< 8) lanes in pieces of 4, 2 and 1. vmaskmovps stores are
// microcoded on AMD (~20 cycles each on Zen 4 against 1 for a plain store), and rows ending
// in a partial vector store one per row and output plane.
template <>
struct V<float> : V256<float, 8> {
  using type = __m256;
  static __m256i span(int64_t lo, int64_t hi) {
    const __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(lo)), j),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(int(hi)), j));
  }
  static type load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, type v) { _mm256_storeu_ps(p, v); }
  static type set1(float v) { return _mm256_set1_ps(v); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
  static type load_n(const float* p, int64_t n) { return load_span(p, 0, n); }
  static type load_mask(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static type keep(type v, __m256i m) { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }
  static type pin(type v) {
    FASTCONV_DW_PIN(v, "+x");
    return v;
  }
  static type load_span(const float* p, int64_t lo, int64_t hi) {
    return load_mask(p, span(lo, hi));
  }
  static void store_n(float* p, type v, int64_t n) {
    if (n >= 8) return store(p, v);
    __m128 part = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, part);
      part = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
      part = _mm_movehl_ps(part, part);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, part);
  }
  static float sum(type v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }
  static type order(type v) {  // 64-bit lanes (0, 2, 1, 3): its own inverse
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
  }
  // shuffle_ps pairs within 128-bit halves ([a0 a2 b0 b2 | a4 a6 b4 b6]); order() fixes them.
  static void deinterleave(type a, type b, type& even, type& odd) {
    even = order(_mm256_shuffle_ps(a, b, 0x88));
    odd = order(_mm256_shuffle_ps(a, b, 0xDD));
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    const type e = order(even), o = order(odd);
    lo = _mm256_unpacklo_ps(e, o);
    hi = _mm256_unpackhi_ps(e, o);
  }
};
template <>
struct V<double> : V256<double, 4> {
  using type = __m256d;
  static __m256i span(int64_t lo, int64_t hi) {
    const __m256i j = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(lo), j),
                               _mm256_cmpgt_epi64(_mm256_set1_epi64x(hi), j));
  }
  static type load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, type v) { _mm256_storeu_pd(p, v); }
  static type set1(double v) { return _mm256_set1_pd(v); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_pd(a, b, c); }
  static type load_n(const double* p, int64_t n) { return load_span(p, 0, n); }
  static type load_mask(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static type keep(type v, __m256i m) { return _mm256_and_pd(v, _mm256_castsi256_pd(m)); }
  static type pin(type v) {
    FASTCONV_DW_PIN(v, "+x");
    return v;
  }
  static type load_span(const double* p, int64_t lo, int64_t hi) {
    return load_mask(p, span(lo, hi));
  }
  static void store_n(double* p, type v, int64_t n) {
    if (n >= 4) return store(p, v);
    __m128d part = _mm256_castpd256_pd128(v);
    if (n & 2) {
      _mm_storeu_pd(p, part);
      part = _mm256_extractf128_pd(v, 1);
      p += 2;
    }
    if (n & 1) _mm_store_sd(p, part);
  }
  static double sum(type v) {
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
  // [a0 b0 | a2 b2] and [a1 b1 | a3 b3]; the 64-bit permute (0, 2, 1, 3) orders them.
  static void deinterleave(type a, type b, type& even, type& odd) {
    even = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8);
    odd = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8);
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    const type e = _mm256_permute4x64_pd(even, 0xD8), o = _mm256_permute4x64_pd(odd, 0xD8);
    lo = _mm256_unpacklo_pd(e, o);
    hi = _mm256_unpackhi_pd(e, o);
  }
};
#else
template <typename T>
struct V {
  using type = T;
  static constexpr int64_t lanes = 1;
  static type load(const T* p) { return *p; }
  static void store(T* p, type v) { *p = v; }
  static type set1(T v) { return v; }
  static type fma(type a, type b, type c) { return a * b + c; }
  static type load_n(const T* p, int64_t n) { return n > 0 ? *p : T(0); }
  static bool span(int64_t lo, int64_t hi) { return lo < hi; }
  static type load_mask(const T* p, bool m) { return m ? *p : T(0); }
  static type keep(type v, bool m) { return m ? v : T(0); }
  static type pin(type v) { return v; }
  static type load_span(const T* p, int64_t lo, int64_t hi) { return load_mask(p, lo < hi); }
  static void store_n(T* p, type v, int64_t n) {
    if (n > 0) *p = v;
  }
  static T sum(type v) { return v; }
  static void deinterleave(type a, type b, type& even, type& odd) { even = a, odd = b; }
  static void interleave(type even, type odd, type& lo, type& hi) { lo = even, hi = odd; }
};
#endif

// Fully unrolled loops over register blocks, so GCC keeps the accumulator arrays in registers.
#define FASTCONV_DW_UNROLL _Pragma("GCC unroll 8")
#define FASTCONV_DW_TAPS _Pragma("GCC unroll 16")

// Registers of one vector type: 32 with AVX-512, else 16.
template <typename T>
constexpr int kRegisters = sizeof(typename V<T>::type) >= 64 ? 32 : 16;

// A load of the lanes of p[b + j] (j < lanes) that lie inside [0, n), zeros elsewhere, for a
// column of rows that share b and n: the mask is made once.
template <typename T>
struct ClippedLoad {
  using Vec = V<T>;
  decltype(Vec::span(0, 0)) mask;
  int64_t b;
  bool full;
  ClippedLoad(int64_t b_, int64_t n) : b(b_) {
    constexpr int64_t L = Vec::lanes;
    const int64_t lo = std::clamp<int64_t>(-b, 0, L), hi = std::clamp<int64_t>(n - b, 0, L);
    full = lo == 0 && hi == L;
    mask = Vec::span(lo, hi);
  }
  typename Vec::type operator()(const T* p) const { return Vec::load_mask(p + b, mask); }
};

// The last n % lanes elements of a row of n, as a whole vector: for rows of at least one vector
// it ends at the row's end (the lanes before the tail, already counted, are zeroed after an
// unmasked load that stays in the row: masked loads cost ~2x on Zen 4 with AVX2, and GCC folds
// plain loads into several multiply-adds); shorter rows load only their lanes.
template <typename T>
struct RowTail {
  using Vec = V<T>;
  decltype(Vec::span(0, 0)) mask;
  int64_t start = 0, n = 0;  // vector start within the row; tail lanes (0: none)
  bool shifted = false;
  explicit RowTail(int64_t row) {
    constexpr int64_t L = Vec::lanes;
    n = row % L;
    shifted = row >= L;
    start = shifted ? row - L : 0;
    mask = shifted ? Vec::span(L - n, L) : Vec::span(0, n);
  }
  typename Vec::type operator()(const T* row) const {
    return shifted ? Vec::keep(Vec::load(row + start), mask) : Vec::load_mask(row + start, mask);
  }
};

}  // namespace
}  // namespace fastconv::FASTCONV_DW_NS
