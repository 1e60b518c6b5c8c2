// Picks the transpose kernels once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/transpose/transpose_ukernels.h"

namespace fastconv {

template <>
const TransposeKernels<float>& transpose_kernels<float>() {
  static const TransposeKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(transpose_f32_kernels);
  return kernels;
}

template <>
const TransposeKernels<double>& transpose_kernels<double>() {
  static const TransposeKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(transpose_f64_kernels);
  return kernels;
}

}  // namespace fastconv
