// GPU presence and properties for fastconv._cuda (the kernels arrive with the CUDA issue).
#include <cuda_runtime.h>

#include <string>

#include "device_query.h"

namespace fastconv::cuda {

std::vector<DeviceInfo> query_devices(std::string* error) {
  std::vector<DeviceInfo> out;
  int count = 0;
  const cudaError_t st = cudaGetDeviceCount(&count);
  if (st != cudaSuccess) {
    if (error) *error = cudaGetErrorString(st);
    cudaGetLastError();  // clear it so later calls do not see a sticky error
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, p.major, p.minor, p.totalGlobalMem, p.multiProcessorCount});
  }
  return out;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

}  // namespace fastconv::cuda
