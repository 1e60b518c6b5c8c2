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

namespace {

// Whether rows of n outputs take at least an eighth fewer 256-bit operations as vectors of half
// the lanes (rows of up to 4 full vectors whose last is at most half full): with fewer saved, the
// 512-bit kernels' larger register blocks won (rows_ukernels.h).
inline bool half_vectors_pay(int64_t n, int64_t lanes) {
  const int64_t full = (n + lanes - 1) / lanes, half = (n + lanes / 2 - 1) / (lanes / 2);
  return n > 0 && 8 * (2 * full - half) >= 2 * full;
}

template <typename T>
const RowsKernels<T>& for_row(int64_t n, const RowsKernels<T>& active, const RowsKernels<T>& avx2) {
  if (active_isa() != IsaLevel::kAvx512 || !avx512_on_256bit_units()) return active;
  return half_vectors_pay(n, active.lanes) ? avx2 : active;
}

}  // namespace

template <>
const RowsKernels<float>& rows_kernels_for_row<float>(int64_t n) {
  return FASTCONV_BY_ISA(rows_kernels<float>(), rows_kernels<float>(),
                         for_row<float>(n, rows_kernels<float>(), avx2::rows_f32_kernels));
}

template <>
const RowsKernels<double>& rows_kernels_for_row<double>(int64_t n) {
  return FASTCONV_BY_ISA(rows_kernels<double>(), rows_kernels<double>(),
                         for_row<double>(n, rows_kernels<double>(), avx2::rows_f64_kernels));
}

}  // namespace fastconv
