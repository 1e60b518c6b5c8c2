// One call, normalised: the op, its pass, the geometry of the convolution or pooling that
// runs, and the shapes of every operand. Built once per distinct call signature by
// make_conv_problem / make_pool_problem (the Python layer caches the result); everything after
// (selection, planning, explain, the run) reads it and never rebuilds a geometry.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/geometry.h"
#include "fastconv/types.h"

namespace fastconv {

using Shape = std::vector<int64_t>;

enum class ConvOp { kConv, kConvTranspose };

// How the caller gave the padding: explicit (low, high) per dim, or a rule resolved here.
// "same" is TensorFlow's (output = ceil(input / stride), the odd unit at the high end); "full"
// pads by the dilated kernel extent - 1 on both sides. Transposed convs take explicit / valid.
enum class PaddingRule { kExplicit, kValid, kSame, kFull };
PaddingRule parse_padding_rule(const std::string& name);  // "explicit", "valid", "same", "full"

// The public arguments of one conv or transposed-conv pass, per-dim lists already normalised
// (ints and tuples expanded to one entry per spatial dim) by the Python layer.
struct ConvArguments {
  ConvOp op = ConvOp::kConv;
  ConvPass pass = ConvPass::kForward;
  // The data shape the caller has: x's for every pass except conv backward_data (x_shape,
  // given) and transposed-conv backward_data (grad_y's shape).
  Shape shape;
  Shape w_shape;
  Shape stride, pad_lo, pad_hi, dilation, output_padding;  // pad_*: kExplicit only
  PaddingRule padding = PaddingRule::kExplicit;
  int64_t groups = 1;
  ConvMode mode = ConvMode::kCross;
  DType dtype = DType::kFloat32;
};

struct ConvProblem {
  ConvOp op = ConvOp::kConv;
  ConvPass pass = ConvPass::kForward;  // the public pass
  DType dtype = DType::kFloat32;
  // The convolution that runs and its pass. A transposed conv runs the conv it is the adjoint
  // of: its forward is that conv's backward_data, its backward_data the conv's forward, its
  // backward_weight the conv's backward_weight with the operands swapped (docs/architecture.md,
  // "Transposed convolution"). This mapping exists here (csrc/common/problem.cc) only.
  ConvGeometry g;
  ConvPass conv_pass = ConvPass::kForward;
  bool swap_operands = false;  // the conv pass takes (b, a) of the public operands
  // Public shapes: x, w, y of this op (a transposed conv's own), the two array operands of
  // this pass in public order (forward (x, w), backward_data (grad_y, w), backward_weight
  // (x, grad_y)), what the pass returns, and the bias length a forward takes (0 otherwise).
  Shape x_shape, w_shape, y_shape;
  Shape operand_shapes[2];
  Shape result_shape;
  int64_t bias_channels = 0;
  // The window in the caller's terms, padding resolved (transposed: its own padding).
  Shape stride, pad_lo, pad_hi, dilation, output_padding;
};

// Validates and resolves everything; throws InvalidArgument naming the argument.
ConvProblem make_conv_problem(const ConvArguments& args);

struct PoolArguments {
  PoolKind kind = PoolKind::kMax;
  PoolPass pass = PoolPass::kForward;
  Shape x_shape;     // the pooling input (max_unpool: its input, the pooled tensor)
  Shape kernel;      // per dim
  Shape stride;      // per dim, or empty: the kernel size
  Shape pad_lo, pad_hi, dilation;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg_pool
  double p = 2.0;                 // lp_pool
  Shape output_size;              // max_unpool: spatial size, or empty for the default
  DType dtype = DType::kFloat32;
};

struct PoolProblem {
  PoolKind kind = PoolKind::kMax;
  PoolPass pass = PoolPass::kForward;
  DType dtype = DType::kFloat32;
  // Pooling: the window over x. max_unpool: the window of the max pool it inverts, whose
  // input is the unpooled output (g.in = output spatial, g.out = x spatial).
  PoolGeometry g;
  bool count_include_pad = true;
  double p = 2.0;
  Shape x_shape, y_shape;  // the op's input and output (max_unpool: pooled x, unpooled y)
  Shape result_shape;      // forward: y, backward: x
};

PoolProblem make_pool_problem(const PoolArguments& args);

}  // namespace fastconv
