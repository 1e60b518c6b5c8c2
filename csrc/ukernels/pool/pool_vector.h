// Vector primitives of the pooling kernels: V<T> maps to AVX-512, AVX2 or plain scalars by the
// flags of the file that includes it (pool_<isa>.cc), so one kernel body serves every level.
// Besides arithmetic: compare masks and selects (max with the reference's tie and NaN rule),
// an index vector holding one plane offset per lane (int32 lanes for float, whose planes the
// driver keeps under 2^31 elements; int64 for double), and the 2-way (de)interleave of
// stride-2 rows.
#pragma once
#include <cmath>
#include <cstdint>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__)
#include "ukernels/pairs_avx512.h"
#endif

#ifndef FASTCONV_POOL_NS
#error "define FASTCONV_POOL_NS (the ISA namespace) before including pool_vector.h"
#endif

namespace fastconv::FASTCONV_POOL_NS {
namespace {

template <typename T>
struct V;

#if defined(__AVX512F__)
template <>
struct V<float> {
  using type = __m512;
  using mask = __mmask16;
  using itype = __m512i;  // 16 x int32
  static constexpr int64_t lanes = 16;
  static mask first(int64_t n) { return static_cast<mask>((1u << n) - 1u); }
  static type load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, type v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, type v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static type set1(float v) { return _mm512_set1_ps(v); }
  static type max(type a, type b) { return _mm512_max_ps(a, b); }  // a > b ? a : b
  static type add(type a, type b) { return _mm512_add_ps(a, b); }
  static type mul(type a, type b) { return _mm512_mul_ps(a, b); }
  static type div(type a, type b) { return _mm512_div_ps(a, b); }
  static type sqrt(type a) { return _mm512_sqrt_ps(a); }
  static mask gt(type a, type b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static mask eq(type a, type b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static mask isnan(type a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static mask mask_or(mask a, mask b) { return static_cast<mask>(a | b); }
  static bool any(mask m) { return m != 0; }
  static type select(mask m, type a, type b) { return _mm512_mask_blend_ps(m, b, a); }
  static void deinterleave(const float* p, type& even, type& odd) {
    deinterleave_pairs(load(p), load(p + 16), even, odd);  // ukernels/pairs_avx512.h
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    interleave_pairs(even, odd, lo, hi);
  }
  static itype iset1(int64_t v) { return _mm512_set1_epi32(static_cast<int32_t>(v)); }
  static itype iload(const int32_t* p) { return _mm512_loadu_si512(p); }
  static itype iadd(itype a, itype b) { return _mm512_add_epi32(a, b); }
  static itype iselect(mask m, itype a, itype b) { return _mm512_mask_blend_epi32(m, b, a); }
  static void istore_n(int64_t* p, itype v, int64_t n) {
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
    const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
    _mm512_mask_storeu_epi64(p, static_cast<__mmask8>(first(n < 8 ? n : 8)), lo);
    _mm512_mask_storeu_epi64(p + 8, static_cast<__mmask8>(first(n > 8 ? n - 8 : 0)), hi);
  }
};
template <>
struct V<double> {
  using type = __m512d;
  using mask = __mmask8;
  using itype = __m512i;  // 8 x int64
  static constexpr int64_t lanes = 8;
  static mask first(int64_t n) { return static_cast<mask>((1u << n) - 1u); }
  static type load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, type v) { _mm512_storeu_pd(p, v); }
  static void store_n(double* p, type v, int64_t n) { _mm512_mask_storeu_pd(p, first(n), v); }
  static type set1(double v) { return _mm512_set1_pd(v); }
  static type max(type a, type b) { return _mm512_max_pd(a, b); }
  static type add(type a, type b) { return _mm512_add_pd(a, b); }
  static type mul(type a, type b) { return _mm512_mul_pd(a, b); }
  static type div(type a, type b) { return _mm512_div_pd(a, b); }
  static type sqrt(type a) { return _mm512_sqrt_pd(a); }
  static mask gt(type a, type b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static mask eq(type a, type b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  static mask isnan(type a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
  static mask mask_or(mask a, mask b) { return static_cast<mask>(a | b); }
  static bool any(mask m) { return m != 0; }
  static type select(mask m, type a, type b) { return _mm512_mask_blend_pd(m, b, a); }
  static void deinterleave(const double* p, type& even, type& odd) {
    deinterleave_pairs(load(p), load(p + 8), even, odd);
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    interleave_pairs(even, odd, lo, hi);
  }
  static itype iset1(int64_t v) { return _mm512_set1_epi64(v); }
  static itype iload(const int32_t* p) {
    return _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static itype iadd(itype a, itype b) { return _mm512_add_epi64(a, b); }
  static itype iselect(mask m, itype a, itype b) { return _mm512_mask_blend_epi64(m, b, a); }
  static void istore_n(int64_t* p, itype v, int64_t n) { _mm512_mask_storeu_epi64(p, first(n), v); }
};
#elif defined(__AVX2__)
// Lane-by-lane tail stores through a scratch vector (AVX2 has no masked float stores of its own
// width that are cheaper for a once-per-row tail). The vector types are spelled out in each
// specialization: as template arguments GCC drops their attributes (-Wignored-attributes).
template <typename T, typename Derived>
struct V256 {
  template <typename Vec>
  static void store_tail(T* p, Vec v, int64_t n) {
    alignas(32) T tmp[32 / sizeof(T)];
    Derived::store(tmp, v);
    for (int64_t j = 0; j < n; ++j) p[j] = tmp[j];
  }
};
template <>
struct V<float> : V256<float, V<float>> {
  using type = __m256;
  using mask = __m256;
  using itype = __m256i;
  static constexpr int64_t lanes = 8;
  static void store_n(float* p, type v, int64_t n) { store_tail(p, v, n); }
  static bool any(mask m) { return _mm256_movemask_ps(m) != 0; }
  static type load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, type v) { _mm256_storeu_ps(p, v); }
  static type set1(float v) { return _mm256_set1_ps(v); }
  static type max(type a, type b) { return _mm256_max_ps(a, b); }  // a > b ? a : b
  static type add(type a, type b) { return _mm256_add_ps(a, b); }
  static type mul(type a, type b) { return _mm256_mul_ps(a, b); }
  static type div(type a, type b) { return _mm256_div_ps(a, b); }
  static type sqrt(type a) { return _mm256_sqrt_ps(a); }
  static mask gt(type a, type b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static mask eq(type a, type b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static mask isnan(type a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static mask mask_or(mask a, mask b) { return _mm256_or_ps(a, b); }
  static type select(mask m, type a, type b) { return _mm256_blendv_ps(b, a, m); }
  // shuffle_ps pairs within 128-bit halves ([a0 a2 b0 b2 | a4 a6 b4 b6]); the 64-bit permute
  // puts the halves in order.
  static void deinterleave(const float* p, type& even, type& odd) {
    const type a = load(p), b = load(p + 8);
    even = order(_mm256_shuffle_ps(a, b, 0x88));
    odd = order(_mm256_shuffle_ps(a, b, 0xDD));
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    const type e = order(even), o = order(odd);
    lo = _mm256_unpacklo_ps(e, o);
    hi = _mm256_unpackhi_ps(e, o);
  }
  static type order(type v) {  // 64-bit lanes (0, 2, 1, 3): its own inverse
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
  }
  static itype iset1(int64_t v) { return _mm256_set1_epi32(static_cast<int32_t>(v)); }
  static itype iload(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static itype iadd(itype a, itype b) { return _mm256_add_epi32(a, b); }
  static itype iselect(mask m, itype a, itype b) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), m));
  }
  static void istore_n(int64_t* p, itype v, int64_t n) {
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
    if (n == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), hi);
      return;
    }
    alignas(32) int64_t tmp[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 4), hi);
    for (int64_t j = 0; j < n; ++j) p[j] = tmp[j];
  }
};
template <>
struct V<double> : V256<double, V<double>> {
  using type = __m256d;
  using mask = __m256d;
  using itype = __m256i;
  static constexpr int64_t lanes = 4;
  static void store_n(double* p, type v, int64_t n) { store_tail(p, v, n); }
  static bool any(mask m) { return _mm256_movemask_pd(m) != 0; }
  static type load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, type v) { _mm256_storeu_pd(p, v); }
  static type set1(double v) { return _mm256_set1_pd(v); }
  static type max(type a, type b) { return _mm256_max_pd(a, b); }
  static type add(type a, type b) { return _mm256_add_pd(a, b); }
  static type mul(type a, type b) { return _mm256_mul_pd(a, b); }
  static type div(type a, type b) { return _mm256_div_pd(a, b); }
  static type sqrt(type a) { return _mm256_sqrt_pd(a); }
  static mask gt(type a, type b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static mask eq(type a, type b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static mask isnan(type a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static mask mask_or(mask a, mask b) { return _mm256_or_pd(a, b); }
  static type select(mask m, type a, type b) { return _mm256_blendv_pd(b, a, m); }
  static void deinterleave(const double* p, type& even, type& odd) {  // [a0 b0 | a2 b2] ...
    const type a = load(p), b = load(p + 4);
    even = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8);
    odd = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8);
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    const type e = _mm256_permute4x64_pd(even, 0xD8), o = _mm256_permute4x64_pd(odd, 0xD8);
    lo = _mm256_unpacklo_pd(e, o);
    hi = _mm256_unpackhi_pd(e, o);
  }
  static itype iset1(int64_t v) { return _mm256_set1_epi64x(v); }
  static itype iload(const int32_t* p) {
    return _mm256_cvtepi32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static itype iadd(itype a, itype b) { return _mm256_add_epi64(a, b); }
  static itype iselect(mask m, itype a, itype b) {
    return _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(b), _mm256_castsi256_pd(a), m));
  }
  static void istore_n(int64_t* p, itype v, int64_t n) {
    if (n == 4) return _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
    alignas(32) int64_t tmp[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
    for (int64_t j = 0; j < n; ++j) p[j] = tmp[j];
  }
};
#else
template <typename T>
struct V {
  using type = T;
  using mask = bool;
  using itype = int64_t;
  static constexpr int64_t lanes = 1;
  static type load(const T* p) { return *p; }
  static void store(T* p, type v) { *p = v; }
  static void store_n(T* p, type v, int64_t n) {
    if (n > 0) *p = v;
  }
  static type set1(T v) { return v; }
  static type max(type a, type b) { return a > b ? a : b; }
  static type add(type a, type b) { return a + b; }
  static type mul(type a, type b) { return a * b; }
  static type div(type a, type b) { return a / b; }
  static type sqrt(type a) { return std::sqrt(a); }
  static mask gt(type a, type b) { return a > b; }
  static mask eq(type a, type b) { return a == b; }
  static mask isnan(type a) { return a != a; }
  static mask mask_or(mask a, mask b) { return a || b; }
  static bool any(mask m) { return m; }
  static type select(mask m, type a, type b) { return m ? a : b; }
  static void deinterleave(const T* p, type& even, type& odd) {
    even = p[0];
    odd = p[1];
  }
  static void interleave(type even, type odd, type& lo, type& hi) {
    lo = even;
    hi = odd;
  }
  static itype iset1(int64_t v) { return v; }
  static itype iload(const int32_t* p) { return *p; }
  static itype iadd(itype a, itype b) { return a + b; }
  static itype iselect(mask m, itype a, itype b) { return m ? a : b; }
  static void istore_n(int64_t* p, itype v, int64_t n) {
    if (n > 0) *p = v;
  }
};
#endif

}  // namespace
}  // namespace fastconv::FASTCONV_POOL_NS
