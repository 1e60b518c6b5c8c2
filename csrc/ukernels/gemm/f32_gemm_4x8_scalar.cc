// f32 GEMM micro-kernel and its panel packers, 4 x 8 tile, portable C++.
#include "ukernels/gemm/gemm_pack.h"
#include "ukernels/gemm/gemm_tile_scalar.h"
#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::scalar {

void f32_gemm_4x8(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t mr,
                  int64_t nr, float alpha, float beta) {
  gemm_tile<float, 4, 8>(kc, PackedA<float, 4>{a}, b, c, ldc, mr, nr, alpha, beta);
}

void f32_gemm_4x8_indirect_b(int64_t kc, const float* a, const float* const* b, float* c, int64_t ldc,
                             int64_t mr, float alpha, float beta) {
  gemm_tile<float, 4, 8>(kc, PackedA<float, 4>{a}, IndirectB<float>{b}, c, ldc, mr, 8, alpha, beta);
}

void f32_gemm_4x8_row_a(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                        int64_t ldc, int64_t nr, float alpha, float beta) {
  gemm_tile<float, 4, 8>(kc, RowMajorA<float, 4>(a, lda), b, c, ldc, 4, nr, alpha, beta);
}

void f32_gemm_4x8_rows_a(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                         float* c, int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta) {
  gemm_tile_rows_a<float, 4, 8>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha, beta);
}

void f32_gemm_4x8_pack_a(int64_t lines, int64_t kc, const float* src, int64_t rs, int64_t cs,
                         float* dst) {
  pack_panel<float, 4>(lines, kc, src, rs, cs, dst);
}

void f32_gemm_4x8_pack_b(int64_t lines, int64_t kc, const float* src, int64_t rs, int64_t cs,
                         float* dst) {
  pack_panel<float, 8>(lines, kc, src, rs, cs, dst);
}

}  // namespace fastconv::scalar
