// Naive reference convolution kernels (double accumulation): fallback and test oracle.
#pragma once
#include "fastconv/geometry.h"

namespace fastconv::ref {

template <typename T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x);
template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* x, const T* grad_y, T* grad_w);

}  // namespace fastconv::ref
