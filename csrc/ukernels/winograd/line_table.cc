// Picks the F(3,7) line transforms once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/winograd/line_ukernels.h"

namespace fastconv {

template <>
const LineKernels<float>& line_kernels<float>() {
  static const LineKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(line_f32_kernels);
  return kernels;
}

template <>
const LineKernels<double>& line_kernels<double>() {
  static const LineKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(line_f64_kernels);
  return kernels;
}

}  // namespace fastconv
