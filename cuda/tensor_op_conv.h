// The tensor-core convolution path for float16 / bfloat16 and TF32 (cuda/tensor_op_conv.cu): the
// layer moved once into channels-last order (NHWC activations, KRSC filters) in the call's
// workspace, one NHWC implicit-GEMM core per pass (CUTLASS's sm_80 tensor-op kernels on the GPU:
// cuda/tensor_op_cutlass.cu; a plain reference core in the host emulation), and the result
// moved back to fastconv's NCHW order with the bias added (or left channels-last where the
// caller wants it so). Why CUTLASS: cuda/README.md.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "conv_kernels.h"

namespace fastconv::cuda {

// One 2-D convolution in the core's terms (a 1-D layer has h = r = p = 1). Cross-correlation:
// input row h = p * stride_h - pad_h + r * dil_h (fastconv's flip is done when the filter is
// moved, so the core never flips). Output extents are explicit: transposed convolutions arrive
// with asymmetric (even negative) high padding.
struct NhwcConv {
  int n, h, w, c;   // activations (N, H, W, C)
  int k, r, s;      // filter (K, R, S, C)
  int p, q;         // output (N, P, Q, K)
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  // Slices of the reduction (split-K: each adds its partial sums into the float32 output in a
  // fixed order; 1 = none). Chosen by tensor_op_conv.cu (core_splits) for the current device.
  int splits = 1;
  // The block tile's width (N of the pass's GEMM: output channels of a forward, input channels
  // of a backward data): 128, or 64 for narrow layers (core_tile_n).
  int tile_n = 128;
  // The call has a bias (forward; backward data of a transposed conv): added after the core
  // in float32, so that the result is rounded once.
  bool bias = false;
  // The Hopper core runs it (decided once per call by tensor_op_problem, after the split:
  // nhwc_core_picks_hopper; its workspace, kernel name and run follow it), else the sm_80
  // kernels.
  bool hopper = false;
  // Whether the core writes float32 (the weight gradient always; the other passes when split
  // or given a bias) rather than the dtype.
  bool float_out(ConvPass pass) const {
    return pass == ConvPass::kBackwardWeight || splits > 1 || bias;
  }
};

// The core's block tile (M x N outputs of the pass's GEMM) and reduction step (32 for the
// 2-byte dtypes, 16 for TF32), which size the split: the GPU core's and the emulation's alike.
constexpr int kCoreTileM = 128;
inline int core_tile_k(DType dtype) { return dtype == DType::kFloat32 ? 16 : 32; }
// N of the block tile: 64 for a float16 / bfloat16 forward with at most 64 output channels or
// backward data with at most 64 input channels (ResNet-50's res2 layers: a 128-wide tile would
// leave half its tensor-core work on padding), else 128.
inline int core_tile_n(ConvPass pass, DType dtype, const NhwcConv& c) {
  if (dtype == DType::kFloat32) return 128;
  if (pass == ConvPass::kForward && c.k <= 64) return 64;
  if (pass == ConvPass::kBackwardData && c.c <= 64) return 64;
  return 128;
}

// Whether a pass of this layer can take the tensor-core path: float16 / bfloat16, or float32
// as TF32 (only asked when the call allows TF32), one group, rank 1 or 2, channel counts
// multiples of 16 bytes (8 half-precision or 4 float32 channels), windows up to 32 wide,
// every tensor below 2 GiB. Others run the WMMA / SIMT implicit-GEMM kernel.
bool tensor_op_eligible(ConvPass pass, DType dtype, const ConvParams& p);
// The workspace the path needs (0 when not eligible): the moved operands and result plus the
// core's own (its split-K semaphores).
size_t tensor_op_workspace(ConvPass pass, DType dtype, const ConvParams& p);
// Runs the pass (operands as implicit_gemm_conv's) and returns true, or returns false without
// launching anything when the layer is not eligible, the workspace is short or the core cannot
// implement the problem; the caller then runs its own kernel.
// order: operands already in channels-last order are read in place instead of moved, and a
// result wanted channels-last (forward, backward data) is written so: by the core itself when
// it writes the dtype (unsplit, no bias), else rounded from its float32 with the bias added.
bool tensor_op_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a,
                    const void* b, const void* bias, void* out, Workspace ws,
                    cudaStream_t stream, OperandOrder order = {});
// The core's problem for a layer (an eligible one: one group, rank 1 or 2) with its tile, its
// split and its core on the current device (bias: the call has one, which makes the core
// write float32; tensor_op_workspace sizes for both, the kernel name is asked without).
NhwcConv tensor_op_problem(ConvPass pass, DType dtype, const ConvParams& p, bool bias = false);
// The core kernels an eligible layer runs on the current device (nhwc_core_kernel), "" for
// a layer the path does not take.
const char* tensor_op_kernel(ConvPass pass, DType dtype, const ConvParams& p);
// Whether an eligible layer can take its operands in this order: float16 / bfloat16 (a
// float32 operand is rounded to TF32 by its move), and a channels-last filter only without
// mode="conv"'s flip (which the filter's move does).
bool tensor_op_takes_order(ConvPass pass, DType dtype, const ConvParams& p, OperandOrder order);

// ---- the NHWC core (one definition per build: GPU or emulation)
// Operands per pass (dtype T = float16 / bfloat16 / float32 elements - float32 ones already
// rounded to TF32 by the move - accumulation in float32):
//   forward:         a = x (N,H,W,C),   b = w (K,R,S,C),   out = y  (N,P,Q,K)
//   backward_data:   a = dy (N,P,Q,K),  b = w (K,R,S,C),   out = dx (N,H,W,C)
//   backward_weight: a = dy (N,P,Q,K),  b = x (N,H,W,C),   out = dw (K,R,S,C)
// out is float32 when c.float_out(pass) (so that split slices add exact partial sums; the move
// back to NCHW rounds once), else T.
// What the core is ("" when this build has none: then no layer takes the path).
const char* nhwc_core_name();
// Whether the Hopper core takes this problem on the current device (the GPU build on a
// compute capability 9.0 device, where its kernels apply; false elsewhere).
bool nhwc_core_picks_hopper(ConvPass pass, DType dtype, const NhwcConv& c);
// The kernels that run this problem (c.hopper: the Hopper ones; else the sm_80 kernels).
const char* nhwc_core_kernel(ConvPass pass, DType dtype, const NhwcConv& c);
bool nhwc_core_can_run(ConvPass pass, DType dtype, const NhwcConv& c);
size_t nhwc_core_workspace(ConvPass pass, DType dtype, const NhwcConv& c);
void nhwc_core_run(ConvPass pass, DType dtype, const NhwcConv& c, const void* a, const void* b,
                   void* out, Workspace ws, cudaStream_t stream);

}  // namespace fastconv::cuda
