// Upsampling and pixel (un)shuffle on contiguous rows, parallel over the (n, c) planes
// (csrc/algo/resample.h). Linear upsampling is separable: one pass per spatial dim, the last
// dim (W) by a two-tap gather per output, the others as blends of whole rows; its backward is
// the same passes transposed, in reverse order. Scratch: two buffers per chunk of planes.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "algo/resample.h"
#include "common/resample_index.h"
#include "fastconv/parallel.h"

namespace fastconv::algo {

namespace {

Dims3 spatial3(const Shape& shape, int rank) { return dims3(shape, 2, rank); }

Dims3 scale3(const ResampleProblem& p) { return dims3(p.scale, 0, p.rank); }

int64_t count(const Dims3& d) { return d[0] * d[1] * d[2]; }

// One dim's interpolation table in the element type (indices as int64, weights as T).
template <typename T>
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<T> w0, w1;
  // Scale 2 without align_corners, at least 2 inputs: the fixed weights 1/4 and 3/4 (the
  // common case, written out so the W passes vectorise; the tables give the same values).
  bool half = false;
  // Other scales without align_corners, at least 3 inputs: the weights repeat with period
  // `scale` away from the edges; phase r reads x[i + shift[r]] and the next one.
  int64_t period = 0;
  std::vector<int64_t> shift;
  std::vector<T> a, b;
  Taps(const LinearTable& t, int64_t in, int64_t scale, bool align_corners)
      : i0(t.i0), i1(t.i1), half(scale == 2 && !align_corners && in >= 2) {
    w0.assign(t.w0.begin(), t.w0.end());
    w1.assign(t.w1.begin(), t.w1.end());
    if (!half && scale > 1 && !align_corners && in >= 3) {
      period = scale;
      for (int64_t r = 0; r < scale; ++r) {  // input 1's outputs: clear of both edges
        shift.push_back(t.i0[size_t(scale + r)] - 1);
        a.push_back(w0[size_t(scale + r)]);
        b.push_back(w1[size_t(scale + r)]);
      }
    }
  }
};

template <typename T>
Taps<T> taps(const Dims3& in, const Dims3& s, int d, bool align_corners) {
  return Taps<T>(linear_table(in[size_t(d)], s[size_t(d)], align_corners), in[size_t(d)],
                 s[size_t(d)], align_corners);
}

// The W pass of a half table: y[2i] = x[i-1]/4 + 3x[i]/4, y[2i+1] = 3x[i]/4 + x[i+1]/4.
template <typename T>
inline void gather_half(int64_t in, const T* __restrict x, T* __restrict y) {
  const T q = T(0.25), t = T(0.75);
  y[0] = x[0];
  for (int64_t i = 1; i < in; ++i) {
    y[2 * i - 1] = t * x[i - 1] + q * x[i];
    y[2 * i] = q * x[i - 1] + t * x[i];
  }
  y[2 * in - 1] = x[in - 1];
}

// Its transpose: x[i] = g[2i-1]/4 + 3g[2i]/4 + 3g[2i+1]/4 + g[2i+2]/4 (edges: weight 1).
template <typename T>
inline void scatter_half(int64_t in, const T* __restrict g, T* __restrict x) {
  const T q = T(0.25), t = T(0.75);
  x[0] = g[0] + t * g[1] + q * g[2];
  for (int64_t i = 1; i < in - 1; ++i)
    x[i] = q * g[2 * i - 1] + t * g[2 * i] + t * g[2 * i + 1] + q * g[2 * i + 2];
  x[in - 1] = q * g[2 * in - 3] + t * g[2 * in - 2] + g[2 * in - 1];
}

// y[o] = w0[o] * x[i0[o]] + w1[o] * x[i1[o]] for o < n.
template <typename T>
inline void gather_row(const Taps<T>& t, int64_t n, const T* __restrict x, T* __restrict y) {
  const int64_t* i0 = t.i0.data();
  const int64_t* i1 = t.i1.data();
  const T* w0 = t.w0.data();
  const T* w1 = t.w1.data();
  if (t.half) return gather_half(n / 2, x, y);
  if (t.period == 0) {
    for (int64_t o = 0; o < n; ++o) y[o] = w0[o] * x[i0[o]] + w1[o] * x[i1[o]];
    return;
  }
  const int64_t s = t.period, in = n / s;
  for (int64_t o = 0; o < s; ++o) y[o] = w0[o] * x[i0[o]] + w1[o] * x[i1[o]];
  for (int64_t r = 0; r < s; ++r) {  // one phase at a time: contiguous reads, strided writes
    const T* xr = x + t.shift[size_t(r)];
    const T a = t.a[size_t(r)], b = t.b[size_t(r)];
    T* yr = y + r;
    for (int64_t i = 1; i < in - 1; ++i) yr[i * s] = a * xr[i] + b * xr[i + 1];
  }
  for (int64_t o = (in - 1) * s; o < n; ++o) y[o] = w0[o] * x[i0[o]] + w1[o] * x[i1[o]];
}

// y = a * r0 + b * r1 over n elements.
template <typename T>
inline void blend_rows(T a, const T* __restrict r0, T b, const T* __restrict r1, int64_t n,
                       T* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a * r0[i] + b * r1[i];
}

// y += a * r over n elements.
template <typename T>
inline void axpy_row(T a, const T* __restrict r, int64_t n, T* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * r[i];
}

// The transposed W pass: x[i0[o]] += w0[o] * y[o], x[i1[o]] += w1[o] * y[o] (x zeroed first).
template <typename T>
inline void scatter_row(const Taps<T>& t, int64_t n, int64_t in, const T* __restrict y,
                        T* __restrict x) {
  if (t.half) return scatter_half(in, y, x);
  std::fill(x, x + in, T(0));
  for (int64_t o = 0; o < n; ++o) {
    x[t.i0[size_t(o)]] += t.w0[size_t(o)] * y[o];
    x[t.i1[size_t(o)]] += t.w1[size_t(o)] * y[o];
  }
}

}  // namespace

