// Direct pooling over row buffers (pool_rows.h): each input row a window needs is split once
// per plane sweep into a padded, phase-split buffer (a small per-task cache), and the row
// kernels of csrc/ukernels/pool/ reduce one output row per call.
#include "algo/pool_rows.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "fastconv/parallel.h"
#include "ref/pool_ref.h"

namespace fastconv::algo {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

int64_t rows_per_plane(const PoolGeometry& g) { return g.out[0] * g.out[1]; }

// first_col of outputs [o0, o0 + n) of a row: the tap_col of each one's first tap inside the
// input (0 where none is: has_empty_window rules that out).
void first_cols(const PoolGeometry& g, const std::vector<int32_t>& tap_col, int64_t o0, int64_t n,
                int32_t* out) {
  const int64_t s = g.stride[2], pl = g.pad_lo[2], w = g.in[2];
  for (int64_t o = 0; o < n; ++o) {
    out[o] = 0;
    for (int32_t col : tap_col) {
      const int64_t iw = (o0 + o) * s - pl + col;
      if (iw >= 0 && iw < w) {
        out[o] = col;
        break;
      }
    }
  }
}

// Row buffers of one plane's input rows, one slot per (id mod extent_d, ih mod extent_h): the
// rows of one window never share a slot, so a plane sweep splits each input row once. With
// `segments` (the forward passes) and a plan of several row segments, each sweep covers one
// segment's columns (reset's `seg`) and its buffers hold that span only.
template <typename T>
class RowCache {
 public:
  RowCache(const PoolGeometry& g, const PoolRowPlan& rp, T pad, PoolPower power, double p,
           bool segments)
      : g_(g),
        rp_(rp),
        pad_(pad),
        power_(power),
        p_(p),
        segments_(segments && rp.seg_count > 1),
        row_elems_(segments_ ? rp.seg_row_elems : rp.row_elems),
        layout_(rp.layout),
        buf_(rp.extent_d * rp.extent_h * row_elems_, T(0)),
        key_(rp.extent_d * rp.extent_h, -1),
        nan_(rp.extent_d * rp.extent_h, 0) {}

  // Row segments per output row (1: whole rows), and where the W taps read in a buffer.
  int64_t segments() const { return segments_ ? rp_.seg_count : 1; }
  const int64_t* tap_offset() const {
    return segments_ ? rp_.seg_tap_offset.data() : rp_.tap_offset.data();
  }

  // A sweep over plane xp's rows, for output columns of segment seg (segmented caches).
  void reset(const T* xp, int64_t seg = 0) {
    xp_ = xp;
    std::fill(key_.begin(), key_.end(), -1);
    if (!segments_) return;
    // The segment's windows read padded columns [first, last]: its buffers hold the input
    // columns among them, from col0_, and pad the rest (the row's pad_lo for the first).
    const int64_t s = rp_.layout.stride, pl = rp_.layout.pad_lo, w = rp_.layout.width;
    const int64_t first = seg * rp_.seg_outputs * s;
    const int64_t outputs = std::min(rp_.seg_outputs, g_.out[2] - seg * rp_.seg_outputs);
    const int64_t last = first + (outputs - 1) * s + (g_.kernel[2] - 1) * g_.dilation[2];
    col0_ = std::max<int64_t>(0, first - pl);
    const int64_t end = std::min(w, last - pl + 1);
    layout_ = PoolRowLayout{std::max<int64_t>(0, end - col0_), std::max<int64_t>(0, pl - first),
                            s, rp_.seg_phase_width};
  }

