// The GEMM micro-kernel table: one kernel per dtype, chosen once from fastconv::active_isa().
#pragma once
#include <cstdint>

#include "ukernels/gemm/gemm_ukernels.h"

namespace fastconv::gemm {

template <typename T>
struct GemmKernel {
  GemmUkernelFn<T> fn;
  GemmUkernelRowAFn<T> fn_row_a;  // the same tile reading a row-major A in place, all mr rows
  GemmUkernelRowsAFn<T> fn_rows_a;  // A read in place, any 1..rows_a rows (own tile per count)
  GemmUkernelIndirectBFn<T> fn_indirect_b;  // B's rows read in place (full NR-wide panels)
  GemmPackFn<T> pack_a;  // packs one A panel (mr lines = rows of A) in the layout fn reads
  GemmPackFn<T> pack_b;  // packs one B panel (nr lines = columns of B) in the layout fn reads
  int64_t mr, nr;        // tile: rows of A per packed panel, columns of B per packed panel
  int64_t row_step;      // edge tiles compute rows in steps of this many (mr: whole tiles)
  int64_t rows_a;        // the most rows fn_rows_a takes (its B panels are nr wide)
  const char* name;      // e.g. "f32_gemm_12x32_avx512"
};

// The kernel for the active ISA level (FASTCONV_ISA may cap it), chosen on first use.
template <typename T>
const GemmKernel<T>& gemm_kernel();

}  // namespace fastconv::gemm
