// Bodies of the separable-convolution micro-kernels (csrc/algo/separable_conv.cc): the
// vertical 1-D pass over whole rows and the horizontal 1-D pass along one row, compiled once per
// ISA by sep_{scalar,avx2,avx512}.cc with that file's flags. Pure: no allocation, no threads.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "ukernels/separable/sep_ukernels.h"

namespace fastconv::sep_detail {

#if defined(__GNUC__)
template <typename T, int kBytes>
struct Vec {
  typedef T V __attribute__((vector_size(kBytes)));
  static constexpr int64_t L = kBytes / int64_t(sizeof(T));
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  // p aligned to the vector: a store that bypasses the caches (output written once, not read).
  static void stream(T* p, V v) {
#if defined(__AVX512F__)
    if constexpr (kBytes == 64 && std::is_same_v<T, float>) return _mm512_stream_ps(p, v);
    if constexpr (kBytes == 64 && std::is_same_v<T, double>) return _mm512_stream_pd(p, v);
#endif
#if defined(__AVX__)
    if constexpr (kBytes == 32 && std::is_same_v<T, float>) return _mm256_stream_ps(p, v);
    if constexpr (kBytes == 32 && std::is_same_v<T, double>) return _mm256_stream_pd(p, v);
#endif
    store(p, v);
  }
  static V splat(T s) { return V{} + s; }
};

// The L-element window starting S elements into the pair (lo, hi) of consecutive vectors: one
// lane-crossing shuffle (valignd / valignq at AVX-512) instead of an unaligned load.
template <typename T, int kBytes>
struct Window {
  using V = typename Vec<T, kBytes>::V;
  static constexpr int L = kBytes / int(sizeof(T));
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I M __attribute__((vector_size(kBytes)));
  template <int S, size_t... i>
  static V at(V lo, V hi, std::index_sequence<i...>) {
    return __builtin_shuffle(lo, hi, M{I(S + int(i))...});
  }
  template <int S>
  static V at(V lo, V hi) {
#if defined(__AVX512F__)
    // GCC turns the generic shuffle into vpermt2ps with a mask register (and a copy, since it
    // overwrites a source): valignd takes the shift as an immediate.
    // (The all-lanes masked form: GCC 12's unmasked one passes an undefined vector through,
    // which -Wmaybe-uninitialized reports.)
    if constexpr (kBytes == 64 && sizeof(T) == 4) {
      const __m512i l = _mm512_castps_si512(__m512(lo)), h = _mm512_castps_si512(__m512(hi));
      return V(_mm512_castsi512_ps(_mm512_mask_alignr_epi32(l, __mmask16(0xFFFF), h, l, S)));
    }
    if constexpr (kBytes == 64 && sizeof(T) == 8) {
      const __m512i l = _mm512_castpd_si512(__m512d(lo)), h = _mm512_castpd_si512(__m512d(hi));
      return V(_mm512_castsi512_pd(_mm512_mask_alignr_epi64(l, __mmask8(0xFF), h, l, S)));
    }
#endif
    return at<S>(lo, hi, std::make_index_sequence<size_t(L)>{});
  }
};

// acc[c] += f[t] * src[c * L + t - t0 .. + L) for the taps t = t0 + S in [tb, te), the L + 1
// vectors a[] loaded from src: taps t0 .. t0 + L - 1 of a horizontal block at dilation 1.
template <typename T, int kBytes, int C, int... S>
inline void window_taps(const typename Vec<T, kBytes>::V* a, typename Vec<T, kBytes>::V* acc,
                        const T* f, int64_t t0, int64_t tb, int64_t te,
                        std::integer_sequence<int, S...>) {
  using W = Window<T, kBytes>;
  auto tap = [&](auto shift) {
    constexpr int Sv = decltype(shift)::value;
    const int64_t t = t0 + Sv;
    if (t < tb || t >= te) return;
    const auto ft = Vec<T, kBytes>::splat(f[t]);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[c] += ft * W::template at<Sv>(a[c], a[c + 1]);
  };
  (tap(std::integral_constant<int, S>{}), ...);
}

// R output rows x C vectors of columns at `j`, stride 1, dilation 1: every input row is loaded
// once per block and feeds the R accumulators whose tap it is (q - r), so loads are 1 / R of
// the FMAs. Rows q < R - 1 and q >= k only reach some outputs: the checked head and tail. Rows
// outside [q_begin, q_end) are padding (zero): skipped.
template <typename T, int kBytes, int R, int C>
inline void vertical_block(const T* const* rows, const T* f, int64_t k, int64_t q_begin,
                           int64_t q_end, int64_t j, T* out, int64_t out_stride) {
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  V acc[R][C] = {};
  auto feed = [&](int64_t q, bool checked) {
    const T* src = rows[q] + j;
    V v[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) v[c] = W::load(src + c * L);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const int64_t t = q - r;
      if (checked && (t < 0 || t >= k)) continue;
      const V ft = W::splat(f[t]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] += ft * v[c];
    }
  };
  auto clamp = [&](int64_t q) { return q < q_begin ? q_begin : q > q_end ? q_end : q; };
  const int64_t head = clamp(R - 1 < k ? R - 1 : k), body = clamp(k), tail = clamp(k + R - 1);
  int64_t q = clamp(0);
  for (; q < head; ++q) feed(q, true);
  for (; q < body; ++q) feed(q, false);
  for (; q < tail; ++q) feed(q, true);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) W::store(out + r * out_stride + j + c * L, acc[r][c]);
}
#endif

