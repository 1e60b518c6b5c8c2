// The direct algorithm's path for strided backward data (a transposed convolution's forward) of
// batches of small images with many channels: grad_y is moved to an images-innermost
// channels-last copy (row, column, image, channel), grad_x accumulates in its stride-phase planes
// in the same layout, and every tap scatters grad_y into them as GEMM micro-kernel calls over
// runs of (column, image) rows: A is grad_y read in place, B the tap's weights packed for a panel
// of grad_x channels, C the phase plane's rows (accumulated). A tap runs only over the grad_y
// positions that land inside grad_x, so no multiply-add is spent on products the column path
// (column_backward_data.h) computes and then drops: on DCGAN's 4x4 / 2 layers with padding 1,
// 49 of 64 per phase on 4x4 maps (g2), 225 of 256 on 8x8 (g3).
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether this path runs g's backward data (direct_plan asks): 2-D, dense, strided, dilation 1,
// 16+ channels on both sides, at least kScatterMinImages images and grad_y maps of at most
// kScatterMaxPositions positions. python/fastconv/_cpu_taps.py (_scatter_served) mirrors it.
constexpr int64_t kScatterMinImages = 8, kScatterMaxPositions = 64;
bool scatter_serve(const ConvGeometry& g, ConvPass pass);
// Its workspace in bytes for a plan of `threads` threads.
int64_t scatter_workspace_bytes(const ConvGeometry& g, DType t, int threads);

template <typename T>
void scatter_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);

}  // namespace fastconv::algo
