// Pooling ops: dtype dispatch onto the pooling kernels.
#include "common/dtype_dispatch.h"
#include "fastconv/algorithm.h"
#include "ref/pool_ref.h"

namespace fastconv {

void max_pool_forward(const PoolGeometry& g, DType t, const void* x, void* y, int64_t* indices) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::max_pool_forward<T>(g, static_cast<const T*>(x), static_cast<T*>(y), indices);
  });
}

void max_pool_backward(const PoolGeometry& g, DType t, const void* grad_y, const void* x,
                       void* grad_x) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::max_pool_backward<T>(g, static_cast<const T*>(grad_y), static_cast<const T*>(x),
                              static_cast<T*>(grad_x));
  });
}

void avg_pool_forward(const PoolGeometry& g, DType t, bool count_include_pad, const void* x,
                      void* y) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::avg_pool_forward<T>(g, count_include_pad, static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void avg_pool_backward(const PoolGeometry& g, DType t, bool count_include_pad,
                       const void* grad_y, void* grad_x) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::avg_pool_backward<T>(g, count_include_pad, static_cast<const T*>(grad_y),
                              static_cast<T*>(grad_x));
  });
}

void lp_pool_forward(const PoolGeometry& g, DType t, double p, const void* x, void* y) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::lp_pool_forward<T>(g, p, static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void lp_pool_backward(const PoolGeometry& g, DType t, double p, const void* grad_y,
                      const void* x, void* grad_x) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::lp_pool_backward<T>(g, p, static_cast<const T*>(grad_y), static_cast<const T*>(x),
                             static_cast<T*>(grad_x));
  });
}

void max_pool_backward_indices(int64_t planes, int64_t in_count, int64_t out_count, DType t,
                               const void* grad_y, const int64_t* indices, void* grad_x) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::max_pool_backward_indices<T>(planes, in_count, out_count, static_cast<const T*>(grad_y),
                                      indices, static_cast<T*>(grad_x));
  });
}

void max_unpool_forward(int64_t planes, int64_t in_count, int64_t out_count, DType t,
                        const void* x, const int64_t* indices, void* y) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::max_unpool_forward<T>(planes, in_count, out_count, static_cast<const T*>(x), indices,
                               static_cast<T*>(y));
  });
}

}  // namespace fastconv
