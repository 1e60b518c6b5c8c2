// Lane movement for the Winograd tile transforms (winograd_transforms.h): a run holds L tiles,
// L = 64 bytes of T, and these helpers move whole runs between rows of an image plane and the
// lane-major arrays the transforms work on. Each has a vector form per ISA (masked loads and
// stores, two-source permutes); the element loops they replace compiled to a scalar load and
// insert per element and were 60-80% of the transforms' time on partial runs (every image
// whose width is not a multiple of L tiles) and on 3-, 4- and 6-column tiles. AVX-512 has a
// form for every column count up to 16; AVX2 for 2 and 4 columns (and, float32, 8+ columns:
// kernel taps); elsewhere the callers' element loops run.
#pragma once
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fastconv {
// Internal linkage: each ISA's file compiles its own copy with its own flags (no ODR clash).
namespace {

// Forced inlining for the transforms' helpers (also used by winograd_transforms.h).
#if defined(__GNUC__) || defined(__clang__)
#define FASTCONV_WINOGRAD_INLINE __attribute__((always_inline)) inline
#define FASTCONV_WINOGRAD_INLINE_LAMBDA __attribute__((always_inline))
#define FASTCONV_WINOGRAD_NOINLINE __attribute__((noinline))
#else
#define FASTCONV_WINOGRAD_INLINE inline
#define FASTCONV_WINOGRAD_INLINE_LAMBDA
#define FASTCONV_WINOGRAD_NOINLINE
#endif

template <typename F, std::size_t... I>
FASTCONV_WINOGRAD_INLINE void static_for_impl(F&& f, std::index_sequence<I...>) {
  (f(std::integral_constant<int, int(I)>{}), ...);
}
// f(integral_constant<0>) ... f(integral_constant<N-1>): indices usable in constant expressions.
template <int N, typename F>
FASTCONV_WINOGRAD_INLINE void static_for(F&& f) {
  static_for_impl(f, std::make_index_sequence<N>{});
}

// Bits [a, b) of a 32-bit mask (0 <= a, b <= 32; empty when b <= a).
FASTCONV_WINOGRAD_INLINE uint32_t bit_range(int64_t a, int64_t b) {
  if (b <= a) return 0;
  const uint64_t hi = (uint64_t(1) << b) - 1, lo = (uint64_t(1) << a) - 1;
  return uint32_t(hi & ~lo);
}

FASTCONV_WINOGRAD_INLINE int64_t clamp64(int64_t x, int64_t lo, int64_t hi) {
  return x < lo ? lo : x > hi ? hi : x;
}

#if defined(__AVX512F__)
// One 512-bit vector of T and the operations the helpers need.
template <typename T>
struct Zmm;
template <>
struct Zmm<float> {
  using V = __m512;
  using I = int32_t;
  static constexpr int kN = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V loadz(uint32_t m, const float* p) { return _mm512_maskz_loadu_ps(__mmask16(m), p); }
  static void store_mask(float* p, uint32_t m, V v) { _mm512_mask_storeu_ps(p, __mmask16(m), v); }
  static V perm2(V a, const I* idx, V b) {
    return _mm512_permutex2var_ps(a, _mm512_loadu_si512(idx), b);
  }
  static V blend(uint32_t m, V a, V b) { return _mm512_mask_blend_ps(__mmask16(m), a, b); }
  static V add(V a, float b) { return _mm512_add_ps(a, _mm512_set1_ps(b)); }
};
template <>
struct Zmm<double> {
  using V = __m512d;
  using I = int64_t;
  static constexpr int kN = 8;
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V loadz(uint32_t m, const double* p) { return _mm512_maskz_loadu_pd(__mmask8(m), p); }
  static void store_mask(double* p, uint32_t m, V v) { _mm512_mask_storeu_pd(p, __mmask8(m), v); }
  static V perm2(V a, const I* idx, V b) {
    return _mm512_permutex2var_pd(a, _mm512_loadu_si512(idx), b);
  }
  static V blend(uint32_t m, V a, V b) { return _mm512_mask_blend_pd(__mmask8(m), a, b); }
  static V add(V a, double b) { return _mm512_add_pd(a, _mm512_set1_pd(b)); }
};

// Two-source permute tables between a row of MW vectors (element e = l * MW + j) and MW
// lane-major columns (column j, lane l), N lanes per vector. Sources are taken in pairs
// (vectors 2p and 2p + 1, the last one twice when MW is odd); `mask` marks the lanes a pair
// supplies, `idx` their positions in it.
template <typename I, int N, int MW, int Out, int P, bool ToColumns>
struct LanePlan {
  static constexpr std::array<I, N> make_idx() {
    std::array<I, N> a{};
    for (int k = 0; k < N; ++k) {
      if (ToColumns) {  // column Out, lane k <- element k * MW + Out of the row
        const int e = k * MW + Out - 2 * N * P;
        a[k] = I(e >= 0 && e < 2 * N ? e : 0);
      } else {  // row vector Out, element k <- column j, lane l
        const int e = Out * N + k, j = e % MW, l = e / MW;
        a[k] = I(j / 2 == P ? (j % 2) * N + l : 0);
      }
    }
    return a;
  }
  static constexpr uint32_t make_mask() {
    uint32_t m = 0;
    for (int k = 0; k < N; ++k) {
      const int e = ToColumns ? k * MW + Out : Out * N + k;
      const bool in = ToColumns ? e / (2 * N) == P : (e % MW) / 2 == P;
      if (in) m |= uint32_t(1) << k;
    }
    return m;
  }
  static constexpr std::array<I, N> idx = make_idx();
  static constexpr uint32_t mask = make_mask();
};

// out[o] = the vectors a LanePlan with sources src[0..MW) selects for output o < MW.
template <typename T, int MW, bool ToColumns>
FASTCONV_WINOGRAD_INLINE void permute_lanes(const typename Zmm<T>::V* src,
                                         typename Zmm<T>::V* out) {
  using Z = Zmm<T>;
  constexpr int kPairs = (MW + 1) / 2;
  static_for<MW>([&](auto o) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    typename Z::V acc{};
    static_for<kPairs>([&](auto p) FASTCONV_WINOGRAD_INLINE_LAMBDA {
      using Plan = LanePlan<typename Z::I, Z::kN, MW, o, p, ToColumns>;
      constexpr int a = 2 * p, b = 2 * p + 1 < MW ? 2 * p + 1 : 2 * p;
      const auto v = Z::perm2(src[a], Plan::idx.data(), src[b]);
      if constexpr (p == 0) {
        acc = v;
      } else {
        acc = Z::blend(Plan::mask, acc, v);
      }
    });
    out[o] = acc;
  });
}
#endif

// dst[x] = lo <= x < hi ? src[x] : 0 for x < count (count a multiple of 64 bytes of T); reads
// only src[lo, hi), so src may point before or past its plane.
template <typename T>
FASTCONV_WINOGRAD_INLINE void load_range(const T* src, int64_t lo, int64_t hi, int64_t count,
                                      T* dst) {
#if defined(__AVX512F__)
  using Z = Zmm<T>;
  for (int64_t c = 0; c < count; c += Z::kN) {
    const uint32_t m = bit_range(clamp64(lo - c, 0, Z::kN), clamp64(hi - c, 0, Z::kN));
    Z::store(dst + c, Z::loadz(m, src + c));
  }
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t c = 0; c < count; c += 8) {
      const __m256i a = _mm256_set1_epi32(int(clamp64(lo - c, 0, 8)) - 1);
      const __m256i b = _mm256_set1_epi32(int(clamp64(hi - c, 0, 8)));
      const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(iota, a), _mm256_cmpgt_epi32(b, iota));
      _mm256_storeu_ps(dst + c, _mm256_maskload_ps(src + c, m));
    }
  } else {
    const __m256i iota = _mm256_setr_epi64x(0, 1, 2, 3);
    for (int64_t c = 0; c < count; c += 4) {
      const __m256i a = _mm256_set1_epi64x(clamp64(lo - c, 0, 4) - 1);
      const __m256i b = _mm256_set1_epi64x(clamp64(hi - c, 0, 4));
      const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi64(iota, a), _mm256_cmpgt_epi64(b, iota));
      _mm256_storeu_pd(dst + c, _mm256_maskload_pd(src + c, m));
    }
  }
