// The direct algorithm's dense path (groups == 1): every pass as register-blocked row kernels
// (csrc/ukernels/rows/) that vectorise along the output row and reduce over (channel, tap)
// terms, reading unit-stride runs of zero-padded, phase-split planes:
//   forward         -> the input planes of all channels; a block of output channels x a few
//                      vectors of one output row per kernel step;
//   backward data   -> one pass per stride phase of the input: each phase of grad_x is a
//                      unit-stride correlation of the zero-padded grad_y planes with the taps
//                      of that phase (a block of input channels x a vector of the phase row);
//   backward weight -> the input planes against grad_y rows, a block of output channels x
//                      terms held over a range of rows.
// So a first layer with 3 input channels and stride 2 or 4 runs at the same FMA rate as a wide
// one: nothing is vectorised over the few channels, and no strided gather sits in a loop.
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether the row path runs `pass` of g (dense convolutions, non-negative low padding).
bool rows_serve(const ConvGeometry& g, ConvPass pass);
// Whether its forward reads the input two taps at a time (2 taps at stride 2 along the row,
// nothing padded: RowsKernels::forward_pairs, each output row's source runs copied into a
// thread's scratch first) instead of from phase-split planes.
bool rows_pairs(const ConvGeometry& g, ConvPass pass);
// Whether its forward runs in bands of output rows, each slot filling the input rows of its
// band into its own buffer (2-D, or a kernel depth of 1; several rows per slot; not by pairs
// nor by channels) instead of every channel's whole plane first.
bool rows_bands(const ConvGeometry& g, ConvPass pass, DType t, int threads);
// The SIMD width in bits of the row kernels `pass` runs along its rows where it is not the active
// ISA level's (rows_kernels_for_row: 256 for short forward / weight-gradient rows where AVX-512
// runs on 256-bit units), else 0. For explain.
int rows_narrow_bits(const ConvGeometry& g, ConvPass pass, DType t);
// Scratch the row path's `pass` takes for `threads` threads, in bytes.
int64_t rows_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads);

template <typename T>
void rows_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void rows_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void rows_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws);

}  // namespace fastconv::algo
