// Winograd F(3,7) along a line: 2-D 1x7 and 7x1 kernels (Inception's mixed 6 blocks) at stride 1,
// every pass, channels-last.
//
// Along the kernel's axis a tile's 3 outputs read 9 inputs. The 7 taps split as F(3,4) on taps
// 0-3 plus F(3,3) on taps 4-6 (inputs 4-8): 11 transform points (winograd::SplitLine37, on the
// points of F(4,3) and F(4,2): 0, +-1, 2, -1/2 and infinity, and 0, +-1, 1/2 and infinity; a
// single F(2,7)'s 8 points need +-2 and +-1/2, 13-16x implicit GEMM's float32 error over 768
// channels against 3-7x), each a combination of whole channel vectors of the inputs and one GEMM
// of the tiles' points (rows: tile, channel) with the transformed kernels (11 per kernel, packed
// as the micro-kernel's B panels); the outputs are combinations of the products. 11 products per
// 3 outputs against 21 (0.52x; 17 outputs a line take 6 tiles, 0.55x). The split F(2,7) before
// it (9 per 2, SplitLine27; 17 outputs in 9 tiles, 0.68x) ran every pass of Inception's mixed6b
// layers 1.11-1.29x slower (AVX-512 and AVX2, 2 threads, Zen 4).
//
// Layout: an image's input channels-last and zero-padded along the axis (3 x tiles + 6 per
// line), its output channels-last, transposed into y with the bias at the end. Per image, blocks
// of tiles, each one thread's from its points to its outputs (the points and products of a block
// in half the L2). Backward data is the correlation of grad_y with the flipped, channel-transposed
// kernel (winograd_tiles::pass_geometry), the kernels transformed from the weight as it lies.
// Every output's sums in a fixed order: results do not depend on the threads.
//
// The 1-D axis path (winograd_axis.h: F(2,7) over 17-long planes transposed) lost to the per-tap
// path; channels-last, the transforms run over whole vectors of channels.
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether this path runs `pass` of g: 2-D, one group, stride and dilation 1, a kernel of 7 taps
// along H or W and one along the other, no padding along the other, at least kLineMinChannels
// summed channels (the weight gradient: input and output channels); an image's padded input
// and output copies of at most kLineMaxImageElems elements.
constexpr int64_t kLineMinChannels = 16, kLineWeightMinTiles = 96;
constexpr int64_t kLineMaxImageElems = int64_t(16) << 20;
bool line_winograd_serves(const ConvGeometry& g, ConvPass pass);
// Whether its weight gradient has kLineWeightMinTiles tiles over the batch: the GEMMs sum over
// the tiles, and with fewer each writes its K x C points for too short a depth (as the stride-2
// path's, winograd_stride2.h); winograd's plan hands fewer to implicit_gemm. (128 tiles of 2
// outputs with F(2,7)'s tiles; 96 of 3 keep about as many outputs.)
bool line_weight_tiles_pay(const ConvGeometry& g);
// Its workspace in bytes for a plan of `threads` threads.
int64_t line_winograd_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads);

template <typename T>
void line_winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                           T* ws);
template <typename T>
void line_winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                                 T* ws);
// The weight gradient: per point the sum over tiles of the input's points times grad_y's (the
// output transform's transpose), then G's transpose folds the points into taps.
template <typename T>
void line_winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                   T* ws);

}  // namespace fastconv::algo