// out[r * out_stride + j] = sum_t f[t] * rows[r * stride + t * dilation][j], for r < n_rows,
// j < width: the vertical pass. rows[] holds a pointer per input row the outputs read; those
// outside [valid_begin, valid_end) are padding (they point at zeros and are skipped), so the
// kernel never checks bounds.
template <typename T, int kBytes>
inline void vertical(const T* const* rows, const T* f, int64_t k, int64_t stride,
                     int64_t dilation, int64_t valid_begin, int64_t valid_end, int64_t n_rows,
                     int64_t width, T* out, int64_t out_stride) {
  // Taps of output row r that read real rows: [t_begin(r), t_end(r)).
  auto t_begin = [&](int64_t r) {
    const int64_t gap = valid_begin - r * stride;
    return gap <= 0 ? int64_t(0) : (gap + dilation - 1) / dilation;
  };
  auto t_end = [&](int64_t r) {
    const int64_t room = valid_end - r * stride;
    const int64_t t = room <= 0 ? 0 : (room - 1) / dilation + 1;
    return t < k ? t : k;
  };
  int64_t r = 0;
#if defined(__GNUC__)
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  // AVX-512: 16 accumulators of 32 registers; AVX2: 9 of 16 (4 x 2 and 3 x 4 spilled or ran
  // 25% slower on Zen 4, 31x1 over (8, 64, 128, 128)).
  constexpr int R = kBytes >= 64 ? 4 : 3, C = kBytes >= 64 ? 4 : 3;
  const int64_t vec_width = width / L * L;
  if (stride == 1 && dilation == 1) {
    for (; r + R <= n_rows; r += R) {
      const T* const* rr = rows + r;
      T* o = out + r * out_stride;
      // The R input rows the next block reads first: fetched while this block computes (a
      // block reads each row in C-vector strips, too short for the hardware to see a stream).
      if (r + 2 * R <= n_rows)
        for (int i = 0; i < R; ++i) {
          const char* p = reinterpret_cast<const char*>(rr[k - 1 + R + i]);
          for (int64_t b = 0; b < width * int64_t(sizeof(T)); b += 64) __builtin_prefetch(p + b);
        }
      const int64_t qb = valid_begin - r, qe = valid_end - r;
      int64_t j = 0;
      for (; j + C * L <= vec_width; j += C * L)
        vertical_block<T, kBytes, R, C>(rr, f, k, qb, qe, j, o, out_stride);
      for (; j < vec_width; j += L)
        vertical_block<T, kBytes, R, 1>(rr, f, k, qb, qe, j, o, out_stride);
      for (; j < width; ++j)
        for (int i = 0; i < R; ++i) {
          T acc = 0;
          for (int64_t t = t_begin(r + i); t < t_end(r + i); ++t) acc += f[t] * rr[i + t][j];
          o[i * out_stride + j] = acc;
        }
    }
  }
  for (; r < n_rows; ++r) {  // one row at a time: any stride and dilation
    const T* const* rr = rows + r * stride;
    T* o = out + r * out_stride;
    const int64_t tb = t_begin(r), te = t_end(r);
    int64_t j = 0;
    for (; j + C * L <= vec_width; j += C * L) {
      V acc[C] = {};
      for (int64_t t = tb; t < te; ++t) {
        const T* src = rr[t * dilation] + j;
        const V ft = W::splat(f[t]);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[c] += ft * W::load(src + c * L);
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) W::store(o + j + c * L, acc[c]);
    }
    for (; j < vec_width; j += L) {
      V acc = {};
      for (int64_t t = tb; t < te; ++t) acc += W::splat(f[t]) * W::load(rr[t * dilation] + j);
      W::store(o + j, acc);
    }
    for (; j < width; ++j) {
      T acc = 0;
      for (int64_t t = tb; t < te; ++t) acc += f[t] * rr[t * dilation][j];
      o[j] = acc;
    }
  }
#else
  for (; r < n_rows; ++r)
    for (int64_t j = 0; j < width; ++j) {
      T acc = 0;
      for (int64_t t = t_begin(r); t < t_end(r); ++t)
        acc += f[t] * rows[r * stride + t * dilation][j];
      out[r * out_stride + j] = acc;
    }
#endif
}

