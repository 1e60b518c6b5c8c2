// Direct pooling over row buffers (pool_rows.h): each input row a window needs is split once
// per plane sweep into a padded, phase-split buffer (a small per-task cache), and the row
// kernels of csrc/ukernels/pool/ reduce one output row per call.
#include "algo/pool_rows.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "fastconv/parallel.h"

namespace fastconv::algo {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

int64_t rows_per_plane(const PoolGeometry& g) { return g.out[0] * g.out[1]; }

// Row buffers of one plane's input rows, one slot per (id mod extent_d, ih mod extent_h): the
// rows of one window never share a slot, so a plane sweep splits each input row once.
template <typename T>
class RowCache {
 public:
  RowCache(const PoolGeometry& g, const PoolRowPlan& rp, T pad, PoolPower power, double p)
      : g_(g),
        rp_(rp),
        pad_(pad),
        power_(power),
        p_(p),
        buf_(rp.extent_d * rp.extent_h * rp.row_elems, T(0)),
        key_(rp.extent_d * rp.extent_h, -1),
        nan_(rp.extent_d * rp.extent_h, 0) {}

  void reset(const T* xp) {
    xp_ = xp;
    std::fill(key_.begin(), key_.end(), -1);
  }

  // The buffer of input row (id, ih); *nan becomes true when that row holds a NaN.
  const T* row(int64_t id, int64_t ih, bool* nan) {
    const int64_t slot = (id % rp_.extent_d) * rp_.extent_h + ih % rp_.extent_h;
    const int64_t key = id * g_.in[1] + ih;
    T* b = buf_.data() + slot * rp_.row_elems;
    if (key_[slot] != key) {
      nan_[slot] = pool_kernels<T>().split_row(xp_ + key * g_.in[2], rp_.layout, pad_, power_,
                                               p_, b);
      key_[slot] = key;
    }
    *nan = *nan || nan_[slot];
    return b;
  }

 private:
  const PoolGeometry& g_;
  const PoolRowPlan& rp_;
  T pad_;
  PoolPower power_;
  double p_;
  const T* xp_ = nullptr;
  std::vector<T> buf_;
  std::vector<int64_t> key_;
  std::vector<char> nan_;
};

// Calls fn(id, ih) for the input rows of output row (od, oh) that lie inside the input, in
// the reference's scan order (kd, then kh).
template <typename Fn>
inline void for_each_window_row(const PoolGeometry& g, int64_t od, int64_t oh, Fn&& fn) {
  for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
    const int64_t id = od * g.stride[0] - g.pad_lo[0] + kd * g.dilation[0];
    if (id < 0 || id >= g.in[0]) continue;
    for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
      const int64_t ih = oh * g.stride[1] - g.pad_lo[1] + kh * g.dilation[1];
      if (ih >= 0 && ih < g.in[1]) fn(id, ih);
    }
  }
}

// The row buffers of one output row's window and their input plane offsets.
template <typename T>
struct WindowRows {
  explicit WindowRows(const PoolGeometry& g)
      : rows(g.kernel[0] * g.kernel[1]), start(g.kernel[0] * g.kernel[1]) {}
  void gather(const PoolGeometry& g, RowCache<T>& cache, int64_t od, int64_t oh) {
    count = 0;
    nan = false;
    for_each_window_row(g, od, oh, [&](int64_t id, int64_t ih) {
      rows[count] = cache.row(id, ih, &nan);
      start[count++] = (id * g.in[1] + ih) * g.in[2];
    });
  }
  std::vector<const T*> rows;
  std::vector<int64_t> start;
  int64_t count = 0;
  bool nan = false;
};

// Output rows [begin, end) of the plane-major row sequence: max (sum null, indices optional)
// or sum (avg / lp).
template <typename T>
void forward_range(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>* sum,
                   RowCache<T>& cache, WindowRows<T>& w, const T* x, T* y, int64_t* indices,
                   int64_t begin, int64_t end) {
  const PoolKernels<T>& k = pool_kernels<T>();
  const int64_t rows = rows_per_plane(g), in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const int64_t out_w = g.out[2], taps = static_cast<int64_t>(rp.tap_offset.size());
  int64_t plane_now = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t plane = item / rows, r = item % rows;
    if (plane != plane_now) {
      cache.reset(x + plane * in_sp);
      plane_now = plane;
    }
    w.gather(g, cache, r / g.out[1], r % g.out[1]);
    const PoolWindow<T> win{w.rows.data(), w.count, rp.tap_offset.data(), taps, out_w};
    const int64_t o = plane * out_sp + r * out_w;
    if (sum) {
      k.sum_row(win, sum->scale ? sum->scale + r * out_w : nullptr, y + o);
      if (!sum->scale) k.lp_root_row(y + o, out_w, sum->power, sum->p);
    } else if (indices) {
      const PoolArgmaxMap m{w.start.data(), rp.tap_col.data(), rp.col_base.data(),
                            rp.first_col.data()};
      k.argmax_row(win, m, !w.nan, y + o, indices + o);
    } else {
      k.max_row(win, !w.nan, y + o);
    }
  }
}

