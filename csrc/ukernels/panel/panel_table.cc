// Picks the panel-row kernels once, from the ISA level the process runs at.
#include "isa/isa_dispatch.h"
#include "ukernels/panel/panel_ukernels.h"

namespace fastconv {

template <>
const PanelKernels<float>& panel_kernels<float>() {
  static const PanelKernels<float>& kernels = FASTCONV_KERNEL_BY_ISA(panel_f32_kernels);
  return kernels;
}

template <>
const PanelKernels<double>& panel_kernels<double>() {
  static const PanelKernels<double>& kernels = FASTCONV_KERNEL_BY_ISA(panel_f64_kernels);
  return kernels;
}

}  // namespace fastconv
