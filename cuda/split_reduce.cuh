// What the deterministic split reductions share (implicit_gemm.cu's weight gradient,
// depthwise.cu's tiled weight gradient): the device's multiprocessor count, which sizes the
// split, and the kernel that sums the slices in a fixed order.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "cuda_check.h"
#include "dtype.cuh"

namespace fastconv::cuda {

// Multiprocessors of the current device (asked once per device; the host emulation's count,
// which tests change, every time).
inline int multiprocessors() {
#ifdef FASTCONV_HOST_EMULATION
  return emulation::g_multiprocessors;
#endif
  static std::mutex mu;
  static std::vector<int> cache;
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(cache.size()) <= dev) cache.resize(dev + 1, 0);
  if (cache[dev] == 0) {
    check_cuda(cudaDeviceGetAttribute(&cache[dev], cudaDevAttrMultiProcessorCount, dev),
               "cudaDeviceGetAttribute");
  }
  return cache[dev];
}

namespace {  // each .cu file that launches it compiles its own copy

// out[i] = sum over sp < splits of partial[sp * total + i], in that order (deterministic), plus
// bias[(i / plane) % channels] when bias is given (a forward's output channel, added after
// the sum as the unsplit kernel adds it).
template <typename T>
__global__ void split_reduce_kernel(const acc_t<T>* __restrict__ partial, T* __restrict__ out,
                                    int64_t total, int splits, const T* __restrict__ bias,
                                    int64_t plane, int64_t channels) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    acc_t<T> s = 0;
    for (int sp = 0; sp < splits; ++sp) s += partial[sp * total + i];
    if (bias) s += to_acc(bias[(i / plane) % channels]);
    out[i] = from_acc<T>(s);
  }
}

}  // namespace
}  // namespace fastconv::cuda
