// Shared body of the portable GEMM micro-kernels (plain C++, no intrinsics; the compiler may
// vectorise it for the baseline ISA). Each f{32,64}_gemm_*_scalar.cc instantiates one tile.
#pragma once
#include <cstdint>

#include "ukernels/gemm/gemm_a_readers.h"

namespace fastconv::scalar {

// A read through `a` (PackedA or RowMajorA, gemm_a_readers.h); B rows NR apart, or b_step
// elements where given, or in place (IndirectB).
template <typename T, int MR, int NR, typename AReader, typename BSource>
inline void gemm_tile(int64_t kc, AReader a, BSource b, T* c, int64_t ldc, int64_t mr, int64_t nr,
                      T alpha, T beta, int64_t b_step = -1) {
  T acc[MR][NR] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const T* bk = b_row<T>(b);
    for (int i = 0; i < MR; ++i) {
      const T ai = a.get(i);
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bk[j];
    }
    a.next();
    b_next<T>(b, b_step < 0 ? NR : b_step);
  }
  for (int64_t i = 0; i < mr; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int64_t j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int64_t j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

// A read in place (RowMajorA), any 1 <= mr <= MR rows, each row count its own tile; B rows ldb
// apart.
template <typename T, int MR, int NR>
inline void gemm_tile_rows_a(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                             int64_t ldc, int64_t mr, int64_t nr, T alpha, T beta) {
  for_row_count<MR>(mr, [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemm_tile<T, R, NR>(kc, RowMajorA<T, R>(a, lda), b, c, ldc, R, nr, alpha, beta, ldb);
  });
}

}  // namespace fastconv::scalar