template <typename T>
void upsample_nearest(const ResampleProblem& p, const T* x, T* y) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  const int64_t in_n = count(in), out_n = count(out), sw = s[2], wi = in[2], wo = out[2];
  if (out_n == 0) return;
  parallel_for(p.planes(), plane_grain(out_n), [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* xp = x + pl * in_n;
      T* yp = y + pl * out_n;
      for (int64_t od = 0; od < out[0]; ++od)
        for (int64_t oh = 0; oh < out[1]; ++oh) {
          T* row = yp + (od * out[1] + oh) * wo;
          if (od % s[0] != 0 || oh % s[1] != 0) {  // a copy of the source row's first output
            const int64_t first = ((od - od % s[0]) * out[1] + (oh - oh % s[1])) * wo;
            std::memcpy(row, yp + first, size_t(wo) * sizeof(T));
            continue;
          }
          const T* src = xp + ((od / s[0]) * in[1] + oh / s[1]) * wi;
          if (sw == 1) {
            std::memcpy(row, src, size_t(wo) * sizeof(T));
          } else if (sw == 2) {
            for (int64_t i = 0; i < wi; ++i) row[2 * i] = row[2 * i + 1] = src[i];
          } else {
            for (int64_t i = 0; i < wi; ++i)
              for (int64_t r = 0; r < sw; ++r) row[i * sw + r] = src[i];
          }
        }
    }
  });
}

