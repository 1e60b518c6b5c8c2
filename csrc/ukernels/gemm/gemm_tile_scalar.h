// Shared body of the portable GEMM micro-kernels (plain C++, no intrinsics; the compiler may
// vectorise it for the baseline ISA). Each f{32,64}_gemm_*_scalar.cc instantiates one tile.
#pragma once
#include <cstdint>

#include "ukernels/gemm/gemm_a_readers.h"

namespace fastconv::scalar {

// A read through `a` (PackedA or RowMajorA, gemm_a_readers.h).
template <typename T, int MR, int NR, typename AReader>
inline void gemm_tile(int64_t kc, AReader a, const T* b, T* c, int64_t ldc, int64_t mr,
                           int64_t nr, T alpha, T beta) {
  T acc[MR][NR] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a.get(i);
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a.next();
    b += NR;
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

}  // namespace fastconv::scalar
