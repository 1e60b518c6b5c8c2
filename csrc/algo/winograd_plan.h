// What winograd_plan (algo/winograd.h) decides for one pass, shared by the planner
// (winograd_plan.cc) and the runners (winograd.cc).
#pragma once
#include <cstdint>

#include "algo/dilation_phases.h"
#include "algo/winograd_depth.h"
#include "algo/winograd_phases.h"
#include "algo/winograd_schedule.h"
#include "algo/winograd_axis.h"
#include "algo/winograd_rows.h"

namespace fastconv::algo {

// What winograd_plan decides, kept in the ConvPlan's detail (a weight gradient that falls back
// is run by implicit_gemm's runners: ConvPlan::runner, so winograd's runners always have one).
// Stride-1 layers run `main` on the pass itself; strided ones (`phased`) on the stacked stride-1
// convolution (winograd_phases.h: split.run), the workspace then starting with the stacked
// weight's gradient in a_elems (the weight gradient; the other passes gather the stored weight
// run by run), the stacked input (or its gradient) in b_elems and,
// folded, grad_y in the wide layout in c_elems (backward data and the weight gradient; a folded
// forward moves its output into y window by window). Dilated layers (`dilated`) run `main` on
// the dense convolution of their dilation phases (dilation_phases.h: dilation.dense), the stacked
// input (or its gradient) in b_elems, the stacked output (or grad_y) in c_elems. 3-D layers
// (`depth`) run `main` on the 2-D convolution of their depth taps (winograd_depth.h), reading and
// writing the 3-D tensors' planes in place: backward data's reordered weight in a_elems, a zero
// plane (for taps off the volume) in b_elems.
struct WinogradPlan {
  // A 3x3 / 2 forward or weight gradient run by winograd_stride2.h (its own layout; nothing
  // below is used).
  bool stride2 = false;
  // A 1x7 / 7x1 layer's pass run by winograd_line.h (its own layout; nothing below is used).
  bool line = false;
  // A kernel with taps along one axis run by winograd_axis.h (F(m,r) along that axis; its own
  // layout in the workspace, nothing below is used).
  bool axis = false;
  winograd_axis::Along along_axis;
  // A forward run by winograd_rows.h (F(m,r) along W over its stride phases; its own layout).
  bool rows = false;
  winograd_rows::Rows along_rows;
  winograd_schedule::Schedule main;
  bool phased = false;
  winograd_phases::Split split;
  bool dilated = false;
  dilation_phases::Split dilation;
  bool depth = false;
  winograd_depth::DepthStack depth_stack;
  // The stacked input (or its gradient) through windows on the stack, run of tiles by run, so
  // b_elems holds none of it: forward and weight gradient stack each stored channel's P phases
  // from x (winograd_phases::stack_window), backward data on tile blocks moves them from the
  // output transform into grad_x (unstack_window).
  bool windows = false;
  int64_t a_elems = 0, b_elems = 0, c_elems = 0;
  int64_t buffers() const { return a_elems + b_elems + c_elems; }
};

}  // namespace fastconv::algo
