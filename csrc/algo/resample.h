// Fast paths of the resampling ops (csrc/include/fastconv/resample.h): upsampling as separable
// row passes and pixel (un)shuffle as strided row copies (resample.cc), stochastic pooling
// (stochastic_pool.cc); parallel over the (n, c) planes. csrc/ops/resample.cc calls them.
#pragma once
#include <cstdint>

#include "fastconv/resample.h"

namespace fastconv::algo {

// Planes per parallel_for chunk for planes of `elems` elements: small planes are batched so a
// task carries at least ~32K elements of work (tiny calls then run inline, without waking the
// pool or an OpenMP team).
inline int64_t plane_grain(int64_t elems) {
  return elems >= 32768 ? 1 : 32768 / (elems > 0 ? elems : 1);
}

template <typename T>
void upsample_nearest(const ResampleProblem& p, const T* x, T* y);
template <typename T>
void upsample_nearest_backward(const ResampleProblem& p, const T* grad_y, T* grad_x);
template <typename T>
void upsample_linear(const ResampleProblem& p, const T* x, T* y);
template <typename T>
void upsample_linear_backward(const ResampleProblem& p, const T* grad_y, T* grad_x);
// As ref::pixel_shuffle_copy: deep (N, C*r**rank, *S) <-> large (N, C, *S*r).
template <typename T>
void pixel_shuffle_copy(const ResampleProblem& p, bool to_large, const T* src, T* dst);
// As ref::stochastic_pool / stochastic_pool_eval_backward, bit for bit (same sums, same order).
template <typename T>
void stochastic_pool(const ResampleProblem& p, uint64_t seed, const T* x, T* y,
                     int64_t* indices);
template <typename T>
void stochastic_pool_eval_backward(const ResampleProblem& p, const T* grad_y, const T* x,
                                   T* grad_x);

}  // namespace fastconv::algo
