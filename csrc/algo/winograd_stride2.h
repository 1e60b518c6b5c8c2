// Winograd F(2x2,3x3) at stride 2: a 3x3 / 2 convolution's forward with 25 transform-domain
// products per 2x2 outputs (6.25 per output against the direct sum's 9), and its weight gradient.
//
// Along one dim, outputs 0 and 1 of a tile read inputs x0..x4 (x0 x1 x2 and x2 x3 x4 with taps
// g0 g1 g2). The even inputs meet the even taps (a 2-tap kernel: Winograd F(2,2), 3 points), the
// odd ones tap g1 alone (1 tap: 2 points, the products themselves), so 5 points per dim:
//   input  (x0 - x2, x2, x4 - x2, x1, x3)
//   weight (g0, g0 + g2, g2, g1, g1)
//   output y0 = p0 + p1 + p3, y1 = p1 + p2 + p4,
// every coefficient +-1, so float32 error stays that of a direct sum (the stacked stride phases'
// F(3x3,2x2) of winograd_phases.h needs 16 points per 9 outputs over 4x the channels and wastes
// partial tiles: 8.2 products per output on ResNet-50's res3 3x3 / 2). In 2-D the 5x5 points of a
// tile come from its 5x5 input window; tiles lie 4 inputs apart. The weight's points 3 and 4 are
// the same (g1), so a kernel has 16 distinct points.
//
// Layout: x channels-last and zero-padded (4 * tiles + 1 rows and columns), one image at a time
// (or, where that copy and the output's would not stay in the L2, a window of 5 rows per block of
// tiles along a tile row, each block's outputs transposed into y from the cache: banded);
// the transformed kernels packed as the GEMM micro-kernel's B panels (panel, distinct point,
// channel, nr); a point's tiles as rows (tile, channel) the micro-kernel reads in place; the
// outputs channels-last, transposed into y with the bias at the end. Two schedules (fused tile
// blocks, staged chunks: winograd_stride2.cc); every output's sums in a fixed order, so results do
// not depend on the threads.
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether this path runs `pass` of g: the forward or weight gradient of a 2-D 3x3 convolution at
// stride 2, dilation 1, one group, at least kStride2WinogradMinChannels input channels (fewer make
// the GEMM depth too short: the stacked phases keep the stems), padding not negative; the weight
// gradient on kStride2WeightMinTiles+ tiles over the batch; an image's padded input and output
// copies (both whole in the workspace) of at most kStride2MaxImageElems elements (64 MiB in
// float32: 256 channels on 512x512 would take 257 MiB). auto takes the forward
// (python/fastconv/_cpu_stems.py: _stride2_winograd) and, on 256-bit AVX-512 units (at
// AVX-512 and AVX2), the weight gradient on 64+ channels each side (_stride2_winograd_weight:
// res3's 128 -> 128 on 56x56, 2 threads, 1.05 ms against implicit GEMM's 1.29, PyTorch 1.26;
// once too unsteady for auto, 1.10-2.45 ms from run to run, as it still is in the VM's slow
// spells).
constexpr int64_t kStride2WinogradMinChannels = 16, kStride2WeightMinTiles = 128;
constexpr int64_t kStride2MaxImageElems = int64_t(16) << 20;
bool stride2_winograd_serves(const ConvGeometry& g, ConvPass pass);
// Whether the forward runs in bands of tile rows (an image's whole channels-last copies past the
// L2: each block fills its own input window and transposes its own outputs into y).
bool stride2_winograd_banded(const ConvGeometry& g, ConvPass pass, DType t, int threads);
// Its workspace in bytes for a plan of `threads` threads.
int64_t stride2_winograd_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t,
                                         int threads);

template <typename T>
void stride2_winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                              T* ws);
// The weight gradient: per point, the sum over tiles of the input's points times grad_y's (the
// output transform's transpose, per dim (y0, y0 + y1, y1, y0, y1)), then per dim G^T (taps 0, 1,
// 2 from points 0 + 1, 3 + 4, 1 + 2).
template <typename T>
void stride2_winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y,
                                      T* grad_w, T* ws);

}  // namespace fastconv::algo
