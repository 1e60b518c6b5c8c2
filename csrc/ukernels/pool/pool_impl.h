// The pooling kernel tables of one ISA level: included once by pool_<isa>.cc, which names the
// level's namespace (FASTCONV_POOL_NS) and table name (FASTCONV_POOL_NAME) and is compiled with
// that level's flags (cmake/sources.cmake).
#pragma once
#include "ukernels/pool/pool_rows_impl.h"
#include "ukernels/pool/pool_window_impl.h"

namespace fastconv::FASTCONV_POOL_NS {

template <typename T>
constexpr PoolKernels<T> pool_table(const char* name) {
  return {split_row<T>,  merge_row<T>,   max_row<T>,     argmax_row<T>,  sum_row<T>,
          scatter_row<T>, unpool2x2_row_of<T>(), scale_row<T>, lp_root_row<T>, lp_grad_row<T>, max_plane<T>,
          sum_plane<T>,  stream_copy<T>, name};
}

extern const PoolKernels<float> pool_f32_kernels;
extern const PoolKernels<double> pool_f64_kernels;
const PoolKernels<float> pool_f32_kernels = pool_table<float>(FASTCONV_POOL_NAME("f32"));
const PoolKernels<double> pool_f64_kernels = pool_table<double>(FASTCONV_POOL_NAME("f64"));

}  // namespace fastconv::FASTCONV_POOL_NS
