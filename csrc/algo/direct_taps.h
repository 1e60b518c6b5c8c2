// The direct algorithm's path for dense convolutions (1-D to 3-D) of small images with many
// channels: a chunk of images is transposed to channels-last (positions x channels) and every
// output row is computed in segments of a few positions x one panel of output channels, as a sum of GEMM
// micro-kernel calls, one per tap, each over the input channels (A: the segment's input
// positions read in place, B: the tap's packed weights). A tap only runs over the positions
// whose input it reaches, so no multiply-add touches padding: on a 7x7 image a 3x3 kernel with
// padding 1 has 18% of its dense multiply-adds in the padding, which implicit GEMM computes.
//   forward        -> the correlation of x with the weights (any stride, dilation, padding);
//   backward data  -> at unit stride, the correlation of grad_y with the flipped, transposed
//                     weights (padding (kernel - 1) * dilation - pad).
// Backward weight stays on the row kernels (direct_rows.h).
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether this path runs `pass` of g (direct_plan asks): dense, 16+ channels on both sides,
// output rows of at most 40 positions (36 for kernels of 25+ taps); backward data at unit
// stride. python/fastconv/_cpu_rule.py (_taps_served) mirrors it.
bool taps_serve(const ConvGeometry& g, ConvPass pass);
// Its workspace in bytes for a plan of `threads` threads.
int64_t taps_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads);

template <typename T>
void taps_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void taps_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);

}  // namespace fastconv::algo
