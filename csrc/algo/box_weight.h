// Weight gradients whose padding takes a large share of the multiply-adds, as one GEMM per
// kernel tap over only the output positions whose input that tap reaches (implicit_gemm's
// backward-weight pass picks it: box_weight()).
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether the weight gradient of g runs by tap boxes (the rule and its measurements in
// box_weight.cc).
bool box_weight(const ConvGeometry& g);

// Elements of workspace box_weight_gradient needs with images folded nb at a time.
int64_t box_weight_workspace(const ConvGeometry& g, int64_t nb);

// grad_w's group grp (K/G x C/G x taps) through the tap boxes, images nb at a time (ws:
// box_weight_workspace elements).
template <typename T>
void box_weight_gradient(const ConvGeometry& g, int64_t grp, int64_t nb, const T* x,
                         const T* grad_y, T* grad_w, T* ws);

// gw[k][c][t] = acc[k][t][c] for one group (K/G x C/G x taps): a product computed tap-major,
// reordered into grad_w's layout.
template <typename T>
void reorder_tap_major(const ConvGeometry& g, const T* acc, T* gw);

}  // namespace fastconv::algo
