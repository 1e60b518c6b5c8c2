// Resampling op: runs one ResampleProblem's pass on the fast paths (csrc/algo/resample.h) or,
// when asked to, on the reference (csrc/ref/resample_ref.h).
#include "algo/resample.h"
#include "common/dtype_dispatch.h"
#include "fastconv/resample.h"
#include "fastconv/status.h"
#include "ref/pool_ref.h"
#include "ref/resample_ref.h"

namespace fastconv {

namespace {

template <typename T>
void run(const ResampleProblem& p, const T* a, const T* b, int64_t* indices, T* out,
         uint64_t seed, bool reference) {
  const bool forward = p.pass == PoolPass::kForward;
  switch (p.kind) {
    case ResampleKind::kUpsampleNearest:
      if (reference)
        return forward ? ref::upsample_nearest(p, a, out) : ref::upsample_nearest_backward(p, a, out);
      return forward ? algo::upsample_nearest(p, a, out) : algo::upsample_nearest_backward(p, a, out);
    case ResampleKind::kUpsampleLinear:
      if (reference)
        return forward ? ref::upsample_linear(p, a, out) : ref::upsample_linear_backward(p, a, out);
      return forward ? algo::upsample_linear(p, a, out) : algo::upsample_linear_backward(p, a, out);
    case ResampleKind::kPixelShuffle:
    case ResampleKind::kPixelUnshuffle: {
      // shuffle: deep -> large forward, large -> deep backward; unshuffle the other way round.
      const bool to_large = (p.kind == ResampleKind::kPixelShuffle) == forward;
      if (reference) return ref::pixel_shuffle_copy(p, to_large, a, out);
      return algo::pixel_shuffle_copy(p, to_large, a, out);
    }
    case ResampleKind::kStochasticPool:
      if (forward) {
        if (reference) return ref::stochastic_pool(p, seed, a, out, indices);
        return algo::stochastic_pool(p, seed, a, out, indices);
      }
      if (p.training) {
        const PoolGeometry& g = p.g;
        return ref::max_pool_backward_indices<T>(g.n * g.c, g.in_spatial(), g.out_spatial(), a,
                                                 indices, out);
      }
      if (reference) return ref::stochastic_pool_eval_backward(p, a, b, out);
      return algo::stochastic_pool_eval_backward(p, a, b, out);
  }
}

}  // namespace

void run_resample(const ResampleProblem& p, const void* a, const void* b, int64_t* indices,
                  void* out, uint64_t seed, bool reference) {
  const bool stochastic = p.kind == ResampleKind::kStochasticPool;
  const bool backward = p.pass == PoolPass::kBackward;
  if (stochastic && backward && p.training && !indices)
    throw InvalidArgument("stochastic_pool_backward in training mode needs the indices");
  if (stochastic && backward && !p.training && !b)
    throw InvalidArgument("stochastic_pool_backward in eval mode needs x");
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    run<T>(p, static_cast<const T*>(a), static_cast<const T*>(b), indices, static_cast<T*>(out),
           seed, reference);
  });
}

}  // namespace fastconv
