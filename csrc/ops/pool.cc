// Pooling op: runs one PoolProblem's pass on the direct kernels (csrc/algo/pool.h), or on the
// reference for what they decline or when asked to.
#include "algo/pool.h"
#include "common/dtype_dispatch.h"
#include "fastconv/algorithm.h"
#include "fastconv/status.h"
#include "ref/pool_ref.h"

namespace fastconv {

namespace {

template <typename T>
void run(const PoolProblem& pb, const T* a, const T* b, int64_t* indices, T* out) {
  const PoolGeometry& g = pb.g;
  const bool forward = pb.pass == PoolPass::kForward;
  switch (pb.kind) {
    case PoolKind::kMax:
      if (forward) return ref::max_pool_forward<T>(g, a, out, indices);
      if (pb.pass == PoolPass::kGather)
        return ref::max_pool_gather_indices<T>(g.n * g.c, g.in_spatial(), g.out_spatial(), a,
                                               indices, out);
      if (indices)
        return ref::max_pool_backward_indices<T>(g.n * g.c, g.in_spatial(), g.out_spatial(), a,
                                                 indices, out);
      return ref::max_pool_backward<T>(g, a, b, out);
    case PoolKind::kAvg:
      if (forward) return ref::avg_pool_forward<T>(g, pb.count_include_pad, a, out);
      return ref::avg_pool_backward<T>(g, pb.count_include_pad, a, out);
    case PoolKind::kLp:
      if (forward) return ref::lp_pool_forward<T>(g, pb.p, a, out);
      return ref::lp_pool_backward<T>(g, pb.p, a, b, out);
    case PoolKind::kUnpool:  // g.in: the unpooled output, g.out: x
      return ref::max_unpool_forward<T>(g.n * g.c, g.out_spatial(), g.in_spatial(), a, indices,
                                        out);
  }
}

// The problem with the windows the kernels run (canonical_pool_geometry; max_unpool's
// geometry is no window's): the problem itself where they are its own (almost always: no copy
// of its shapes per call), else a copy in *copy.
const PoolProblem& runnable(const PoolProblem& problem, PoolProblem* copy) {
  if (problem.kind == PoolKind::kUnpool) return problem;
  const PoolGeometry c = canonical_pool_geometry(problem.g);
  if (c.kernel == problem.g.kernel && c.stride == problem.g.stride &&
      c.dilation == problem.g.dilation)
    return problem;
  *copy = problem;
  copy->g = c;
  return *copy;
}

}  // namespace

bool pool_direct_serves(const PoolProblem& problem) {
  PoolProblem copy;
  return algo::pool_direct_unsupported(runnable(problem, &copy)).empty();
}

void run_pool(const PoolProblem& given, const void* a, const void* b, int64_t* indices,
              void* out, bool reference) {
  PoolProblem copy;
  const PoolProblem& problem = runnable(given, &copy);
  const bool empty = problem.g.n * problem.g.c == 0;  // no planes: null buffers are fine
  if ((problem.kind == PoolKind::kUnpool || problem.pass == PoolPass::kGather) && !indices &&
      !empty)
    throw InvalidArgument(problem.kind == PoolKind::kUnpool ? "max_unpool needs indices"
                                                            : "max_pool gather needs indices");
  if (!reference && algo::pool_direct_unsupported(problem).empty())
    return algo::run_pool_direct(problem, a, b, indices, out);
  dispatch_dtype(problem.dtype, [&](auto tag) {
    using T = decltype(tag);
    run<T>(problem, static_cast<const T*>(a), static_cast<const T*>(b), indices,
           static_cast<T*>(out));
  });
}

}  // namespace fastconv
