// Resampling ops from the seed texts (DESIGN.md, "Ops from the seed texts"): nearest and
// (bi/tri)linear upsampling by integer factors, pixel shuffle / unshuffle, stochastic pooling.
// One problem per call signature (make_resample_problem, csrc/common/resample_problem.cc), run
// by run_resample (csrc/ops/resample.cc). Blur pooling and weighted average pooling are depthwise
// convolutions and run as conv problems (python/fastconv/resampling.py).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/geometry.h"
#include "fastconv/problem.h"
#include "fastconv/types.h"

namespace fastconv {

enum class ResampleKind {
  kUpsampleNearest,
  kUpsampleLinear,
  kPixelShuffle,
  kPixelUnshuffle,
  kStochasticPool,
};

ResampleKind parse_resample_kind(const std::string& name);  // "upsample_nearest", ...
const char* resample_kind_name(ResampleKind k);

struct ResampleArguments {
  ResampleKind kind = ResampleKind::kUpsampleNearest;
  PoolPass pass = PoolPass::kForward;
  std::vector<int64_t> x_shape;  // the op's input (N, C, *spatial)
  std::vector<int64_t> scale;    // upsampling: per dim; pixel (un)shuffle: {r}
  bool align_corners = false;    // upsample_linear
  // stochastic_pool: the window (stride empty: the kernel), padding per dim
  std::vector<int64_t> kernel, stride, pad_lo, pad_hi;
  bool training = true;
  DType dtype = DType::kFloat32;
};

struct ResampleProblem {
  ResampleKind kind = ResampleKind::kUpsampleNearest;
  PoolPass pass = PoolPass::kForward;
  DType dtype = DType::kFloat32;
  int rank = 0;
  std::vector<int64_t> x_shape, y_shape;  // the op's input and output
  std::vector<int64_t> result_shape;      // forward: y, backward: x
  std::vector<int64_t> scale;             // per dim (pixel (un)shuffle: r in every dim)
  bool align_corners = false;
  PoolGeometry g;  // stochastic_pool's window
  bool training = true;

  int64_t planes() const { return x_shape[0] * x_shape[1]; }
};

// Validates and derives every shape; throws InvalidArgument naming the argument.
ResampleProblem make_resample_problem(const ResampleArguments& args);

// One pass. Forward: a = x; backward: a = grad_y, b = x (stochastic_pool eval backward only).
// indices: stochastic_pool training (forward: written when not null; backward: read).
// seed: stochastic_pool training forward. reference: run csrc/ref's kernels.
void run_resample(const ResampleProblem& p, const void* a, const void* b, int64_t* indices,
                  void* out, uint64_t seed, bool reference);

}  // namespace fastconv
