// Winograd F(m, 3) along one axis, for kernels whose 3 taps lie along one axis only: 3-D 3 x 1 x
// 1 (R(2+1)D's temporal convolutions) and 2-D 3 x 1 / 1 x 3 (Inception's mixed 7 blocks), every
// pass. (F(2,7) for Inception's 7x1 / 1x7 was tried: its 8-point transforms of 17-long rows cost
// more than the 0.6x products save, 0.57-0.84x the per-tap path, at 5-7x implicit GEMM's
// float32 error.)
//
// Such a kernel at stride 1 is a 1-D convolution along that axis of every position of the
// others, summed over channels. Along the axis the outputs come in tiles of m; a tile's
// alpha = m + r - 1 transform points are combinations of its alpha input slices (BT), each point
// a GEMM of the transformed kernels (G: cout x cin per point) with the points' slices, the
// outputs combinations of the points' products (AT). With the axis the leading one (depth of
// NCDHW, H of NCHW) a slice is a whole contiguous plane of the dims after it: the transforms are
// vector sums over planes and the GEMMs' columns the (image, tile, position) triples. A kernel
// along W (1 x r) runs on each channel's (H, W) planes transposed into the workspace (W leading)
// and its output transposed back. Products per output: alpha / m of the direct sum's 3 (F(4,3):
// 1.5). Slices of under 64 elements (Inception's 8x8 maps: rows or columns of 8) are short runs
// for the transforms' vector sums, so a batch's images are folded side by side into each slice
// (the channel-major copy [c][depth][image][slice], made with the transpose or as a copy): one
// image of n x slice wide slices, where one tile of those fits the 16 MiB chunk of V and M.
//
// Layout of one chunk of (image, tile) pairs: V[a][ci][pair][plane] (each point's GEMM B, cin rows
// of the chunk's columns), M[a][co][pair][plane] (its C); the transformed kernels once per call, in
// the order the weight stores its taps' runs: the forward's U[a][co][ci] (the GEMMs' A), backward
// data's U[a][ci][co] (A read transposed). Backward data runs the same correlation on grad_y with
// the weight transposed and flipped (padding r - 1 - pad). The weight gradient sums, per point, the
// input's points against grad_y's (the output transform's transpose) over the columns and folds the
// points into taps (G^T). Results do not depend on the threads (the GEMM engine's sums never do;
// the transforms are per element; the chunks are fixed by the geometry).
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo::winograd_axis {

// Whether this path runs g: 2-D or 3-D, one group, stride and dilation 1 in every dim, a kernel
// of 3 taps along depth (3-D) or along H or W (2-D), one tap along every other dim, no padding
// along those.
bool serves(const ConvGeometry& g);

// The correlation one pass runs and its chunks of (image, tile) pairs.
struct Along {
  int m = 0, r = 3, alpha = 0;                   // F(m, r)
  bool transposed = false;                       // along W: (H, W) planes transposed
  bool folded = false;                           // the images side by side in each slice
  int64_t cin = 0, cout = 0;                     // channels read and written
  int64_t depth_in = 0, depth_out = 0, pad = 0;  // along the axis, of the correlation
  int64_t slice = 0;        // elements of one image's slice across the axis
  int64_t images = 0;       // images of the run's view: 1 where folded, else the batch
  int64_t plane = 0;        // elements of one slice of the run's view (images x slice folded)
  int64_t tiles = 0;        // per image of the view: ceil(depth_out / m)
  int64_t pairs = 0;        // (image, tile) pairs per chunk
  int64_t u_elems = 0, v_elems = 0, m_elems = 0;
  int64_t src_elems = 0, dst_elems = 0;  // transposed or folded copies of the two sides (else 0)
  int64_t elems() const { return u_elems + v_elems + m_elems + src_elems + dst_elems; }
};

// tile: FASTCONV_WINOGRAD_TILE (2, 4 or 6) or 0 for the default: F(4,3), F(2,3) when the output
// has at most 2 slices along the axis.
Along make(const ConvGeometry& g, ConvPass pass, int tile, int64_t elem);

template <typename T>
void forward(const ConvGeometry& g, const Along& t, const T* x, const T* w, const T* bias, T* y,
             T* ws);
template <typename T>
void backward_data(const ConvGeometry& g, const Along& t, const T* grad_y, const T* w,
                   T* grad_x, T* ws);
template <typename T>
void backward_weight(const ConvGeometry& g, const Along& t, const T* x, const T* grad_y,
                     T* grad_w, T* ws);

}  // namespace fastconv::algo::winograd_axis