#else
  for (int64_t x = 0; x < count; ++x) dst[x] = x >= lo && x < hi ? src[x] : T(0);
#endif
}

// dst[x] = src[x] for x < n: masked vector stores where the ISA has them (the plain loop became
// a memmove call, whose overhead cost ~5% on small images).
template <typename T>
FASTCONV_WINOGRAD_INLINE void store_prefix(const T* src, int64_t n, T* dst) {
#if defined(__AVX512F__)
  using Z = Zmm<T>;
  int64_t x = 0;
  for (; x + Z::kN <= n; x += Z::kN) Z::store(dst + x, Z::load(src + x));
  if (x < n) Z::store_mask(dst + x, bit_range(0, n - x), Z::load(src + x));
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t x = 0;
    for (; x + 8 <= n; x += 8) _mm256_storeu_ps(dst + x, _mm256_loadu_ps(src + x));
    if (x < n)
      _mm256_maskstore_ps(dst + x, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - x)), iota),
                          _mm256_loadu_ps(src + x));
  } else {
    const __m256i iota = _mm256_setr_epi64x(0, 1, 2, 3);
    int64_t x = 0;
    for (; x + 4 <= n; x += 4) _mm256_storeu_pd(dst + x, _mm256_loadu_pd(src + x));
    if (x < n)
      _mm256_maskstore_pd(dst + x, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - x), iota),
                          _mm256_loadu_pd(src + x));
  }
