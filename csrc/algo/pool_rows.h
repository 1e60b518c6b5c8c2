// The row-kernel half of direct pooling (csrc/algo/pool.cc holds the rest): the per-call layout
// of the row buffers the kernels of csrc/ukernels/pool/ read (pool_ukernels.h), and the
// drivers that run windowed forward and backward passes on them, one task per range of planes
// (forward: of plane row bands when there are few planes).
#pragma once
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"
#include "ukernels/pool/pool_ukernels.h"

namespace fastconv::algo {

// Everything about a row buffer and the W taps that depends on the geometry only, built once
// per call.
struct PoolRowPlan {
  PoolRowLayout layout{};
  std::vector<int64_t> tap_offset, tap_phase, tap_shift;  // per W tap (pool_ukernels.h)
  std::vector<int32_t> tap_col;                           // per W tap: kw * dilation
  std::vector<int32_t> col_base, first_col;               // per output column, + kPoolSlack
  std::vector<int64_t> empty_cols;  // output columns whose window misses the input along W
  int64_t margin = 0;     // zeros before a gradient row: >= the largest tap_shift
  int64_t row_elems = 0;  // one row buffer, slack included
  int64_t extent_d = 1, extent_h = 1;  // window extents along D and H (row cache slots)
};

PoolRowPlan make_row_plan(const PoolGeometry& g);

// Forward pass of a windowed max / avg / lp pool over the row kernels. avg: scale[o] = 1 /
// divisor for every output of a plane (+ kPoolSlack); lp: power and p of the norm.
template <typename T>
void max_pool_rows_forward(const PoolGeometry& g, const PoolRowPlan& rp, const T* x, T* y,
                           int64_t* indices);
template <typename T>
void sum_pool_rows_forward(const PoolGeometry& g, const PoolRowPlan& rp, const T* scale,
                           PoolPower power, double p, const T* x, T* y);
// Max backward with each window's argmax recomputed: the reference's accumulation order.
template <typename T>
void max_pool_rows_backward(const PoolGeometry& g, const PoolRowPlan& rp, const T* grad_y,
                            const T* x, T* grad_x);
// avg (scale set, x null) or lp (scale null) backward: each output's gradient, scaled, is
// scattered over its window.
template <typename T>
void sum_pool_rows_backward(const PoolGeometry& g, const PoolRowPlan& rp, const T* scale,
                            PoolPower power, double p, const T* grad_y, const T* x, T* grad_x);

}  // namespace fastconv::algo
