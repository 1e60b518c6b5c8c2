// Horizontal sums of AVX-512 vectors, for files compiled with the AVX-512 flags: the halving
// tree of _mm512_reduce_add_ps/pd (256-bit halves, then 128-bit halves, then pairs), whose GCC
// 12 bodies extract the halves with an undefined pass-through vector and so warn
// (-W(maybe-)uninitialized) wherever they are inlined into a kernel; the zero-masked extracts
// here pass zeros. Same order of additions, so the same results.
#pragma once
#include <immintrin.h>

namespace fastconv {

inline double hsum_avx512(__m512d v) {
  const __m256d h = _mm256_add_pd(_mm512_maskz_extractf64x4_pd(0xff, v, 0),
                                  _mm512_maskz_extractf64x4_pd(0xff, v, 1));
  const __m128d q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
  return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
}

inline float hsum_avx512(__m512 v) {
  const __m512d d = _mm512_castps_pd(v);
  const __m256 h = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, d, 0)),
                                 _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, d, 1)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

}  // namespace fastconv
