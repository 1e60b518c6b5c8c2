// Shared body of the Winograd tile transforms; each winograd_transforms_<isa>.cc compiles it with
// its own flags. Work is vectorised across the tiles of a run (lanes innermost, contiguous), and
// the constant matrices are applied with compile-time loops so zero entries cost nothing.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ukernels/winograd/winograd_matrices.h"
#include "ukernels/winograd/winograd_ukernels.h"

namespace fastconv {
// Internal linkage: each ISA's file compiles its own copy with its own flags (no ODR clash).
namespace {

// Not std::min: a std template instantiated under this file's ISA flags could be picked by the
// linker for other files.
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#if defined(__GNUC__) || defined(__clang__)
#define FASTCONV_WINOGRAD_INLINE __attribute__((always_inline)) inline
#define FASTCONV_WINOGRAD_INLINE_LAMBDA __attribute__((always_inline))
#else
#define FASTCONV_WINOGRAD_INLINE inline
#define FASTCONV_WINOGRAD_INLINE_LAMBDA
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

// dst[o][l] = sum_i mat[o][i] * src[i][l] for o < R, i < C, l < L (element o of dst at
// dst + o * ds, of src at src + i * ss); zero coefficients are skipped at compile time.
template <typename T, int L, int R, int C, const double (*Mat)[C]>
FASTCONV_WINOGRAD_INLINE void apply(const T* src, int64_t ss, T* dst, int64_t ds) {
  static_for<R>([&](auto o) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    T acc[L] = {};
    static_for<C>([&](auto i) FASTCONV_WINOGRAD_INLINE_LAMBDA {
      constexpr double c = Mat[o][i];
      if constexpr (c == 1.0) {
        for (int l = 0; l < L; ++l) acc[l] += src[i * ss + l];
      } else if constexpr (c == -1.0) {
        for (int l = 0; l < L; ++l) acc[l] -= src[i * ss + l];
      } else if constexpr (c != 0.0) {
        for (int l = 0; l < L; ++l) acc[l] += T(c) * src[i * ss + l];
      }
    });
    for (int l = 0; l < L; ++l) dst[o * ds + l] = acc[l];
  });
}

// Two-dimensional transform of L tiles: out = MH in MW^T with in[IH][IW][L], out[OH][OW][L].
template <typename T, int L, int OH, int IH, const double (*MH)[IH], int OW, int IW,
          const double (*MW)[IW]>
FASTCONV_WINOGRAD_INLINE void apply_2d(const T* in, T* out) {
  alignas(64) T mid[OH][IW][L];
  // Columns first (over rows of `in`), then rows.
  static_for<IW>([&](auto j) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    apply<T, L, OH, IH, MH>(in + j * L, IW * L, &mid[0][j][0], IW * L);
  });
  static_for<OH>([&](auto i) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    apply<T, L, OW, IW, MW>(&mid[i][0][0], L, out + i * OW * L, L);
  });
}