#else
  for (int64_t x = 0; x < n; ++x) dst[x] = src[x];
#endif
}

#if defined(__AVX2__) && !defined(__AVX512F__)
// In each 128-bit half, rows a, b, c, d of a 4 x 4 block become its columns.
FASTCONV_WINOGRAD_INLINE void transpose4_halves(__m256& a, __m256& b, __m256& c, __m256& d) {
  const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
  const __m256 t2 = _mm256_unpacklo_ps(c, d), t3 = _mm256_unpackhi_ps(c, d);
  a = _mm256_shuffle_ps(t0, t2, 0x44);
  b = _mm256_shuffle_ps(t0, t2, 0xEE);
  c = _mm256_shuffle_ps(t1, t3, 0x44);
  d = _mm256_shuffle_ps(t1, t3, 0xEE);
}
FASTCONV_WINOGRAD_INLINE __m256 load_halves(const float* lo, const float* hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(lo)), _mm_loadu_ps(hi), 1);
}
FASTCONV_WINOGRAD_INLINE void store_halves(__m256 v, float* lo, float* hi) {
  _mm_storeu_ps(lo, _mm256_castps256_ps128(v));
  _mm_storeu_ps(hi, _mm256_extractf128_ps(v, 1));
}
// Rows r[0..8) of an 8 x 8 block become its columns.
FASTCONV_WINOGRAD_INLINE void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
// d[j][l] = src[l * rs + j] for j < MW, l < 16 by 8 x 8 transposes (columns past a multiple of
// 8 gathered element by element); reads only those elements.
template <int MW>
FASTCONV_WINOGRAD_INLINE void deinterleave_by_transposes(const float* src, int64_t rs,
                                                      float (*d)[16]) {
  for (int h = 0; h < 2; ++h) {
    const float* r0 = src + 8 * h * rs;
    int jb = 0;
    for (; jb + 8 <= MW; jb += 8) {
      __m256 r[8];
      for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(r0 + l * rs + jb);
      transpose8(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(d[jb + j] + 8 * h, r[j]);
    }
    for (; jb < MW; ++jb) {
      const float* c = r0 + jb;
      _mm256_storeu_ps(d[jb] + 8 * h, _mm256_setr_ps(c[0], c[rs], c[2 * rs], c[3 * rs], c[4 * rs],
                                                     c[5 * rs], c[6 * rs], c[7 * rs]));
    }
  }
}
#endif

// d[j][l] = row[l * MW + j] for j < MW, l < L (L = 64 bytes of T); false where this ISA has no
// vector form for MW (the caller's element loop runs).
template <typename T, int MW>
FASTCONV_WINOGRAD_INLINE bool deinterleave_lanes(const T* row, T (*d)[64 / sizeof(T)]) {
#if defined(__AVX512F__)
  // Up to 16 columns (a 3x3 kernel's 9 taps): MW x (MW + 1) / 2 permutes and blends; past that
  // the element loop does as well.
  if constexpr (MW > 16) {
    (void)row, (void)d;
    return false;
  } else {
    using Z = Zmm<T>;
    typename Z::V src[MW], out[MW];
    for (int v = 0; v < MW; ++v) src[v] = Z::load(row + v * Z::kN);
    permute_lanes<T, MW, true>(src, out);
    for (int j = 0; j < MW; ++j) Z::store(d[j], out[j]);
    return true;
  }
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4 && MW == 2) {
    for (int h = 0; h < 2; ++h) {
      const __m256 a = _mm256_loadu_ps(row + 16 * h), b = _mm256_loadu_ps(row + 16 * h + 8);
      // (a0 a2 b0 b2 | a4 a6 b4 b6): 64-bit lanes (0, 2, 1, 3) restore the order.
      const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
      _mm256_storeu_ps(d[0] + 8 * h,
                       _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
      _mm256_storeu_ps(d[1] + 8 * h,
                       _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
    }
    return true;
  } else if constexpr (sizeof(T) == 8 && MW == 2) {
    for (int h = 0; h < 2; ++h) {
      const __m256d a = _mm256_loadu_pd(row + 8 * h), b = _mm256_loadu_pd(row + 8 * h + 4);
      _mm256_storeu_pd(d[0] + 4 * h, _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8));
      _mm256_storeu_pd(d[1] + 4 * h, _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8));
    }
    return true;
  } else if constexpr (sizeof(T) == 4 && MW == 4) {
    // Tiles 8h .. 8h + 7: halves hold tiles (t, t + 4), so each transposed half is a column.
    for (int h = 0; h < 2; ++h) {
      const float* r = row + 32 * h;
      __m256 a = load_halves(r, r + 16), b = load_halves(r + 4, r + 20);
      __m256 c = load_halves(r + 8, r + 24), e = load_halves(r + 12, r + 28);
      transpose4_halves(a, b, c, e);
      _mm256_storeu_ps(d[0] + 8 * h, a);
      _mm256_storeu_ps(d[1] + 8 * h, b);
      _mm256_storeu_ps(d[2] + 8 * h, c);
      _mm256_storeu_ps(d[3] + 8 * h, e);
    }
    return true;
  } else if constexpr (sizeof(T) == 4 && MW >= 8) {
    deinterleave_by_transposes<MW>(row, MW, d);
    return true;
  } else {
    (void)row, (void)d;
    return false;
  }
#else
  (void)row, (void)d;
  return false;
#endif
}

