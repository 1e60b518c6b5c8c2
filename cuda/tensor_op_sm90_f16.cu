// The Hopper core's float16 kernels (tensor_op_sm90_kernels.cuh) and their dispatch
// (tensor_op_sm90.cuh): forward and unit-stride backward data, 128 or 64 wide, with a float16
// or float32 result, and the float32 weight gradient. One translation unit per dtype: nvcc
// builds the two side by side. (Split further, per operator, the units' shared CUTLASS
// front end costs more CPU time than the parallel build saves: a float16 forward alone took
// 51 s, backward data 55 s, weight gradient 24 s, against 74 s for the nine together.)
// Compiled for sm_90a only.
#include "tensor_op_sm90_kernels.cuh"

FASTCONV_SM90_INSTANTIATE(kFloat16)