// y[o] = sum_t f[t] * src[o + t * dilation] (accumulate: y[o] += ...), o < n: the horizontal
// pass at stride 1. src is zero outside [zero_lo, zero_hi) (the row's padding): taps that read
// only zeros for a whole block of outputs are skipped. src must be readable (any values) up to
// n rounded up to the vector width plus (k - 1) * dilation plus one vector: the last vector is
// computed whole and stored in part, and at AVX-512 a block reads one vector past its taps.
template <typename T, int kBytes>
inline void horizontal(const T* src, const T* f, int64_t k, int64_t dilation, int64_t zero_lo,
                       int64_t zero_hi, int64_t n, T* y, bool accumulate, bool cached) {
  // Taps some output of [o, o + width) reads a real value with: [t_begin, t_end).
  auto taps = [&](int64_t o, int64_t width, int64_t& t_begin, int64_t& t_end) {
    const int64_t gap = zero_lo - (o + width - 1);
    t_begin = gap <= 0 ? 0 : (gap + dilation - 1) / dilation;
    const int64_t room = zero_hi - o;
    t_end = room <= 0 ? 0 : (room - 1) / dilation + 1;
    if (t_end > k) t_end = k;
  };
  int64_t o = 0;
#if defined(__GNUC__)
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  // A row written once and never read back here, aligned: streamed past the caches (it would
  // otherwise be read in first, and evict the input rows the next bands read).
  const bool stream = !accumulate && !cached && reinterpret_cast<uintptr_t>(y) % kBytes == 0;
  // C vectors of outputs from o: taps outermost, C independent accumulators.
  auto block = [&](auto c_count, int64_t o0) {
    constexpr int C = decltype(c_count)::value;
    V acc[C] = {};
    int64_t tb, te;
    taps(o0, C * L, tb, te);
    if (kBytes >= 64 && dilation == 1) {
      // AVX-512 (Zen 4 measured): unaligned loads, one per FMA, mostly split over two cache
      // lines, held the pass at ~55% of the FMA rate; here C + 1 loads serve L taps, and each
      // tap's window is a shuffle.
      for (int64_t t0 = tb / L * L; t0 < te; t0 += L) {
        V a[C + 1];
#pragma GCC unroll 9
        for (int c = 0; c <= C; ++c) a[c] = W::load(src + o0 + t0 + c * L);
        window_taps<T, kBytes, C>(a, acc, f, t0, tb, te,
                                  std::make_integer_sequence<int, int(L)>{});
      }
    } else {
      for (int64_t t = tb; t < te; ++t) {
        const T* s = src + o0 + t * dilation;
        const V ft = W::splat(f[t]);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[c] += ft * W::load(s + c * L);
      }
    }
    if (stream) {
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) W::stream(y + o0 + c * L, acc[c]);
      return;
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      if (accumulate) acc[c] += W::load(y + o0 + c * L);
      W::store(y + o0 + c * L, acc[c]);
    }
  };
  using C8 = std::integral_constant<int, 8>;  // 8 chains: FMA latency x throughput
  using C4 = std::integral_constant<int, 4>;
  using C1 = std::integral_constant<int, 1>;
  for (; o + 8 * L <= n; o += 8 * L) block(C8{}, o);
  for (; o + 4 * L <= n; o += 4 * L) block(C4{}, o);
  for (; o + L <= n; o += L) block(C1{}, o);
  if (o < n) {  // the last vector, computed whole, stored in part
    V acc = {};
    int64_t tb, te;
    taps(o, L, tb, te);
    for (int64_t t = tb; t < te; ++t) acc += W::splat(f[t]) * W::load(src + o + t * dilation);
    T lanes[L];
    W::store(lanes, acc);
    for (int64_t i = 0; o + i < n; ++i) y[o + i] = accumulate ? y[o + i] + lanes[i] : lanes[i];
  }