// d[j][l] = src[l * rs + j] for j < MW, l < L: L rows of MW elements rs apart (a run of
// kernels whose taps are contiguous, rs apart: the backward-data pass's channel-transposed
// weight); false where this ISA has no vector form (float32 with up to 16 columns at AVX-512,
// 8+ below it; contiguous rows as deinterleave_lanes).
template <typename T, int MW>
FASTCONV_WINOGRAD_INLINE bool gather_lanes(const T* src, int64_t rs, T (*d)[64 / sizeof(T)]) {
  if (rs == MW) return deinterleave_lanes<T, MW>(src, d);
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4 && MW <= 16) {
    // The rows copied together (a masked load and store each), then permuted as one row.
    alignas(64) float buf[16 * MW + 16];
    const uint32_t m = bit_range(0, MW);
    for (int l = 0; l < 16; ++l)
      _mm512_storeu_ps(buf + l * MW, _mm512_maskz_loadu_ps(__mmask16(m), src + l * rs));
    return deinterleave_lanes<T, MW>(buf, d);
  } else {
    (void)src, (void)rs, (void)d;
    return false;
  }
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4 && MW >= 8) {
    deinterleave_by_transposes<MW>(src, rs, d);
    return true;
  } else {
    (void)src, (void)rs, (void)d;
    return false;
  }
