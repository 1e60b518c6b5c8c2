// FFT convolution: overlap-save tiles, real-to-complex FFTs of our own (fft/fft.h), the
// channel reduction as a complex GEMM per frequency, all three passes, ranks 1-3.
#pragma once
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// Plan (csrc/include/fastconv/algorithm.h): the transform lengths, tile and block layout and the
// workspace carve-up, searched once and kept in plan.detail; or why fft cannot run the pass.
std::string fft_plan(ConvPlan& plan);

// Runners: execute plan.detail's layout, never search it again.
template <typename T>
void fft_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void fft_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void fft_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws);

}  // namespace fastconv::algo