// Runs of two-column tiles (MW = 2: F(2x2,3x3), the stride phases' F(2x2,2x2)) split and join
// pairs with vector permutes; the element loops compiled to a scalar load and insert per
// element (the input transform's row gather was ~60% of its time on dcgan.g4's phases).
// even[l] = src[2 l], odd[l] = src[2 l + 1] for l < L, L = 64 bytes of T; false where this ISA
// has no vector form (the caller's loop runs).
template <typename T>
FASTCONV_WINOGRAD_INLINE bool split_pairs(const T* src, T* even, T* odd) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    const __m512 a = _mm512_loadu_ps(src), b = _mm512_loadu_ps(src + 16);
    _mm512_store_ps(even, _mm512_permutex2var_ps(a, ie, b));
    _mm512_store_ps(odd, _mm512_permutex2var_ps(a, io, b));
  } else {
    const __m512i ie = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i io = _mm512_add_epi64(ie, _mm512_set1_epi64(1));
    const __m512d a = _mm512_loadu_pd(src), b = _mm512_loadu_pd(src + 8);
    _mm512_store_pd(even, _mm512_permutex2var_pd(a, ie, b));
    _mm512_store_pd(odd, _mm512_permutex2var_pd(a, io, b));
  }
  return true;
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    for (int h = 0; h < 2; ++h) {
      const __m256 a = _mm256_loadu_ps(src + 16 * h), b = _mm256_loadu_ps(src + 16 * h + 8);
      // (a0 a2 b0 b2 | a4 a6 b4 b6): 64-bit lanes (0, 2, 1, 3) restore the order.
      const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
      _mm256_store_ps(even + 8 * h,
                      _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
      _mm256_store_ps(odd + 8 * h,
                      _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
    }
  } else {
    for (int h = 0; h < 2; ++h) {
      const __m256d a = _mm256_loadu_pd(src + 8 * h), b = _mm256_loadu_pd(src + 8 * h + 4);
      _mm256_store_pd(even + 4 * h, _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8));
      _mm256_store_pd(odd + 4 * h, _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8));
    }
  }
  return true;
#else
  (void)src, (void)even, (void)odd;
  return false;
#endif
}

