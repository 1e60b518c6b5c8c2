// f32 GEMM micro-kernel and its panel packers, 12 x 32 tile (24 zmm accumulators), AVX-512.
#include "ukernels/gemm/gemm_tile_avx512.h"
#define FASTCONV_PACK_X86 1  // this file is compiled for an x86 ISA level
#include "ukernels/gemm/gemm_pack.h"
#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::avx512 {

void f32_gemm_12x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t mr,
                    int64_t nr, float alpha, float beta) {
  gemm_ukernel<float, 12, 2, 4>(kc, a, b, c, ldc, mr, nr, alpha, beta);
}

void f32_gemm_12x32_indirect_b(int64_t kc, const float* a, const float* const* b, float* c, int64_t ldc,
                               int64_t mr, float alpha, float beta) {
  gemm_ukernel_indirect_b<float, 12, 2, 4>(kc, a, b, c, ldc, mr, alpha, beta);
}

void f32_gemm_12x32_row_a(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                          int64_t ldc, int64_t nr, float alpha, float beta) {
  gemm_ukernel_row_a<float, 12, 2>(kc, a, lda, b, c, ldc, nr, alpha, beta);
}

void f32_gemm_12x32_rows_a(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                           float* c, int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta) {
  gemm_ukernel_rows_a<float, 14, 2>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha, beta);
}

void f32_gemm_12x32_pack_a(int64_t lines, int64_t kc, const float* src, int64_t rs, int64_t cs,
                           float* dst) {
  pack_panel<float, 12>(lines, kc, src, rs, cs, dst);
}

void f32_gemm_12x32_pack_b(int64_t lines, int64_t kc, const float* src, int64_t rs, int64_t cs,
                           float* dst) {
  pack_panel<float, 32>(lines, kc, src, rs, cs, dst);
}

}  // namespace fastconv::avx512
