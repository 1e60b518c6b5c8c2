// Naive reference resampling kernels (csrc/ref/resample_ref.h): one element at a time, from the
// definitions, double accumulation.
#include "ref/resample_ref.h"

#include <array>
#include <string>
#include <vector>

#include "common/resample_index.h"
#include "fastconv/status.h"

namespace fastconv::ref {

namespace {

Dims3 spatial3(const Shape& shape, int rank) { return dims3(shape, 2, rank); }

Dims3 scale3(const ResampleProblem& p) { return dims3(p.scale, 0, p.rank); }

}  // namespace

template <typename T>
void check_non_negative(const T* plane, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (!(plane[i] >= T(0))) {
      throw InvalidArgument("x must be non-negative for stochastic pooling, got " +
                            std::to_string(double(plane[i])));
    }
  }
}

template <typename T>
void upsample_nearest(const ResampleProblem& p, const T* x, T* y) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  const int64_t in_n = in[0] * in[1] * in[2], out_n = out[0] * out[1] * out[2];
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t od = 0; od < out[0]; ++od)
      for (int64_t oh = 0; oh < out[1]; ++oh)
        for (int64_t ow = 0; ow < out[2]; ++ow)
          y[pl * out_n + (od * out[1] + oh) * out[2] + ow] =
              x[pl * in_n + ((od / s[0]) * in[1] + oh / s[1]) * in[2] + ow / s[2]];
}

template <typename T>
void upsample_nearest_backward(const ResampleProblem& p, const T* grad_y, T* grad_x) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  const int64_t in_n = in[0] * in[1] * in[2], out_n = out[0] * out[1] * out[2];
  std::vector<double> acc(static_cast<size_t>(in_n));
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t od = 0; od < out[0]; ++od)
      for (int64_t oh = 0; oh < out[1]; ++oh)
        for (int64_t ow = 0; ow < out[2]; ++ow)
          acc[size_t(((od / s[0]) * in[1] + oh / s[1]) * in[2] + ow / s[2])] +=
              double(grad_y[pl * out_n + (od * out[1] + oh) * out[2] + ow]);
    for (int64_t i = 0; i < in_n; ++i) grad_x[pl * in_n + i] = T(acc[size_t(i)]);
  }
}

namespace {

// The 2**rank (index, weight) corners of every output element, for one plane's geometry.
template <typename Fn>
void for_each_linear_corner(const ResampleProblem& p, Fn&& fn) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  LinearTable t[3];
  for (int k = 0; k < 3; ++k) t[k] = linear_table(in[size_t(k)], s[size_t(k)], p.align_corners);
  for (int64_t od = 0; od < out[0]; ++od)
    for (int64_t oh = 0; oh < out[1]; ++oh)
      for (int64_t ow = 0; ow < out[2]; ++ow) {
        const int64_t o = (od * out[1] + oh) * out[2] + ow;
        const int64_t pos[3] = {od, oh, ow};
        for (int corner = 0; corner < 8; ++corner) {
          double w = 1;
          int64_t idx = 0;
          bool skip = false;
          for (int k = 0; k < 3; ++k) {
            const bool hi = (corner >> (2 - k)) & 1;
            const LinearTable& tk = t[k];
            if (in[size_t(k)] == 1 && s[size_t(k)] == 1 && hi) skip = true;  // unused dim
            const size_t q = size_t(pos[k]);
            w *= hi ? tk.w1[q] : tk.w0[q];
            idx = idx * in[size_t(k)] + (hi ? tk.i1[q] : tk.i0[q]);
          }
          if (!skip) fn(o, idx, w);
        }
      }
}

}  // namespace

