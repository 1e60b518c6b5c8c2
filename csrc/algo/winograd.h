// Winograd minimal-filtering convolution F(m, r) for stride-1 convolutions (and strided ones over
// their stride phases): 1-D F(m,r), 2-D F(mxm,3x3) (m = 2, 4, 6), F(mxm,2x2) (m = 2, 3, 4) and
// F(4x3,2x2) / F(3x4,2x2), F(2x2,5x5), all three passes, transform-domain products as batched
// GEMMs on the packed engine.
#pragma once
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Plan (csrc/include/fastconv/algorithm.h): the tile (FASTCONV_WINOGRAD_TILE or the per-layer
// default), the block schedule and its workspace, decided once and kept in plan.detail; or why
// winograd cannot run the pass. A weight gradient with too few tiles per channel or too few
// channels per group is planned as implicit_gemm's (its workspace and detail; the note says so).
// Throws InvalidArgument when FASTCONV_WINOGRAD_TILE is not 2, 3, 4, 6, 4x3 or 3x4.
std::string winograd_plan(ConvPlan& plan);

// Runners: execute plan.detail's schedule, never re-derive it.
template <typename T>
void winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                              T* ws);

}  // namespace fastconv::algo
