// Naive reference kernels of tiled / locally connected convolution (double accumulation,
// one thread): fallback for tests and the oracle the GEMM engine is compared with.
#pragma once
#include "fastconv/tiled_conv.h"

namespace fastconv::ref {

// bias: null, (K,) or, with bias_per_phase, (K, *tiles).
template <typename T>
void tiled_conv_forward(const TiledGeometry& g, const T* x, const T* w, const T* bias,
                        bool bias_per_phase, T* y);
template <typename T>
void tiled_conv_backward_data(const TiledGeometry& g, const T* grad_y, const T* w, T* grad_x);
template <typename T>
void tiled_conv_backward_weight(const TiledGeometry& g, const T* x, const T* grad_y, T* grad_w);

}  // namespace fastconv::ref
