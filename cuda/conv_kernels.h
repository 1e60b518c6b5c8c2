// Host-side interface of the GPU convolution and pooling kernels (launchers in cuda/*.cu).
// Every launcher takes the caller's stream, checks its launches and throws CudaError on failure.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "fastconv/geometry.h"
#include "fastconv/types.h"

namespace fastconv::cuda {

// DType, ConvPass and PoolKind are fastconv's own (csrc/include/fastconv/types.h), shared with
// the CPU module: one spelling of each enum, parsed in one place (csrc/common/types.cc).

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
void implicit_gemm_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a,
                        const void* b, const void* bias, void* out, GemmMath math,
                        cudaStream_t stream);

// Direct depthwise convolution (groups == C, any channel multiplier K / C), same operands.
void depthwise_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a, const void* b,
                    const void* bias, void* out, cudaStream_t stream);

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
// max: grad_x from grad_y and x; avg: x unused; lp: needs x.
void pool_backward(DType dtype, const PoolGeometry& g, const PoolArgs& args, const void* grad_y,
                   const void* x, void* grad_x, cudaStream_t stream);
// Scatters x to indices per plane; the last duplicate wins (as on the CPU). Returns false (and
// writes nothing meaningful) when an index lies outside [0, out_count); first_bad gets it.
bool max_unpool(DType dtype, int64_t planes, int64_t in_count, int64_t out_count, const void* x,
                const int64_t* indices, void* y, int64_t* first_bad, cudaStream_t stream);

}  // namespace fastconv::cuda
