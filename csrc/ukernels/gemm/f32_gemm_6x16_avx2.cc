// f32 GEMM micro-kernel and its panel packers, 6 x 16 tile (12 ymm accumulators), AVX2 + FMA.
#include "ukernels/gemm/gemm_tile_avx2.h"
#define FASTCONV_PACK_X86 1  // this file is compiled for an x86 ISA level
#include "ukernels/gemm/gemm_pack.h"
#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::avx2 {

void f32_gemm_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t mr,
                   int64_t nr, float alpha, float beta) {
  gemm_tile<float, 6, 2>(kc, PackedA<float, 6>{a}, b, c, ldc, mr, nr, alpha, beta);
}

void f32_gemm_6x16_indirect_b(int64_t kc, const float* a, const float* const* b, float* c, int64_t ldc,
                              int64_t mr, float alpha, float beta) {
  gemm_tile<float, 6, 2>(kc, PackedA<float, 6>{a}, IndirectB<float>{b}, c, ldc, mr, 16, alpha, beta);
}

void f32_gemm_6x16_row_a(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                         int64_t ldc, int64_t nr, float alpha, float beta) {
  gemm_tile<float, 6, 2>(kc, RowMajorA<float, 6>(a, lda), b, c, ldc, 6, nr, alpha, beta);
}

void f32_gemm_6x16_rows_a(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float* c, int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta) {
  gemm_tile_rows_a<float, 6, 2>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha, beta);
}

void f32_gemm_6x16_pack_a(int64_t lines, int64_t kc, const float* src, int64_t rs, int64_t cs,
                          float* dst) {
  pack_panel<float, 6>(lines, kc, src, rs, cs, dst);
}

void f32_gemm_6x16_pack_b(int64_t lines, int64_t kc, const float* src, int64_t rs, int64_t cs,
                          float* dst) {
  pack_panel<float, 16>(lines, kc, src, rs, cs, dst);
}

}  // namespace fastconv::avx2
