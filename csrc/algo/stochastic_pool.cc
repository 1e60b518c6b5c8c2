// Stochastic pooling on row pointers, parallel over the (n, c) planes (csrc/algo/resample.h).
// Every window's sums run in the reference's order (D, H, W, in double), and the draw of output
// o of plane pl is philox_uniform(seed, pl * out_count + o): the result is the reference's,
// bit for bit, for any thread count.
#include <algorithm>
#include <vector>

#include "algo/resample.h"
#include "common/resample_index.h"
#include "fastconv/parallel.h"
#include "ref/resample_ref.h"

namespace fastconv::algo {

namespace {

// The clipped [lo, hi) input range of every output position along one dim.
struct Ranges {
  std::vector<int64_t> lo, hi;
  Ranges(int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
    lo.resize(size_t(out));
    hi.resize(size_t(out));
    for (int64_t o = 0; o < out; ++o) {
      const int64_t start = o * stride - pad;
      lo[size_t(o)] = std::max<int64_t>(start, 0);
      hi[size_t(o)] = std::min<int64_t>(start + kernel, in);
    }
  }
};

struct Windows {
  Ranges d, h, w;
  explicit Windows(const PoolGeometry& g)
      : d(g.out[0], g.in[0], g.kernel[0], g.stride[0], g.pad_lo[0]),
        h(g.out[1], g.in[1], g.kernel[1], g.stride[1], g.pad_lo[1]),
        w(g.out[2], g.in[2], g.kernel[2], g.stride[2], g.pad_lo[2]) {}
};

// Sum and sum of squares of one window, in the reference's order.
template <typename T>
inline void window_sums(const PoolGeometry& g, const Windows& win, const T* xp, int64_t od,
                        int64_t oh, int64_t ow, double* sum, double* sq) {
  double s = 0, q = 0;
  const int64_t w0 = win.w.lo[size_t(ow)], w1 = win.w.hi[size_t(ow)];
  for (int64_t d = win.d.lo[size_t(od)]; d < win.d.hi[size_t(od)]; ++d)
    for (int64_t h = win.h.lo[size_t(oh)]; h < win.h.hi[size_t(oh)]; ++h) {
      const T* row = xp + (d * g.in[1] + h) * g.in[2];
      for (int64_t w = w0; w < w1; ++w) {
        const double v = double(row[w]);
        s += v;
        q += v * v;
      }
    }
  *sum = s;
  *sq = q;
}

}  // namespace

template <typename T>
void stochastic_pool(const ResampleProblem& p, uint64_t seed, const T* x, T* y,
                     int64_t* indices) {
  const PoolGeometry& g = p.g;
  const Windows win(g);
  const int64_t in_n = g.in_spatial(), out_n = g.out_spatial();
  parallel_for(g.n * g.c, plane_grain(in_n + out_n * g.kernel[0] * g.kernel[1] * g.kernel[2]), [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* xp = x + pl * in_n;
      ref::check_non_negative(xp, in_n);
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            const int64_t o = (od * g.out[1] + oh) * g.out[2] + ow;
            double sum, sq;
            window_sums(g, win, xp, od, oh, ow, &sum, &sq);
            if (!p.training) {
              y[pl * out_n + o] = T(sum > 0 ? sq / sum : 0.0);
              continue;
            }
            const int64_t w0 = win.w.lo[size_t(ow)], w1 = win.w.hi[size_t(ow)];
            int64_t pick = (win.d.lo[size_t(od)] * g.in[1] + win.h.lo[size_t(oh)]) * g.in[2] + w0;
            if (sum > 0) {
              const double target = philox_uniform(seed, uint64_t(pl * out_n + o)) * sum;
              double cum = 0;
              bool found = false;
              for (int64_t d = win.d.lo[size_t(od)]; d < win.d.hi[size_t(od)] && !found; ++d)
                for (int64_t h = win.h.lo[size_t(oh)]; h < win.h.hi[size_t(oh)] && !found; ++h) {
                  const int64_t at = (d * g.in[1] + h) * g.in[2];
                  for (int64_t w = w0; w < w1; ++w) {
                    const double v = double(xp[at + w]);
                    if (v <= 0) continue;
                    cum += v;
                    pick = at + w;
                    if (target < cum) {
                      found = true;
                      break;
                    }
                  }
                }
            }
            y[pl * out_n + o] = xp[pick];
            if (indices) indices[pl * out_n + o] = pick;
          }
    }
  });
}

template <typename T>
void stochastic_pool_eval_backward(const ResampleProblem& p, const T* grad_y, const T* x,
                                   T* grad_x) {
  const PoolGeometry& g = p.g;
  const Windows win(g);
  const int64_t in_n = g.in_spatial(), out_n = g.out_spatial();
  parallel_for(g.n * g.c, plane_grain(in_n + out_n * g.kernel[0] * g.kernel[1] * g.kernel[2]), [&](int64_t begin, int64_t end) {
    std::vector<double> acc(static_cast<size_t>(in_n));
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* xp = x + pl * in_n;
      ref::check_non_negative(xp, in_n);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            double sum, sq;
            window_sums(g, win, xp, od, oh, ow, &sum, &sq);
            if (!(sum > 0)) continue;
            const int64_t o = (od * g.out[1] + oh) * g.out[2] + ow;
            const double yv = sq / sum, scale = double(grad_y[pl * out_n + o]) / sum;
            for (int64_t d = win.d.lo[size_t(od)]; d < win.d.hi[size_t(od)]; ++d)
              for (int64_t h = win.h.lo[size_t(oh)]; h < win.h.hi[size_t(oh)]; ++h) {
                const int64_t at = (d * g.in[1] + h) * g.in[2];
                for (int64_t w = win.w.lo[size_t(ow)]; w < win.w.hi[size_t(ow)]; ++w)
                  acc[size_t(at + w)] += scale * (2 * double(xp[at + w]) - yv);
              }
          }
      T* gx = grad_x + pl * in_n;
      for (int64_t i = 0; i < in_n; ++i) gx[i] = T(acc[size_t(i)]);
    }
  });
}

#define FASTCONV_STOCHASTIC_ALGO(T)                                                        \
  template void stochastic_pool<T>(const ResampleProblem&, uint64_t, const T*, T*, int64_t*); \
  template void stochastic_pool_eval_backward<T>(const ResampleProblem&, const T*, const T*, T*);
FASTCONV_STOCHASTIC_ALGO(float)
FASTCONV_STOCHASTIC_ALGO(double)
#undef FASTCONV_STOCHASTIC_ALGO

}  // namespace fastconv::algo