#else
  for (; o < n; ++o) {
    T acc = 0;
    int64_t tb, te;
    taps(o, 1, tb, te);
    for (int64_t t = tb; t < te; ++t) acc += f[t] * src[o + t * dilation];
    y[o] = accumulate ? y[o] + acc : acc;
  }
#endif
}

// s[S] += av * (the window S elements into (lo, hi)) for each S.
template <typename T, int kBytes, int... S>
inline void window_products(typename Vec<T, kBytes>::V* s, typename Vec<T, kBytes>::V av,
                            typename Vec<T, kBytes>::V lo, typename Vec<T, kBytes>::V hi,
                            std::integer_sequence<int, S...>) {
  ((s[S] += av * Window<T, kBytes>::template at<S>(lo, hi)), ...);
}

// f(std::integral_constant<int, size>{}) for a run-time size in [1, G].
template <int G, typename F>
inline void with_group_size(int size, F&& f) {
  if constexpr (G > 1) {
    if (size < G) return with_group_size<G - 1>(size, std::forward<F>(f));
  }
  f(std::integral_constant<int, G>{});
}

// The weight-gradient sums (SeparableCorrelation): taps in groups of G, whose accumulators stay
// in registers over all rows and columns; each (row, column vector) loads a once for the group.
template <typename T, int kBytes>
inline void correlate(const T* const* a_rows, const T* const* b_rows,
                      const SeparableCorrelation& c, T* acc) {
  const int64_t lanes = kSeparableLanes<T>;
  int64_t j_vec = 0;
#if defined(__GNUC__)
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  constexpr int G = kBytes >= 64 ? 12 : 8;  // accumulators: 12 of 32 registers, 8 of 16
  j_vec = c.width / L * L;
  auto group = [&](auto g_count, int64_t t0) {
    constexpr int GN = decltype(g_count)::value;
    V s[GN];
#pragma GCC unroll 16
    for (int g = 0; g < GN; ++g) s[g] = W::load(acc + (t0 + g) * lanes);
    for (int64_t r = 0; r < c.rows; ++r) {
      const T* a = a_rows[r];
      const T* b[GN];
#pragma GCC unroll 16
      for (int g = 0; g < GN; ++g) b[g] = b_rows[r + (t0 + g) * c.row_step] + (t0 + g) * c.col_step;
      for (int64_t j = 0; j < j_vec; j += L) {
        const V av = W::load(a + j);
#pragma GCC unroll 16
        for (int g = 0; g < GN; ++g) s[g] += av * W::load(b[g] + j);
      }
    }
#pragma GCC unroll 16
    for (int g = 0; g < GN; ++g) W::store(acc + (t0 + g) * lanes, s[g]);
  };
  if (kBytes >= 64 && c.row_step == 0 && c.col_step == 1) {
    // Every tap reads the same b row one element further (grad_y rows against the vertical
    // pass's): taps in groups of L from a multiple of L, two loads of b per column vector, each
    // tap's window by valignd (at AVX-512 an unaligned load per FMA, mostly split over two
    // cache lines, held this at about half the FMA rate). Reads b rows up to L - 1 elements
    // past the last window.
    for (int64_t q0 = 0; q0 < c.k; q0 += L) {
      with_group_size<int(L)>(int(c.k - q0 < L ? c.k - q0 : L), [&](auto g_count) {
        constexpr int GN = decltype(g_count)::value;
        V s[GN];
#pragma GCC unroll 16
        for (int g = 0; g < GN; ++g) s[g] = W::load(acc + (q0 + g) * lanes);
        for (int64_t r = 0; r < c.rows; ++r) {
          const T* a = a_rows[r];
          const T* b = b_rows[r] + q0;
          for (int64_t j = 0; j < j_vec; j += L)
            window_products<T, kBytes>(s, W::load(a + j), W::load(b + j), W::load(b + j + L),
                                       std::make_integer_sequence<int, GN>{});
        }
#pragma GCC unroll 16
        for (int g = 0; g < GN; ++g) W::store(acc + (q0 + g) * lanes, s[g]);
      });
    }
  } else {
  // Groups as even as G allows (31 taps at G = 12: 11 + 10 + 10, not 12 + 12 + 4 + 1 + 1 + 1:
  // a small group reads a and its b rows for few FMAs).
  const int64_t groups = (c.k + G - 1) / G;
  int64_t t0 = 0;
  for (int64_t i = 0; i < groups; ++i) {
    const int size = int(c.k / groups + (i < c.k % groups ? 1 : 0));
    with_group_size<G>(size, [&](auto g_count) { group(g_count, t0); });
    t0 += size;
  }
  }
#endif
  if (j_vec == c.width) return;
  for (int64_t t = 0; t < c.k; ++t) {
    T sum = 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      const T* a = a_rows[r];
      const T* b = b_rows[r + t * c.row_step] + t * c.col_step;
      for (int64_t j = j_vec; j < c.width; ++j) sum += a[j] * b[j];
    }
    acc[t * lanes] += sum;
  }
}

