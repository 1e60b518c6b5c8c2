// Strided forward convolution over column planes of the stride phases: each row phase of a
// channel is stored once per column offset its taps read (plane (ry, e) column i holds input
// column sx * i + ex_min + e), every plane as wide as an output row, with zero rows above and
// below for the row offsets. Output position p = oy * OW + ox of tap t then reads element
// p + offset[t] of its channel, every tap's row of a B panel is one unit-stride run that the
// micro-kernel reads in place (no packing), and the GEMM's columns are the output's own
// positions: it writes each image's output in place (no margin columns to compute and drop).
// forward_phases (conv_panels.h) packed every panel from the phase planes instead, 24% of
// res3.3x3s2's time; padded-width phases (one plane per phase, rows one margin column wider)
// computed the margins and copied the output out of a block: 8% and 6% of CIFAR ResNet's
// 16 -> 32 3x3/2 forward on 32x32 x128, more where the rows are shorter.
#pragma once
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"

namespace fastconv::algo {

struct WidePhases {
  int64_t rows = 0;                    // output rows of a band (all of them, or fewer)
  int64_t cols = 0;                    // column planes per row phase (at least sx)
  int64_t planes = 0;                  // planes per channel: sy * cols
  int64_t height = 0, width = 0;       // a plane with its zero rows; width = output row
  int64_t plane_size = 0, channel_size = 0;
  int64_t qy0 = 0, ex0 = 0;            // phase row of a plane's first row; first column offset
  std::vector<int64_t> offsets;        // per tap: plane and row as one element offset
};

// The layout of g's planes for bands of `rows` output rows (0: all of them; a strided forward
// of rank <= 2: forward_phases_apply).
WidePhases make_wide_phases(const ConvGeometry& g, int64_t rows = 0);

// True where forward_reads_phases holds (forward_phases_apply, except the stride-2 layers with
// rows of 24+ that forward_double_step gathers from the input instead) with at most 256 output
// channels per group (more rows share each packed panel, so packing costs less per multiply-add:
// inception_v3.mixed6a, 384, 2.24-2.27 vs 2.31-2.47 ms for the padded-width phases this layout
// replaced; yolov5s.conv7, 512, 3.68-3.87 vs 3.72-3.85), panels 32 wide (AVX-512 float32), or
// 16 wide for float32 batches whose images' planes fit a quarter of the L2 (AVX2), and output
// rows of 16+ columns per column the taps' offsets span, or images whose positions fill whole
// panels on rows of 8+ (the measurements at the definition).
bool wide_phases_apply(const ConvGeometry& g, int64_t elem_size);

// Whether the threads take whole images of a batch (each through its own planes, at most about
// a quarter of the L2 and never in bands), rather than share each image's split and GEMM.
bool wide_thread_images(const ConvGeometry& g, int64_t elem_size, int threads);

// Workspace elements: the weight packed once per call (every group), and the planes of one
// image (or band of output rows) per thread where the threads take whole images, else of one.
int64_t wide_phases_workspace(const ConvGeometry& g, int64_t elem_size, int threads);

// y = conv(x, w) + bias (forward pass, rank <= 2, strided), `threads` the plan's thread count
// (the workspace's).
template <typename T>
void wide_phases_forward(const ConvGeometry& g, int threads, const T* x, const T* w,
                         const T* bias, T* y, T* ws);

}  // namespace fastconv::algo