#else
  (void)src, (void)rs, (void)d;
  return false;
#endif
}

// row[l * MW + j] = o[j][l] + bias for j < MW, l < L; false as deinterleave_lanes.
template <typename T, int MW>
FASTCONV_WINOGRAD_INLINE bool interleave_lanes(const T (*o)[64 / sizeof(T)], T bias, T* row) {
#if defined(__AVX512F__)
  using Z = Zmm<T>;
  typename Z::V src[MW], out[MW];
  for (int j = 0; j < MW; ++j) src[j] = Z::add(Z::load(o[j]), bias);
  permute_lanes<T, MW, false>(src, out);
  for (int v = 0; v < MW; ++v) Z::store(row + v * Z::kN, out[v]);
  return true;
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4 && MW == 2) {
    const __m256 vb = _mm256_set1_ps(bias);
    for (int h = 0; h < 2; ++h) {
      const __m256 a = _mm256_add_ps(_mm256_loadu_ps(o[0] + 8 * h), vb);
      const __m256 b = _mm256_add_ps(_mm256_loadu_ps(o[1] + 8 * h), vb);
      const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
      _mm256_storeu_ps(row + 16 * h, _mm256_permute2f128_ps(lo, hi, 0x20));
      _mm256_storeu_ps(row + 16 * h + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    return true;
  } else if constexpr (sizeof(T) == 8 && MW == 2) {
    const __m256d vb = _mm256_set1_pd(bias);
    for (int h = 0; h < 2; ++h) {
      const __m256d a = _mm256_add_pd(_mm256_loadu_pd(o[0] + 4 * h), vb);
      const __m256d b = _mm256_add_pd(_mm256_loadu_pd(o[1] + 4 * h), vb);
      const __m256d lo = _mm256_unpacklo_pd(a, b), hi = _mm256_unpackhi_pd(a, b);
      _mm256_storeu_pd(row + 8 * h, _mm256_permute2f128_pd(lo, hi, 0x20));
      _mm256_storeu_pd(row + 8 * h + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
    }
    return true;
  } else if constexpr (sizeof(T) == 4 && MW == 4) {
    const __m256 vb = _mm256_set1_ps(bias);
    for (int h = 0; h < 2; ++h) {
      __m256 a = _mm256_add_ps(_mm256_loadu_ps(o[0] + 8 * h), vb);
      __m256 b = _mm256_add_ps(_mm256_loadu_ps(o[1] + 8 * h), vb);
      __m256 c = _mm256_add_ps(_mm256_loadu_ps(o[2] + 8 * h), vb);
      __m256 e = _mm256_add_ps(_mm256_loadu_ps(o[3] + 8 * h), vb);
      transpose4_halves(a, b, c, e);  // the inverse of deinterleave_lanes' transpose
      float* r = row + 32 * h;
      store_halves(a, r, r + 16);
      store_halves(b, r + 4, r + 20);
      store_halves(c, r + 8, r + 24);
      store_halves(e, r + 12, r + 28);
    }
    return true;
  } else {
    (void)o, (void)bias, (void)row;
    return false;
  }
#else
  (void)o, (void)bias, (void)row;
  return false;
#endif
}

}  // namespace
}  // namespace fastconv
