// One way to launch a kernel and index its grid, so the launchers run unchanged on the GPU and,
// for tests, in the host emulation (cuda/emulation/): there a grid runs block by block, one
// std::thread per CUDA thread, which checks the index math and launch logic on machines without
// a GPU.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "cuda_check.h"

namespace fastconv::cuda {

// 0 <= v < extent in one unsigned comparison (v may be negative: padding).
__device__ __forceinline__ bool inside(int64_t v, int64_t extent) {
  return static_cast<uint64_t>(v) < static_cast<uint64_t>(extent);
}

// Division by a run-time constant d < 2^31 of dividends n < 2^31 without a divide instruction
// (a 64-bit division costs ~70 integer instructions on the GPU): q = (mulhi(n, m) + n) >> s with
// s = ceil(log2 d) and m = floor(2^32 (2^s - d) / d) + 1 (Granlund and Montgomery, 1994), exact
// for every 32-bit n; the add runs in 64 bits so it cannot wrap.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor ? divisor : 1) {
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __host__ __device__ __forceinline__ uint32_t div(uint32_t n) const {
    const uint32_t t = static_cast<uint32_t>((uint64_t(n) * m) >> 32);
    return static_cast<uint32_t>((uint64_t(t) + n) >> s);
  }
  __host__ __device__ __forceinline__ uint32_t mod(uint32_t n) const { return n - div(n) * d; }
};

// Grid-stride loop index helpers (int64: tensors may pass 2^31 elements).
__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_step() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// kernel<<<grid, block, 0, stream>>>(args...), then the launch check.
template <typename... Params, typename... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block,
            cudaStream_t stream, Args&&... args) {
#ifdef FASTCONV_HOST_EMULATION
  (void)stream;
  emulation::run_grid(grid, block, [&] { kernel(std::forward<Args>(args)...); });
#else
  kernel<<<grid, block, 0, stream>>>(std::forward<Args>(args)...);
#endif
  check_launch(name);
}

}  // namespace fastconv::cuda
