// Bodies of the row kernels (see rows_ukernels.h). Included by one file per ISA level inside
// that level's namespace; the vector primitives below map to AVX-512, AVX2 or plain scalars, so
// the same loops run at each level. Forward: a block of KB output rows x NV vectors stays in
// registers over all reduction terms; each term loads NV source vectors once and broadcasts one
// weight per row. Weight: a block of F gradient rows x R terms stays in registers over a whole
// row range; each step loads F gradient vectors and R source vectors. The blocks come from a
// table of every (rows, vectors) shape that fits the register file, so row tails and short
// rows run the fitting smaller block instead of padding.
#pragma once
#include <algorithm>
#include <array>
#include <type_traits>
#include <cstdint>
#include <cstring>
#include <utility>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__)
#include "ukernels/hsum_avx512.h"
#endif

#include "fastconv/cpu_features.h"
#include "ukernels/rows/rows_ukernels.h"

#ifndef FASTCONV_ROWS_NS
#error "define FASTCONV_ROWS_NS (the ISA namespace) before including rows_impl.h"
#endif

#if defined(__GNUC__)
#define FASTCONV_ROWS_UNROLL _Pragma("GCC unroll 64")
#else
#define FASTCONV_ROWS_UNROLL
#endif

namespace fastconv::FASTCONV_ROWS_NS {
namespace {

template <typename T>
struct V;
#if defined(__AVX512F__)
constexpr int kRegs = 32, kNvMax = 8, kKbCap = 12, kFb = 4, kRb = 6;
template <>
struct V<float> {
  using type = __m512;
  static constexpr int64_t lanes = 16;
  static __mmask16 first(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static type zero() { return _mm512_setzero_ps(); }
  static type load(const float* p) { return _mm512_loadu_ps(p); }
  static type load_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store(float* p, type v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, type v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static type set1(float v) { return _mm512_set1_ps(v); }
  static type add(type a, type b) { return _mm512_add_ps(a, b); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(type v) { return hsum_avx512(v); }
  // Pairs (forward_pairs): w[0], w[1] in alternate lanes; the sums of adjacent lanes of a, then
  // of b, in lane order.
  static type pair(const float* w) {
    double d;
    std::memcpy(&d, w, sizeof d);
    return _mm512_castpd_ps(_mm512_set1_pd(d));
  }
  static type fold(type a, type b) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    return _mm512_add_ps(_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b));
  }
};
template <>
struct V<double> {
  using type = __m512d;
  static constexpr int64_t lanes = 8;
  static __mmask8 first(int64_t n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static type zero() { return _mm512_setzero_pd(); }
  static type load(const double* p) { return _mm512_loadu_pd(p); }
  static type load_n(const double* p, int64_t n) { return _mm512_maskz_loadu_pd(first(n), p); }
  static void store(double* p, type v) { _mm512_storeu_pd(p, v); }
  static void store_n(double* p, type v, int64_t n) { _mm512_mask_storeu_pd(p, first(n), v); }
  static type set1(double v) { return _mm512_set1_pd(v); }
  static type add(type a, type b) { return _mm512_add_pd(a, b); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_pd(a, b, c); }
  static double sum(type v) { return hsum_avx512(v); }
  static type pair(const double* w) {
    // (the maskz form: GCC 12 warns on the plain one's undefined source)
    return _mm512_castps_pd(
        _mm512_maskz_broadcast_f32x4(__mmask16(0xFFFF), _mm_castpd_ps(_mm_loadu_pd(w))));
  }
  static type fold(type a, type b) {
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_add_epi64(even, _mm512_set1_epi64(1));
    return _mm512_add_pd(_mm512_permutex2var_pd(a, even, b), _mm512_permutex2var_pd(a, odd, b));
  }
};
#elif defined(__AVX2__)
constexpr int kRegs = 16, kNvMax = 4, kKbCap = 8, kFb = 3, kRb = 4;
template <>
struct V<float> {
  using type = __m256;
  static constexpr int64_t lanes = 8;
  static __m256i first(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static type zero() { return _mm256_setzero_ps(); }
  static type load(const float* p) { return _mm256_loadu_ps(p); }
  static type load_n(const float* p, int64_t n) { return _mm256_maskload_ps(p, first(n)); }
  static void store(float* p, type v) { _mm256_storeu_ps(p, v); }
  static void store_n(float* p, type v, int64_t n) { _mm256_maskstore_ps(p, first(n), v); }
  static type set1(float v) { return _mm256_set1_ps(v); }
  static type add(type a, type b) { return _mm256_add_ps(a, b); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(type v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
  }
  static type pair(const float* w) {
    double d;
    std::memcpy(&d, w, sizeof d);
    return _mm256_castpd_ps(_mm256_set1_pd(d));
  }
  // hadd leaves the 64-bit quarters as (a 0-1, b 0-1, a 2-3, b 2-3): swap the middle two.
  static type fold(type a, type b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(a, b)), 0xD8));
  }
};
template <>
struct V<double> {
  using type = __m256d;
  static constexpr int64_t lanes = 4;
  static __m256i first(int64_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static type zero() { return _mm256_setzero_pd(); }
  static type load(const double* p) { return _mm256_loadu_pd(p); }
  static type load_n(const double* p, int64_t n) { return _mm256_maskload_pd(p, first(n)); }
  static void store(double* p, type v) { _mm256_storeu_pd(p, v); }
  static void store_n(double* p, type v, int64_t n) { _mm256_maskstore_pd(p, first(n), v); }
  static type set1(double v) { return _mm256_set1_pd(v); }
  static type add(type a, type b) { return _mm256_add_pd(a, b); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_pd(a, b, c); }
  static double sum(type v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static type pair(const double* w) {
    return _mm256_broadcast_pd(reinterpret_cast<const __m128d*>(w));
  }
  static type fold(type a, type b) { return _mm256_permute4x64_pd(_mm256_hadd_pd(a, b), 0xD8); }
};
#else
constexpr int kRegs = 16, kNvMax = 4, kKbCap = 4, kFb = 2, kRb = 2;
template <typename T>
struct V {
  using type = T;
  static constexpr int64_t lanes = 1;
  static type zero() { return T(0); }
  static type load(const T* p) { return *p; }
  static type load_n(const T* p, int64_t n) { return n > 0 ? *p : T(0); }
  static void store(T* p, type v) { *p = v; }
  static void store_n(T* p, type v, int64_t n) {
    if (n > 0) *p = v;
  }
  static type set1(T v) { return v; }
  static type add(type a, type b) { return a + b; }
  static type fma(type a, type b, type c) { return a * b + c; }
  static T sum(type v) { return v; }
};
#endif

// Output rows a forward block of nv vectors may hold: KB * nv accumulators, nv source vectors
// and one broadcast weight in the register file.
constexpr int kb_max(int nv) { return std::min(kKbCap, (kRegs - 1 - nv) / nv); }

// ---- forward: src and out already point at the block's first output position; `last` lanes
// of the block's last vector are stored (1..lanes).
template <typename T, int KB, int NV>
void forward_block(const T* src, const int64_t* off, int64_t nred, const T* w, int64_t ws,
                   const T* bias, bool accumulate, T* out, int64_t op, int64_t last) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type acc[KB][NV];
  for (int f = 0; f < KB; ++f)
    for (int i = 0; i < NV; ++i) acc[f][i] = Vec::zero();
  for (int64_t r = 0; r < nred; ++r) {
    const T* s = src + off[r];
    const T* wr = w + r * ws;
    typename Vec::type sv[NV];
    for (int i = 0; i < NV; ++i) sv[i] = Vec::load(s + i * L);
    for (int f = 0; f < KB; ++f) {
      const typename Vec::type wv = Vec::set1(wr[f]);
      for (int i = 0; i < NV; ++i) acc[f][i] = Vec::fma(wv, sv[i], acc[f][i]);
    }
  }
  for (int f = 0; f < KB; ++f) {
    T* o = out + f * op;
    const typename Vec::type b = Vec::set1(bias ? bias[f] : T(0));
    for (int i = 0; i + 1 < NV; ++i)
      Vec::store(o + i * L, Vec::add(acc[f][i], accumulate ? Vec::load(o + i * L) : b));
    T* t = o + (NV - 1) * L;
    const typename Vec::type a = acc[f][NV - 1];
    if (last == L)
      Vec::store(t, Vec::add(a, accumulate ? Vec::load(t) : b));
    else
      Vec::store_n(t, Vec::add(a, accumulate ? Vec::load_n(t, last) : b), last);
  }
}

template <typename T>
using ForwardFn = void (*)(const T*, const int64_t*, int64_t, const T*, int64_t, const T*, bool,
                           T*, int64_t, int64_t);
constexpr int kForwardShapes = (kKbCap + 1) * (kNvMax + 1);

template <typename T, int I>
constexpr ForwardFn<T> forward_entry() {
  constexpr int kb = I / (kNvMax + 1), nv = I % (kNvMax + 1);
  if constexpr (kb >= 1 && nv >= 1 && kb <= kb_max(nv)) {
    return &forward_block<T, kb, nv>;
  } else {
    return nullptr;
  }
}
template <typename T, int... I>
constexpr std::array<ForwardFn<T>, sizeof...(I)> forward_table(std::integer_sequence<int, I...>) {
  return {forward_entry<T, I>()...};
}

// Issue-slot estimate of one term for a kb x nv block: its multiply-adds or its loads. With 16
// registers (AVX2; the scalar build too) a term's cost is at least kMinSlots: blocks of fewer
// accumulators leave the FMA pipes waiting on their latency (each accumulator's chain adds once
// per term) and reload each source vector for every few rows. AVX2, 2 threads, old/new median ms
// over three interleaved runs: inception_v3.conv1a 0.42-0.48 -> 0.38-0.41 (2 x 4 vectors -> 4 x
// 3), ssd_mobilenet_v1.conv1 0.46-0.72 -> 0.38-0.41.
constexpr int64_t kMinSlots = kRegs >= 32 ? 0 : 10;
// A source vector starts at a tap's offset, so at AVX-512 it is an unaligned 64-byte load that
// spans two cache lines unless the offset is a multiple of the vector's lanes: two load slots.
// Counted as one, the wide 2-row blocks tied with the square ones and won the tie (2 x 8 vectors:
// 8 split loads per 16 multiply-adds); yolov5s.stem (3->32 6x6 s2 on 640x640), 1 thread, kernel
// alone: 6.0 ms in 2 x 8 blocks, 4.1 in 4 x 6. AVX2's 32-byte loads split half as often: unchanged
// there. On 512-bit units (the Intel Xeon) a split load costs more still: counted as four slots,
// the blocks move to more output rows and fewer vectors (yolov5s.stem 4 x 6 -> 12 x 2,
// resnet50.conv1 5 x 5 + 5 x 2 -> 6 x 4 + 6 x 3, yolov5s.conv1 4 x 6 -> 5 x 5, EfficientNet's stem
// 3 x 7 -> 12 x 2), and the first layers' forwards on the row kernels ran up to 15% faster (twelve
// layers, two A/B runs of 11 rounds each, benchmarks/ab_processes.py: geometric means 1.029 and
// 1.066; one layer 4.7% slower in the first, none by more than 0.1% in the second). Backward
// data's row kernels take their blocks from the same model (rows_backward_data: input channels as
// the rows; the 3-channel stems keep 3 x 7; wider layers reach it only through algo="direct"):
// measured in a noisy spell, inconclusive (-18% to +7% where the blocks change, -22% to +9% on a
// layer whose blocks do not). The reference suite's passes under auto: old / new builds within
// noise (17 rows of the layers whose ratios fell most between sessions: geometric mean 1.005).
// Where AVX-512 runs on 256-bit units (AMD's Zen 4) it stays two: unmeasured there.
inline int64_t source_load_slots() {
#if defined(__AVX512F__)
  static const int64_t slots = avx512_on_256bit_units() ? 2 : 4;
  return slots;
#else
  return 1;
#endif
}
inline int64_t block_cost(int64_t kb, int64_t nv) {
  return std::max({kb * nv, kb + source_load_slots() * nv, kMinSlots});
}

// Cost of a whole row of nv vectors and count output rows with blocks of (kb, v).
inline int64_t row_cost(int64_t count, int64_t nv, int64_t kb, int64_t v) {
  const int64_t full_x = nv / v, rem_x = nv % v, full_f = count / kb, rem_f = count % kb;
  auto per_chunk = [&](int64_t k) {
    return full_x * block_cost(k, v) + (rem_x ? block_cost(k, rem_x) : 0);
  };
  return full_f * per_chunk(kb) + (rem_f ? per_chunk(rem_f) : 0);
}

// Vectors per block for kb-row chunks of count rows over nv vectors: the cheapest that fits.
inline int64_t block_vectors(int64_t count, int64_t nv, int64_t kb) {
  int64_t v = 1, best = -1;
  for (int64_t c = std::min<int64_t>(kNvMax, nv); c >= 1; --c) {
    if (kb_max(int(c)) < kb) continue;
    const int64_t cost = row_cost(count, nv, kb, c);
    if (best < 0 || cost < best) best = cost, v = c;
  }
  return v;
}

template <typename T>
int64_t forward_rows(int64_t count, int64_t n) {
  constexpr int64_t L = V<T>::lanes;
  const int64_t nv = std::max<int64_t>(1, (n + L - 1) / L);
  int64_t kb = 1, best = -1;
  for (int64_t c = std::min<int64_t>(kNvMax, nv); c >= 1; --c) {
    const int64_t k = std::max<int64_t>(1, std::min<int64_t>(count, kb_max(int(c))));
    const int64_t cost = row_cost(std::max<int64_t>(count, 1), nv, k, c);
    if (best < 0 || cost < best) best = cost, kb = k;
  }
  return kb;
}

template <typename T>
void forward(const T* src, const int64_t* off, int64_t nred, const T* w, int64_t kb,
             int64_t count, const T* bias, bool accumulate, T* out, int64_t op, int64_t n) {
  constexpr int64_t L = V<T>::lanes;
  static constexpr std::array<ForwardFn<T>, kForwardShapes> table =
      forward_table<T>(std::make_integer_sequence<int, kForwardShapes>{});
  if (n <= 0 || count <= 0) return;
  kb = std::min<int64_t>(std::max<int64_t>(kb, 1), kKbCap);
  const int64_t v = block_vectors(count, (n + L - 1) / L, kb);
  for (int64_t f0 = 0; f0 < count; f0 += kb) {
    const int64_t kbc = std::min(kb, count - f0);
    for (int64_t x = 0; x < n; x += v * L) {
      const int64_t nvc = std::min(v, (n - x + L - 1) / L);
      const int64_t last = std::min(L, n - x - (nvc - 1) * L);
      table[kbc * (kNvMax + 1) + nvc](src + x, off, nred, w + f0 * nred, kbc,
                                      bias ? bias + f0 : nullptr, accumulate, out + f0 * op + x,
                                      op, last);
    }
  }
}

// ---- forward over pairs: the last kernel dim is 2 taps at stride 2 over an unpadded input, so
// an output's two source elements are adjacent and a vector of outputs is two unit-stride source
// vectors, read where the caller put them (no phase split). A row's two weights of a term go to
// alternate lanes of one broadcast; its two accumulators hold (output, tap) products, whose
// adjacent lanes are summed once at the end (V::fold), in output order. KB rows x one vector of
// outputs per block: 2 * KB accumulators, two source vectors and the broadcast.
constexpr int kPairRows = std::min(kKbCap, (kRegs - 3) / 2);

template <typename T, int KB>
void pairs_block(const T* src, const int64_t* off, int64_t nred, const T* w, const T* bias,
                 T* out, int64_t op, int64_t last) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type acc[KB][2];
  FASTCONV_ROWS_UNROLL
  for (int f = 0; f < KB; ++f) acc[f][0] = acc[f][1] = Vec::zero();
  const int64_t lo = std::min<int64_t>(L, 2 * last), hi = 2 * last - lo;
  for (int64_t r = 0; r < nred; ++r) {
    const T* s = src + off[r];
    const T* wr = w + 2 * r * KB;
    typename Vec::type s0, s1;
    if (last == L) {
      s0 = Vec::load(s), s1 = Vec::load(s + L);
    } else {
      s0 = Vec::load_n(s, lo), s1 = hi > 0 ? Vec::load_n(s + L, hi) : Vec::zero();
    }
    FASTCONV_ROWS_UNROLL
    for (int f = 0; f < KB; ++f) {
      const typename Vec::type wv = Vec::pair(wr + 2 * f);
      acc[f][0] = Vec::fma(wv, s0, acc[f][0]);
      acc[f][1] = Vec::fma(wv, s1, acc[f][1]);
    }
  }
  FASTCONV_ROWS_UNROLL
  for (int f = 0; f < KB; ++f) {
    const typename Vec::type v = Vec::add(Vec::fold(acc[f][0], acc[f][1]),
                                          Vec::set1(bias ? bias[f] : T(0)));
    if (last == L)
      Vec::store(out + f * op, v);
    else
      Vec::store_n(out + f * op, v, last);
  }
}

// The scalar level: one output at a time, the same sums in the same order per tap.
template <typename T, int KB>
void pairs_block_scalar(const T* src, const int64_t* off, int64_t nred, const T* w,
                        const T* bias, T* out, int64_t op, int64_t) {
  T acc[KB][2] = {};
  for (int64_t r = 0; r < nred; ++r) {
    const T* s = src + off[r];
    const T* wr = w + 2 * r * KB;
    for (int f = 0; f < KB; ++f) {
      acc[f][0] += wr[2 * f] * s[0];
      acc[f][1] += wr[2 * f + 1] * s[1];
    }
  }
  for (int f = 0; f < KB; ++f) out[f * op] = acc[f][0] + acc[f][1] + (bias ? bias[f] : T(0));
}

template <typename T>
using PairsFn = void (*)(const T*, const int64_t*, int64_t, const T*, const T*, T*, int64_t,
                         int64_t);

template <typename T, int I>
constexpr PairsFn<T> pairs_entry() {
  if constexpr (I == 0) {
    return nullptr;
  } else if constexpr (V<T>::lanes == 1) {
    return &pairs_block_scalar<T, I>;
  } else {
    return &pairs_block<T, I>;
  }
}
template <typename T, int... I>
constexpr std::array<PairsFn<T>, sizeof...(I)> pairs_table(std::integer_sequence<int, I...>) {
  return {pairs_entry<T, I>()...};
}

template <typename T>
void forward_pairs(const T* src, const int64_t* off, int64_t nred, const T* w, int64_t count,
                   const T* bias, T* out, int64_t op, int64_t n) {
  constexpr int64_t L = V<T>::lanes;
  static constexpr std::array<PairsFn<T>, kPairRows + 1> table =
      pairs_table<T>(std::make_integer_sequence<int, kPairRows + 1>{});
  // Outputs outer: a vector's source runs (nred x two vectors) stay in L1 while every block of
  // rows reads them; the packed weights stream in order.
  for (int64_t x = 0; x < n; x += L) {
    const int64_t last = std::min(L, n - x);
    for (int64_t f0 = 0; f0 < count; f0 += kPairRows) {
      const int64_t kbc = std::min<int64_t>(kPairRows, count - f0);
      table[kbc](src + 2 * x, off, nred, w + 2 * f0 * nred, bias ? bias + f0 : nullptr,
                 out + f0 * op + x, op, last);
    }
  }
}

// ---- forward over output channels: NX positions x KV channel vectors per block; each term
// loads KV weight vectors and broadcasts one source element per position.
constexpr int kKvMax = kRegs >= 32 ? 4 : 2, kNxCap = 12;
constexpr int nx_max(int kv) { return std::min(kNxCap, (kRegs - 1 - kv) / kv); }

template <typename T, int NX, int KV>
void channels_block(const T* src, const int64_t* pos, const int64_t* off, int64_t nred,
                    const T* w, int64_t wp, T* out, int64_t op) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type acc[NX][KV];
  // One source pointer per position, indexed by the term's offset: each broadcast is then one
  // load with base + index addressing, where src + off[r] + pos[i] took an address add first.
  const T* at[NX];
  FASTCONV_ROWS_UNROLL
  for (int i = 0; i < NX; ++i) {
    at[i] = src + pos[i];
    FASTCONV_ROWS_UNROLL
    for (int j = 0; j < KV; ++j) acc[i][j] = Vec::zero();
  }
  for (int64_t r = 0; r < nred; ++r) {
    const int64_t o = off[r];
    typename Vec::type wv[KV];
    FASTCONV_ROWS_UNROLL
    for (int j = 0; j < KV; ++j) wv[j] = Vec::load(w + r * wp + j * L);
    FASTCONV_ROWS_UNROLL
    for (int i = 0; i < NX; ++i) {
      const typename Vec::type b = Vec::set1(at[i][o]);
      FASTCONV_ROWS_UNROLL
      for (int j = 0; j < KV; ++j) acc[i][j] = Vec::fma(b, wv[j], acc[i][j]);
    }
  }
  FASTCONV_ROWS_UNROLL
  for (int i = 0; i < NX; ++i) {
    FASTCONV_ROWS_UNROLL
    for (int j = 0; j < KV; ++j) Vec::store(out + i * op + j * L, acc[i][j]);
  }
}

template <typename T>
using ChannelsFn = void (*)(const T*, const int64_t*, const int64_t*, int64_t, const T*, int64_t,
                            T*, int64_t);
constexpr int kChannelShapes = (kNxCap + 1) * (kKvMax + 1);

template <typename T, int I>
constexpr ChannelsFn<T> channels_entry() {
  constexpr int nx = I / (kKvMax + 1), kv = I % (kKvMax + 1);
  if constexpr (nx >= 1 && kv >= 1 && nx <= nx_max(kv)) {
    return &channels_block<T, nx, kv>;
  } else {
    return nullptr;
  }
}
template <typename T, int... I>
constexpr std::array<ChannelsFn<T>, sizeof...(I)> channels_table(std::integer_sequence<int, I...>) {
  return {channels_entry<T, I>()...};
}

template <typename T>
void forward_channels(const T* src, const int64_t* pos, int64_t npos, const int64_t* off,
                      int64_t nred, const T* w, int64_t wp, int64_t count, T* out, int64_t op) {
  constexpr int64_t L = V<T>::lanes;
  static constexpr std::array<ChannelsFn<T>, kChannelShapes> table =
      channels_table<T>(std::make_integer_sequence<int, kChannelShapes>{});
  const int64_t vectors = (count + L - 1) / L;
  // Equal channel blocks of at most kKvMax vectors (96 channels: 3 + 3, not 4 + 2).
  const int64_t blocks = (vectors + kKvMax - 1) / kKvMax;
  const int64_t kv = (vectors + blocks - 1) / blocks;
  for (int64_t j0 = 0; j0 < vectors; j0 += kv) {
    const int64_t kvc = std::min(kv, vectors - j0), nx = nx_max(int(kvc));
    for (int64_t p = 0; p < npos; p += nx) {
      const int64_t nxc = std::min(nx, npos - p);
      table[nxc * (kKvMax + 1) + kvc](src, pos + p, off, nred, w + j0 * L, wp, out + p * op + j0 * L,
                                      op);
    }
  }
}

// ---- weight gradient: F gradient rows x R terms over `rows` rows of n positions.
template <typename T, int F, int R>
void weight_block(const T* src, int64_t src_row, const int64_t* off, const T* gy,
                  int64_t gy_channel, int64_t gy_row, int64_t rows, int64_t n, T* gw,
                  int64_t gw_stride) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type acc[F][R];
  for (int f = 0; f < F; ++f)
    for (int r = 0; r < R; ++r) acc[f][r] = Vec::zero();
  const T* sp[R];
  const T* gp[F];
  FASTCONV_ROWS_UNROLL
  for (int r = 0; r < R; ++r) sp[r] = src + off[r];
  FASTCONV_ROWS_UNROLL
  for (int f = 0; f < F; ++f) gp[f] = gy + f * gy_channel;
  auto step_at = [&](auto full, int64_t x, int64_t valid) {
    typename Vec::type gv[F];
    FASTCONV_ROWS_UNROLL
    for (int f = 0; f < F; ++f) gv[f] = full ? Vec::load(gp[f] + x) : Vec::load_n(gp[f] + x, valid);
    FASTCONV_ROWS_UNROLL
    for (int r = 0; r < R; ++r) {
      const typename Vec::type sv = full ? Vec::load(sp[r] + x) : Vec::load_n(sp[r] + x, valid);
      FASTCONV_ROWS_UNROLL
      for (int f = 0; f < F; ++f) acc[f][r] = Vec::fma(gv[f], sv, acc[f][r]);
    }
  };
  // Row by row: plain loads along the row, masked ones for its tail (lanes past the row add
  // exact zeros; AVX2's masked loads cost more). Every operand has its own pointer, advanced
  // once per row. A flat loop over all vectors of all rows (an index wrapped per step, so the
  // compiler kept the row's operands in spilled registers) ran resnet50.conv1's weight kernel
  // at 96 GFLOP/s on one AVX-512 core, this 127 (chunks of 9 rows, gradient blocks outer).
  // 2 threads, whole pass, median ms, before / after: resnet50.conv1 1.17-1.28 / 0.96-1.03,
  // yolov5s.stem 4.48-4.60 / 3.85; AVX2 1.95-1.98 / 1.39-1.42, 7.66-7.80 / 5.40-5.53.
  const int64_t full = n / L * L;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t x = 0; x < full; x += L) step_at(std::true_type{}, x, L);
    if (full < n) step_at(std::false_type{}, full, n - full);
    FASTCONV_ROWS_UNROLL
    for (int r = 0; r < R; ++r) sp[r] += src_row;
    FASTCONV_ROWS_UNROLL
    for (int f = 0; f < F; ++f) gp[f] += gy_row;
  }
  // Fully unrolled, so the accumulators are registers and never an array in memory.
  FASTCONV_ROWS_UNROLL
  for (int f = 0; f < F; ++f) {
    FASTCONV_ROWS_UNROLL
    for (int r = 0; r < R; ++r) gw[f * gw_stride + r] += Vec::sum(acc[f][r]);
  }
}

