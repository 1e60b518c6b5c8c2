// The weight gradient's GEMM split along its reduction (implicit GEMM's small weight
// gradients, split_gemm.cc).
#pragma once
#include <cstdint>

#include "gemm/gemm.h"

namespace fastconv::algo {

// How many chunks of the reduction a weight-gradient GEMM of m x n outputs over `depth`
// positions is split into (1: not split). A function of the shape alone.
int64_t reduction_splits(int64_t m, int64_t n, int64_t depth);

// C (m x n, row stride ldc) = A (m x depth) B + beta C, as reduction_splits says: the chunks'
// products go to `partial` (splits x m x n) in parallel, then C = beta C + P_0 + P_1 + ...
template <typename T>
void split_gemm(int64_t m, int64_t n, int64_t depth, gemm::MatrixRef<T> a,
                const gemm::PanelSource<T>& b, T beta, T* c, int64_t ldc, T* partial);

}  // namespace fastconv::algo
