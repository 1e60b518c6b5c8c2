// Strided convolution forward by stride phases (space-to-depth), for implicit GEMM: see
// csrc/algo/phase_forward.cc. Also the shared forward GEMM of implicit_gemm.cc.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv::algo {

// Whether phase_forward runs g: some stride > 1, no dilation, every kernel extent a multiple
// of its stride (so the phase kernels have no zero taps).
bool phase_forward_applies(const ConvGeometry& g);

// Workspace elements of phase_forward.
int64_t phase_forward_workspace(const ConvGeometry& g);

// y (N, K, *out) = conv(x, w) (+ bias): x is split into its stride phases once (s * s
// sub-images of stride-1 positions, padding applied), which turns the conv into a stride-1,
// unpadded one over C * prod(stride) channels with kernel / stride taps; the GEMM's panels
// then copy contiguous runs instead of gathering every other element.
template <typename T>
void phase_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T* ws);

// implicit_gemm.cc: the forward GEMMs of g over g.n images (fold images per GEMM), and the
// workspace elements they need.
template <typename T>
void implicit_forward_images(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                             T* ws);
int64_t implicit_forward_workspace(const ConvGeometry& g);

}  // namespace fastconv::algo
