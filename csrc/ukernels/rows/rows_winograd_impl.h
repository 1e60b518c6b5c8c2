// Winograd F(m, r) along rows (algo/winograd_rows.cc): the input and output transforms of one
// row of tiles, vectorised along the tiles. Included by rows_<isa>.cc after rows_impl.h, whose
// vector primitives V<T> it uses. r = 2..5 runs F(4,2), F(4,3), F(3,4), F(2,5).
#pragma once
#include "ukernels/rows/rows_impl.h"
#include "ukernels/winograd/winograd_matrices.h"

namespace fastconv::FASTCONV_ROWS_NS {
namespace {
namespace row_winograd {

// Output vector k of an interleave of M vectors of L lanes (out[M j + i] = y[i][j]): lane e
// takes lane (k L + e) / M of vector (k L + e) % M.
template <int M, int L>
struct Weave {
  static constexpr int lane(int k, int e) { return (k * L + e) / M; }
  static constexpr int source(int k, int e) { return (k * L + e) % M; }
  template <typename I>
  static constexpr std::array<I, M * L> lanes() {
    std::array<I, M * L> a{};
    for (int k = 0; k < M; ++k)
      for (int e = 0; e < L; ++e) a[size_t(k * L + e)] = I(lane(k, e));
    return a;
  }
  static constexpr uint32_t mask(int k, int i) {
    uint32_t m = 0;
    for (int e = 0; e < L; ++e)
      if (source(k, e) == i) m |= 1u << e;
    return m;
  }
};

#if defined(__AVX512F__)
inline __m512 permute(__m512i idx, __m512 a) { return _mm512_permutexvar_ps(idx, a); }
inline __m512d permute(__m512i idx, __m512d a) { return _mm512_permutexvar_pd(idx, a); }
inline __m512 permute(__m512 o, uint32_t m, __m512i idx, __m512 a) {
  return _mm512_mask_permutexvar_ps(o, __mmask16(m), idx, a);
}
inline __m512d permute(__m512d o, uint32_t m, __m512i idx, __m512d a) {
  return _mm512_mask_permutexvar_pd(o, __mmask8(m), idx, a);
}
// Lane indices as wide as the elements (permutexvar_ps reads 32-bit ones, _pd 64-bit ones).
template <int M, typename T>
inline void weave(const typename V<T>::type (&y)[M], T* out) {
  constexpr int L = int(V<T>::lanes);
  using W = Weave<M, L>;
  using Index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  static constexpr std::array<Index, M * L> lanes = W::template lanes<Index>();
  FASTCONV_ROWS_UNROLL
  for (int k = 0; k < M; ++k) {
    const __m512i idx = _mm512_loadu_si512(lanes.data() + k * L);
    typename V<T>::type o = permute(idx, y[0]);
    FASTCONV_ROWS_UNROLL
    for (int i = 1; i < M; ++i) o = permute(o, W::mask(k, i), idx, y[i]);
    V<T>::store(out + k * L, o);
  }
}
#elif defined(__AVX2__)
// 8 lanes of 32 bits (a double is two of them): permutevar8x32 per source, blended by source.
template <int M, int L>
inline __m256 weave_out(const __m256 (&y)[M], int k) {
  using W = Weave<M, L>;
  constexpr int per = 8 / L;  // 32-bit lanes per element
  alignas(32) int32_t idx[8], sel[8];
  for (int e = 0; e < 8; ++e) {
    idx[e] = W::lane(k, e / per) * per + e % per;
    sel[e] = W::source(k, e / per);
  }
  const __m256i vi = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
  const __m256i vs = _mm256_load_si256(reinterpret_cast<const __m256i*>(sel));
  __m256 o = _mm256_permutevar8x32_ps(y[0], vi);
  for (int i = 1; i < M; ++i)
    o = _mm256_blendv_ps(o, _mm256_permutevar8x32_ps(y[i], vi),
                         _mm256_castsi256_ps(_mm256_cmpeq_epi32(vs, _mm256_set1_epi32(i))));
  return o;
}
template <int M, typename T>
inline std::enable_if_t<std::is_same_v<T, float>> weave(const __m256 (&y)[M], T* out) {
  FASTCONV_ROWS_UNROLL
  for (int k = 0; k < M; ++k) _mm256_storeu_ps(out + k * 8, weave_out<M, 8>(y, k));
}
template <int M, typename T>
inline std::enable_if_t<std::is_same_v<T, double>> weave(const __m256d (&y)[M], T* out) {
  __m256 f[M];
  for (int i = 0; i < M; ++i) f[i] = _mm256_castpd_ps(y[i]);
  FASTCONV_ROWS_UNROLL
  for (int k = 0; k < M; ++k)
    _mm256_storeu_pd(out + k * 4, _mm256_castps_pd(weave_out<M, 4>(f, k)));
}
#else
template <int M, typename T>
inline void weave(const T (&y)[M], T* out) {
  for (int i = 0; i < M; ++i) out[i] = y[i];
}
#endif

// d[t] = sum over u of C[t][u] s[u] for a constant matrix (zeros skipped, ones added).
template <typename T, int Rows, int Cols>
inline void combine(const double (&c)[Rows][Cols], const typename V<T>::type (&s)[Cols],
                    typename V<T>::type (&d)[Rows], typename V<T>::type init) {
  using Vec = V<T>;
  FASTCONV_ROWS_UNROLL
  for (int t = 0; t < Rows; ++t) {
    typename Vec::type a = init;
    FASTCONV_ROWS_UNROLL
    for (int u = 0; u < Cols; ++u) {
      if (c[t][u] == 0.0) continue;
      a = c[t][u] == 1.0 ? Vec::add(a, s[u]) : Vec::fma(Vec::set1(T(c[t][u])), s[u], a);
    }
    d[t] = a;
  }
}

// The points of one phase row's tiles from its M interleaved sub-rows (sub[k * sub_len + i] =
// phase position M i + k; readable a vector past tiles + (alpha - 1) / M in each):
// v[t * point + j] = sum over u of BT[t][u] * position M j + u, for j < tiles (no more written).
template <typename T, int M, int R>
void input(const T* sub, int64_t sub_len, int64_t tiles, T* v, int64_t point) {
  using Vec = V<T>;
  using Mat = winograd::Matrices<M, R>;
  constexpr int A = Mat::kAlpha;
  constexpr int64_t L = Vec::lanes;
  for (int64_t j = 0; j < tiles; j += L) {
    typename Vec::type s[A], d[A];
    FASTCONV_ROWS_UNROLL
    for (int u = 0; u < A; ++u) s[u] = Vec::load(sub + (u % M) * sub_len + j + u / M);
    combine<T>(Mat::BT, s, d, Vec::zero());
    if (j + L <= tiles) {
      FASTCONV_ROWS_UNROLL
      for (int t = 0; t < A; ++t) Vec::store(v + t * point + j, d[t]);
    } else {
      FASTCONV_ROWS_UNROLL
      for (int t = 0; t < A; ++t) Vec::store_n(v + t * point + j, d[t], tiles - j);
    }
  }
}

// Output rows: out[q * width + M j + i] = bias + sum over t of AT[i][t] acc[t * point +
// q * tiles + j] for q < rows, M j + i < width (acc readable a vector past each row's tiles).
template <typename T, int M, int R>
void output(const T* acc, int64_t point, int64_t tiles, int64_t rows, T bias, T* out,
            int64_t width) {
  using Vec = V<T>;
  using Mat = winograd::Matrices<M, R>;
  constexpr int A = Mat::kAlpha;
  constexpr int64_t L = Vec::lanes;
  const typename Vec::type b = Vec::set1(bias);
  for (int64_t q = 0; q < rows; ++q, acc += tiles, out += width) {
    for (int64_t j = 0; j < tiles; j += L) {
      typename Vec::type s[A], y[M];
      FASTCONV_ROWS_UNROLL
      for (int t = 0; t < A; ++t) s[t] = Vec::load(acc + t * point + j);
      combine<T>(Mat::AT, s, y, b);
      if (M * (j + L) <= width) {
        weave<M>(y, out + M * j);
      } else {
        T tmp[M * L];
        weave<M>(y, tmp);
        for (int64_t e = 0; e < width - M * j; ++e) out[M * j + e] = tmp[e];
      }
    }
  }
}

template <typename T>
void any_input(int r, const T* sub, int64_t sub_len, int64_t tiles, T* v, int64_t point) {
  switch (r) {
    case 2: return input<T, 4, 2>(sub, sub_len, tiles, v, point);
    case 3: return input<T, 4, 3>(sub, sub_len, tiles, v, point);
    case 4: return input<T, 3, 4>(sub, sub_len, tiles, v, point);
    default: return input<T, 2, 5>(sub, sub_len, tiles, v, point);
  }
}

template <typename T>
void any_output(int r, const T* acc, int64_t point, int64_t tiles, int64_t rows, T bias, T* out,
                int64_t width) {
  switch (r) {
    case 2: return output<T, 4, 2>(acc, point, tiles, rows, bias, out, width);
    case 3: return output<T, 4, 3>(acc, point, tiles, rows, bias, out, width);
    case 4: return output<T, 3, 4>(acc, point, tiles, rows, bias, out, width);
    default: return output<T, 2, 5>(acc, point, tiles, rows, bias, out, width);
  }
}

}  // namespace row_winograd
}  // namespace
}  // namespace fastconv::FASTCONV_ROWS_NS
