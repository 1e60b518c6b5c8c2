// Tiled / locally connected convolution op: runs one TiledConvProblem's pass on the per-phase
// GEMM engine (csrc/algo/tiled_gemm.h) with a workspace allocated here, or on the reference
// loops (csrc/ref/tiled_conv_ref.h) when asked to.
#include <algorithm>
#include <memory>

#include "algo/tiled_gemm.h"
#include "common/dtype_dispatch.h"
#include "fastconv/tiled_conv.h"
#include "ref/tiled_conv_ref.h"

namespace fastconv {

namespace {

template <typename T>
void run(const TiledConvProblem& p, const T* a, const T* b, const T* bias, bool bias_per_phase,
         T* out, bool reference) {
  const TiledGeometry& g = p.g;
  if (reference) {
    switch (p.pass) {
      case ConvPass::kForward:
        return ref::tiled_conv_forward<T>(g, a, b, bias, bias_per_phase, out);
      case ConvPass::kBackwardData: return ref::tiled_conv_backward_data<T>(g, a, b, out);
      case ConvPass::kBackwardWeight: return ref::tiled_conv_backward_weight<T>(g, a, b, out);
    }
  }
  const int64_t elements = algo::tiled_gemm_workspace_elements(g);
  std::unique_ptr<T[]> ws(new T[size_t(std::max<int64_t>(elements, 1))]);
  switch (p.pass) {
    case ConvPass::kForward:
      return algo::tiled_gemm_forward<T>(g, a, b, bias, bias_per_phase, out, ws.get());
    case ConvPass::kBackwardData:
      return algo::tiled_gemm_backward_data<T>(g, a, b, out, ws.get());
    case ConvPass::kBackwardWeight:
      return algo::tiled_gemm_backward_weight<T>(g, a, b, out, ws.get());
  }
}

}  // namespace

int64_t tiled_conv_workspace_bytes(const TiledConvProblem& p) {
  return algo::tiled_gemm_workspace_elements(p.g) * dtype_size(p.dtype);
}

void run_tiled_conv(const TiledConvProblem& p, const void* a, const void* b, const void* bias,
                    bool bias_per_phase, void* out, bool reference) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    run<T>(p, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(bias),
           bias_per_phase, static_cast<T*>(out), reference);
  });
}

}  // namespace fastconv
