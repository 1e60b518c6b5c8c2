// The tensor-op path's Hopper core (compute capability 9.0): CUTLASS 3's implicit-GEMM
// convolution kernels for sm_90a (cuda/tensor_op_sm90_kernels.cuh, and the dispatch to them,
// cuda/tensor_op_sm90.cuh, instantiated per dtype in tensor_op_sm90_f16.cu /
// tensor_op_sm90_bf16.cu). Built only where the CUDA architectures include sm_90 (cmake/cuda.cmake
// compiles those files for the sm_90a target alone, which wgmma needs:
// FASTCONV_WITH_CUTLASS_SM90); tensor_op_cutlass.cu routes a problem here on a 9.0 device when
// this core can run it (hopper_takes), else to the sm_80 kernels.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "conv_kernels.h"
#include "tensor_op_conv.h"

namespace fastconv::cuda::sm90 {

// The problem in CUTLASS 3's terms: padding below and above per spatial dimension (H, W). The
// core derives the output extent from them, so the upper padding is chosen to give exactly
// c.p x c.q: the smallest non-negative value that does (a stride leaves up to stride - 1
// unread rows at the end, which padding may cover as well), or -1 when none does (a
// transposed convolution's negative high padding: the sm_80 kernels take those).
struct Padding {
  int lower_h, lower_w, upper_h, upper_w;
  bool valid() const { return upper_h >= 0 && upper_w >= 0 && lower_h >= 0 && lower_w >= 0; }
};
inline int upper_padding(int in, int window, int pad, int stride, int dil, int out) {
  // rows the output reaches: the last window ends at (out - 1) * stride + span - pad
  const int span = (window - 1) * dil + 1;
  const int least = (out - 1) * stride + span - in - pad;  // may be negative
  if (least >= 0) return least;
  // any value in [least, least + stride - 1] gives the same output extent
  return least + stride - 1 >= 0 ? 0 : -1;
}
inline Padding padding_of(const NhwcConv& c) {
  return {c.pad_h, c.pad_w, upper_padding(c.h, c.r, c.pad_h, c.stride_h, c.dil_h, c.p),
          upper_padding(c.w, c.s, c.pad_w, c.stride_w, c.dil_w, c.q)};
}

// The copy engine's im2col mode walks the activations with the convolution's stride as its
// traversal stride, which cuTensorMapEncodeIm2col takes only up to 8 (CUTLASS's can_implement
// does not check it, and under NDEBUG does not check the encoding's result either).
constexpr int kMaxIm2colStride = 8;

// The problems the compiled kernels cover (before CUTLASS's own can_implement): float16 /
// bfloat16, unsplit (the kernels have no split-K: split layers stay on the sm_80 kernels),
// the sm_80 core's tile width (128, or 64 for narrow forwards and backward datas: the split
// decision assumed it), unit-stride backward data (CUTLASS's sm_90 backward data has no
// stride decomposition), strides up to kMaxIm2colStride, padding as above.
inline bool covers(ConvPass pass, DType dtype, const NhwcConv& c) {
  if (dtype != DType::kFloat16 && dtype != DType::kBFloat16) return false;
  if (c.splits != 1 || (c.tile_n != 128 && c.tile_n != 64)) return false;
  if (pass == ConvPass::kBackwardData && (c.stride_h != 1 || c.stride_w != 1)) return false;
  if (c.stride_h > kMaxIm2colStride || c.stride_w > kMaxIm2colStride) return false;
  return padding_of(c).valid();
}

// One dtype's kernels (the dispatch defined in tensor_op_sm90.cuh; explicit instantiations for
// kFloat16 and kBFloat16 in tensor_op_sm90_f16.cu / tensor_op_sm90_bf16.cu). The output is float32 when c.float_out(pass), else the dtype, as the sm_80
// core's (tensor_op_conv.h). run returns nullptr when the kernel ran, or why CUTLASS could not
// set it up (nothing launched: the caller runs the sm_80 kernels instead); a failed launch
// throws.
template <DType D>
struct Core {
  static bool can_run(ConvPass pass, const NhwcConv& c);
  static size_t workspace(ConvPass pass, const NhwcConv& c);
  static const char* run(ConvPass pass, const NhwcConv& c, const void* a, const void* b,
                         void* out, Workspace ws, cudaStream_t stream);
};

}  // namespace fastconv::cuda::sm90
