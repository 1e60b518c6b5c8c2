// Device enumeration for fastconv._cuda.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace fastconv::cuda {

struct DeviceInfo {
  int index;
  std::string name;
  int major, minor;
  size_t total_memory;
  int multiprocessors;
};

// Visible devices; on failure (no driver, no GPU) returns none and the CUDA error text.
std::vector<DeviceInfo> query_devices(std::string* error);
int runtime_version();

}  // namespace fastconv::cuda
