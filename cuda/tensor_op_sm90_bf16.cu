// The Hopper core's bfloat16 kernels (tensor_op_sm90_kernels.cuh) and their dispatch
// (tensor_op_sm90.cuh): forward and unit-stride backward data, 128 or 64 wide, with a bfloat16
// or float32 result, and the float32 weight gradient. One translation unit per dtype: nvcc
// builds the two side by side. (Split further, per operator, the units' shared CUTLASS
// front end costs more CPU time than the parallel build saves: a bfloat16 forward alone took
// 51 s, backward data 55 s, weight gradient 24 s, against 74 s for the nine together.)
// Compiled for sm_90a only.
#include "tensor_op_sm90_kernels.cuh"

namespace fastconv::cuda::sm90 {
namespace detail {
template struct Entry<cutlass::bfloat16_t, cutlass::bfloat16_t, Operator::kFprop, 128>;
template struct Entry<cutlass::bfloat16_t, float, Operator::kFprop, 128>;
template struct Entry<cutlass::bfloat16_t, cutlass::bfloat16_t, Operator::kFprop, 64>;
template struct Entry<cutlass::bfloat16_t, float, Operator::kFprop, 64>;
template struct Entry<cutlass::bfloat16_t, cutlass::bfloat16_t, Operator::kDgrad, 128>;
template struct Entry<cutlass::bfloat16_t, float, Operator::kDgrad, 128>;
template struct Entry<cutlass::bfloat16_t, cutlass::bfloat16_t, Operator::kDgrad, 64>;
template struct Entry<cutlass::bfloat16_t, float, Operator::kDgrad, 64>;
template struct Entry<cutlass::bfloat16_t, float, Operator::kWgrad>;
}  // namespace detail
template struct Core<DType::kBFloat16>;
}  // namespace fastconv::cuda::sm90