  // The buffer of input row (id, ih); *nan becomes true when that row holds a NaN.
  const T* row(int64_t id, int64_t ih, bool* nan) {
    const int64_t slot = (id % rp_.extent_d) * rp_.extent_h + ih % rp_.extent_h;
    const int64_t key = id * g_.in[1] + ih;
    T* b = buf_.data() + slot * row_elems_;
    if (key_[slot] != key) {
      nan_[slot] = pool_kernels<T>().split_row(xp_ + key * g_.in[2] + col0_, layout_, pad_,
                                               power_, p_, b);
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
  bool segments_;
  int64_t row_elems_;
  PoolRowLayout layout_;
  int64_t col0_ = 0;  // the first input column a buffer holds
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

// Output rows [begin, end) of the sequence (plane, row segment, row), segment by segment (one
// segment per row unless the cache is segmented): max (sum null, indices optional) or sum (avg
// / lp).
template <typename T>
void forward_range(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>* sum,
                   RowCache<T>& cache, WindowRows<T>& w, const T* x, T* y, int64_t* indices,
                   int64_t begin, int64_t end) {
  const PoolKernels<T>& k = pool_kernels<T>();
  const int64_t rows = rows_per_plane(g), in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const int64_t out_w = g.out[2], taps = static_cast<int64_t>(rp.tap_offset.size());
  const int64_t segs = cache.segments(), seg_outputs = segs > 1 ? rp.seg_outputs : out_w;
  // With segments, the argmax map and avg's divisors of the segment at hand: the plan's
  // col_base is relative to a segment's first window (its column goes into the row starts),
  // first_col and the divisors are made per segment (and per row, for avg).
  std::vector<int32_t> seg_first_col(segs > 1 && indices ? seg_outputs + kPoolSlack : 0);
  std::vector<int64_t> seg_start(segs > 1 ? w.start.size() : 0);
  std::vector<T> seg_scale(segs > 1 && sum && sum->avg ? seg_outputs + kPoolSlack : 0, T(0));
  std::vector<int64_t> seg_cols(seg_scale.empty() ? 0 : seg_outputs);  // W factors of avg's
  const bool cip = sum && sum->count_include_pad;
  int64_t unit_now = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t unit = item / rows, r = item % rows, plane = unit / segs;
    const int64_t o0 = unit % segs * seg_outputs, n = std::min(seg_outputs, out_w - o0);
    const int64_t od = r / g.out[1], oh = r % g.out[1];
    if (unit != unit_now) {
      cache.reset(x + plane * in_sp, unit % segs);
      if (!seg_first_col.empty()) first_cols(g, rp.tap_col, o0, n, seg_first_col.data());
      for (int64_t j = 0; j < static_cast<int64_t>(seg_cols.size()) && j < n; ++j)
        seg_cols[j] = ref::avg_pool_divisor_dim(g, cip, 2, o0 + j);
      unit_now = unit;
    }
    w.gather(g, cache, od, oh);
    const PoolWindow<T> win{w.rows.data(), w.count, cache.tap_offset(), taps, n};
    const int64_t o = plane * out_sp + r * out_w + o0;
    if (sum) {
      const T* scale = sum->scale ? sum->scale + r * out_w + o0 : nullptr;
      if (!seg_scale.empty()) {  // the divisor's D and H factors once per row
        const int64_t dh =
            ref::avg_pool_divisor_dim(g, cip, 0, od) * ref::avg_pool_divisor_dim(g, cip, 1, oh);
        for (int64_t j = 0; j < n; ++j) seg_scale[j] = T(1.0 / double(dh * seg_cols[j]));
        scale = seg_scale.data();
      }
      k.sum_row(win, scale, y + o);
      if (!scale) k.lp_root_row(y + o, n, sum->power, sum->p);
    } else if (indices) {
      const int64_t* start = w.start.data();
      const int32_t* first_col = rp.first_col.data();
      if (segs > 1) {
        for (int64_t i = 0; i < w.count; ++i) seg_start[i] = w.start[i] + o0 * g.stride[2];
        start = seg_start.data();
        first_col = seg_first_col.data();
      }
      const PoolArgmaxMap m{start, rp.tap_col.data(), rp.col_base.data(), first_col};
      k.argmax_row(win, m, !w.nan, y + o, indices + o);
    } else {
      k.max_row(win, !w.nan, y + o);
    }
  }
}

template <typename T>
RowCache<T> forward_cache(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>* sum,
                          bool segments) {
  if (sum) return RowCache<T>(g, rp, T(0), sum->power, sum->p, segments);
  return RowCache<T>(g, rp, -std::numeric_limits<T>::infinity(), PoolPower::kOne, 1.0,
                     segments);
}

template <typename T>
void forward(const PoolGeometry& g, const PoolRowPlan& rp, const PoolSum<T>* sum, const T* x,
             T* y, int64_t* indices) {
  // Units of work: (plane, row segment) pairs, each a sweep down its rows.
  const int64_t rows = rows_per_plane(g), units = g.n * g.c * rp.seg_count, items = units * rows;
  // Whole units per task when there are enough of them, else bands of rows; at least
  // kMinTaskReads window reads a task, so a small pool runs on the calling thread (a 1x1x8x8
  // 2x2 pool handed 4 rows to the thread pool: 4.1 us a call at 2 threads, 1.3 at one).
  constexpr int64_t kMinTaskReads = int64_t(1) << 16;
  const int64_t window = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const int64_t reads_per_row = std::max<int64_t>(1, rp.seg_outputs * window);
  const int64_t tasks = 4 * static_cast<int64_t>(get_num_threads());
  const int64_t grain = std::max(units >= tasks ? rows : std::max<int64_t>(1, items / tasks),
                                 (kMinTaskReads + reads_per_row - 1) / reads_per_row);
  parallel_for(items, grain, [&](int64_t begin, int64_t end) {
    RowCache<T> cache = forward_cache(g, rp, sum, true);
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
  // Forward row segments: rows of more than two segments' outputs only.
  const int64_t seg = round_up(std::max(kPoolMinSegmentOutputs, kPoolSegmentInputs / s), 16);
  const bool segmented = out_w > 2 * seg;
  const int64_t cols = segmented ? seg : out_w;  // the map's columns: segment 0's or the row's
  rp.col_base.assign(cols + kPoolSlack, 0);
  rp.first_col.assign(cols + kPoolSlack, 0);
  for (int64_t o = 0; o < cols; ++o) rp.col_base[o] = static_cast<int32_t>(o * s - pl);
  first_cols(g, rp.tap_col, 0, cols, rp.first_col.data());
  rp.row_elems = s * pw + kPoolSlack;
  rp.extent_d = (g.kernel[0] - 1) * g.dilation[0] + 1;
  rp.extent_h = (g.kernel[1] - 1) * g.dilation[1] + 1;
  if (segmented) {
    rp.seg_count = (out_w + seg - 1) / seg;
    rp.seg_outputs = seg;
    // a segment's buffers hold its windows' columns: up to seg - 1 + margin per phase
    rp.seg_phase_width = round_up(seg + rp.margin + 1, 16);
    rp.seg_row_elems = s * rp.seg_phase_width + kPoolSlack;
    for (size_t k = 0; k < rp.tap_col.size(); ++k)
      rp.seg_tap_offset.push_back(rp.tap_phase[k] * rp.seg_phase_width + rp.tap_shift[k]);
  } else {
    rp.seg_outputs = out_w;
    rp.seg_phase_width = pw;
    rp.seg_row_elems = rp.row_elems;
    rp.seg_tap_offset = rp.tap_offset;
  }
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
    RowCache<T> cache = forward_cache<T>(g, rp, nullptr, true);
    WindowRows<T> w(g);
    std::vector<T> y(out_sp + kPoolSlack), scratch(stream ? in_sp : 0);
    std::vector<int64_t> at(out_sp + kPoolSlack);
    for (int64_t plane = begin; plane < end; ++plane) {
      forward_range<T>(g, rp, nullptr, cache, w, x + plane * in_sp, y.data(), at.data(), 0,
                       rows * cache.segments());
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
    RowCache<T> cache = forward_cache<T>(g, rp, &s, false);  // lp: the x rows, for y
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
