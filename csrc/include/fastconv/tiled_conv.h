// Tiled and locally connected (unshared) convolution: one problem and one engine for both.
// A tiled convolution cycles through tiles[0] x ... x tiles[d-1] kernels as it moves over the
// output: output position o uses kernel (o_0 % t_0, ..., o_{d-1} % t_{d-1}). Locally connected
// convolution is the tiled one with tiles = the output size (one kernel per output position).
#pragma once
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"
#include "fastconv/types.h"

namespace fastconv {

using Shape = std::vector<int64_t>;

// Right-aligned in 3 slots like ConvGeometry (unused leading slots: extent 1, tile 1).
struct TiledGeometry {
  int rank = 0;
  int64_t n = 0, c = 0, k = 0;
  Dims in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1}, tiles{1, 1, 1};
  Dims stride{1, 1, 1}, pad_lo{0, 0, 0}, dilation{1, 1, 1};

  int64_t phases() const { return tiles[0] * tiles[1] * tiles[2]; }
  int64_t taps() const { return kernel[0] * kernel[1] * kernel[2]; }
  int64_t in_spatial() const { return in[0] * in[1] * in[2]; }
  int64_t out_spatial() const { return out[0] * out[1] * out[2]; }
  // Weight row length of one phase: the weight is (K, *tiles, C, *kernel), so phase p's
  // kernel is the K x (C * taps) matrix at w + p * c * taps() with row stride phases() * that.
  int64_t row() const { return c * taps(); }
  double flops() const { return 2.0 * n * k * out_spatial() * row(); }
};

struct TiledConvArguments {
  ConvPass pass = ConvPass::kForward;
  Shape shape;    // x's shape (backward_data: the x_shape argument)
  Shape w_shape;  // (K, *tiles, C, *kernel)
  Shape stride, pad_lo, pad_hi, dilation;  // per spatial dim
  bool local = false;  // locally connected: w's tile dims must equal the output size
  DType dtype = DType::kFloat32;
};

struct TiledConvProblem {
  ConvPass pass = ConvPass::kForward;
  DType dtype = DType::kFloat32;
  bool local = false;
  TiledGeometry g;
  // x, w, y of the op; the pass's two array operands in public order (forward (x, w),
  // backward_data (grad_y, w), backward_weight (x, grad_y)) and what the pass returns.
  Shape x_shape, w_shape, y_shape;
  Shape operand_shapes[2];
  Shape result_shape;
  Shape bias_per_phase_shape;  // (K, *tiles): the per-position bias shape a forward also takes
};

// Validates and resolves everything; throws InvalidArgument naming the argument.
TiledConvProblem make_tiled_conv_problem(const TiledConvArguments& args);

// Scratch bytes the GEMM engine needs for this pass (csrc/algo/tiled_gemm.cc).
int64_t tiled_conv_workspace_bytes(const TiledConvProblem& p);

// One pass: forward (a = x, b = w, bias null / (K,) / (K, *tiles) when bias_per_phase),
// backward_data (a = grad_y, b = w), backward_weight (a = x, b = grad_y). reference=True runs
// csrc/ref's loops (tests compare the two).
void run_tiled_conv(const TiledConvProblem& p, const void* a, const void* b, const void* bias,
                    bool bias_per_phase, void* out, bool reference);

}  // namespace fastconv
