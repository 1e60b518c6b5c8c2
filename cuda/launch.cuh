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
