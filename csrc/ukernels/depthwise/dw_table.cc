// Picks the depthwise plane kernels once, from the ISA level the process runs at.
#include "fastconv/cpu_features.h"
#include "ukernels/depthwise/dw_ukernels.h"

namespace fastconv {
namespace {

template <typename T>
const DwKernels<T>& pick(const DwKernels<T>& s, const DwKernels<T>& a2, const DwKernels<T>& a5) {
#if defined(FASTCONV_X86)
  if (active_isa() == IsaLevel::kAvx512) return a5;
  if (active_isa() == IsaLevel::kAvx2) return a2;
#endif
  (void)a2;
  (void)a5;
  return s;
}

}  // namespace

template <>
const DwKernels<float>& dw_kernels<float>() {
#if defined(FASTCONV_X86)
  static const DwKernels<float>& k =
      pick(scalar::dw_f32_kernels, avx2::dw_f32_kernels, avx512::dw_f32_kernels);
#else
  static const DwKernels<float>& k = scalar::dw_f32_kernels;
#endif
  return k;
}

template <>
const DwKernels<double>& dw_kernels<double>() {
#if defined(FASTCONV_X86)
  static const DwKernels<double>& k =
      pick(scalar::dw_f64_kernels, avx2::dw_f64_kernels, avx512::dw_f64_kernels);
#else
  static const DwKernels<double>& k = scalar::dw_f64_kernels;
#endif
  return k;
}

}  // namespace fastconv
