// One way to launch a kernel, so the launchers run unchanged on the GPU and, for tests, in the
// host emulation (cuda/emulation/): there a grid runs block by block, one std::thread per CUDA
// thread, which checks the index math and launch logic on machines without a GPU.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "cuda_check.h"

namespace fastconv::cuda {

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
