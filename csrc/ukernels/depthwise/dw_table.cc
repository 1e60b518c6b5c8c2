// Picks the depthwise plane kernels once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/depthwise/dw_ukernels.h"

namespace fastconv {

template <>
const DwKernels<float>& dw_kernels<float>() {
  static const DwKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(dw_f32_kernels);
  return kernels;
}

template <>
const DwKernels<double>& dw_kernels<double>() {
  static const DwKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(dw_f64_kernels);
  return kernels;
}

}  // namespace fastconv
