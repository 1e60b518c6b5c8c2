// Element types of the GPU kernels: loads convert to the accumulator type, stores round back.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace fastconv::cuda {

// Accumulator type: float for float32/float16/bfloat16, double for float64.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };
template <typename T> using acc_t = typename Acc<T>::type;

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_acc(acc_t<T> v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T> __device__ __forceinline__ T zero_of() { return from_acc<T>(acc_t<T>(0)); }

// v rounded to TF32 (10 explicit mantissa bits), to nearest with ties away from zero as
// cvt.rna.tf32.f32 does (the tensor cores themselves would drop the low 13 bits, biasing
// toward zero); infinities and NaNs unchanged. Still a float32 bit pattern.
__host__ __device__ __forceinline__ float round_to_tf32(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&v, &u, sizeof(v));
  return v;
}

}  // namespace fastconv::cuda
