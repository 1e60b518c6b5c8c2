// Picks the slice-combination kernels once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/combine/combine_ukernels.h"

namespace fastconv {

template <>
const CombineKernels<float>& combine_kernels<float>() {
  static const CombineKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(combine_f32_kernels);
  return kernels;
}

template <>
const CombineKernels<double>& combine_kernels<double>() {
  static const CombineKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(combine_f64_kernels);
  return kernels;
}

}  // namespace fastconv
