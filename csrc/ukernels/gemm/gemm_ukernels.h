// GEMM micro-kernels: one C tile = alpha * (packed A panel) * (packed B panel) + beta * C.
#pragma once
#include <cstdint>

namespace fastconv {

// Contract shared by every GEMM micro-kernel of tile MR x NR:
//   a: kc x MR packed A panel, k-major (element (i, kk) at a[kk * MR + i]), rows past mr zero;
//   b: kc x NR packed B panel, k-major (element (kk, j) at b[kk * NR + j]), columns past nr zero;
//   c: the C tile, row stride ldc, unit column stride; only rows < mr and columns < nr are read
//      or written. C = alpha * acc + beta * C; beta == 0 never reads C (NaN does not leak).
// Every element goes through the same arithmetic whatever (mr, nr), so edge tiles round exactly
// like full ones and results do not depend on how the driver splits the matrix.
// kc >= 1; pointers need no alignment.
template <typename T>
using GemmUkernelFn = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int64_t mr,
                               int64_t nr, T alpha, T beta);

// The same tile with A read in place instead of from a packed panel: all MR rows valid, element
// (i, kk) at a[i * lda + kk] (a row-major A); b, c, nr, alpha and beta as above. Every element
// goes through the same FMA sequence as with a packed A, so both give identical results.
template <typename T>
using GemmUkernelRowAFn = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, T* c,
                                   int64_t ldc, int64_t nr, T alpha, T beta);

// The tile with B's kc rows read in place instead of from a packed panel: row kk at b[kk], NR
// valid elements each (any alignment), all NR columns computed; a, c, mr, alpha and beta as for
// GemmUkernelFn. Every element goes through the FMA sequence of the packed B, so both give
// identical results. For panels lying inside one row of a conv's input (implicit GEMM).
template <typename T>
using GemmUkernelIndirectBFn = void (*)(int64_t kc, const T* a, const T* const* b, T* c,
                                        int64_t ldc, int64_t mr, T alpha, T beta);

// Packs one k-major panel of W lines: lines (<= W) x kc elements of a matrix, element (i, kk) at
// src[i * rs + kk * cs], into dst[kk * W + i]; lines past `lines` are zero. With W = MR this packs
// A panels (lines = rows of A); with W = NR it packs B panels from a column-major B (lines =
// columns of B). Each tile's file holds its two packers (fast paths for the unit-stride cases).
template <typename T>
using GemmPackFn = void (*)(int64_t lines, int64_t kc, const T* src, int64_t rs, int64_t cs,
                            T* dst);

#define FASTCONV_DECLARE_GEMM_UKERNEL(T, name)                                             \
  void name(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int64_t mr, int64_t nr, \
            T alpha, T beta)
#define FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(T, name)                                   \
  void name(int64_t kc, const T* a, int64_t lda, const T* b, T* c, int64_t ldc, int64_t nr, \
            T alpha, T beta)
// The tile reading a row-major A in place (as GemmUkernelRowAFn) with any 1 <= mr <= the
// kernel table's rows_a rows, each row count its own register tile (no wasted rows): for A
// blocks whose rows come in short runs, such as a conv's output row segments
// (algo/direct_taps.h). The tile may be taller than the packed-A tile where the registers
// allow. B's k rows (NR wide) lie ldb elements apart.
template <typename T>
using GemmUkernelRowsAFn = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb,
                                    T* c, int64_t ldc, int64_t mr, int64_t nr, T alpha, T beta);

#define FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(T, name)                                 \
  void name(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, \
            int64_t mr, int64_t nr, T alpha, T beta)
#define FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(T, name)                                   \
  void name(int64_t kc, const T* a, const T* const* b, T* c, int64_t ldc, int64_t mr, T alpha, \
            T beta)
#define FASTCONV_DECLARE_PACK(T, name) \
  void name(int64_t lines, int64_t kc, const T* src, int64_t rs, int64_t cs, T* dst)

namespace scalar {
FASTCONV_DECLARE_GEMM_UKERNEL(float, f32_gemm_4x8);
FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(float, f32_gemm_4x8_row_a);
FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(float, f32_gemm_4x8_rows_a);
FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(float, f32_gemm_4x8_indirect_b);
FASTCONV_DECLARE_PACK(float, f32_gemm_4x8_pack_a);
FASTCONV_DECLARE_PACK(float, f32_gemm_4x8_pack_b);
FASTCONV_DECLARE_GEMM_UKERNEL(double, f64_gemm_4x4);
FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(double, f64_gemm_4x4_row_a);
FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(double, f64_gemm_4x4_rows_a);
FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(double, f64_gemm_4x4_indirect_b);
FASTCONV_DECLARE_PACK(double, f64_gemm_4x4_pack_a);
FASTCONV_DECLARE_PACK(double, f64_gemm_4x4_pack_b);
}  // namespace scalar

namespace avx2 {
FASTCONV_DECLARE_GEMM_UKERNEL(float, f32_gemm_6x16);
FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(float, f32_gemm_6x16_row_a);
FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(float, f32_gemm_6x16_rows_a);
FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(float, f32_gemm_6x16_indirect_b);
FASTCONV_DECLARE_PACK(float, f32_gemm_6x16_pack_a);
FASTCONV_DECLARE_PACK(float, f32_gemm_6x16_pack_b);
FASTCONV_DECLARE_GEMM_UKERNEL(double, f64_gemm_6x8);
FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(double, f64_gemm_6x8_row_a);
FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(double, f64_gemm_6x8_rows_a);
FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(double, f64_gemm_6x8_indirect_b);
FASTCONV_DECLARE_PACK(double, f64_gemm_6x8_pack_a);
FASTCONV_DECLARE_PACK(double, f64_gemm_6x8_pack_b);
}  // namespace avx2

namespace avx512 {
FASTCONV_DECLARE_GEMM_UKERNEL(float, f32_gemm_12x32);
FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(float, f32_gemm_12x32_row_a);
FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(float, f32_gemm_12x32_rows_a);
FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(float, f32_gemm_12x32_indirect_b);
FASTCONV_DECLARE_PACK(float, f32_gemm_12x32_pack_a);
FASTCONV_DECLARE_PACK(float, f32_gemm_12x32_pack_b);
FASTCONV_DECLARE_GEMM_UKERNEL(double, f64_gemm_12x16);
FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A(double, f64_gemm_12x16_row_a);
FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A(double, f64_gemm_12x16_rows_a);
FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B(double, f64_gemm_12x16_indirect_b);
FASTCONV_DECLARE_PACK(double, f64_gemm_12x16_pack_a);
FASTCONV_DECLARE_PACK(double, f64_gemm_12x16_pack_b);
}  // namespace avx512

#undef FASTCONV_DECLARE_GEMM_UKERNEL
#undef FASTCONV_DECLARE_GEMM_UKERNEL_ROW_A
#undef FASTCONV_DECLARE_GEMM_UKERNEL_ROWS_A
#undef FASTCONV_DECLARE_GEMM_UKERNEL_INDIRECT_B
#undef FASTCONV_DECLARE_PACK

}  // namespace fastconv
