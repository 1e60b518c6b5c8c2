// Naive reference resampling kernels (double accumulation): upsampling, pixel (un)shuffle,
// stochastic pooling. Oracle for the fast paths (csrc/algo/resample.cc, stochastic_pool.cc)
// and the fallback for what they decline.
#pragma once
#include <cstdint>

#include "fastconv/resample.h"

namespace fastconv::ref {

template <typename T>
void upsample_nearest(const ResampleProblem& p, const T* x, T* y);
template <typename T>
void upsample_nearest_backward(const ResampleProblem& p, const T* grad_y, T* grad_x);
template <typename T>
void upsample_linear(const ResampleProblem& p, const T* x, T* y);
template <typename T>
void upsample_linear_backward(const ResampleProblem& p, const T* grad_y, T* grad_x);
// Copies between the pixel-shuffle layouts: `large` (N, C, *spatial * r) and `deep`
// (N, C * r**rank, *spatial); to_large: deep -> large (pixel_shuffle), else large -> deep.
template <typename T>
void pixel_shuffle_copy(const ResampleProblem& p, bool to_large, const T* src, T* dst);
// Stochastic pooling forward: training samples one element per window with probability
// x_i / sum(window) from philox_uniform(seed, flat output index); eval: sum(x^2) / sum(x).
template <typename T>
void stochastic_pool(const ResampleProblem& p, uint64_t seed, const T* x, T* y,
                     int64_t* indices);
// The exact derivative of the eval formula (0 for an all-zero window).
template <typename T>
void stochastic_pool_eval_backward(const ResampleProblem& p, const T* grad_y, const T* x,
                                   T* grad_x);

// Throws InvalidArgument naming x unless every element of `plane` (count values) is >= 0.
template <typename T>
void check_non_negative(const T* plane, int64_t count);

}  // namespace fastconv::ref
