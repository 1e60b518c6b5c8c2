// f64 GEMM micro-kernel and its panel packers, 4 x 4 tile, portable C++.
#include "ukernels/gemm/gemm_pack.h"
#include "ukernels/gemm/gemm_tile_scalar.h"
#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::scalar {

void f64_gemm_4x4(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, int64_t mr,
                  int64_t nr, double alpha, double beta) {
  gemm_tile<double, 4, 4>(kc, PackedA<double, 4>{a}, b, c, ldc, mr, nr, alpha, beta);
}

void f64_gemm_4x4_indirect_b(int64_t kc, const double* a, const double* const* b, double* c, int64_t ldc,
                             int64_t mr, double alpha, double beta) {
  gemm_tile<double, 4, 4>(kc, PackedA<double, 4>{a}, IndirectB<double>{b}, c, ldc, mr, 4, alpha,
                          beta);
}

void f64_gemm_4x4_row_a(int64_t kc, const double* a, int64_t lda, const double* b, double* c,
                        int64_t ldc, int64_t nr, double alpha, double beta) {
  gemm_tile<double, 4, 4>(kc, RowMajorA<double, 4>(a, lda), b, c, ldc, 4, nr, alpha, beta);
}

void f64_gemm_4x4_rows_a(int64_t kc, const double* a, int64_t lda, const double* b, int64_t ldb,
                         double* c, int64_t ldc, int64_t mr, int64_t nr, double alpha,
                         double beta) {
  gemm_tile_rows_a<double, 4, 4>(kc, a, lda, b, ldb, c, ldc, mr, nr, alpha, beta);
}

void f64_gemm_4x4_pack_a(int64_t lines, int64_t kc, const double* src, int64_t rs, int64_t cs,
                         double* dst) {
  pack_panel<double, 4>(lines, kc, src, rs, cs, dst);
}

void f64_gemm_4x4_pack_b(int64_t lines, int64_t kc, const double* src, int64_t rs, int64_t cs,
                         double* dst) {
  pack_panel<double, 4>(lines, kc, src, rs, cs, dst);
}

}  // namespace fastconv::scalar
