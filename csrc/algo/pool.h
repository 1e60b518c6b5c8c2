// Direct pooling: the SIMD kernels of csrc/ukernels/pool/ over row buffers, for every pooling
// op and pass. The driver decides per problem which kernels run (pool_direct.cc: whole-plane
// reductions, row kernels, index scatters); csrc/ref/pool_ref.cc stays the oracle and runs the
// few problems this one declines.
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
