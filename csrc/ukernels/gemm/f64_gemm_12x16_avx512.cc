// f64 GEMM micro-kernel and its panel packers, 12 x 16 tile (24 zmm accumulators), AVX-512.
#include "ukernels/gemm/gemm_tile_avx512.h"
#define FASTCONV_PACK_X86 1  // this file is compiled for an x86 ISA level
#include "ukernels/gemm/gemm_pack.h"
#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::avx512 {

void f64_gemm_12x16(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                    int64_t mr, int64_t nr, double alpha, double beta) {
  gemm_ukernel<double, 12, 2, 4>(kc, a, b, c, ldc, mr, nr, alpha, beta);
}

void f64_gemm_12x16_indirect_b(int64_t kc, const double* a, const double* const* b, double* c, int64_t ldc,
                               int64_t mr, double alpha, double beta) {
  gemm_ukernel_indirect_b<double, 12, 2, 4>(kc, a, b, c, ldc, mr, alpha, beta);
}

void f64_gemm_12x16_row_a(int64_t kc, const double* a, int64_t lda, const double* b, double* c,
                          int64_t ldc, int64_t nr, double alpha, double beta) {
  gemm_ukernel_row_a<double, 12, 2>(kc, a, lda, b, c, ldc, nr, alpha, beta);
}

void f64_gemm_12x16_rows_a(int64_t kc, const double* a, int64_t lda, const double* b, int64_t ldb,
                           double* c, int64_t ldc, int64_t mr, int64_t nr, double alpha,
                           double beta) {
  gemm_ukernel_rows_a<double, 14, 2>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha, beta);
}

void f64_gemm_12x16_pack_a(int64_t lines, int64_t kc, const double* src, int64_t rs, int64_t cs,
                           double* dst) {
  pack_panel<double, 12>(lines, kc, src, rs, cs, dst);
}

void f64_gemm_12x16_pack_b(int64_t lines, int64_t kc, const double* src, int64_t rs, int64_t cs,
                           double* dst) {
  pack_panel<double, 16>(lines, kc, src, rs, cs, dst);
}

}  // namespace fastconv::avx512