template <typename T>
void upsample_linear(const ResampleProblem& p, const T* x, T* y) {
  const int64_t in_n = checked_product(Shape(p.x_shape.begin() + 2, p.x_shape.end()), "x");
  const int64_t out_n = checked_product(Shape(p.y_shape.begin() + 2, p.y_shape.end()), "y");
  if (out_n == 0) return;
  std::vector<double> acc(static_cast<size_t>(out_n));
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const T* xp = x + pl * in_n;
    for_each_linear_corner(p, [&](int64_t o, int64_t i, double w) {
      acc[size_t(o)] += w * double(xp[i]);
    });
    for (int64_t o = 0; o < out_n; ++o) y[pl * out_n + o] = T(acc[size_t(o)]);
  }
}

template <typename T>
void upsample_linear_backward(const ResampleProblem& p, const T* grad_y, T* grad_x) {
  const int64_t in_n = checked_product(Shape(p.x_shape.begin() + 2, p.x_shape.end()), "x");
  const int64_t out_n = checked_product(Shape(p.y_shape.begin() + 2, p.y_shape.end()), "y");
  std::vector<double> acc(static_cast<size_t>(in_n));
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const T* gp = grad_y + pl * out_n;
    if (out_n > 0) {
      for_each_linear_corner(p, [&](int64_t o, int64_t i, double w) {
        acc[size_t(i)] += w * double(gp[o]);
      });
    }
    for (int64_t i = 0; i < in_n; ++i) grad_x[pl * in_n + i] = T(acc[size_t(i)]);
  }
}

template <typename T>
void pixel_shuffle_copy(const ResampleProblem& p, bool to_large, const T* src, T* dst) {
  const bool shuffle = p.kind == ResampleKind::kPixelShuffle;
  const Shape& large = shuffle ? p.y_shape : p.x_shape;
  const Shape& deep = shuffle ? p.x_shape : p.y_shape;
  const Dims3 L = spatial3(large, p.rank), S = spatial3(deep, p.rank);
  const int64_t r = p.scale[0];
  const int64_t block = deep[1] / large[1];
  const int64_t n = large[0], c = large[1];
  const int64_t l_n = L[0] * L[1] * L[2], s_n = S[0] * S[1] * S[2];
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ic = 0; ic < c; ++ic)
      for (int64_t ld = 0; ld < L[0]; ++ld)
        for (int64_t lh = 0; lh < L[1]; ++lh)
          for (int64_t lw = 0; lw < L[2]; ++lw) {
            // Offset within the r**rank block: the sub-pixel position, row-major over the
            // rank's dims (D, H, W); unused leading dims contribute nothing.
            int64_t off = 0;
            const int64_t pos[3] = {ld, lh, lw};
            for (int k = 3 - p.rank; k < 3; ++k) off = off * r + pos[k] % r;
            const int64_t sd = p.rank >= 3 ? ld / r : ld, sh = p.rank >= 2 ? lh / r : lh;
            const int64_t sw = lw / r;
            const int64_t li = (in * c + ic) * l_n + (ld * L[1] + lh) * L[2] + lw;
            const int64_t di = (in * deep[1] + ic * block + off) * s_n + (sd * S[1] + sh) * S[2] + sw;
            if (to_large)
              dst[li] = src[di];
            else
              dst[di] = src[li];
          }
}

namespace {

// The real elements of window (od, oh, ow), in order: fn(flat offset in the plane).
template <typename Fn>
void for_window(const PoolGeometry& g, int64_t od, int64_t oh, int64_t ow, Fn&& fn) {
  const int64_t o[3] = {od, oh, ow};
  int64_t lo[3], hi[3];
  for (int k = 0; k < 3; ++k) {
    const int64_t start = o[k] * g.stride[k] - g.pad_lo[k];
    lo[k] = start < 0 ? 0 : start;
    hi[k] = start + g.kernel[k] < g.in[k] ? start + g.kernel[k] : g.in[k];
  }
  for (int64_t d = lo[0]; d < hi[0]; ++d)
    for (int64_t h = lo[1]; h < hi[1]; ++h)
      for (int64_t w = lo[2]; w < hi[2]; ++w) fn((d * g.in[1] + h) * g.in[2] + w);
}

}  // namespace

