// Host-side interface of the GPU convolution and pooling kernels (launchers in cuda/*.cu).
// Every launcher takes the caller's stream, checks its launches and throws CudaError on failure.
// No launcher allocates device memory or synchronises: scratch memory comes in as a Workspace
// (sized by the *_workspace queries below), so every call can be captured in a CUDA graph.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"
#include "fastconv/types.h"

namespace fastconv::cuda {

// DType, ConvPass and PoolKind are fastconv's own (csrc/include/fastconv/types.h), shared with
// the CPU module: one spelling of each enum, parsed in one place (csrc/common/types.cc).

// Scratch memory a call's caller allocated on the device, through its own library's allocator
// (PyTorch's caching allocator, CuPy's pool: python/fastconv/backends/cuda.py).
struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};

// A ConvGeometry flattened for kernels (passed by value). Spatial dims right-aligned in 3 slots.
struct ConvParams {
  // channels
  int64_t n, c, k, groups, cg, kg;  // cg = C / groups, kg = K / groups
  // spatial extents and window (pad = low padding; the high padding only sets `out`)
  int64_t in[3], kernel[3], out[3], stride[3], pad[3], dil[3];
  // derived sizes
  int64_t in_sp, out_sp, taps;
  bool flip;  // mode="conv": weight taps reversed
};

ConvParams make_conv_params(const ConvGeometry& g);

// Which math the implicit-GEMM kernel uses: SIMT (exact float32 / float64, float16 and
// bfloat16 converted to float32) or tensor cores through WMMA (float16, bfloat16; TF32 for
// float32). Tensor cores do not exist for float64: it always runs SIMT.
enum class GemmMath { kSimt, kTensorCore };

// Implicit-GEMM convolution, one pass. Operands per pass:
//   forward:         a = x,      b = w,      out = y,  bias (K) or null
//   backward_data:   a = grad_y, b = w,      out = dx, bias (C) or null (transposed conv bias)
//   backward_weight: a = x,      b = grad_y, out = dw  (deterministic: no atomics)
// Accumulation is float32 (float64 for double) on every path.
// Tensor-core math for float16 / bfloat16 layers that the tensor-op path takes (one group,
// rank 1-2, channels multiples of 8: tensor_op_conv.h) runs that path: CUTLASS's sm_80 kernels
// over the operands moved to channels-last order in the workspace; every other layer, or a
// workspace too small for the move, runs the 64x64 WMMA / SIMT kernel of implicit_gemm.cu.
// The workspace also holds that kernel's forward and backward_weight split reduction (split-K:
// partial sums of each slice, summed in a fixed order, the forward's bias after).
// implicit_gemm_workspace says how much the call takes on the current device: the tensor-op
// path's operands when it applies, else the split it would choose. Any smaller workspace works
// too (the WMMA kernel, with fewer slices; none: one block per tile).
// Whether operand a / b of a call lies in channels-last order - (N, spatial..., C) for data,
// (K, spatial..., C) for a filter - instead of channel-first, and whether the result is to be
// written so: (N, spatial..., C) of a forward's y or a backward data's dx. implicit_gemm takes
// such operands on its tensor-op path only (float16 / bfloat16; a filter only without
// mode="conv"'s flip) and writes such results there (any dtype it takes; not the weight
// gradient): tensor_op_takes_order says when, and implicit_gemm_conv throws InvalidArgument
// for a call it cannot run so. depthwise_conv has channels-last kernels of its own
// (depthwise_takes_order).
struct OperandOrder {
  bool a_channels_last = false, b_channels_last = false, out_channels_last = false;
  bool any() const { return a_channels_last || b_channels_last || out_channels_last; }
};
void implicit_gemm_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a,
                        const void* b, const void* bias, void* out, GemmMath math, Workspace ws,
                        cudaStream_t stream, OperandOrder order = {});
size_t implicit_gemm_workspace(ConvPass pass, DType dtype, const ConvParams& p, GemmMath math);
// Whether implicit_gemm_conv with this math runs the tensor-op (CUTLASS) path for the layer.
bool implicit_gemm_tensor_op(ConvPass pass, DType dtype, const ConvParams& p, GemmMath math);
// Whether that path takes operands in this order (given a workspace of
// implicit_gemm_workspace bytes).
bool implicit_gemm_takes_order(ConvPass pass, DType dtype, const ConvParams& p, GemmMath math,
                               OperandOrder order);

