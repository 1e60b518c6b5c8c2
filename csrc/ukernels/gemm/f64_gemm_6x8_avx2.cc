// f64 GEMM micro-kernel and its panel packers, 6 x 8 tile (12 ymm accumulators), AVX2 + FMA.
#include "ukernels/gemm/gemm_tile_avx2.h"
#define FASTCONV_PACK_X86 1  // this file is compiled for an x86 ISA level
#include "ukernels/gemm/gemm_pack.h"
#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::avx2 {

void f64_gemm_6x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, int64_t mr,
                  int64_t nr, double alpha, double beta) {
  gemm_tile<double, 6, 2>(kc, PackedA<double, 6>{a}, b, c, ldc, mr, nr, alpha, beta);
}

void f64_gemm_6x8_indirect_b(int64_t kc, const double* a, const double* const* b, double* c, int64_t ldc,
                             int64_t mr, double alpha, double beta) {
  gemm_tile<double, 6, 2>(kc, PackedA<double, 6>{a}, IndirectB<double>{b}, c, ldc, mr, 8, alpha,
                           beta);
}

void f64_gemm_6x8_row_a(int64_t kc, const double* a, int64_t lda, const double* b, double* c,
                        int64_t ldc, int64_t nr, double alpha, double beta) {
  gemm_tile<double, 6, 2>(kc, RowMajorA<double, 6>(a, lda), b, c, ldc, 6, nr, alpha, beta);
}

void f64_gemm_6x8_rows_a(int64_t kc, const double* a, int64_t lda, const double* b, int64_t ldb,
                         double* c, int64_t ldc, int64_t mr, int64_t nr, double alpha,
                         double beta) {
  gemm_tile_rows_a<double, 6, 2>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha, beta);
}

void f64_gemm_6x8_pack_a(int64_t lines, int64_t kc, const double* src, int64_t rs, int64_t cs,
                         double* dst) {
  pack_panel<double, 6>(lines, kc, src, rs, cs, dst);
}

void f64_gemm_6x8_pack_b(int64_t lines, int64_t kc, const double* src, int64_t rs, int64_t cs,
                         double* dst) {
  pack_panel<double, 8>(lines, kc, src, rs, cs, dst);
}

}  // namespace fastconv::avx2
