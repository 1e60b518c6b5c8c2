// Naive reference pooling kernels (double accumulation), one (n, c) plane per task.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv::ref {

// Divisor of average-pool window (od, oh, ow): PyTorch's rule (avg pooling has no dilation),
// the only place it is written; the direct kernels (csrc/algo/pool.cc) take it from here.
int64_t avg_pool_divisor(const PoolGeometry& g, bool count_include_pad, int64_t od, int64_t oh,
                         int64_t ow);
// Its factor along dim d (0: D, 1: H, 2: W) for output index o: the divisor is the product of
// the three (a row's columns share the D and H factors).
int64_t avg_pool_divisor_dim(const PoolGeometry& g, bool count_include_pad, int d, int64_t o);

template <typename T>
void max_pool_forward(const PoolGeometry& g, const T* x, T* y, int64_t* indices);
template <typename T>
void max_pool_backward(const PoolGeometry& g, const T* grad_y, const T* x, T* grad_x);
template <typename T>
void avg_pool_forward(const PoolGeometry& g, bool count_include_pad, const T* x, T* y);
template <typename T>
void avg_pool_backward(const PoolGeometry& g, bool count_include_pad, const T* grad_y, T* grad_x);
template <typename T>
void lp_pool_forward(const PoolGeometry& g, double p, const T* x, T* y);
template <typename T>
void lp_pool_backward(const PoolGeometry& g, double p, const T* grad_y, const T* x, T* grad_x);
// grad_x (planes x in_count) = 0, then grad_x[plane][indices[j]] += grad_y[plane][j] for every
// output j: max-pool backward from the indices its forward saved. Validates indices first.
template <typename T>
void max_pool_backward_indices(int64_t planes, int64_t in_count, int64_t out_count,
                               const T* grad_y, const int64_t* indices, T* grad_x);

// out (planes x out_count)[plane][j] = src[plane][indices[plane][j]]: the adjoint of
// max_pool_backward_indices (max pooling's second-order pass). Validates indices first.
template <typename T>
void max_pool_gather_indices(int64_t planes, int64_t in_count, int64_t out_count, const T* src,
                             const int64_t* indices, T* out);

template <typename T>
void max_unpool_forward(int64_t planes, int64_t in_count, int64_t out_count, const T* x,
                        const int64_t* indices, T* y);

}  // namespace fastconv::ref
