// The Hopper core's float16 kernels (tensor_op_sm90.cuh): forward and unit-stride backward
// data, 128 or 64 wide, with a float16 or float32 result, and the float32 weight gradient.
// Compiled for sm_90a only.
#include "tensor_op_sm90.cuh"

namespace fastconv::cuda::sm90 {
template struct Core<DType::kFloat16>;
}  // namespace fastconv::cuda::sm90
