// Direct pooling: the SIMD kernels of csrc/ukernels/pool/ for max / avg / lp pooling, forward
// and backward (max backward from the saved indices or from recomputed windows), and
// max_unpool. Global pools use the whole-plane kernels, windows the row kernels (pool_rows.cc);
// csrc/ref/pool_ref.cc stays the oracle.
#pragma once
#include <cstdint>
#include <string>

#include "fastconv/problem.h"

namespace fastconv::algo {

// "" when run_pool_direct serves the problem, else why not (the reference runs it then).
std::string pool_direct_unsupported(const PoolProblem& pb);

// One pooling pass; operands as run_pool's (csrc/include/fastconv/algorithm.h).
void run_pool_direct(const PoolProblem& pb, const void* a, const void* b, int64_t* indices,
                     void* out);

}  // namespace fastconv::algo
