// Weight gradients on channels-last copies of the input (ChannelsLastWeightColumns,
// conv_panels.h): kernels of many taps, and rows of 7+ taps along one dim, where packing (c, tap)
// columns gathers short runs (implicit_gemm's backward-weight pass picks it:
// channels_last_weight()). The rule and its measurements in channels_last_weight.cc.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv::algo {

bool channels_last_weight(const ConvGeometry& g);

// Workspace elements: folded grad_y, split partials, the input copies and the tap-major product.
int64_t channels_last_weight_workspace(const ConvGeometry& g);

// grad_w's group grp (K/G x C/G x taps): per block of images their channels-last input and
// (folded) grad_y, the product summed tap-major, then reordered (ws: the workspace above).
template <typename T>
void channels_last_weight_gradient(const ConvGeometry& g, int64_t grp, const T* x,
                                   const T* grad_y, T* grad_w, T* ws);

}  // namespace fastconv::algo
