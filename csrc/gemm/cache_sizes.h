// Data cache sizes of this machine (sysfs, else CPUID; defaults when both fail), read once: what
// the GEMM's cache blocking and its small-N paths size their blocks from.
#pragma once
#include <cstdint>

namespace fastconv::gemm {

struct CacheSizes {  // bytes; L3 is this core's share
  int64_t l1d = 32 << 10, l2 = 512 << 10, l3_per_core = 2 << 20;  // when detection fails
};

const CacheSizes& cache_sizes();

}  // namespace fastconv::gemm
