// make_conv_problem / make_pool_problem: resolve padding rules, build the one geometry of a call
// and derive every operand shape from it (csrc/include/fastconv/problem.h).
#include "fastconv/problem.h"

#include <algorithm>

#include "fastconv/status.h"

namespace fastconv {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw InvalidArgument(msg); }

// "same" / "full" / "valid" padding of a convolution over input extents `in` (spatial only).
void resolve_padding(const ConvArguments& a, Shape* lo, Shape* hi) {
  const size_t rank = a.w_shape.size() - 2;
  if (a.padding == PaddingRule::kExplicit) {
    *lo = a.pad_lo;
    *hi = a.pad_hi;
    return;
  }
  lo->assign(rank, 0);
  hi->assign(rank, 0);
  // Wrong lengths are reported by make_conv_geometry, with the argument's name.
  if (a.stride.size() != rank || a.dilation.size() != rank || a.shape.size() != rank + 2) return;
  // Values out of range are reported by make_conv_geometry; computing with them would overflow.
  constexpr int64_t kMax = int64_t(1) << 40;
  auto in_range = [](const Shape& v, size_t from) {
    for (size_t i = from; i < v.size(); ++i)
      if (v[i] < 1 || v[i] > kMax) return false;
    return true;
  };
  if (!in_range(a.stride, 0) || !in_range(a.dilation, 0) || !in_range(a.w_shape, 2) ||
      !in_range(a.shape, 2))
    return;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t eff = (a.w_shape[2 + d] - 1) * a.dilation[d] + 1;
    if (a.padding == PaddingRule::kFull) {
      (*lo)[d] = (*hi)[d] = eff - 1;
    } else if (a.padding == PaddingRule::kSame) {
      // TensorFlow's rule: output = ceil(input / stride); the odd unit goes to the end.
      const int64_t in = a.shape[2 + d], s = a.stride[d];
      if (s < 1) continue;  // reported by make_conv_geometry
      const int64_t out = (in + s - 1) / s;
      const int64_t total = std::max<int64_t>((out - 1) * s + eff - in, 0);
      (*lo)[d] = total / 2;
      (*hi)[d] = total - total / 2;
    }
  }
}

WindowParams window(const Shape& stride, const Shape& lo, const Shape& hi, const Shape& dil) {
  return WindowParams{stride, lo, hi, dil};
}

}  // namespace

PaddingRule parse_padding_rule(const std::string& name) {
  if (name == "explicit") return PaddingRule::kExplicit;
  if (name == "valid") return PaddingRule::kValid;
  if (name == "same") return PaddingRule::kSame;
  if (name == "full") return PaddingRule::kFull;
  fail("padding must be an int, a tuple, or one of ('valid', 'same', 'full'), got '" + name + "'");
}

ConvProblem make_conv_problem(const ConvArguments& a) {
  if (a.w_shape.size() < 3 || a.w_shape.size() > 5) {
    fail("w must have 3, 4 or 5 dims (out, in/groups, *kernel) for 1-3 spatial dims, got shape " +
         format_dims(a.w_shape));
  }
  ConvProblem p;
  p.op = a.op;
  p.pass = a.pass;
  p.dtype = a.dtype;
  p.stride = a.stride;
  p.dilation = a.dilation;
  const bool transposed = a.op == ConvOp::kConvTranspose;
  if (transposed && a.padding != PaddingRule::kExplicit && a.padding != PaddingRule::kValid) {
    fail("padding for a transposed convolution must be an int, a tuple, (low, high) pairs or "
         "'valid', got '" + std::string(a.padding == PaddingRule::kSame ? "same" : "full") + "'");
  }
  resolve_padding(a, &p.pad_lo, &p.pad_hi);
  const WindowParams win = window(a.stride, p.pad_lo, p.pad_hi, a.dilation);
  if (!transposed) {
    p.g = make_conv_geometry(a.shape, a.w_shape, win, a.groups, a.mode);
    p.x_shape = a.shape;
    p.w_shape = a.w_shape;
    p.y_shape = p.g.output_shape();
    p.conv_pass = a.pass;
  } else {
    p.output_padding = a.output_padding;
    p.w_shape = a.w_shape;
    p.x_shape = a.pass == ConvPass::kBackwardData
                    ? transposed_conv_input_shape(a.shape, a.w_shape, win, a.output_padding,
                                                  a.groups)
                    : a.shape;
    p.g = make_transposed_conv_geometry(p.x_shape, a.w_shape, win, a.output_padding, a.groups);
    p.y_shape = p.g.input_shape();
    if (a.pass == ConvPass::kBackwardData && p.y_shape != a.shape)
      fail("grad_y must have shape " + format_dims(p.y_shape) + ", got " + format_dims(a.shape));
    // forward = the conv's backward_data; backward_data = its forward.
    p.conv_pass = a.pass == ConvPass::kForward        ? ConvPass::kBackwardData
                  : a.pass == ConvPass::kBackwardData ? ConvPass::kForward
                                                      : ConvPass::kBackwardWeight;
    p.swap_operands = a.pass == ConvPass::kBackwardWeight;
  }
  switch (a.pass) {
    case ConvPass::kForward:
      p.operand_shapes[0] = p.x_shape;
      p.operand_shapes[1] = p.w_shape;
      p.result_shape = p.y_shape;
      p.bias_channels = p.y_shape[1];
      break;
    case ConvPass::kBackwardData:
      p.operand_shapes[0] = p.y_shape;
      p.operand_shapes[1] = p.w_shape;
      p.result_shape = p.x_shape;
      break;
    case ConvPass::kBackwardWeight:
      p.operand_shapes[0] = p.x_shape;
      p.operand_shapes[1] = p.y_shape;
      p.result_shape = p.w_shape;
      break;
  }
  return p;
}

PoolProblem make_pool_problem(const PoolArguments& a) {
  PoolProblem p;
  p.kind = a.kind;
  p.pass = a.pass;
  p.dtype = a.dtype;
  p.count_include_pad = a.count_include_pad;
  p.p = a.p;
  const Shape& stride = a.stride.empty() ? a.kernel : a.stride;
  const WindowParams win = window(stride, a.pad_lo, a.pad_hi, a.dilation);
  if (a.kind == PoolKind::kUnpool) {
    if (a.pass != PoolPass::kForward) fail("max_unpool has a forward pass only");
    p.g = make_unpool_geometry(a.x_shape, a.kernel, win, a.output_size);
    p.x_shape = a.x_shape;
    p.y_shape = Shape{p.g.n, p.g.c};
    for (int d = kMaxRank - p.g.rank; d < kMaxRank; ++d) p.y_shape.push_back(p.g.in[d]);
    p.result_shape = p.y_shape;
    return p;
  }
  if (a.pass == PoolPass::kGather && a.kind != PoolKind::kMax)
    fail("the gather pass is max_pool's only, got " + std::string(pool_kind_name(a.kind)));
  p.g = make_pool_geometry(a.x_shape, a.kernel, win, a.ceil_mode);
  p.x_shape = a.x_shape;
  p.y_shape = p.g.output_shape();
  p.result_shape = a.pass == PoolPass::kBackward ? p.x_shape : p.y_shape;
  return p;
}

}  // namespace fastconv
