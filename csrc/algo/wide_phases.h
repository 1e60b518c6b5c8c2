// Strided forward convolution over padded-width stride phases: each stride phase of a channel
// is stored with zero margins wide enough for every tap's offset, rows `width` apart, so output
// position (oy, ox) of tap t reads element oy * width + ox + offset[t] of its channel. The GEMM
// then runs over oy * width + ox for ox < width (the margin columns are computed and dropped),
// every tap's row of a B panel is one unit-stride run and the micro-kernel reads it in place:
// no packing. forward_phases (conv_panels.h) packed every panel from the phase planes instead,
// 24% of res3.3x3s2's time.
#pragma once
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"

namespace fastconv::algo {

struct WidePhases {
  int64_t rows = 0;                    // output rows of a band (all of them, or fewer)
  int64_t planes = 0;                  // stride phases per channel
  int64_t height = 0, width = 0;       // a phase plane with its margins (one spare row)
  int64_t plane_size = 0, channel_size = 0;
  int64_t positions = 0;               // GEMM columns per image and band: rows x width
  int64_t qy0 = 0, qx0 = 0;            // phase coordinates of a plane's first row and column
  std::vector<int64_t> offsets;        // per tap: plane, row and column as one element offset
};

// The layout of g's phases for bands of `rows` output rows (0: all of them; a strided forward
// of rank <= 2: forward_phases_apply).
WidePhases make_wide_phases(const ConvGeometry& g, int64_t rows = 0);

// What one GEMM covers: whole images (several only where implicit GEMM folds the batch, outputs
// of at most 512 positions, and `images` allows), or one image's band of output rows, so that
// the planes it reads in place take at most a few MiB.
struct WideBlocks {
  int64_t images, rows;
};
WideBlocks wide_blocks(const ConvGeometry& g, int64_t images, int64_t elem_size);

// True where forward_reads_phases holds (forward_phases_apply, except the stride-2 layers with
// rows of 24+ that forward_double_step gathers from the input instead: most of the cases
// measured below, before that gather existed), the margin columns add at most 1/16 to the GEMM, its
// panels are 32 wide (AVX-512 float32) and it has at most 256 output channels per group (more
// rows share each packed panel, so packing costs less per multiply-add: inception_v3.mixed6a,
// 384, 2.24-2.27 vs 2.31-2.47; yolov5s.conv7, 512, 3.68-3.87 vs 3.72-3.85). 2 threads, median
// ms, packed phases vs wide, AVX-512:
// - res3.3x3s2 (1.8 MiB of planes) 1.03-1.11 vs 0.91-1.01;
// - 3x3/2 32->32 on 160x160 (3.4 MiB) 0.83 vs 0.69; 64->64 on 112x112 (3.4) 1.23-1.28 vs
//   1.01-1.07; 8 x 64->128 on 80x80 (1.8 per image, one image per GEMM) 8.8-9.4 vs 7.8;
// - 256->128 on 56x56 (3.6) 2.04-2.10 vs 1.95-1.97; 64->128 on 160x160 (6.8) 3.92-3.99 vs
//   3.78-3.85.
// - 32->64 on 160x160 1.24-1.26 vs 1.15; 64->32 on 320x320 (26 MiB of planes, run in bands
//   of output rows: wide_blocks) 6.8-7.3 vs 6.4-6.5. Yet yolov5s.conv1 (32->64 on 320x320)
//   measured 4.61-4.79 vs 4.78-5.03 in bands (4.52-4.69 vs 4.66-4.92 as one 13 MiB block),
//   unexplained.
// Wider margins lose: 256 ch 28x28, 1/14 more columns, 1.03-1.12 vs 1.13-1.14; dcgan.g4's
// backward data, 1/8, 4.27-4.39 vs 4.40-4.59. With AVX2's 16-wide panels a panel row is one
// cache line and packing costs less per multiply-add: res3.3x3s2 1.38-1.45 vs 1.46-1.48,
// 112x112 1.66-1.74 vs 1.61-1.62.
bool wide_phases_apply(const ConvGeometry& g, int64_t elem_size);

// Images per block where the threads take whole blocks of a batch (each through its own planes
// and output block, about a quarter of the L2), or 0 where the blocks are shared.
int64_t wide_thread_images(const ConvGeometry& g, int64_t images, int64_t elem_size,
                           int threads);

// Workspace elements for the blocks of at most `images` images (wide_blocks) of one group:
// their phase planes and the GEMM's output block; one per thread (of `threads`) where the
// threads take whole blocks of a batch.
int64_t wide_phases_workspace(const ConvGeometry& g, int64_t images, int64_t elem_size,
                              int threads);

// y = conv(x, w) + bias over blocks of at most `images` images (forward pass, rank <= 2,
// strided), `threads` the plan's thread count (the workspace's).
template <typename T>
void wide_phases_forward(const ConvGeometry& g, int64_t images, int threads, const T* x,
                         const T* w, const T* bias, T* y, T* ws);

}  // namespace fastconv::algo
