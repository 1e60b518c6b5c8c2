// Picks the GEMM micro-kernels once, from the ISA level the process runs at.
#include "gemm/kernel_table.h"

#include "isa/isa_dispatch.h"

namespace fastconv::gemm {
namespace {

// One entry per (dtype, ISA): the micro-kernel, its two packers, its tile and its name.
#define FASTCONV_GEMM_ENTRY(T, isa, kernel, mr, nr, step, rows)                           \
  GemmKernel<T>{isa::kernel,           isa::kernel##_row_a,  isa::kernel##_rows_a,           \
                isa::kernel##_indirect_b, isa::kernel##_pack_a, isa::kernel##_pack_b, mr, nr,  \
                step, rows, #kernel "_" #isa}

// Tiles chosen by measurement on Zen 5: from L1, every 512-bit tile from 8x32 to 14x32 (and 8x48,
// 6x64) runs at 97-100% of the FMA peak; 12x32 needs few loads per FMA and its 4- and 8-row
// sub-tiles fit channel counts that are multiples of 4. The any-rows tiles go to 14 rows at
// AVX-512 (28 accumulators: a 14-wide output row in one call) and keep the tile's rows elsewhere.
template <typename T>
GemmKernel<T> select();

template <>
GemmKernel<float> select<float>() {
  return FASTCONV_BY_ISA(FASTCONV_GEMM_ENTRY(float, scalar, f32_gemm_4x8, 4, 8, 4, 4),
                         FASTCONV_GEMM_ENTRY(float, avx2, f32_gemm_6x16, 6, 16, 6, 6),
                         FASTCONV_GEMM_ENTRY(float, avx512, f32_gemm_12x32, 12, 32, 4, 14));
}

template <>
GemmKernel<double> select<double>() {
  return FASTCONV_BY_ISA(FASTCONV_GEMM_ENTRY(double, scalar, f64_gemm_4x4, 4, 4, 4, 4),
                         FASTCONV_GEMM_ENTRY(double, avx2, f64_gemm_6x8, 6, 8, 6, 6),
                         FASTCONV_GEMM_ENTRY(double, avx512, f64_gemm_12x16, 12, 16, 4, 14));
}

#undef FASTCONV_GEMM_ENTRY

}  // namespace

template <typename T>
const GemmKernel<T>& gemm_kernel() {
  static const GemmKernel<T> kernel = select<T>();
  return kernel;
}

template const GemmKernel<float>& gemm_kernel<float>();
template const GemmKernel<double>& gemm_kernel<double>();

}  // namespace fastconv::gemm
