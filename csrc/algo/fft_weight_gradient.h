// The FFT convolution's weight-gradient engine (algo/fft_conv.cc runs it for backward_weight).
#pragma once
#include "algo/fft_layout.h"
#include "fastconv/geometry.h"

namespace fastconv::algo::fft_conv {

// grad_w of g from x and grad_y: the frequency-domain correlation of x tiles with grad_y tiles,
// summed over batch and tiles, one inverse FFT per (k, c) and a crop to the kernel taps. L is
// make_layout's layout of backward_weight with total_tiles > 0; ws has L.workspace_bytes.
template <typename T>
void weight_gradient(const ConvGeometry& g, const Layout& L, const T* x, const T* grad_y, T* grad_w,
                     T* ws);

}  // namespace fastconv::algo::fft_conv
