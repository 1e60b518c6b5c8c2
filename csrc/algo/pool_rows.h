// The row-kernel half of direct pooling (csrc/algo/pool.cc holds the rest): the per-call layout
// of the row buffers the kernels of csrc/ukernels/pool/ read (pool_ukernels.h), and the
// drivers that run windowed forward and backward passes on them, parallel over planes (forward:
// over plane rows when there are few planes).
#pragma once
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"
#include "ukernels/pool/pool_ukernels.h"

namespace fastconv::algo {

// Everything about a row buffer and the W taps that depends on the geometry only, built once
// per call. Needs every window to cover at least one input position along each dim.
struct PoolRowPlan {
  PoolRowLayout layout{};
  std::vector<int64_t> tap_offset;            // per W tap: where it reads in a row buffer
  std::vector<int64_t> tap_phase, tap_shift;  // per W tap: the scatter's view of it
  std::vector<int32_t> tap_col;               // per W tap: kw * dilation
  // per output column (+ kPoolSlack); with segments, of segment 0 only (col_base: relative to
  // a segment's first window, the same in every segment; first_col: made per segment)
  std::vector<int32_t> col_base, first_col;
  int64_t margin = 0;     // zeros before a gradient row: the largest tap_shift
  int64_t row_elems = 0;  // one row buffer, slack included
  int64_t extent_d = 1, extent_h = 1;  // window extents along D and H (row cache slots)
  // The forward passes split output rows longer than kPoolSegmentInputs input columns' worth
  // into segments of seg_outputs columns, each with row buffers of its own span only (a long
  // 1-D signal was one task copying its whole row into one buffer): seg_count segments, their
  // phases seg_phase_width long, the W taps at seg_tap_offset. One segment: the whole row, the
  // layout and taps above.
  int64_t seg_count = 1, seg_outputs = 0, seg_phase_width = 0, seg_row_elems = 0;
  std::vector<int64_t> seg_tap_offset;
};

// Input columns a forward row segment spans at most (its row buffers: this many elements per
// window row, in cache), and the fewest outputs a segment has.
constexpr int64_t kPoolSegmentInputs = int64_t(1) << 14;
constexpr int64_t kPoolMinSegmentOutputs = 256;

PoolRowPlan make_row_plan(const PoolGeometry& g);

// Backward outputs of at least this many bytes are written plane by plane from a scratch plane
// with streaming stores: no read-for-ownership of lines nobody reads soon (the bench machine's
// last-level cache is 8 MiB, shared).
constexpr int64_t kPoolStreamBytes = int64_t(2) << 20;

// What a windowed sum computes: avg (scale: 1 / divisor per output of a plane, + kPoolSlack
// readable, power kOne) or lp (scale null; power and p of the norm). A forward avg over row
// segments (PoolRowPlan::seg_count > 1) takes scale null and avg set: each task makes its
// segment's divisors (avg_scale of a whole plane was a serial pass over every output).
template <typename T>
struct PoolSum {
  const T* scale;
  PoolPower power;
  double p;
  bool avg = false;
  bool count_include_pad = true;
};

template <typename T>
void max_pool_rows_forward(const PoolGeometry& g, const PoolRowPlan& rp, const T* x, T* y,
                           int64_t* indices);
template <typename T>
void sum_pool_rows_forward(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>& s,
                           const T* x, T* y);
// Max backward with each window's argmax recomputed, scattered in output order: the reference's
// accumulation order, so the result is exact.
template <typename T>
void max_pool_rows_backward(const PoolGeometry& g, const PoolRowPlan& rp, const T* grad_y,
                            const T* x, T* grad_x);
// avg (x unread) or lp backward: each output's gradient, scaled, is scattered over its window.
template <typename T>
void sum_pool_rows_backward(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>& s,
                            const T* grad_y, const T* x, T* grad_x);

}  // namespace fastconv::algo
