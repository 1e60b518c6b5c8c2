// Reference pooling: every window is visited through one iterator so max/avg/lp and their
// gradients agree on which input positions a window covers.
#include "ref/pool_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "fastconv/parallel.h"
#include "fastconv/status.h"

namespace fastconv::ref {
namespace {

// Calls fn(plane_offset) for every in-bounds input position of output window (od, oh, ow).
template <typename Fn>
inline void for_each_tap(const PoolGeometry& g, int64_t od, int64_t oh, int64_t ow, Fn&& fn) {
  for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
    const int64_t id = od * g.stride[0] - g.pad_lo[0] + kd * g.dilation[0];
    if (id < 0 || id >= g.in[0]) continue;
    for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
      const int64_t ih = oh * g.stride[1] - g.pad_lo[1] + kh * g.dilation[1];
      if (ih < 0 || ih >= g.in[1]) continue;
      for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
        const int64_t iw = ow * g.stride[2] - g.pad_lo[2] + kw * g.dilation[2];
        if (iw < 0 || iw >= g.in[2]) continue;
        fn((id * g.in[1] + ih) * g.in[2] + iw);
      }
    }
  }
}

// Calls fn(plane, out_offset, od, oh, ow) for every output element, parallel over planes.
template <typename Fn>
void for_each_output(const PoolGeometry& g, Fn&& fn) {
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane)
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow)
            fn(plane, (od * g.out[1] + oh) * g.out[2] + ow, od, oh, ow);
  });
}

// Window position of the maximum (NaN wins, as in PyTorch), or -1 for an empty window.
template <typename T>
inline int64_t argmax(const PoolGeometry& g, const T* xp, int64_t od, int64_t oh, int64_t ow) {
  int64_t best = -1;
  T best_v = -std::numeric_limits<T>::infinity();
  for_each_tap(g, od, oh, ow, [&](int64_t i) {
    const T v = xp[i];
    if (best < 0 || v > best_v || std::isnan(v)) {
      best = i;
      best_v = v;
    }
  });
  return best;
}

// Every index must lie in [0, bound) or be kNoIndex (`what` names the bound), checked before
// anything is written so a bad one leaves no partial result behind.
void check_indices(const int64_t* indices, int64_t count, int64_t bound, const char* what) {
  for (int64_t i = 0; i < count; ++i) {
    if (indices[i] != kNoIndex && (indices[i] < 0 || indices[i] >= bound))
      throw InvalidArgument(bad_index_message(indices[i], bound, what));
  }
}

template <typename T>
double lp_window(const PoolGeometry& g, double p, const T* xp, int64_t od, int64_t oh, int64_t ow) {
  double s = 0.0;
  for_each_tap(g, od, oh, ow, [&](int64_t i) { s += std::pow(double(xp[i]), p); });
  return std::pow(s, 1.0 / p);
}

}  // namespace

int64_t avg_pool_divisor_dim(const PoolGeometry& g, bool count_include_pad, int d, int64_t o) {
  const int64_t start = o * g.stride[d] - g.pad_lo[d];
  const int64_t end = std::min(start + g.kernel[d], g.in[d] + g.pad_hi[d]);
  return count_include_pad ? end - start : std::min(end, g.in[d]) - std::max<int64_t>(start, 0);
}

int64_t avg_pool_divisor(const PoolGeometry& g, bool count_include_pad, int64_t od, int64_t oh,
                         int64_t ow) {
  return avg_pool_divisor_dim(g, count_include_pad, 0, od) *
         avg_pool_divisor_dim(g, count_include_pad, 1, oh) *
         avg_pool_divisor_dim(g, count_include_pad, 2, ow);
}

template <typename T>
void max_pool_forward(const PoolGeometry& g, const T* x, T* y, int64_t* indices) {
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  for_each_output(g, [&](int64_t plane, int64_t o, int64_t od, int64_t oh, int64_t ow) {
    const T* xp = x + plane * in_sp;
    const int64_t i = argmax(g, xp, od, oh, ow);
    y[plane * out_sp + o] = i < 0 ? -std::numeric_limits<T>::infinity() : xp[i];
    if (indices) indices[plane * out_sp + o] = i;
  });
}

template <typename T>
void max_pool_backward(const PoolGeometry& g, const T* grad_y, const T* x, T* grad_x) {
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = x + plane * in_sp;
      T* gx = grad_x + plane * in_sp;
      for (int64_t i = 0; i < in_sp; ++i) gx[i] = T(0);
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            const int64_t i = argmax(g, xp, od, oh, ow);
            if (i >= 0) gx[i] += grad_y[plane * out_sp + (od * g.out[1] + oh) * g.out[2] + ow];
          }
    }
  });
}

template <typename T>
void avg_pool_forward(const PoolGeometry& g, bool count_include_pad, const T* x, T* y) {
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  for_each_output(g, [&](int64_t plane, int64_t o, int64_t od, int64_t oh, int64_t ow) {
    const T* xp = x + plane * in_sp;
    double s = 0.0;
    for_each_tap(g, od, oh, ow, [&](int64_t i) { s += double(xp[i]); });
    const int64_t div = avg_pool_divisor(g, count_include_pad, od, oh, ow);
    y[plane * out_sp + o] = T(div > 0 ? s / double(div) : 0.0);
  });
}

