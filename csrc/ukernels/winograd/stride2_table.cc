// Picks the stride-2 Winograd transforms once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/winograd/stride2_ukernels.h"

namespace fastconv {

template <>
const Stride2Kernels<float>& stride2_kernels<float>() {
  static const Stride2Kernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(stride2_f32_kernels);
  return kernels;
}

template <>
const Stride2Kernels<double>& stride2_kernels<double>() {
  static const Stride2Kernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(stride2_f64_kernels);
  return kernels;
}

}  // namespace fastconv
