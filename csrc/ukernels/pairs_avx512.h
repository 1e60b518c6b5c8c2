// Even and odd lanes of AVX-512 vectors, for files compiled with the AVX-512 flags: the
// stride-2 rows of pooling and depthwise windows and the stride-2 phase planes of the
// transposes. Two vectors holding 2L consecutive elements (a then b) split into the L even and
// the L odd ones, and back, each half one two-source permute (vpermt2ps / vpermt2pd).
#pragma once
#include <immintrin.h>

namespace fastconv {

// Permute indices: element i of the pair (a, b) is lane i of a for i < L, lane i - L of b.
inline __m512i pair_evens_epi32() {
  return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
inline __m512i pair_zip_lo_epi32() {
  return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
inline __m512i pair_evens_epi64() { return _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14); }
inline __m512i pair_zip_lo_epi64() { return _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11); }

// (a, b) = x0 .. x31 -> even = x0 x2 .. x30, odd = x1 x3 .. x31.
inline void deinterleave_pairs(__m512 a, __m512 b, __m512& even, __m512& odd) {
  const __m512i e = pair_evens_epi32();
  even = _mm512_permutex2var_ps(a, e, b);
  odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(e, _mm512_set1_epi32(1)), b);
}
inline void deinterleave_pairs(__m512d a, __m512d b, __m512d& even, __m512d& odd) {
  const __m512i e = pair_evens_epi64();
  even = _mm512_permutex2var_pd(a, e, b);
  odd = _mm512_permutex2var_pd(a, _mm512_add_epi64(e, _mm512_set1_epi64(1)), b);
}

// even, odd -> lo = e0 o0 e1 o1 .. (the first L elements), hi = the next L.
inline void interleave_pairs(__m512 even, __m512 odd, __m512& lo, __m512& hi) {
  const __m512i z = pair_zip_lo_epi32();
  lo = _mm512_permutex2var_ps(even, z, odd);
  hi = _mm512_permutex2var_ps(even, _mm512_add_epi32(z, _mm512_set1_epi32(8)), odd);
}
inline void interleave_pairs(__m512d even, __m512d odd, __m512d& lo, __m512d& hi) {
  const __m512i z = pair_zip_lo_epi64();
  lo = _mm512_permutex2var_pd(even, z, odd);
  hi = _mm512_permutex2var_pd(even, _mm512_add_epi64(z, _mm512_set1_epi64(4)), odd);
}

}  // namespace fastconv