template <typename T>
void stochastic_pool(const ResampleProblem& p, uint64_t seed, const T* x, T* y,
                     int64_t* indices) {
  const PoolGeometry& g = p.g;
  const int64_t in_n = g.in_spatial(), out_n = g.out_spatial();
  for (int64_t pl = 0; pl < g.n * g.c; ++pl) {
    const T* xp = x + pl * in_n;
    check_non_negative(xp, in_n);
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          const int64_t o = (od * g.out[1] + oh) * g.out[2] + ow;
          double sum = 0, sq = 0;
          int64_t first = -1;
          for_window(g, od, oh, ow, [&](int64_t i) {
            const double v = double(xp[i]);
            sum += v;
            sq += v * v;
            if (first < 0) first = i;
          });
          if (!p.training) {
            y[pl * out_n + o] = T(sum > 0 ? sq / sum : 0.0);
            continue;
          }
          int64_t pick = first;
          if (sum > 0) {
            const double target = philox_uniform(seed, uint64_t(pl * out_n + o)) * sum;
            double cum = 0;
            bool found = false;
            for_window(g, od, oh, ow, [&](int64_t i) {
              const double v = double(xp[i]);
              if (found || v <= 0) return;
              cum += v;
              pick = i;  // the last positive element if rounding leaves target >= cum
              if (target < cum) found = true;
            });
          }
          y[pl * out_n + o] = xp[pick];
          if (indices) indices[pl * out_n + o] = pick;
        }
  }
}

template <typename T>
void stochastic_pool_eval_backward(const ResampleProblem& p, const T* grad_y, const T* x,
                                   T* grad_x) {
  const PoolGeometry& g = p.g;
  const int64_t in_n = g.in_spatial(), out_n = g.out_spatial();
  std::vector<double> acc(static_cast<size_t>(in_n));
  for (int64_t pl = 0; pl < g.n * g.c; ++pl) {
    const T* xp = x + pl * in_n;
    check_non_negative(xp, in_n);
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          double sum = 0, sq = 0;
          for_window(g, od, oh, ow, [&](int64_t i) {
            const double v = double(xp[i]);
            sum += v;
            sq += v * v;
          });
          if (!(sum > 0)) continue;
          // d/dx_i (Q / S) = (2 x_i S - Q) / S^2 = (2 x_i - y) / S
          const double yv = sq / sum;
          const double gy = double(grad_y[pl * out_n + (od * g.out[1] + oh) * g.out[2] + ow]);
          for_window(g, od, oh, ow, [&](int64_t i) {
            acc[size_t(i)] += gy * (2 * double(xp[i]) - yv) / sum;
          });
        }
    for (int64_t i = 0; i < in_n; ++i) grad_x[pl * in_n + i] = T(acc[size_t(i)]);
  }
}

#define FASTCONV_RESAMPLE_REF(T)                                                              \
  template void check_non_negative<T>(const T*, int64_t);                                    \
  template void upsample_nearest<T>(const ResampleProblem&, const T*, T*);                   \
  template void upsample_nearest_backward<T>(const ResampleProblem&, const T*, T*);          \
  template void upsample_linear<T>(const ResampleProblem&, const T*, T*);                    \
  template void upsample_linear_backward<T>(const ResampleProblem&, const T*, T*);           \
  template void pixel_shuffle_copy<T>(const ResampleProblem&, bool, const T*, T*);           \
  template void stochastic_pool<T>(const ResampleProblem&, uint64_t, const T*, T*, int64_t*); \
  template void stochastic_pool_eval_backward<T>(const ResampleProblem&, const T*, const T*, T*);
FASTCONV_RESAMPLE_REF(float)
FASTCONV_RESAMPLE_REF(double)
#undef FASTCONV_RESAMPLE_REF

}  // namespace fastconv::ref