// Direct depthwise convolution (groups == C, any channel multiplier K / C), same operands. The
// workspace holds the weight gradient's split reduction (summed in a fixed order):
// depthwise_workspace says how much the split it would choose on the current device takes; any
// smaller workspace works, with fewer slices (none: one block per output channel).
// order: channels-last activations (1-D / 2-D layers, tensors below 2^31 elements) run the
// channels-last kernels (cuda/depthwise_channels_last.cuh): the forward and backward data take
// a channels-last a and write a channels-last result, the weight gradient takes both
// activations channels-last; the filter is channel-first (K, 1, *kernel) always.
// depthwise_takes_order says which orders run; others throw InvalidArgument.
void depthwise_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a, const void* b,
                    const void* bias, void* out, Workspace ws, cudaStream_t stream,
                    OperandOrder order = {});
bool depthwise_takes_order(ConvPass pass, DType dtype, const ConvParams& p, OperandOrder order);
size_t depthwise_workspace(ConvPass pass, DType dtype, const ConvParams& p);
// Whether depthwise_conv runs this pass with its shared-memory tiles (1-D / 2-D layers whose
// tile fits) rather than one thread per output element (cuda/depthwise_tiled.cuh).
bool depthwise_tiled(ConvPass pass, DType dtype, const ConvParams& p);

// Bias gradient: out[k] = sum over n and spatial of grad_y (N, K, spatial), one block per k.
void conv_bias_grad(DType dtype, int64_t n, int64_t k, int64_t spatial, const void* grad_y,
                    void* out, cudaStream_t stream);

// ---- pooling (PoolGeometry from make_pool_geometry; planes = N * C)
struct PoolArgs {
  PoolKind kind;  // kMax, kAvg or kLp (max_unpool has its own entry below)
  bool count_include_pad;  // avg
  double p;                // lp
};

void pool_forward(DType dtype, const PoolGeometry& g, const PoolArgs& args, const void* x, void* y,
                  int64_t* indices, cudaStream_t stream);
// max: grad_x from grad_y and x; avg: x unused; lp: needs x. Max and Lp need a workspace of
// pool_backward_workspace bytes (each window's argmax / norm); InvalidArgument when it is short.
void pool_backward(DType dtype, const PoolGeometry& g, const PoolArgs& args, const void* grad_y,
                   const void* x, void* grad_x, Workspace ws, cudaStream_t stream);
size_t pool_backward_workspace(DType dtype, const PoolGeometry& g, const PoolArgs& args);

// Max pooling from the indices its forward wrote (y-shaped offsets into each plane of x), as
// fastconv.jax runs it: backward sums grad_y into the positions they name (a gather over the
// windows covering each input element: fixed order, no atomics, no workspace); gather reads an
// x-shaped src at them into a y-shaped out (the second-order pass, the backward's adjoint). An
// index outside the plane contributes nothing (gather writes 0).
void max_pool_backward_indices(DType dtype, const PoolGeometry& g, const void* grad_y,
                               const int64_t* indices, void* grad_x, cudaStream_t stream);
void max_pool_gather(DType dtype, const PoolGeometry& g, const void* src, const int64_t* indices,
                     void* out, cudaStream_t stream);

// Scatters x to indices per plane; the last duplicate wins (as on the CPU). Needs a workspace of
// max_unpool_workspace bytes. An index outside [0, out_count) is skipped (its output stays zero
// unless another index names it) and the first such index of a call is recorded, without any
// synchronisation, in the device's report in mapped host memory: take_unpool_error reads it
// once the call has run (the next max_unpool call on that device checks it, and
// fastconv.check_gpu_errors() after a synchronisation).
void max_unpool(DType dtype, int64_t planes, int64_t in_count, int64_t out_count, const void* x,
                const int64_t* indices, void* y, Workspace ws, cudaStream_t stream);
size_t max_unpool_workspace(int64_t planes, int64_t out_count);
struct UnpoolError {
  int64_t index;      // the bad index
  int64_t out_count;  // the output plane size it had to lie below
};
// Device `device`'s report, taken (cleared) if a finished call left one. Allocates nothing and
// touches no device (a device where max_unpool never ran has no report).
bool take_unpool_error(int device, UnpoolError* error);
// The devices where max_unpool has run (that have a report).
std::vector<int> unpool_report_devices();

}  // namespace fastconv::cuda
