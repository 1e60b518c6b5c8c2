// Winograd F(m, 3) along depth for time-only 3-D kernels (3 x 1 x 1: R(2+1)D's temporal
// convolutions), forward and backward data.
//
// A 3 x 1 x 1 kernel at stride 1 is a 1-D convolution along depth of every (h, w) position,
// summed over channels. Along depth the output planes come in tiles of m; a tile's alpha = m + 2
// transform points are combinations of its alpha input planes (BT), each point a GEMM of the
// transformed kernels (G: cout x cin per point) with the points' planes, the outputs
// combinations of the points' products (AT). Every combination is of whole H x W planes, which
// lie contiguous in NCDHW: the transforms are vector sums over planes, the GEMMs' columns the
// (image, tile, position) triples. Products per output: alpha / m of the direct sum's 3
// (F(4,3): 1.5, half).
//
// Layout of one chunk of (image, tile) pairs: V[a][ci][pair][plane] (each point's GEMM B, cin
// rows of the chunk's columns), M[a][co][pair][plane] (its C); the transformed kernels
// U[a][co][ci] (its A) once per call. Backward data runs the same correlation on grad_y with the
// weight transposed and flipped (padding KD - 1 - pad). Results do not depend on the threads
// (the GEMM engine's sums never do; the transforms are per element).
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo::winograd_temporal {

// Whether this path runs `pass` of g: a 3-D kernel of 3 x 1 x 1 taps, stride and dilation 1 in
// every dim, one group, no padding along H and W; every pass.
bool serves(const ConvGeometry& g);

// The correlation one pass runs and its chunks of (image, tile) pairs.
struct Temporal {
  int m = 0, alpha = 0;                      // F(m, 3)
  bool backward_data = false;
  int64_t cin = 0, cout = 0;                 // channels read and written
  int64_t depth_in = 0, depth_out = 0, pad = 0;  // along depth, of the correlation
  int64_t plane = 0;                         // H x W
  int64_t tiles = 0;                         // per image: ceil(depth_out / m)
  int64_t pairs = 0;                         // (image, tile) pairs per chunk
  int64_t u_elems = 0, v_elems = 0, m_elems = 0;
  int64_t elems() const { return u_elems + v_elems + m_elems; }
};

// tile: 2, 4 or 6 (FASTCONV_WINOGRAD_TILE), or 0 for the default (F(4,3); F(2,3) when the
// output has at most 2 planes along depth).
Temporal make(const ConvGeometry& g, ConvPass pass, int tile, int64_t elem);

template <typename T>
void forward(const ConvGeometry& g, const Temporal& t, const T* x, const T* w, const T* bias,
             T* y, T* ws);
template <typename T>
void backward_data(const ConvGeometry& g, const Temporal& t, const T* grad_y, const T* w,
                   T* grad_x, T* ws);
// The weight gradient, F(3, m) along depth: the input's points against grad_y's through the
// output transform's transpose, summed over every column, folded into the 3 taps by G^T.
template <typename T>
void backward_weight(const ConvGeometry& g, const Temporal& t, const T* x, const T* grad_y,
                     T* grad_w, T* ws);

}  // namespace fastconv::algo::winograd_temporal