// dst[2 l] = even[l] + bias, dst[2 l + 1] = odd[l] + bias for l < L; false as split_pairs.
template <typename T>
FASTCONV_WINOGRAD_INLINE bool join_pairs(const T* even, const T* odd, T bias, T* dst) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 vb = _mm512_set1_ps(bias);
    const __m512 a = _mm512_add_ps(_mm512_load_ps(even), vb);
    const __m512 b = _mm512_add_ps(_mm512_load_ps(odd), vb);
    _mm512_storeu_ps(dst, _mm512_permutex2var_ps(a, lo, b));
    _mm512_storeu_ps(dst + 16, _mm512_permutex2var_ps(a, hi, b));
  } else {
    const __m512i lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i hi = _mm512_add_epi64(lo, _mm512_set1_epi64(4));
    const __m512d vb = _mm512_set1_pd(bias);
    const __m512d a = _mm512_add_pd(_mm512_load_pd(even), vb);
    const __m512d b = _mm512_add_pd(_mm512_load_pd(odd), vb);
    _mm512_storeu_pd(dst, _mm512_permutex2var_pd(a, lo, b));
    _mm512_storeu_pd(dst + 8, _mm512_permutex2var_pd(a, hi, b));
  }
  return true;
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256 vb = _mm256_set1_ps(bias);
    for (int h = 0; h < 2; ++h) {
      const __m256 a = _mm256_add_ps(_mm256_load_ps(even + 8 * h), vb);
      const __m256 b = _mm256_add_ps(_mm256_load_ps(odd + 8 * h), vb);
      const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
      _mm256_storeu_ps(dst + 16 * h, _mm256_permute2f128_ps(lo, hi, 0x20));
      _mm256_storeu_ps(dst + 16 * h + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  } else {
    const __m256d vb = _mm256_set1_pd(bias);
    for (int h = 0; h < 2; ++h) {
      const __m256d a = _mm256_add_pd(_mm256_load_pd(even + 4 * h), vb);
      const __m256d b = _mm256_add_pd(_mm256_load_pd(odd + 4 * h), vb);
      const __m256d lo = _mm256_unpacklo_pd(a, b), hi = _mm256_unpackhi_pd(a, b);
      _mm256_storeu_pd(dst + 8 * h, _mm256_permute2f128_pd(lo, hi, 0x20));
      _mm256_storeu_pd(dst + 8 * h + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
    }
  }
  return true;
#else
  (void)even, (void)odd, (void)bias, (void)dst;
  return false;
#endif
}

// F(MH x MW, R x R) (MH = 1: 1-D F(MW, R)).
template <typename T, int MH, int MW, int R>
struct Tiles {
  static constexpr int kL = 64 / int(sizeof(T));  // one 512-bit vector of tiles per run
  static constexpr int kRH = MH == 1 ? 1 : R;
  using FH = winograd::Matrices<MH, kRH>;
  using FW = winograd::Matrices<MW, R>;
  // Weight gradient: F(R, m) per dim (F(1, 1) for the unused H dim of 1-D), same points.
  using WH = std::conditional_t<MH == 1, winograd::Matrices<1, 1>, winograd::Matrices<R, MH>>;
  using WW = winograd::Matrices<R, MW>;
  static constexpr int kAH = FH::kAlpha, kAW = FW::kAlpha;
  static constexpr int kSpan = kL * MW + kAW - MW;  // input columns a full run reads

  static void input(const T* plane, int64_t h, int64_t w, int64_t iy0, int64_t ix0, int64_t nt,
                    T* v, int64_t as) {
    alignas(64) T d[kAH][kAW][kL];
    alignas(64) T out[kAH][kAW][kL];
    const bool inside = ix0 >= 0 && ix0 + kSpan <= w;
    // Columns [ix0, ix0 + span) of the tiles' window; past the run's last tile, zeros.
    const int64_t x_lo = ix0 < 0 ? -ix0 : 0;
    const int64_t x_hi = min64(w - ix0, (nt - 1) * MW + kAW);
    alignas(64) T buf[kSpan];
    for (int i = 0; i < kAH; ++i) {
      const int64_t y = iy0 + i;
      if (y < 0 || y >= h) {
        for (int l = 0; l < kL; ++l)
          for (int j = 0; j < kAW; ++j) d[i][j][l] = T(0);
        continue;
      }
      const T* row = plane + y * w + ix0;
      if (inside && nt == kL) {
        gather_row(row, d[i]);
        continue;
      }
      for (int64_t x = 0; x < kSpan; ++x) buf[x] = x >= x_lo && x < x_hi ? row[x] : T(0);
      gather_row(buf, d[i]);
    }
    apply_2d<T, kL, kAH, kAH, FH::BT, kAW, kAW, FW::BT>(&d[0][0][0], &out[0][0][0]);
    store(&out[0][0][0], kAH * kAW, nt, v, as);
  }

  static void output(const T* mdom, int64_t as, int64_t nt, T bias, T* plane, int64_t h,
                     int64_t w, int64_t oy0, int64_t ox0) {
    alignas(64) T q[kAH][kAW][kL];
    alignas(64) T o[MH][MW][kL];
    T* qf = &q[0][0][0];
    for (int a = 0; a < kAH * kAW; ++a) {
      if (nt == kL) {
        for (int l = 0; l < kL; ++l) qf[a * kL + l] = mdom[a * as + l];
      } else {
        for (int l = 0; l < kL; ++l) qf[a * kL + l] = l < nt ? mdom[a * as + l] : T(0);
      }
    }
    apply_2d<T, kL, MH, kAH, FH::AT, MW, kAW, FW::AT>(qf, &o[0][0][0]);
    const int64_t cols = min64(nt * MW, w - ox0);  // ox0 >= 0
    alignas(64) T buf[kL * MW];
    for (int i = 0; i < MH && oy0 + i < h; ++i) {
      T* row = plane + (oy0 + i) * w + ox0;
      if (cols == kL * MW) {
        scatter_row(o[i], bias, row);
        continue;
      }
      scatter_row(o[i], bias, buf);
      copy_prefix(buf, cols, row);
    }
  }

  static void grad(const T* plane, int64_t h, int64_t w, int64_t oy0, int64_t ox0, int64_t nt,
                   T* v, int64_t as) {
    alignas(64) T d[MH][MW][kL];
    alignas(64) T out[kAH][kAW][kL];
    alignas(64) T buf[kL * MW];
    const int64_t cols = min64(nt * MW, w - ox0);  // ox0 >= 0
    for (int i = 0; i < MH; ++i) {
      if (oy0 + i >= h) {
        for (int j = 0; j < MW; ++j)
          for (int l = 0; l < kL; ++l) d[i][j][l] = T(0);
        continue;
      }
      const T* row = plane + (oy0 + i) * w + ox0;
      if (cols == kL * MW) {
        deinterleave(row, d[i]);
        continue;
      }
      for (int64_t x = 0; x < kL * MW; ++x) buf[x] = x < cols ? row[x] : T(0);
      deinterleave(buf, d[i]);
    }
    apply_2d<T, kL, kAH, MH, WH::G, kAW, MW, WW::G>(&d[0][0][0], &out[0][0][0]);
    store(&out[0][0][0], kAH * kAW, nt, v, as);
  }

  static void weight(const T* mdom, int64_t as, int64_t np, bool flip, T* k, int64_t ps) {
    alignas(64) T q[kAH][kAW][kL];
    alignas(64) T o[kRH][R][kL];
    T* qf = &q[0][0][0];
    for (int a = 0; a < kAH * kAW; ++a)
      for (int l = 0; l < kL; ++l) qf[a * kL + l] = l < np ? mdom[a * as + l] : T(0);
    apply_2d<T, kL, kRH, kAH, WH::AT, R, kAW, WW::AT>(qf, &o[0][0][0]);
    for (int64_t l = 0; l < np; ++l)
      for (int i = 0; i < kRH; ++i)
        for (int j = 0; j < R; ++j) {
          const int tap = flip ? (kRH - 1 - i) * R + (R - 1 - j) : i * R + j;
          k[l * ps + tap] = o[i][j][l];
        }
  }

  // dst[x] = src[x] for x < n (a partial output row): masked vector stores where the ISA has
  // them; the plain loop becomes a memmove call, whose overhead costs ~5% on small images.
  static void copy_prefix(const T* src, int64_t n, T* dst) {
#if defined(__AVX512F__)
    int64_t x = 0;
    if constexpr (sizeof(T) == 4) {
      for (; x + 16 <= n; x += 16) _mm512_storeu_ps(dst + x, _mm512_loadu_ps(src + x));
      if (x < n) {
        const __mmask16 m = __mmask16((1u << (n - x)) - 1);
        _mm512_mask_storeu_ps(dst + x, m, _mm512_maskz_loadu_ps(m, src + x));
      }
    } else {
      for (; x + 8 <= n; x += 8) _mm512_storeu_pd(dst + x, _mm512_loadu_pd(src + x));
      if (x < n) {
        const __mmask8 m = __mmask8((1u << (n - x)) - 1);
        _mm512_mask_storeu_pd(dst + x, m, _mm512_maskz_loadu_pd(m, src + x));
      }
    }
#else
    for (int64_t x = 0; x < n; ++x) dst[x] = src[x];
#endif
  }

  // d[j][l] = row[l * MW + j], j < MW: one interleaved group (vectorised with permutes).
  static void deinterleave(const T* row, T (*d)[kL]) {
    if constexpr (MW == 2) {
      if (split_pairs(row, d[0], d[1])) return;
    }
    for (int l = 0; l < kL; ++l)
      static_for<MW>([&](auto j) { d[j][l] = row[l * MW + j]; });
  }

  // d[j][l] = row[l * MW + j] for a full run: columns j < MW deinterleaved, the last R - 1 are
  // the next tile's first R - 1.
  static void gather_row(const T* row, T (*d)[kL]) {
    deinterleave(row, d);
    static_for<kAW - MW>([&](auto j) {
      for (int l = 0; l + 1 < kL; ++l) d[MW + j][l] = d[j][l + 1];
      d[MW + j][kL - 1] = row[kL * MW + j];
    });
  }

  // row[l * MW + j] = o[j][l] + bias for a full run (one interleaved store group).
  static void scatter_row(const T (*o)[kL], T bias, T* row) {
    if constexpr (MW == 2) {
      if (join_pairs(o[0], o[1], bias, row)) return;
    }
    for (int l = 0; l < kL; ++l)
      static_for<MW>([&](auto j) { row[l * MW + j] = o[j][l] + bias; });
  }

  static void kernel(const T* k, int64_t ps, int64_t np, bool flip, T* u, int64_t as) {
    alignas(64) T g[kRH][R][kL];
    alignas(64) T out[kAH][kAW][kL];
    // Callers step through runs of kL kernels (the next at k + kL * ps): fetch the one after
    // next now. The weights are read once per call, usually from memory, and each run's loads
    // otherwise wait for their lines one run at a time.
    for (int l = 0; l < kL; ++l) __builtin_prefetch(k + (2 * kL + l) * ps);
    for (int i = 0; i < kRH; ++i)
      for (int j = 0; j < R; ++j) {
        const int64_t tap = flip ? (kRH - 1 - i) * R + (R - 1 - j) : i * R + j;
        for (int l = 0; l < kL; ++l) g[i][j][l] = l < np ? k[l * ps + tap] : T(0);
      }
    apply_2d<T, kL, kAH, kRH, FH::G, kAW, R, FW::G>(&g[0][0][0], &out[0][0][0]);
    store(&out[0][0][0], kAH * kAW, np, u, as);
  }

  // dst[a * as + l] = src[a][l] for l < n.
  static void store(const T* src, int count, int64_t n, T* dst, int64_t as) {
    for (int a = 0; a < count; ++a) {
      if (n == kL) {
        for (int l = 0; l < kL; ++l) dst[a * as + l] = src[a * kL + l];
      } else {
        for (int l = 0; l < n; ++l) dst[a * as + l] = src[a * kL + l];
      }
    }
  }

  static winograd::TileKernels<T> table(const char* name) {
    return {&input, &output, &kernel, &grad, &weight, kL, name};
  }
};

// r = 3: m = 2, 4, 6; r = 2: m = 2, 3, 4; r = 5: m = 2 (algo/winograd_tiles.cc: tile_exists).
template <typename T>
const winograd::TileKernels<T>& winograd_table(int m, int r, bool two_d, const char* isa) {
  static const winograd::TileKernels<T> tables[14] = {
      Tiles<T, 1, 2, 3>::table(isa), Tiles<T, 1, 4, 3>::table(isa),
      Tiles<T, 1, 6, 3>::table(isa), Tiles<T, 2, 2, 3>::table(isa),
      Tiles<T, 4, 4, 3>::table(isa), Tiles<T, 6, 6, 3>::table(isa),
      Tiles<T, 1, 2, 2>::table(isa), Tiles<T, 1, 3, 2>::table(isa),
      Tiles<T, 1, 4, 2>::table(isa), Tiles<T, 2, 2, 2>::table(isa),
      Tiles<T, 3, 3, 2>::table(isa), Tiles<T, 4, 4, 2>::table(isa),
      Tiles<T, 1, 2, 5>::table(isa), Tiles<T, 2, 2, 5>::table(isa)};
  if (r == 5) return tables[12 + (two_d ? 1 : 0)];
  const int slot = r == 3 ? (m == 2 ? 0 : m == 4 ? 1 : 2) : m - 2;
  return tables[(r == 3 ? 0 : 6) + (two_d ? 3 : 0) + slot];
}

}  // namespace
}  // namespace fastconv

#define FASTCONV_DEFINE_WINOGRAD_TABLE(isa)                                                  \
  namespace fastconv::isa {                                                                  \
  const winograd::TileKernels<float>& f32_winograd_tiles(int m, int r, bool two_d) {         \
    return winograd_table<float>(m, r, two_d, "f32_winograd_tiles_" #isa);                   \
  }                                                                                          \
  const winograd::TileKernels<double>& f64_winograd_tiles(int m, int r, bool two_d) {        \
    return winograd_table<double>(m, r, two_d, "f64_winograd_tiles_" #isa);                  \
  }                                                                                          \
  }
