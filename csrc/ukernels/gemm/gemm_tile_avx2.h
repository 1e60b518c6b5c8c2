// Shared body of the AVX2+FMA GEMM micro-kernels; each f{32,64}_gemm_*_avx2.cc instantiates one
// tile. Include only from files compiled with the AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "ukernels/gemm/gemm_a_readers.h"

namespace fastconv::avx2 {

template <typename T>
struct GemmVec;

template <>
struct GemmVec<float> {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V bit_or(V a, V b) { return _mm256_or_ps(a, b); }
  // Lanes whose bit is set in `bits` (an arbitrary pattern, lane 0 the lowest bit).
  using Mask = __m256i;
  static Mask mask_bits(uint64_t bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits & 0xff)), bit), bit);
  }
  // Masked lanes are zero and their memory is not touched.
  static V load(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  // The even lanes of the 16 lanes a then b (a stride-2 panel row's columns, in order): the
  // in-lane shuffle gives a0 a2 b0 b2 | a4 a6 b4 b6, the 64-bit permute puts the pairs in order.
  static V even(V a, V b) {
    const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
  }
};

template <>
struct GemmVec<double> {
  using V = __m256d;
  static constexpr int kLanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V bit_or(V a, V b) { return _mm256_or_pd(a, b); }
  using Mask = __m256i;
  static Mask mask_bits(uint64_t bits) {
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(int64_t(bits & 0xf)), bit), bit);
  }
  static V load(Mask m, const double* p) { return _mm256_maskload_pd(p, m); }
  static V even(V a, V b) {  // a0 b0 | a2 b2, then the halves' pairs in order
    return _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), _MM_SHUFFLE(3, 1, 2, 0));
  }
};

// Writes alpha * acc + beta * C for one row of NV vectors at `ci` (all lanes valid).
template <typename T, int NV>
inline void store_row(const typename GemmVec<T>::V* acc, T* ci, T alpha, T beta) {
  using W = GemmVec<T>;
  constexpr int L = W::kLanes;
  const typename W::V va = W::set1(alpha), vb = W::set1(beta);
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const typename W::V r =
        beta == T(0) ? W::mul(acc[v], va) : W::fma(acc[v], va, W::mul(vb, W::load(ci + v * L)));
    W::store(ci + v * L, r);
  }
}

// MR rows x NV vectors, A read through `a` (PackedA or RowMajorA, gemm_a_readers.h): MR * NV
// accumulators + NV B vectors + 1 broadcast must fit 16 ymm. B rows NV vectors apart, or b_step
// elements where given, or in place (IndirectB).
// Always inlined into its micro-kernel: called out of line, the A reader went by value through
// the stack (RowMajorA's row pointers, 40 bytes at AVX-512, written as two 16-byte stores and
// read back as one 32-byte load: a store-to-load forward that fails). perf put 13% of a 1x1
// weight gradient (1280 x 320 over 49 positions) on that load. 2 threads, median ms, Zen 4:
// AVX-512 0.296 -> 0.201 (PyTorch 0.228), over 98 positions 0.437 -> 0.382, 196 0.913 -> 0.758;
// AVX2 (24 bytes) 0.209 -> 0.204.
template <typename T, int MR, int NV, typename AReader, typename BSource>
[[gnu::always_inline]] inline void gemm_tile(int64_t kc, AReader a, BSource b, T* c, int64_t ldc,
                                             int64_t mr, int64_t nr, T alpha, T beta,
                                             int64_t b_step = -1) {
  static_assert(MR * NV + NV + 1 <= 16, "tile does not fit the 16 ymm registers");
  using W = GemmVec<T>;
  using V = typename W::V;
  constexpr int L = W::kLanes, NR = NV * L;
  if constexpr (NV > 1) {
    // Edge columns that fit fewer vectors run that narrower tile on the same B rows (the first
    // vectors of each): an N of 49 (a 1x1 layer on 7x7) computes 56 columns instead of 64.
    // Every element sees the same FMA sequence, so results do not depend on the width.
    if (nr <= (NV - 1) * L) {
      gemm_tile<T, MR, NV - 1>(kc, a, b, c, ldc, mr, nr, alpha, beta, b_step < 0 ? NR : b_step);
      return;
    }
  }

  for (int64_t i = 0; i < mr; ++i) {  // every line of the row, also when C is not 64-byte aligned
    const uintptr_t row = reinterpret_cast<uintptr_t>(c + i * ldc);
    for (uintptr_t line = row & ~uintptr_t(63); line < row + NR * sizeof(T); line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T0);
    }
  }

  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = W::zero();

  for (int64_t kk = 0; kk < kc; ++kk) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = W::load(b_row<T>(b) + v * L);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const V ai = W::set1(a.get(i));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = W::fma(ai, bv[v], acc[i][v]);
    }
    a.next();
    b_next<T>(b, b_step < 0 ? NR : b_step);
  }

  if (nr == NR) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      if (i >= mr) break;
      store_row<T, NV>(acc[i], c + i * ldc, alpha, beta);
    }
    return;
  }
  // Edge columns go through a full-width row buffer (masked stores are slow on some AVX2
  // cores): the same vector arithmetic, so edge tiles round like full ones.
  alignas(32) T row[NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    T* ci = c + i * ldc;
    for (int j = 0; j < NR; ++j) row[j] = beta != T(0) && j < nr ? ci[j] : T(0);
    store_row<T, NV>(acc[i], row, alpha, beta);
    for (int64_t j = 0; j < nr; ++j) ci[j] = row[j];
  }
}

// A read in place (RowMajorA), any 1 <= mr <= MR rows, each row count its own tile; B rows ldb
// apart.
template <typename T, int MR, int NV>
inline void gemm_tile_rows_a(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                             int64_t ldc, int64_t mr, int64_t nr, T alpha, T beta) {
  for_row_count<MR>(mr, [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemm_tile<T, R, NV>(kc, RowMajorA<T, R>(a, lda), b, c, ldc, R, nr, alpha, beta, ldb);
  });
}

}  // namespace fastconv::avx2