template <typename T>
using WeightFn = void (*)(const T*, int64_t, const int64_t*, const T*, int64_t, int64_t, int64_t,
                          int64_t, T*, int64_t);
constexpr int kWeightShapes = (kFb + 1) * (kRb + 1);

template <typename T, int I>
constexpr WeightFn<T> weight_entry() {
  constexpr int f = I / (kRb + 1), r = I % (kRb + 1);
  if constexpr (f >= 1 && r >= 1) {
    return &weight_block<T, f, r>;
  } else {
    return nullptr;
  }
}
template <typename T, int... I>
constexpr std::array<WeightFn<T>, sizeof...(I)> weight_table(std::integer_sequence<int, I...>) {
  return {weight_entry<T, I>()...};
}

template <typename T>
void weight(const T* src, int64_t src_row, const int64_t* off, int64_t nred, const T* gy,
            int64_t gy_channel, int64_t gy_row, int64_t count, int64_t rows, int64_t n, T* gw,
            int64_t gw_stride) {
  static constexpr std::array<WeightFn<T>, kWeightShapes> table =
      weight_table<T>(std::make_integer_sequence<int, kWeightShapes>{});
  if (n <= 0 || rows <= 0) return;
  // Gradient blocks outer: one block's F rows stay in L1 while every term block walks them
  // (terms outer, the gradient streaming from L2 for each, ran a kernel-only test 8% slower).
  for (int64_t f0 = 0; f0 < count; f0 += kFb) {
    const int64_t fc = std::min<int64_t>(kFb, count - f0);
    // Term blocks as equal as they can be (27 terms: 6 6 5 5 5, not 6 6 6 6 3): a narrow block
    // re-reads the gradient rows for few FMAs. 3->32 3x3 s2 on 299x299, one AVX-512 thread:
    // the 3-term block took 16% of the time for 11% of the work.
    const int64_t blocks = (nred + kRb - 1) / kRb, base = nred / blocks, extra = nred % blocks;
    for (int64_t b = 0, r0 = 0; b < blocks; ++b) {
      const int64_t rc = base + (b < extra ? 1 : 0);
      table[fc * (kRb + 1) + rc](src, src_row, off + r0, gy + f0 * gy_channel, gy_channel,
                                 gy_row, rows, n, gw + f0 * gw_stride + r0, gw_stride);
      r0 += rc;
    }
  }
}

}  // namespace
}  // namespace fastconv::FASTCONV_ROWS_NS
