// Strided backward data by stride phases, with batch folding (csrc/algo/phase_backward_data.cc);
// implicit GEMM runs it for every stride > 1.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv::algo {

// Positions of the largest phase grid of one image (what batch folding multiplies).
int64_t phase_backward_data_positions(const ConvGeometry& g);

// Workspace elements for `fold` images per GEMM: the phase-ordered weight of one group and one
// GEMM block.
int64_t phase_backward_data_workspace(const ConvGeometry& g, int64_t fold);

// grad_x (N, C, *in) from grad_y (N, K, *out) and w (K, C/G, *kernel); every element of
// grad_x is written. ws: phase_backward_data_workspace(g, fold) elements.
template <typename T>
void phase_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x, T* ws,
                         int64_t fold);

}  // namespace fastconv::algo