// After rows whose stores may have been non-temporal (weakly ordered): a fence before whatever
// tells another thread or the caller that they are done.
inline void fence_streams(bool streamed) {
#if defined(__AVX__)
  if (streamed) _mm_sfence();
#else
  (void)streamed;
#endif
}

}  // namespace fastconv::sep_detail

// Defines the separable micro-kernels of one ISA namespace with vectors of `bytes`.
#define FASTCONV_DEFINE_SEPARABLE(ns, bytes)                                                   \
  namespace fastconv::ns {                                                                     \
  void sep_vertical_f32(const float* const* rows, const float* f, const SeparableTaps& a,      \
                        float* out) {                                                          \
    sep_detail::vertical<float, bytes>(rows, f, a.k, a.stride, a.dilation, a.valid_begin,      \
                                       a.valid_end, a.count, a.width, out, a.out_stride);      \
  }                                                                                            \
  void sep_vertical_f64(const double* const* rows, const double* f, const SeparableTaps& a,    \
                        double* out) {                                                         \
    sep_detail::vertical<double, bytes>(rows, f, a.k, a.stride, a.dilation, a.valid_begin,     \
                                        a.valid_end, a.count, a.width, out, a.out_stride);     \
  }                                                                                            \
  void sep_horizontal_f32(const float* src, const float* f, const SeparableTaps& a, float* y,  \
                          bool accumulate) {                                                   \
    for (int64_t r = 0; r < a.lines; ++r)                                                      \
      sep_detail::horizontal<float, bytes>(src + r * a.in_stride, f, a.k, a.dilation,          \
                                           a.valid_begin, a.valid_end, a.count,                \
                                           y + r * a.out_stride, accumulate, a.cached);        \
    sep_detail::fence_streams(!accumulate && !a.cached);                                       \
  }                                                                                            \
  void sep_horizontal_f64(const double* src, const double* f, const SeparableTaps& a,          \
                          double* y, bool accumulate) {                                        \
    for (int64_t r = 0; r < a.lines; ++r)                                                      \
      sep_detail::horizontal<double, bytes>(src + r * a.in_stride, f, a.k, a.dilation,         \
                                            a.valid_begin, a.valid_end, a.count,               \
                                            y + r * a.out_stride, accumulate, a.cached);       \
    sep_detail::fence_streams(!accumulate && !a.cached);                                       \
  }                                                                                            \
  void sep_correlate_f32(const float* const* a_rows, const float* const* b_rows,               \
                         const SeparableCorrelation& c, float* acc) {                          \
    sep_detail::correlate<float, bytes>(a_rows, b_rows, c, acc);                               \
  }                                                                                            \
  void sep_correlate_f64(const double* const* a_rows, const double* const* b_rows,             \
                         const SeparableCorrelation& c, double* acc) {                         \
    sep_detail::correlate<double, bytes>(a_rows, b_rows, c, acc);                              \
  }                                                                                            \
  }
