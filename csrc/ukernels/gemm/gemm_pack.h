// Shared body of the panel packers (each tile's file instantiates them for its MR and NR): lines
// of a matrix into one k-major panel, the layout the GEMM micro-kernels read.
#pragma once
#include <cstdint>

#if defined(FASTCONV_PACK_X86)
#include <immintrin.h>
#endif

namespace fastconv {
// Internal linkage: each ISA's file compiles its own copy with its own flags (no ODR clash).
namespace {

#if defined(FASTCONV_PACK_X86)
// Unit-stride lines (cs == 1), full panel: 4 x 4 (f32) or 2 x 2 (f64) blocks transposed in
// registers, k outer so the cache misses of all W lines overlap. Returns the k handled.
template <int W>
inline int64_t pack_lines_x86(int64_t kc, const float* src, int64_t rs, float* dst) {
  int64_t kk = 0;
  if constexpr (W % 4 == 0) {
    // 16 k (a cache line of each line) per visit of four lines: lines a multiple of 4 KiB apart
    // share the L1 sets, and a line visited again after all W others would be gone (a weight
    // of 2048 channels packed as 32 lines missed L1 on every 4-float load). (Prefetching the
    // lines four visits on made the GEMMs' A packing 3-9% slower and the direct tap path, which
    // packs each panel right before using it, no faster: not done.)
    for (; kk + 16 <= kc; kk += 16) {
#pragma GCC unroll 2
      for (int i = 0; i < W; i += 4) {
        const float* s = src + i * rs + kk;
        float* d = dst + kk * W + i;
#pragma GCC unroll 4
        for (int q = 0; q < 16; q += 4) {
          __m128 r0 = _mm_loadu_ps(s + q), r1 = _mm_loadu_ps(s + rs + q);
          __m128 r2 = _mm_loadu_ps(s + 2 * rs + q), r3 = _mm_loadu_ps(s + 3 * rs + q);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(d + q * W, r0);
          _mm_storeu_ps(d + (q + 1) * W, r1);
          _mm_storeu_ps(d + (q + 2) * W, r2);
          _mm_storeu_ps(d + (q + 3) * W, r3);
        }
      }
    }
    for (; kk + 4 <= kc; kk += 4) {
      float* d = dst + kk * W;
#pragma GCC unroll 16
      for (int i = 0; i < W; i += 4) {
        const float* s = src + i * rs + kk;
        __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + rs);
        __m128 r2 = _mm_loadu_ps(s + 2 * rs), r3 = _mm_loadu_ps(s + 3 * rs);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(d + i, r0);
        _mm_storeu_ps(d + W + i, r1);
        _mm_storeu_ps(d + 2 * W + i, r2);
        _mm_storeu_ps(d + 3 * W + i, r3);
      }
    }
  } else if constexpr (W % 2 == 0) {
    for (; kk + 4 <= kc; kk += 4) {
      float* d = dst + kk * W;
#pragma GCC unroll 16
      for (int i = 0; i < W; i += 2) {
        const __m128 r0 = _mm_loadu_ps(src + i * rs + kk);
        const __m128 r1 = _mm_loadu_ps(src + (i + 1) * rs + kk);
        const __m128 lo = _mm_unpacklo_ps(r0, r1), hi = _mm_unpackhi_ps(r0, r1);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + i), lo);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + W + i), lo);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 2 * W + i), hi);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 3 * W + i), hi);
      }
    }
  }
  return kk;
}

template <int W>
inline int64_t pack_lines_x86(int64_t kc, const double* src, int64_t rs, double* dst) {
  int64_t kk = 0;
  if constexpr (W % 2 == 0) {
    for (; kk + 2 <= kc; kk += 2) {
      double* d = dst + kk * W;
#pragma GCC unroll 16
      for (int i = 0; i < W; i += 2) {
        const __m128d r0 = _mm_loadu_pd(src + i * rs + kk);
        const __m128d r1 = _mm_loadu_pd(src + (i + 1) * rs + kk);
        _mm_storeu_pd(d + i, _mm_unpacklo_pd(r0, r1));
        _mm_storeu_pd(d + W + i, _mm_unpackhi_pd(r0, r1));
      }
    }
  }
  return kk;
}
#endif

// Packs lines (<= W) x kc elements, element (i, kk) at src[i * rs + kk * cs], into
// dst[kk * W + i]; lines past `lines` are zero.
template <typename T, int W>
inline void pack_panel(int64_t lines, int64_t kc, const T* src, int64_t rs, int64_t cs, T* dst) {
  if (rs == 1) {  // each k is one contiguous run of lines: a plain copy
    if (lines == W) {
      for (int64_t kk = 0; kk < kc; ++kk) {
#pragma GCC unroll 4
        for (int i = 0; i < W; ++i) dst[kk * W + i] = src[kk * cs + i];
      }
      return;
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
      const T* s = src + kk * cs;
      T* d = dst + kk * W;
      for (int64_t i = 0; i < lines; ++i) d[i] = s[i];
      for (int64_t i = lines; i < W; ++i) d[i] = T(0);
    }
    return;
  }
  if (lines == W && cs == 1) {  // each line is contiguous in k: a transpose
    int64_t kk = 0;
#if defined(FASTCONV_PACK_X86)
    kk = pack_lines_x86<W>(kc, src, rs, dst);
#endif
    for (; kk < kc; ++kk) {
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) dst[kk * W + i] = src[i * rs + kk];
    }
    return;
  }
  for (int64_t kk = 0; kk < kc; ++kk) {  // k outer: contiguous writes, misses of all lines overlap
    T* d = dst + kk * W;
    for (int64_t i = 0; i < lines; ++i) d[i] = src[i * rs + kk * cs];
    for (int64_t i = lines; i < W; ++i) d[i] = T(0);
  }
}

}  // namespace
}  // namespace fastconv
