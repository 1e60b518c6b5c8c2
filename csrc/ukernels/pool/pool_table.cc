// Picks the pooling kernels once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/pool/pool_ukernels.h"

namespace fastconv {

template <>
const PoolKernels<float>& pool_kernels<float>() {
  static const PoolKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(pool_f32_kernels);
  return kernels;
}

template <>
const PoolKernels<double>& pool_kernels<double>() {
  static const PoolKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(pool_f64_kernels);
  return kernels;
}

}  // namespace fastconv
