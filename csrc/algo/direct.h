// Direct convolution: SIMD loops per (output channel, input channel) plane pair over a
// zero-padded, phase-split copy of the source plane, all passes, any geometry. Its work per
// multiply-add does not depend on the channel counts, so it suits groups with few channels;
// `depthwise` is the same code restricted to one input channel per group (any multiplier).
#pragma once
#include <cstdint>
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"
#include "ukernels/depthwise/dw_ukernels.h"

namespace fastconv::algo {

// "" when depthwise can run g, else why not (it needs groups == C).
std::string depthwise_unsupported_reason(const ConvGeometry& g, ConvPass pass);


// The zero-padded, phase-split plane of one input channel that forward and backward weight
// read (layout: dw_ukernels.h), and its fill from a channel of x; 16 zeros follow the plane.
DwPlane input_plane(const ConvGeometry& g);
template <typename T>
void fill_input_plane(const DwPlane& p, const ConvGeometry& g, const T* src, T* buf);
// A band of that plane: `band` (one depth slice of `band.rows` rows, the plane's row layout)
// from padded slice `slice` and padded row `row` on.
template <typename T>
void fill_input_rows(const ConvGeometry& g, int64_t slice, int64_t row, const DwPlane& band,
                     const T* src, T* buf);

// Plans (csrc/include/fastconv/algorithm.h): fill the plan's workspace, or return why not.
std::string direct_plan(ConvPlan& plan);
std::string depthwise_plan(ConvPlan& plan);

template <typename T>
void direct_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void direct_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void direct_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws);

}  // namespace fastconv::algo
