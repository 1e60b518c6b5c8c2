// Picks the row kernels once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/rows/rows_ukernels.h"

namespace fastconv {

template <>
const RowsKernels<float>& rows_kernels<float>() {
  static const RowsKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(rows_f32_kernels);
  return kernels;
}

template <>
const RowsKernels<double>& rows_kernels<double>() {
  static const RowsKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(rows_f64_kernels);
  return kernels;
}

}  // namespace fastconv
