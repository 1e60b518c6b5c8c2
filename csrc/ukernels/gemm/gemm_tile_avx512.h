// Shared body of the AVX-512 GEMM micro-kernels; each f{32,64}_gemm_*_avx512.cc instantiates one
// tile. Include only from files compiled with the AVX-512 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "ukernels/gemm/gemm_a_readers.h"

namespace fastconv::avx512 {

template <typename T>
struct GemmVec;

template <>
struct GemmVec<float> {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static Mask mask(int64_t n) { return n >= 16 ? Mask(0xffff) : Mask((1u << (n > 0 ? n : 0)) - 1); }
  static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static Mask mask_bits(uint64_t bits) { return Mask(bits); }  // any pattern, lane 0 lowest
  static V bit_or(V a, V b) { return _mm512_or_ps(a, b); }
  // The even lanes of the 32 lanes a then b (a stride-2 panel row's columns, in order).
  static V even(V a, V b) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(a, idx, b);
  }
  static void store(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};

template <>
struct GemmVec<double> {
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int kLanes = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(double x) { return _mm512_set1_pd(x); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static Mask mask(int64_t n) { return n >= 8 ? Mask(0xff) : Mask((1u << (n > 0 ? n : 0)) - 1); }
  static V load(Mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static Mask mask_bits(uint64_t bits) { return Mask(bits); }
  static V bit_or(V a, V b) { return _mm512_or_pd(a, b); }
  static V even(V a, V b) {
    return _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
  }
  static void store(double* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
};

// Computes an MR x NV-vector tile from a B panel packed for a (possibly larger) tile (rows
// kBStride apart per k, or b_step where given; or B rows in place, IndirectB) and A read through
// `a` (PackedA or RowMajorA, gemm_a_readers.h). MR * NV accumulators + NV B vectors + 1
// broadcast must fit the 32 zmm registers.
// Always inlined into its micro-kernel: called out of line, the A reader went by value through
// the stack (RowMajorA's row pointers, 40 bytes at AVX-512, written as two 16-byte stores and
// read back as one 32-byte load: a store-to-load forward that fails). perf put 13% of a 1x1
// weight gradient (1280 x 320 over 49 positions) on that load. 2 threads, median ms, Zen 4:
// AVX-512 0.296 -> 0.201 (PyTorch 0.228), over 98 positions 0.437 -> 0.382, 196 0.913 -> 0.758;
// AVX2 (24 bytes) 0.209 -> 0.204.
template <typename T, int MR, int NV, int kBStride, typename AReader, typename BSource>
[[gnu::always_inline]] inline void gemm_tile(int64_t kc, AReader a, BSource b, T* c, int64_t ldc,
                                             int64_t mr, int64_t nr, T alpha, T beta,
                                             int64_t b_step = kBStride) {
  static_assert(MR * NV + NV + 1 <= 32, "tile does not fit the 32 zmm registers");
  using W = GemmVec<T>;
  using V = typename W::V;
  constexpr int L = W::kLanes;

  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = W::zero();

  auto k_steps = [&](int64_t steps) {
    for (int64_t kk = 0; kk < steps; ++kk) {
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
      b_next<T>(b, b_step);
    }
  };
  // Prefetch the C tile a few dozen k steps before the end: early enough to hide an L2/L3
  // miss, late enough that the B panel's traffic cannot evict it first (C rows a power-of-two
  // apart all land in the same L1 sets).
  constexpr int64_t kPrefetchDistance = 32;
  const int64_t head = kc > kPrefetchDistance ? kc - kPrefetchDistance : 0;
  k_steps(head);
  for (int64_t i = 0; i < mr; ++i) {  // every line of the row, also when C is not 64-byte aligned
    const uintptr_t row = reinterpret_cast<uintptr_t>(c + i * ldc);
    for (uintptr_t line = row & ~uintptr_t(63); line < row + NV * L * sizeof(T); line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T0);
    }
  }
  k_steps(kc - head);

  // Edge columns are masked lanes of the same vector ops, so edge tiles round like full ones.
  typename W::Mask mask[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) mask[v] = W::mask(nr - v * L);
  const V va = W::set1(alpha), vb = W::set1(beta);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    T* ci = c + i * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const V r = beta == T(0) ? W::mul(acc[i][v], va)
                               : W::fma(acc[i][v], va, W::mul(vb, W::load(mask[v], ci + v * L)));
      W::store(ci + v * L, mask[v], r);
    }
  }
}

// The micro-kernel for panels of MR x NV vectors: runs the smallest sub-tile (rows in steps of
// kRowStep, whole vectors) that covers (mr, nr), so edge tiles skip the padding's work. Every
// element still sees the same FMA sequence, so results do not depend on the sub-tile.
template <typename T, int MR, int NV, int kRowStep, int SR = MR, int SV = NV>
inline void gemm_ukernel(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int64_t mr,
                         int64_t nr, T alpha, T beta) {
  constexpr int L = GemmVec<T>::kLanes;
  if constexpr (SR > kRowStep) {
    if (mr <= SR - kRowStep) {
      return gemm_ukernel<T, MR, NV, kRowStep, SR - kRowStep, SV>(kc, a, b, c, ldc, mr, nr, alpha,
                                                                  beta);
    }
  }
  if constexpr (SV > 1) {
    if (nr <= (SV - 1) * L) {
      return gemm_ukernel<T, MR, NV, kRowStep, SR, SV - 1>(kc, a, b, c, ldc, mr, nr, alpha, beta);
    }
  }
  gemm_tile<T, SR, SV, NV * L>(kc, PackedA<T, MR>{a}, b, c, ldc, mr, nr, alpha, beta);
}

// The packed-A tile with B's rows read in place (b[kk]: NR elements each, all columns valid):
// row sub-tiles as gemm_ukernel, the same FMA order per element as with a packed B.
template <typename T, int MR, int NV, int kRowStep, int SR = MR>
inline void gemm_ukernel_indirect_b(int64_t kc, const T* a, const T* const* b, T* c, int64_t ldc,
                                    int64_t mr, T alpha, T beta) {
  constexpr int L = GemmVec<T>::kLanes;
  if constexpr (SR > kRowStep) {
    if (mr <= SR - kRowStep) {
      return gemm_ukernel_indirect_b<T, MR, NV, kRowStep, SR - kRowStep>(kc, a, b, c, ldc, mr,
                                                                         alpha, beta);
    }
  }
  gemm_tile<T, SR, NV, NV * L>(kc, PackedA<T, MR>{a}, IndirectB<T>{b}, c, ldc, mr, NV * L, alpha,
                               beta);
}

// The same tile with A read in place from a row-major matrix (row stride lda, unit k stride),
// all MR rows valid: no A panel to pack. Column sub-tiles as above; same FMA order per element.
template <typename T, int MR, int NV, int SV = NV>
inline void gemm_ukernel_row_a(int64_t kc, const T* a, int64_t lda, const T* b, T* c, int64_t ldc,
                               int64_t nr, T alpha, T beta) {
  constexpr int L = GemmVec<T>::kLanes;
  if constexpr (SV > 1) {
    if (nr <= (SV - 1) * L) {
      return gemm_ukernel_row_a<T, MR, NV, SV - 1>(kc, a, lda, b, c, ldc, nr, alpha, beta);
    }
  }
  gemm_tile<T, MR, SV, NV * L>(kc, RowMajorA<T, MR>(a, lda), b, c, ldc, MR, nr, alpha, beta);
}

// A read in place as above, any 1 <= mr <= MR rows: each row count runs its own tile, so a
// short run of rows costs only its own work; B rows ldb apart. Column sub-tiles and FMA order
// as above.
template <typename T, int MR, int NV, int SR = MR, int SV = NV>
inline void gemm_ukernel_rows_a(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb,
                                T* c, int64_t ldc, int64_t mr, int64_t nr, T alpha, T beta) {
  constexpr int L = GemmVec<T>::kLanes;
  if constexpr (SR > 1) {
    if (mr < SR) {
      return gemm_ukernel_rows_a<T, MR, NV, SR - 1, SV>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha,
                                                        beta);
    }
  }
  if constexpr (SV > 1) {
    if (nr <= (SV - 1) * L) {
      return gemm_ukernel_rows_a<T, MR, NV, SR, SV - 1>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha,
                                                        beta);
    }
  }
  gemm_tile<T, SR, SV, NV * L>(kc, RowMajorA<T, SR>(a, lda), b, c, ldc, SR, nr, alpha, beta, ldb);
}

}  // namespace fastconv::avx512
