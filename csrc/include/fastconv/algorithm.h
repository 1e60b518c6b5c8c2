// The convolution algorithms, their plans, and the C++ entry points of every op and pass.
//
// oneDNN's pattern: every algorithm has plan() - "cannot run this, because ..." or a plan with
// its workspace size, a note for explain() and whatever layout it precomputed - and run(),
// which only executes a plan. A plan is made once per (problem, algorithm) and reused by
// selection, explain(), workspace sizing and every run, so the size can never drift from the
// code that runs (NNPACK's rule).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastconv/geometry.h"
#include "fastconv/problem.h"
#include "fastconv/types.h"

namespace fastconv {

enum class Algorithm { kReference, kDirect, kIm2col, kImplicitGemm, kWinograd, kFft, kDepthwise };

const char* algorithm_name(Algorithm a);
// Parses a concrete algorithm name ("auto" is resolved by selection); throws InvalidArgument.
Algorithm parse_algorithm(const std::string& name);
// Algorithms compiled into this build, by op ("conv", "conv_transpose", pooling ops), in the
// order of the algorithm table.
std::vector<std::string> built_algorithms(const std::string& op);

// One algorithm's plan for one convolution pass. Made by plan_conv(); immutable afterwards.
struct ConvPlan {
  Algorithm algo = Algorithm::kReference;
  // Whose pass runners execute the plan: algo itself, or the algorithm its plan() handed the
  // pass to (winograd's weight gradient of small images runs implicit_gemm; explain says so).
  Algorithm runner = Algorithm::kReference;
  ConvGeometry g;                    // the convolution that runs
  ConvPass pass = ConvPass::kForward;  // its pass
  DType dtype = DType::kFloat32;
  int threads = 1;                   // get_num_threads() when planned (run re-plans on change)
  int64_t workspace_bytes = 0;       // scratch the run takes (allocated by the op, not the driver)
  std::string note;                  // what the algorithm does inside, for explain(); may be ""
  std::shared_ptr<const void> detail;  // the algorithm's own precomputed layout, or null
};

// The result of planning: a plan, or why the algorithm cannot run the problem ("unsupported":
// a valid request this path cannot serve; NotImplementedError when the algorithm is forced).
struct ConvPlanResult {
  std::shared_ptr<ConvPlan> plan;  // null when unsupported; never modified once made
  std::string unsupported;
  // Set when planning hit an invalid setting (e.g. a bad tuning knob): raised as ValueError when
  // the algorithm is forced, a reason not to pick it otherwise.
  std::string invalid;
};

// Plans `pass` of geometry g (a conv pass; transposed convs come through their ConvProblem).
ConvPlanResult plan_conv(const ConvGeometry& g, ConvPass pass, DType t, Algorithm a);

// Runs a plan. Operands in the conv pass's own terms:
//   forward:         a = x,      b = w,      out = y,      bias (K) or null
//   backward_data:   a = grad_y, b = w,      out = grad_x  (bias must be null)
//   backward_weight: a = x,      b = grad_y, out = grad_w  (bias must be null)
// Allocates the plan's workspace (kept per thread) and nothing the plan sized; re-plans
// (without caching) when the thread count changed since planning. Call without the GIL.
void run_conv(const ConvPlan& plan, const void* a, const void* b, const void* bias, void* out);

// Runs a ConvProblem's pass with operands in the public op's terms (see ConvProblem): maps a
// transposed conv to its conv pass, swaps operands where needed and adds a transposed conv's
// bias. `plan` must come from plan_conv(problem.g, problem.conv_pass, problem.dtype, ...).
void run_conv_problem(const ConvProblem& problem, const ConvPlan& plan, const void* a,
                      const void* b, const void* bias, void* out);

// grad_bias[k] = sum over n and spatial of grad_y[n, k, ...].
void conv_backward_bias(int64_t n, int64_t k, int64_t spatial, DType t, const void* grad_y,
                        void* grad_bias);
// y[n, k, ...] += bias[k].
void add_channel_bias(int64_t n, int64_t k, int64_t spatial, DType t, const void* bias, void* y);

// ---- pooling: one entry per problem. Operands by kind and pass:
//   max forward:  a = x, out = y, indices = where to write the argmax (or null)
//   max backward: a = grad_y, b = x (unused when indices are given), indices = the forward's
//                 saved indices (or null: recompute each window's argmax), out = grad_x
//   avg forward:  a = x; avg backward: a = grad_y;  lp forward: a = x; lp backward: a = grad_y,
//   b = x;  max_unpool forward: a = x, indices (read), out = y.
//   max gather:   a = an x-shaped array, indices (read, y-shaped), out = a at the indices.
// Throws InvalidArgument for an index out of range (max backward with indices, gather, unpool).
// reference: run csrc/ref's kernels even where the direct ones serve (tests compare the two).
void run_pool(const PoolProblem& problem, const void* a, const void* b, int64_t* indices,
              void* out, bool reference = false);
// Whether the direct kernels run this pass (else the reference does).
bool pool_direct_serves(const PoolProblem& problem);

// Whether implicit_gemm runs this pass as a strided forward with no packed phase split: over
// column planes of the stride phases, its GEMM reading every panel in place and writing the
// output in place (csrc/algo/wide_phases.h),
// or gathering stride-2 columns from the input itself (forward_double_step,
// csrc/algo/conv_panels.h); the `auto` rule asks.
bool implicit_gemm_strided_panels(const ConvProblem& problem);

}  // namespace fastconv
