// Tiled / locally connected convolution on the packed GEMM engine (csrc/gemm/gemm.h).
//
// The output positions that use one kernel (one "phase" p = o mod tiles) form a strided
// sub-grid; gathering their input columns (an im2col restricted to the phase) makes each pass
// one GEMM per phase: forward Y_p (K x N*L_p) = W_p (K x C*taps) . X_p, backward_data
// dX_p = W_p^T . G_p (then a col2im), backward_weight dW_p = G_p . X_p^T written straight into
// the weight gradient. Locally connected convolution is the case L_p = 1 (a batch of small
// GEMMs, one per output position); when every phase has as many positions the phases run as
// one gemm_batched call, else one gemm per phase.
#pragma once
#include <cstdint>

#include "fastconv/tiled_conv.h"

namespace fastconv::algo {

// Scratch elements (of the problem's dtype) one pass needs: the gathered columns and the
// phase-ordered output (or gradient) matrix, (C * taps + K) * N * out_spatial.
int64_t tiled_gemm_workspace_elements(const TiledGeometry& g);

template <typename T>
void tiled_gemm_forward(const TiledGeometry& g, const T* x, const T* w, const T* bias,
                        bool bias_per_phase, T* y, T* workspace);
template <typename T>
void tiled_gemm_backward_data(const TiledGeometry& g, const T* grad_y, const T* w, T* grad_x,
                              T* workspace);
template <typename T>
void tiled_gemm_backward_weight(const TiledGeometry& g, const T* x, const T* grad_y, T* grad_w,
                                T* workspace);

}  // namespace fastconv::algo