template <typename T>
void avg_pool_backward(const PoolGeometry& g, bool count_include_pad, const T* grad_y,
                       T* grad_x) {
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      T* gx = grad_x + plane * in_sp;
      for (int64_t i = 0; i < in_sp; ++i) gx[i] = T(0);
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            const int64_t div = avg_pool_divisor(g, count_include_pad, od, oh, ow);
            if (div <= 0) continue;
            const double v =
                double(grad_y[plane * out_sp + (od * g.out[1] + oh) * g.out[2] + ow]) / double(div);
            for_each_tap(g, od, oh, ow, [&](int64_t i) { gx[i] = T(double(gx[i]) + v); });
          }
    }
  });
}

template <typename T>
void lp_pool_forward(const PoolGeometry& g, double p, const T* x, T* y) {
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  for_each_output(g, [&](int64_t plane, int64_t o, int64_t od, int64_t oh, int64_t ow) {
    y[plane * out_sp + o] = T(lp_window(g, p, x + plane * in_sp, od, oh, ow));
  });
}

template <typename T>
void lp_pool_backward(const PoolGeometry& g, double p, const T* grad_y, const T* x, T* grad_x) {
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = x + plane * in_sp;
      T* gx = grad_x + plane * in_sp;
      for (int64_t i = 0; i < in_sp; ++i) gx[i] = T(0);
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            const double y = lp_window(g, p, xp, od, oh, ow);
            if (y == 0.0) continue;  // the norm is not differentiable there; use 0
            // d/dx_i (sum x^p)^(1/p) = x_i^(p-1) * y^(1-p)
            const double scale =
                double(grad_y[plane * out_sp + (od * g.out[1] + oh) * g.out[2] + ow]) *
                std::pow(y, 1.0 - p);
            for_each_tap(g, od, oh, ow, [&](int64_t i) {
              gx[i] = T(double(gx[i]) + scale * std::pow(double(xp[i]), p - 1.0));
            });
          }
    }
  });
}

template <typename T>
void max_pool_backward_indices(int64_t planes, int64_t in_count, int64_t out_count,
                               const T* grad_y, const int64_t* indices, T* grad_x) {
  check_indices(indices, planes * out_count, in_count, "the input plane size");
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      T* gx = grad_x + plane * in_count;
      const T* gy = grad_y + plane * out_count;
      const int64_t* idx = indices + plane * out_count;
      for (int64_t i = 0; i < in_count; ++i) gx[i] = T(0);
      for (int64_t j = 0; j < out_count; ++j)
        if (idx[j] != kNoIndex) gx[idx[j]] += gy[j];
    }
  });
}

template <typename T>
void max_pool_gather_indices(int64_t planes, int64_t in_count, int64_t out_count, const T* src,
                             const int64_t* indices, T* out) {
  check_indices(indices, planes * out_count, in_count, "the input plane size");
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* s = src + plane * in_count;
      const int64_t* idx = indices + plane * out_count;
      T* o = out + plane * out_count;
      for (int64_t j = 0; j < out_count; ++j) o[j] = idx[j] == kNoIndex ? T(0) : s[idx[j]];
    }
  });
}

template <typename T>
void max_unpool_forward(int64_t planes, int64_t in_count, int64_t out_count, const T* x,
                        const int64_t* indices, T* y) {
  check_indices(indices, planes * in_count, out_count, "the output plane size");
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      T* yp = y + plane * out_count;
      for (int64_t i = 0; i < out_count; ++i) yp[i] = T(0);
      for (int64_t i = 0; i < in_count; ++i)
        if (indices[plane * in_count + i] != kNoIndex)
          yp[indices[plane * in_count + i]] = x[plane * in_count + i];
    }
  });
}

#define FASTCONV_INSTANTIATE_POOL(T)                                                          \
  template void max_pool_forward<T>(const PoolGeometry&, const T*, T*, int64_t*);            \
  template void max_pool_backward<T>(const PoolGeometry&, const T*, const T*, T*);           \
  template void avg_pool_forward<T>(const PoolGeometry&, bool, const T*, T*);                \
  template void avg_pool_backward<T>(const PoolGeometry&, bool, const T*, T*);               \
  template void lp_pool_forward<T>(const PoolGeometry&, double, const T*, T*);               \
  template void lp_pool_backward<T>(const PoolGeometry&, double, const T*, const T*, T*);    \
  template void max_pool_backward_indices<T>(int64_t, int64_t, int64_t, const T*,            \
                                             const int64_t*, T*);                              \
  template void max_pool_gather_indices<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, \
                                           T*);                                                \
  template void max_unpool_forward<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, T*);
FASTCONV_INSTANTIATE_POOL(float)
FASTCONV_INSTANTIATE_POOL(double)
#undef FASTCONV_INSTANTIATE_POOL

}  // namespace fastconv::ref
