// Winograd F(m, r) along the output rows (W) over W's stride phases, the sums over (input
// channel, kernel row, W phase) by the direct algorithm's row kernels: the forward of layers
// whose kernel the 2-D transforms do not take, above all ResNet's first layer (7x7 / 2 over 3
// channels: 4 taps per stride phase).
//
// Along W an output o with tap j reads padded input X = s o + j: phase p = j mod s, position
// q = o + j / s. Each phase is a unit-stride correlation of its r = ceil(kw / s) taps (the
// phases with fewer padded with zero taps), so F(m, r) covers every phase with one transform:
// a tile of m outputs reads alpha = m + r - 1 positions of each phase row, and the phases'
// products land in one transform domain, summed there like channels. Per output that is
// s * alpha / m products per (channel, kernel row) against kw: 7x7 / 2 by F(3,4) 4 against 7,
// a 3x5 kernel at stride 1 by F(2,5) 3 against 5. Along H the kernel rows stay direct sums.
//
// Layout: per band of output rows one slot transforms the input rows the band reads into
// V[point][channel][H phase][W phase][plane row][tile], the plane rows of one (channel, H phase,
// W phase) a band's rows of exactly `tiles` points each, so consecutive output rows are one
// contiguous run: each point is one row-kernel call (RowsKernels::forward) over the band's
// rows x tiles, terms (channel, kernel row, W phase) at fixed offsets, into acc[point][k][..]
// for one register block of output channels at a time, whose output transform then writes y
// (bias added there) while the sums are in L1. The weight is transformed once per
// call (G) into each point's packed kernel chunks. Sums in a fixed order: results do not
// depend on the threads.
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo::winograd_rows {

// Whether this path runs `pass` of g: the forward, one group, a kernel depth of 1 (1-D, 2-D or
// 3-D with 1 x kh x kw kernels), dilation 1 along W, no negative front padding, and 2-5 taps
// per W stride phase (ceil(kw / sw)).
bool serves(const ConvGeometry& g, ConvPass pass);
// Whether a layer the stacked stride phases would also take (winograd_phases.h) runs along the
// rows instead: the forward over up to 4 input channels at W stride 2 with 6-8 taps along W
// (YOLOv5s's 6x6 / 2: F(4,3) on 3 + 3 taps, 3 products per output, channel and kernel row
// against 6). 2 threads, Zen 4, `fastconv bench --rounds 3`, median ms, rows vs the stacked
// phases' Winograd: YOLOv5s's 640x640 stem 3.04 vs 3.02 (AVX-512); vs the direct row kernels
// (auto's choice there before): 3.14 vs 3.70 (AVX2), 3->64 on 224x224 0.64 vs 0.84 / 0.66 vs
// 0.84, 3->32 on 320x320 0.72 vs 0.90 / 0.66 vs 0.91. Not 11x11 / 4 (1.52 vs the stacked 1.29)
// nor 3x3 / 2 (F(4,2): 0.36 vs direct 0.25); 5x5 / 2 tied with direct (0.31-1.10 vs 0.32-1.14).
bool preferred(const ConvGeometry& g, ConvPass pass);

struct Rows {
  int m = 0, r = 0, alpha = 0;  // F(m, r) along W
  int64_t tiles = 0;            // per output row: ceil(out_w / m)
  int64_t sub = 0;              // elements of one of a phase row's m interleaved sub-rows
  int64_t rho = 0, halo = 0;    // H phases read; plane rows past a band's own
  int64_t band = 0, bands = 0;  // output rows per band, bands per output slice
  int64_t planes = 0;           // (channel, H phase, W phase) planes of one point
  int64_t point = 0;            // elements of one point's planes, slack included
  int64_t pitch = 0;            // acc elements per output channel
  int64_t chunk = 0;            // output channels per pass of the kernels and output transform
  int64_t nred = 0;             // terms per point: channels x kernel rows x W phases
  int64_t slot = 0;             // elements of one slot's scratch
  int64_t weight = 0;           // elements of the transformed, packed weight
  int64_t slots = 0;
  int64_t elems() const { return weight + slots * slot; }
};

Rows make(const ConvGeometry& g, int64_t elem, int threads);

template <typename T>
void forward(const ConvPlan& plan, const Rows& rw, const T* x, const T* w, const T* bias, T* y,
             T* ws);

}  // namespace fastconv::algo::winograd_rows