template <typename T>
RowCache<T> forward_cache(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>* sum) {
  if (sum) return RowCache<T>(g, rp, T(0), sum->power, sum->p);
  return RowCache<T>(g, rp, -std::numeric_limits<T>::infinity(), PoolPower::kOne, 1.0);
}

template <typename T>
void forward(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>* sum, const T* x,
             T* y, int64_t* indices) {
  const int64_t rows = rows_per_plane(g), planes = g.n * g.c, items = planes * rows;
  // Whole planes per task when there are enough of them, else bands of rows; at least
  // kMinTaskReads window reads a task, so a small pool runs on the calling thread (a 1x1x8x8
  // 2x2 pool handed 4 rows to the thread pool: 4.1 us a call at 2 threads, 1.3 at one).
  constexpr int64_t kMinTaskReads = int64_t(1) << 16;
  const int64_t window = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const int64_t reads_per_row = std::max<int64_t>(1, g.out[2] * window);
  const int64_t tasks = 4 * static_cast<int64_t>(get_num_threads());
  const int64_t grain = std::max(planes >= tasks ? rows : std::max<int64_t>(1, items / tasks),
                                 (kMinTaskReads + reads_per_row - 1) / reads_per_row);
  parallel_for(items, grain, [&](int64_t begin, int64_t end) {
    RowCache<T> cache = forward_cache(g, rp, sum);
    WindowRows<T> w(g);
    forward_range(g, rp, sum, cache, w, x, y, indices, begin, end);
  });
}

}  // namespace

PoolRowPlan make_row_plan(const PoolGeometry& g) {
  PoolRowPlan rp;
  const int64_t s = g.stride[2], d = g.dilation[2], pl = g.pad_lo[2], w = g.in[2];
  const int64_t out_w = g.out[2];
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
    rp.tap_col.push_back(static_cast<int32_t>(kw * d));
    rp.tap_phase.push_back(kw * d % s);
    rp.tap_shift.push_back(kw * d / s);
    rp.margin = std::max(rp.margin, kw * d / s);
  }
  // A phase holds its share of the input and every output's taps (the scatter writes up to
  // out_w + margin), in whole vectors of any width.
  const int64_t pw = round_up(std::max((pl + w - 1) / s + 1, out_w + rp.margin + 1), 16);
  rp.layout = PoolRowLayout{w, pl, s, pw};
  for (size_t k = 0; k < rp.tap_col.size(); ++k)
    rp.tap_offset.push_back(rp.tap_phase[k] * pw + rp.tap_shift[k]);
  rp.col_base.assign(out_w + kPoolSlack, 0);
  rp.first_col.assign(out_w + kPoolSlack, 0);
  for (int64_t o = 0; o < out_w; ++o) {
    rp.col_base[o] = static_cast<int32_t>(o * s - pl);
    for (int32_t col : rp.tap_col) {
      const int64_t iw = o * s - pl + col;
      if (iw >= 0 && iw < w) {
        rp.first_col[o] = col;
        break;
      }
    }
  }
  rp.row_elems = s * pw + kPoolSlack;
  rp.extent_d = (g.kernel[0] - 1) * g.dilation[0] + 1;
  rp.extent_h = (g.kernel[1] - 1) * g.dilation[1] + 1;
  return rp;
}

template <typename T>
void max_pool_rows_forward(const PoolGeometry& g, const PoolRowPlan& rp, const T* x, T* y,
                           int64_t* indices) {
  forward<T>(g, rp, nullptr, x, y, indices);
}

template <typename T>
void sum_pool_rows_forward(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>& s,
                           const T* x, T* y) {
  forward<T>(g, rp, &s, x, y, nullptr);
}

