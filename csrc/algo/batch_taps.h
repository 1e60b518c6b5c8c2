// The direct algorithm's path for batches of small maps with many channels: the conv's output
// side (y, grad_y) in an images-innermost channels-last copy (row, column, image, channel), its
// input side (x, grad_x) in stride-phase planes in the same layout, and every tap a few GEMM
// micro-kernel calls over runs of (column, image) rows: along an output row consecutive columns
// meet consecutive columns of one phase plane, so a run has one stride on both sides however
// small the maps (rows of 4-8 positions times the images, where the per-tap path of
// direct_taps.h takes one image's row of a few positions per call). A tap runs only over the
// outputs whose input lies inside the tensor, so no multiply-add touches padding.
//   forward        -> the planes of x gathered per tap into the output rows (A: x's planes read in
//                     place, B: the tap's weights packed for a panel of output channels);
//   backward data  -> grad_y scattered per tap into grad_x's planes (A: grad_y's copy, B: the
//                     tap's weights packed for a panel of input channels), accumulated in place:
//                     no column buffer and no products the column path (column_backward_data.h)
//                     computes and then drops (on DCGAN's 4x4 / 2 with padding 1 on 4x4 maps, 60
//                     of 256 per channel pair); at unit stride the forward's path on the
//                     correlation of grad_y with the flipped kernel, padded by the kernel's
//                     reach less the padding (grad_y's planes gathered into grad_x's rows, the
//                     weights packed as the strided pass packs them);
//   weight gradient -> per tap, grad_y's channel rows against the planes' rows (below).
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether this path runs `pass` of g (direct_plan asks): 2-D, dense, 16+ channels on both
// sides, at least kBatchTapsMinImages images; then, for the forward, the weight gradient and
// strided backward data, output maps of at most kBatchTapsMaxPositions positions, strides up to
// 16 and low padding not negative, the forward on output rows of at most
// kBatchTapsMaxForwardRow positions (the per-tap path's segments are that short; on 7x7 maps
// this path is 0-30% faster than that path and Winograd, 64 ch at batch 32 0.48 ms against
// Winograd's 0.68 at AVX-512; on 8x8 it ties with or loses to Winograd); unit-stride backward
// data where its correlation (grad_y in, grad_x out: data_correlation_geometry) is a forward
// this path serves: grad_x maps of at most 64 positions, rows of at most 7, low padding within
// the kernel's reach (high padding past it is served: the rows it adds are copied, never read).
// python/fastconv/_cpu_taps.py mirrors it (_batch_taps_served for the forward and backward
// data, _batch_taps_shape for the weight gradient).
//   weight gradient -> per tap, grad_y's channel rows (an images-innermost copy, each channel's
//                      (row, column, image) contiguous) against the plane's rows, each output
//                      row's run of (column, image) pairs one call's depth. 3.5-8x the row
//                      kernels direct ran there before; auto takes it for 3x3 float32 layers
//                      (stride 1 or 2) on few channels or short rows
//                      (_cpu_taps._batch_weight_taps) and keeps implicit_gemm / Winograd
//                      elsewhere.
constexpr int64_t kBatchTapsMinImages = 8, kBatchTapsMaxPositions = 64;
constexpr int64_t kBatchTapsMaxForwardRow = 7;
bool batch_taps_serve(const ConvGeometry& g, ConvPass pass);
// Its workspace in bytes for a plan of `threads` threads.
int64_t batch_taps_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads);

template <typename T>
void batch_taps_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void batch_taps_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                              T* ws);
template <typename T>
void batch_taps_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                T* ws);

}  // namespace fastconv::algo