template <typename T>
void upsample_nearest_backward(const ResampleProblem& p, const T* grad_y, T* grad_x) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  const int64_t in_n = count(in), out_n = count(out), sw = s[2], wi = in[2], wo = out[2];
  parallel_for(p.planes(), plane_grain(out_n), [&](int64_t begin, int64_t end) {
    std::vector<T> acc(static_cast<size_t>(wo));
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* gp = grad_y + pl * out_n;
      T* xp = grad_x + pl * in_n;
      for (int64_t d = 0; d < in[0]; ++d)
        for (int64_t h = 0; h < in[1]; ++h) {
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t od = d * s[0]; od < (d + 1) * s[0]; ++od)
            for (int64_t oh = h * s[1]; oh < (h + 1) * s[1]; ++oh)
              axpy_row(T(1), gp + (od * out[1] + oh) * wo, wo, acc.data());
          T* row = xp + (d * in[1] + h) * wi;
          for (int64_t i = 0; i < wi; ++i) {
            T v = 0;
            for (int64_t r = 0; r < sw; ++r) v += acc[size_t(i * sw + r)];
            row[i] = v;
          }
        }
    }
  });
}

template <typename T>
void upsample_linear(const ResampleProblem& p, const T* x, T* y) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  const int64_t in_n = count(in), out_n = count(out);
  if (out_n == 0) return;
  const Taps<T> td = taps<T>(in, s, 0, p.align_corners), th = taps<T>(in, s, 1, p.align_corners);
  const Taps<T> tw = taps<T>(in, s, 2, p.align_corners);
  const int rank = p.rank;
  parallel_for(p.planes(), plane_grain(out_n), [&](int64_t begin, int64_t end) {
    // t1: (D, H, Wo) after the W pass; t2: (D, Ho, Wo) after the H pass (rank 3 only).
    std::vector<T> t1(rank > 1 ? size_t(in[0] * in[1] * out[2]) : 0);
    std::vector<T> t2(rank > 2 ? size_t(in[0] * out[1] * out[2]) : 0);
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* xp = x + pl * in_n;
      T* yp = y + pl * out_n;
      T* w_out = rank == 1 ? yp : t1.data();
      for (int64_t row = 0; row < in[0] * in[1]; ++row)
        gather_row(tw, out[2], xp + row * in[2], w_out + row * out[2]);
      if (rank == 1) continue;
      T* h_out = rank == 2 ? yp : t2.data();
      for (int64_t d = 0; d < in[0]; ++d)
        for (int64_t oh = 0; oh < out[1]; ++oh) {
          const T* base = t1.data() + d * in[1] * out[2];
          blend_rows(th.w0[size_t(oh)], base + th.i0[size_t(oh)] * out[2], th.w1[size_t(oh)],
                     base + th.i1[size_t(oh)] * out[2], out[2],
                     h_out + (d * out[1] + oh) * out[2]);
        }
      if (rank == 2) continue;
      const int64_t plane = out[1] * out[2];
      for (int64_t od = 0; od < out[0]; ++od)
        blend_rows(td.w0[size_t(od)], t2.data() + td.i0[size_t(od)] * plane, td.w1[size_t(od)],
                   t2.data() + td.i1[size_t(od)] * plane, plane, yp + od * plane);
    }
  });
}