template <typename T>
void max_pool_rows_backward(const PoolGeometry& g, const PoolRowPlan& rp, const T* grad_y,
                            const T* x, T* grad_x) {
  const int64_t rows = rows_per_plane(g), in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const bool stream = g.n * g.c * in_sp * int64_t(sizeof(T)) >= kPoolStreamBytes;
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    RowCache<T> cache = forward_cache<T>(g, rp, nullptr);
    WindowRows<T> w(g);
    std::vector<T> y(out_sp + kPoolSlack), scratch(stream ? in_sp : 0);
    std::vector<int64_t> at(out_sp + kPoolSlack);
    for (int64_t plane = begin; plane < end; ++plane) {
      forward_range<T>(g, rp, nullptr, cache, w, x + plane * in_sp, y.data(), at.data(), 0, rows);
      T* gx = stream ? scratch.data() : grad_x + plane * in_sp;
      const T* gy = grad_y + plane * out_sp;
      std::fill(gx, gx + in_sp, T(0));
      for (int64_t j = 0; j < out_sp; ++j) gx[at[j]] += gy[j];
      if (stream) pool_kernels<T>().stream_copy(gx, in_sp, grad_x + plane * in_sp);
    }
  });
}

template <typename T>
void sum_pool_rows_backward(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>& s,
                            const T* grad_y, const T* x, T* grad_x) {
  const int64_t rows = rows_per_plane(g), in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const int64_t in_rows = g.in[0] * g.in[1], out_w = g.out[2], pw = rp.layout.phase_width;
  const PoolScatterTaps taps{rp.tap_phase.data(), rp.tap_shift.data(),
                             static_cast<int64_t>(rp.tap_phase.size())};
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    const PoolKernels<T>& k = pool_kernels<T>();
    RowCache<T> cache = forward_cache<T>(g, rp, &s);  // lp: the x rows, for y
    WindowRows<T> w(g);
    std::vector<T> acc(in_rows * rp.row_elems);
    // One output row's scaled gradient, zero around it (scatter_row reads outside [0, out_w)).
    std::vector<T> grow(rp.margin + pw + kPoolSlack, T(0));
    T* gr = grow.data() + rp.margin;
    std::vector<T> y(out_w + kPoolSlack);
    std::vector<T*> acc_rows(g.kernel[0] * g.kernel[1]);
    for (int64_t plane = begin; plane < end; ++plane) {
      std::fill(acc.begin(), acc.end(), T(0));
      if (!s.scale) cache.reset(x + plane * in_sp);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t od = r / g.out[1], oh = r % g.out[1];
        const T* gy = grad_y + plane * out_sp + r * out_w;
        if (s.scale) {
          k.scale_row(gy, s.scale + r * out_w, out_w, gr);
        } else {  // lp: d y / d (sum of x**p) from the window's y
          w.gather(g, cache, od, oh);
          const PoolWindow<T> win{w.rows.data(), w.count, rp.tap_offset.data(), taps.tap_count,
                                  out_w};
          k.sum_row(win, nullptr, y.data());
          k.lp_root_row(y.data(), out_w, s.power, s.p);
          k.lp_grad_row(y.data(), gy, out_w, s.power, s.p, gr);
        }
        int64_t count = 0;
        for_each_window_row(g, od, oh, [&](int64_t id, int64_t ih) {
          acc_rows[count++] = acc.data() + (id * g.in[1] + ih) * rp.row_elems;
        });
        k.scatter_row(gr, taps, rp.layout.stride, pw, acc_rows.data(), count);
      }
      const T* xp = s.scale ? nullptr : x + plane * in_sp;
      T* gx = grad_x + plane * in_sp;
      for (int64_t row = 0; row < in_rows; ++row)
        k.merge_row(acc.data() + row * rp.row_elems, rp.layout, xp ? xp + row * g.in[2] : nullptr,
                    s.power, s.p, false, gx + row * g.in[2]);
    }
  });
}

#define FASTCONV_INSTANTIATE_POOL_ROWS(T)                                                      \
  template void max_pool_rows_forward<T>(const PoolGeometry&, const PoolRowPlan&, const T*,   \
                                         T*, int64_t*);                                        \
  template void sum_pool_rows_forward<T>(const PoolGeometry&, const PoolRowPlan&,             \
                                         const PoolSum<T>&, const T*, T*);                     \
  template void max_pool_rows_backward<T>(const PoolGeometry&, const PoolRowPlan&, const T*,  \
                                          const T*, T*);                                       \
  template void sum_pool_rows_backward<T>(const PoolGeometry&, const PoolRowPlan&,            \
                                          const PoolSum<T>&, const T*, const T*, T*);
FASTCONV_INSTANTIATE_POOL_ROWS(float)
FASTCONV_INSTANTIATE_POOL_ROWS(double)
#undef FASTCONV_INSTANTIATE_POOL_ROWS

}  // namespace fastconv::algo
