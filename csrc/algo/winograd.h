// Winograd minimal-filtering convolution F(m, r) for stride-1 convolutions: 1-D F(m,3), 2-D
// F(mxm,3x3) (m = 2, 4, 6), all three passes, transform-domain products as batched GEMMs on the
// packed engine.
#pragma once
#include <cstdint>
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// "" when winograd can run `pass` of g, else the reason it cannot (NotImplementedError text).
std::string winograd_unsupported_reason(const ConvGeometry& g, ConvPass pass);

// Output tile size m used for g (2, 4 or 6): FASTCONV_WINOGRAD_TILE if set (read once per
// process, common/tuning.h), else the default rule in winograd.cc.
int winograd_tile(const ConvGeometry& g, ConvPass pass);

int64_t winograd_workspace_bytes(const ConvGeometry& g, ConvPass pass, int64_t elem_size);

// What winograd runs for `pass` of g, for explain/README: the tile ("F(2x2,3x3)", "F(3x3,4x4)"
// for the weight gradient), or the fallback it uses (the weight gradient of images with fewer
// than C/4 output tiles, or of groups with fewer than 16 channels, runs implicit_gemm).
std::string winograd_note(const ConvGeometry& g, ConvPass pass);

// Plan (csrc/include/fastconv/algorithm.h): the tile, schedule and workspace, or why not.
std::string winograd_plan(ConvPlan& plan);

template <typename T>
void winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                              T* ws);

}  // namespace fastconv::algo