template <typename T>
void upsample_linear_backward(const ResampleProblem& p, const T* grad_y, T* grad_x) {
  const Dims3 in = spatial3(p.x_shape, p.rank), out = spatial3(p.y_shape, p.rank);
  const Dims3 s = scale3(p);
  const int64_t in_n = count(in), out_n = count(out);
  if (out_n == 0) {
    std::fill(grad_x, grad_x + p.planes() * in_n, T(0));
    return;
  }
  const Taps<T> td = taps<T>(in, s, 0, p.align_corners), th = taps<T>(in, s, 1, p.align_corners);
  const Taps<T> tw = taps<T>(in, s, 2, p.align_corners);
  const int rank = p.rank;
  parallel_for(p.planes(), plane_grain(out_n), [&](int64_t begin, int64_t end) {
    std::vector<T> t1(rank > 1 ? size_t(in[0] * in[1] * out[2]) : 0);
    std::vector<T> t2(rank > 2 ? size_t(in[0] * out[1] * out[2]) : 0);
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* gp = grad_y + pl * out_n;
      T* xp = grad_x + pl * in_n;
      const T* h_in = gp;  // (D, Ho, Wo)
      if (rank == 3) {  // D pass transposed
        const int64_t plane = out[1] * out[2];
        std::fill(t2.begin(), t2.end(), T(0));
        for (int64_t od = 0; od < out[0]; ++od) {
          axpy_row(td.w0[size_t(od)], gp + od * plane, plane, t2.data() + td.i0[size_t(od)] * plane);
          axpy_row(td.w1[size_t(od)], gp + od * plane, plane, t2.data() + td.i1[size_t(od)] * plane);
        }
        h_in = t2.data();
      }
      const T* w_in = gp;  // (D, H, Wo)
      if (rank >= 2) {  // H pass transposed
        std::fill(t1.begin(), t1.end(), T(0));
        for (int64_t d = 0; d < in[0]; ++d)
          for (int64_t oh = 0; oh < out[1]; ++oh) {
            const T* src = h_in + (d * out[1] + oh) * out[2];
            T* base = t1.data() + d * in[1] * out[2];
            axpy_row(th.w0[size_t(oh)], src, out[2], base + th.i0[size_t(oh)] * out[2]);
            axpy_row(th.w1[size_t(oh)], src, out[2], base + th.i1[size_t(oh)] * out[2]);
          }
        w_in = t1.data();
      }
      for (int64_t row = 0; row < in[0] * in[1]; ++row)
        scatter_row(tw, out[2], in[2], w_in + row * out[2], xp + row * in[2]);
    }
  });
}

template <typename T>
void pixel_shuffle_copy(const ResampleProblem& p, bool to_large, const T* src, T* dst) {
  const bool shuffle = p.kind == ResampleKind::kPixelShuffle;
  const Shape& large = shuffle ? p.y_shape : p.x_shape;
  const Shape& deep = shuffle ? p.x_shape : p.y_shape;
  const Dims3 L = spatial3(large, p.rank), S = spatial3(deep, p.rank);
  const int64_t r = p.scale[0];
  const int64_t rd = p.rank >= 3 ? r : 1, rh = p.rank >= 2 ? r : 1;
  const int64_t block = rd * rh * r;
  const int64_t l_n = count(L), s_n = count(S);
  parallel_for(large[0] * large[1], plane_grain(l_n), [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const int64_t large_at = pl * l_n, deep_at = pl * block * s_n;  // c_deep = c * block + off
      for (int64_t id = 0; id < rd; ++id)
        for (int64_t ih = 0; ih < rh; ++ih)
          for (int64_t iw = 0; iw < r; ++iw) {
            const int64_t off = (id * rh + ih) * r + iw;
            for (int64_t sd = 0; sd < S[0]; ++sd)
              for (int64_t sh = 0; sh < S[1]; ++sh) {
                const int64_t d_row = deep_at + off * s_n + (sd * S[1] + sh) * S[2];
                const int64_t l_row = large_at + ((sd * rd + id) * L[1] + sh * rh + ih) * L[2] + iw;
                if (to_large) {
                  const T* a = src + d_row;
                  T* b = dst + l_row;
                  for (int64_t w = 0; w < S[2]; ++w) b[w * r] = a[w];
                } else {
                  const T* a = src + l_row;
                  T* b = dst + d_row;
                  for (int64_t w = 0; w < S[2]; ++w) b[w] = a[w * r];
                }
              }
          }
    }
  });
}

#define FASTCONV_RESAMPLE_ALGO(T)                                                    \
  template void upsample_nearest<T>(const ResampleProblem&, const T*, T*);          \
  template void upsample_nearest_backward<T>(const ResampleProblem&, const T*, T*); \
  template void upsample_linear<T>(const ResampleProblem&, const T*, T*);           \
  template void upsample_linear_backward<T>(const ResampleProblem&, const T*, T*);  \
  template void pixel_shuffle_copy<T>(const ResampleProblem&, bool, const T*, T*);
FASTCONV_RESAMPLE_ALGO(float)
FASTCONV_RESAMPLE_ALGO(double)
#undef FASTCONV_RESAMPLE_ALGO

}  // namespace fastconv::algo
