// FFT convolution: overlap-save tiles, real-to-complex FFTs of our own (fft/fft.h), the
// channel reduction as a complex GEMM per frequency, all three passes, ranks 1-3.
#pragma once
#include <cstdint>
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

// "" when fft can run `pass` of g, else the reason it cannot (NotImplementedError text).
std::string fft_unsupported_reason(const ConvGeometry& g, ConvPass pass);

int64_t fft_workspace_bytes(const ConvGeometry& g, ConvPass pass, int64_t elem_size);

// Plan (csrc/include/fastconv/algorithm.h): the tile layout and workspace, or why not.
std::string fft_plan(ConvPlan& plan);

template <typename T>
void fft_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void fft_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void fft_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws);

}  // namespace fastconv::algo
