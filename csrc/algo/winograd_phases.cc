// Stride phases for Winograd (winograd_phases.h): the stacked input, the stored weight's taps per
// phase (gathered run by run), the phase geometries of backward data and the moves back. Ranks 1 and 2 (Winograd's); the leading slot
// of a 2-D geometry (and the two of a 1-D one) has extent 1, stride 1 and no padding.
#include "algo/winograd_phases.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "algo/conv_panels.h"
#include "algo/phase_rows.h"
#include "common/signed_div.h"
#include "fastconv/parallel.h"
#include "ukernels/transpose/transpose_ukernels.h"

namespace fastconv::algo::winograd_phases {

namespace {

// Index of phase (ah, aw) among the P phases: the channel offset in the stacked input.
inline int64_t phase_index(const ConvGeometry& g, int64_t ah, int64_t aw) {
  return ah * g.stride[2] + aw;
}

// Flat index of tap (th, tw) of a stored kernel, reversed for true convolution.
inline int64_t stored_tap(const ConvGeometry& g, int64_t th, int64_t tw) {
  const int64_t kh = g.kernel[1], kw = g.kernel[2];
  return g.mode == ConvMode::kConv ? (kh - 1 - th) * kw + (kw - 1 - tw) : th * kw + tw;
}

// Strides of a buffer in run's layout, element (image, channel, row) at n * image + c *
// channel + i * row: the stacked input (rows of `cols` values) or, folded, a wide output.
struct Layout {
  int64_t image, channel, row;
};

Layout run_layout(const Split& s, int64_t rows, int64_t cols, int64_t channels) {
  if (!s.folded) return {channels * rows * cols, rows * cols, cols};
  return {s.seg, rows * cols, cols};
}

// (image, channel) of the p-th plane a mover takes: image-major, or channel-major when folded,
// so neighbouring images' segments of one wide row are moved one after another (they share
// cache lines; image-major moves on dcgan.g4 took 19% of the time).
std::pair<int64_t, int64_t> plane_of(const Split& s, int64_t p) {
  if (s.folded) return {p % s.g.n, p / s.g.n};
  return {p / s.g.c, p % s.g.c};
}

Layout input_layout(const Split& s) {
  return run_layout(s, s.run.in[1], s.run.in[2], s.run.c);
}

// Split::tap: the index arithmetic per element took the stacking of the weight 10% of
// dcgan.g3's backward data before it was a table.
std::vector<int32_t> source_taps(const Split& s) {
  const ConvGeometry& g = s.g;
  const int64_t kh = g.kernel[1], kw = g.kernel[2], taps = s.stacked.kernel_spatial(),
                rw = s.stacked.kernel[2];
  std::vector<int32_t> src_tap(s.phases * taps);
  for (int64_t phase = 0; phase < s.phases; ++phase)
    for (int64_t q = 0; q < taps; ++q) {
      const int64_t th = g.stride[1] * (q / rw) + phase / g.stride[2];
      const int64_t tw = g.stride[2] * (q % rw) + phase % g.stride[2];
      src_tap[phase * taps + q] = th < kh && tw < kw ? int32_t(stored_tap(g, th, tw)) : -1;
    }
  return src_tap;
}

}  // namespace

Split make_split(const ConvGeometry& g, bool fold) {
  Split s;
  s.g = g;
  ConvGeometry& st = s.stacked;
  st = g;
  for (int d = 0; d < kMaxRank; ++d) {
    const int64_t r = (g.kernel[d] + g.stride[d] - 1) / g.stride[d];
    st.kernel[d] = r;
    st.in[d] = g.out[d] + r - 1;
    st.stride[d] = 1;
    st.dilation[d] = 1;
    st.pad_lo[d] = st.pad_hi[d] = 0;
    s.phases *= g.stride[d];
  }
  st.c = g.c * s.phases;
  st.mode = ConvMode::kCross;
  s.run = st;
  s.folded = fold && g.n > 1;
  if (s.folded) {
    s.seg = st.in[2];
    s.run.n = 1;
    s.run.in[2] = g.n * s.seg;
    s.run.out[2] = g.n * s.seg - st.kernel[2] + 1;
  }
  s.tap = source_taps(s);
  return s;
}

PhasedWeight phased_weight(const Split& s, bool phase_in_k) {
  const bool dense = std::all_of(s.tap.begin(), s.tap.end(), [](int32_t t) { return t >= 0; });
  return {s.tap.data(), s.phases, s.stacked.kernel_spatial(), phase_in_k, dense};
}

int64_t stacked_input_elems(const Split& s) {
  return s.stacked.n * s.stacked.c * s.stacked.in_spatial();
}

int64_t stacked_weight_elems(const Split& s) {
  return s.stacked.k * s.stacked.c_per_group() * s.stacked.kernel_spatial();
}

int64_t wide_output_elems(const Split& s) {
  return s.folded ? s.g.k * s.run.out_spatial() : 0;
}

template <typename T>
void stack_input(const Split& s, const T* x, T* xs) {
  const ConvGeometry& g = s.g;
  const int64_t h = g.in[1], w = g.in[2], hs = s.stacked.in[1], ws = s.stacked.in[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], ph = g.pad_lo[1], pw = g.pad_lo[2];
  const Layout lay = input_layout(s);
  parallel_for(g.n * g.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const auto [n, c] = plane_of(s, p);
      const T* plane = x + (n * g.c + c) * h * w;
      if (sw == 2) {
        T* dst = xs + n * lay.image + c * s.phases * lay.channel;
        for (int64_t ah = 0; ah < sh; ++ah)
          for (int64_t i = 0; i < hs; ++i) {
            const int64_t y = sh * i + ah - ph;
            T* row0 = dst + phase_index(g, ah, 0) * lay.channel + i * lay.row;
            T* row1 = dst + phase_index(g, ah, 1) * lay.channel + i * lay.row;
            if (y < 0 || y >= h) {
              std::fill(row0, row0 + ws, T(0));
              std::fill(row1, row1 + ws, T(0));
              continue;
            }
            split_pair_row(plane + y * w, w, pw, ws, row0, row1);
          }
        continue;
      }
      for (int64_t ah = 0; ah < sh; ++ah)
        for (int64_t aw = 0; aw < sw; ++aw) {
          T* dst = xs + n * lay.image + (c * s.phases + phase_index(g, ah, aw)) * lay.channel;
          // Columns j with s * j + aw - pw inside the row: [j0, j1).
          const int64_t j0 = std::min(ws, std::max<int64_t>(0, ceil_div_signed(pw - aw, sw)));
          const int64_t j1 = std::max(j0, std::min(ws, ceil_div_signed(w + pw - aw, sw)));
          for (int64_t i = 0; i < hs; ++i) {
            T* row = dst + i * lay.row;
            const int64_t y = sh * i + ah - ph;
            if (y < 0 || y >= h) {
              std::fill(row, row + ws, T(0));
              continue;
            }
            const T* src = plane + y * w;
            std::fill(row, row + j0, T(0));
            for (int64_t j = j0; j < j1; ++j) row[j] = src[sw * j + aw - pw];
            std::fill(row + j1, row + ws, T(0));
          }
        }
    }
  });
}

namespace {
// gather_kernels for Q taps per phase, all inside the stored kernel.
template <int Q, typename T>
void gather_dense(const PhasedWeight& pw, const T* src, int64_t phase, int64_t cs, int64_t n,
                  T* buf) {
  for (int64_t l = 0; l < n; ++l, buf += Q) {
    const int32_t* tap = pw.tap + phase * Q;
    for (int q = 0; q < Q; ++q) buf[q] = src[tap[q]];
    if (pw.phase_in_k) {
      src += cs;
    } else if (++phase == pw.phases) {
      phase = 0;
      src += cs;
    }
  }
}
}  // namespace

template <typename T>
void gather_kernels(const PhasedWeight& pw, const T* w, int64_t gs, int64_t ks, int64_t cs,
                    int64_t grp, int64_t k, int64_t c, int64_t n, T* buf) {
  const int64_t phases = pw.phases, taps = pw.taps;
  // One division per run (a divide per lane took more than the stacked copy saved).
  const int64_t i = pw.phase_in_k ? k : c;
  int64_t phase = i % phases;
  const T* src = w + grp * gs +
                 (pw.phase_in_k ? (i / phases) * ks + c * cs : k * ks + (i / phases) * cs);
  // Every phase's taps inside the kernel (twice the stride: DCGAN's 4x4 / 2, 2 taps per phase
  // and dim): the common tap counts with the tap loop unrolled and no test per element (the
  // general loop below took 5-8% of dcgan.g3's forward and transposed forward).
  if (pw.dense && taps == 4) return gather_dense<4>(pw, src, phase, cs, n, buf);
  if (pw.dense && taps == 9) return gather_dense<9>(pw, src, phase, cs, n, buf);
  for (int64_t l = 0; l < n; ++l, buf += taps) {
    const int32_t* tap = pw.tap + phase * taps;
    for (int64_t q = 0; q < taps; ++q) buf[q] = tap[q] >= 0 ? src[tap[q]] : T(0);
    if (pw.phase_in_k) {
      src += cs;
    } else if (++phase == phases) {
      phase = 0;
      src += cs;
    }
  }
}

template <typename T>
void unstack_weight_gradient(const Split& s, const T* gws, T* grad_w) {
  // Through Split::tap: the index arithmetic per element (divisions by the stride, the stored
  // tap) took 12% of dcgan.g3's transform-domain weight gradient.
  const ConvGeometry& g = s.g;
  const int64_t taps = g.kernel_spatial(), stacked = s.phases * s.stacked.kernel_spatial();
  const int32_t* tap = s.tap.data();
  parallel_for(g.k * g.c_per_group(), 64, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* src = gws + p * stacked;
      T* dst = grad_w + p * taps;
      for (int64_t i = 0; i < stacked; ++i)
        if (tap[i] >= 0) dst[tap[i]] = src[i];
    }
  });
}

// Plane (n, c) of grad_x from the stacked input's gradient.
template <typename T>
void unstack_plane(const Split& s, const T* gxs, int64_t n, int64_t c, T* grad_x) {
  const ConvGeometry& g = s.g;
  const int64_t h = g.in[1], w = g.in[2], hs = s.stacked.in[1], ws = s.stacked.in[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], ph = g.pad_lo[1], pw = g.pad_lo[2];
  const Layout lay = input_layout(s);
  // Row y is row i = (y + ph) / sh of phase ah = (y + ph) % sh, stepped without a division per
  // row (two per 16-float row took ~5% of dcgan.g3's transposed forward).
  int64_t i = ph / sh, ah = ph % sh - 1;
  for (int64_t y = 0; y < h; ++y) {
    if (++ah == sh) ah = 0, ++i;
    T* row = grad_x + ((n * g.c + c) * h + y) * w;
    if (i >= hs) {  // a position no output reads
      std::fill(row, row + w, T(0));
      continue;
    }
    const T* srcs = gxs + n * lay.image + c * s.phases * lay.channel + i * lay.row;
    if (sw == 2 && (w - 1 + pw) / 2 < ws) {
      // Stride 2 with every column inside the stacked row: pairs of columns (2t, 2t + 1)
      // are (phase e, j = t + pw / 2) and (phase 1 - e, j + e), e = pw % 2: an interleave.
      const int64_t e = pw % 2, j = pw / 2;
      const T* a = srcs + phase_index(g, ah, e) * lay.channel + j;
      const T* b = srcs + phase_index(g, ah, 1 - e) * lay.channel + j + e;
      const int64_t pairs = w / 2;
      transpose_kernels<T>().interleave2(a, b, pairs, row);
      if (w % 2) row[w - 1] = a[pairs];
      continue;
    }
    for (int64_t aw = 0; aw < sw; ++aw) {
      const T* src = srcs + phase_index(g, ah, aw) * lay.channel;
      // Columns x = s * j + aw - pw of this phase, x in [0, w).
      const int64_t j0 = std::max<int64_t>(0, ceil_div_signed(pw - aw, sw));
      for (int64_t j = j0, x = sw * j0 + aw - pw; x < w; ++j, x += sw)
        row[x] = j < ws ? src[j] : T(0);
    }
  }
}

template <typename T>
void unstack_input_gradient(const Split& s, const T* gxs, T* grad_x) {
  parallel_for(s.g.n * s.g.c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const auto [n, c] = plane_of(s, p);
      unstack_plane(s, gxs, n, c, grad_x);
    }
  });
}

template <typename T>
void unstack_input_channels(const Split& s, const T* gxs, int64_t c0, int64_t c1, T* grad_x) {
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t n = 0; n < s.g.n; ++n) unstack_plane(s, gxs, n, c, grad_x);
}

// Stride 2 along rows (WinogradPlan::windows): stacked column t of phases (ah, 0) and (ah, 1)
// is the pair of row columns (2t - pw, 2t + 1 - pw), one interleave where both lie inside the
// row and one by one at its ends; [lo, hi) are the columns of [a, b) whose pairs are inside.
inline void inside_pairs(int64_t a, int64_t b, int64_t w, int64_t pw, int64_t* lo, int64_t* hi) {
  *lo = std::min(b, std::max(a, (pw + 1) / 2));
  *hi = std::max(*lo, std::min(b, (w + pw) / 2));
}

// Calls fn(img, a, b, j) for the pieces of run columns [j0, end), in order: the columns [a, b)
// of image img's stacked row that run columns [j, ...) cover (folded: column j % seg of image
// j / seg up to that image's end; else columns of image n up to the stacked row's end), j the
// piece's first run column. end must not pass the last image's stacked row (folded: g.n * seg;
// else stacked.in[2]): the pieces would go on into images past the batch. One division for the
// first piece only (a divide per piece took a fifth of a folded window's stacking: dcgan.g3's
// pieces are 9 columns long).
template <typename F>
inline void for_each_piece(const Split& s, int64_t n, int64_t j0, int64_t end, F&& fn) {
  int64_t img = s.folded ? j0 / s.seg : n, a = s.folded ? j0 % s.seg : j0;
  const int64_t limit = s.folded ? s.seg : s.stacked.in[2];
  for (int64_t j = j0; j < end; ++img, a = 0) {
    const int64_t b = std::min(limit, a + (end - j));
    fn(img, a, b, j);
    j += b - a;
  }
}

template <typename T>
void unstack_window(const Split& s, const T* win, int64_t n, int64_t c, int64_t i0, int64_t rows,
                    int64_t j0, int64_t cols, T* grad_x) {
  const ConvGeometry& g = s.g;
  const int64_t h = g.in[1], w = g.in[2], sh = g.stride[1];
  const int64_t ph = g.pad_lo[1], pw = g.pad_lo[2], plane = rows * cols;
  const int64_t end = std::min(j0 + cols, s.folded ? g.n * s.seg : s.stacked.in[2]);
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  for_each_piece(s, n, j0, end, [&](int64_t img, int64_t a, int64_t b, int64_t j) {
    int64_t lo, hi;
    inside_pairs(a, b, w, pw, &lo, &hi);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t ah = 0; ah < sh; ++ah) {
        const int64_t y = sh * (i0 + r) + ah - ph;
        if (y < 0 || y >= h) continue;
        T* row = grad_x + ((img * g.c + c) * h + y) * w;
        const T* p0 = win + phase_index(g, ah, 0) * plane + r * cols + (j - j0);  // column a
        const T* p1 = p0 + plane;
        const auto put = [&](int64_t t) {
          const int64_t x = 2 * t - pw;
          if (x >= 0 && x < w) row[x] = p0[t - a];
          if (x + 1 >= 0 && x + 1 < w) row[x + 1] = p1[t - a];
        };
        for (int64_t t = a; t < lo; ++t) put(t);
        // The pairs inside the row on the micro-kernel (pieces of 8-16 pairs: the baseline
        // compiler's loop spent most of its time in scalar tails).
        tr.interleave2(p0 + (lo - a), p1 + (lo - a), hi - lo, row + 2 * lo - pw);
        for (int64_t t = hi; t < b; ++t) put(t);
      }
  });
}

template <typename T>
void stack_window(const Split& s, const T* x, int64_t n, int64_t c, int64_t i0, int64_t rows,
                  int64_t j0, int64_t cols, T* win) {
  const ConvGeometry& g = s.g;
  const int64_t h = g.in[1], w = g.in[2], sh = g.stride[1];
  const int64_t ph = g.pad_lo[1], pw = g.pad_lo[2], plane = rows * cols;
  const int64_t hs = s.stacked.in[1];
  const int64_t end = std::min(j0 + cols, s.folded ? g.n * s.seg : s.stacked.in[2]);
  // Folded, the window's source rows as prefetches: each piece is a few cache lines of another
  // image's plane, which the hardware prefetchers do not follow (unfolded windows read long runs
  // of one plane, which they do). Prefetched just before the copy, the first load of each row
  // still waited on memory (12% of the copy's samples in dcgan.g3's conv forward), so each window
  // asks for the rows the next tile row's window adds (the stacked rows past its own, or the next
  // channel's first ones), and only a channel's first tile row for its own. That is a window
  // ahead where a window spans a whole tile row (the folded batches measured: dcgan's 72-136
  // tiles a row); a tile block starting lower down, or rows split into several windows, find
  // fewer of their rows prefetched (speed only).
  if (s.folded) {
    const auto prefetch = [&](int64_t ch, int64_t r0, int64_t r1) {
      if (ch >= g.c) return;
      for_each_piece(s, n, j0, end, [&](int64_t img, int64_t a, int64_t b, int64_t) {
        const int64_t x0 = std::max<int64_t>(0, 2 * a - pw), x1 = std::min(w, 2 * b - pw);
        for (int64_t i = r0; i < std::min(r1, hs) && x0 < x1; ++i)
          for (int64_t ah = 0; ah < sh; ++ah) {
            const int64_t y = sh * i + ah - ph;
            if (y < 0 || y >= h) continue;
            const T* row = x + ((img * g.c + ch) * h + y) * w;
            for (int64_t e = x0; e < x1; e += 64 / int64_t(sizeof(T))) __builtin_prefetch(row + e);
            __builtin_prefetch(row + x1 - 1);
          }
      });
    };
    if (i0 == 0) prefetch(c, 0, rows);
    const int64_t step = rows - (s.stacked.kernel[1] - 1);  // the next window's first row - i0
    if (i0 + rows < hs)
      prefetch(c, i0 + rows, i0 + rows + step);
    else
      prefetch(c + 1, 0, rows);
  }
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  for_each_piece(s, n, j0, end, [&](int64_t img, int64_t a, int64_t b, int64_t j) {
    int64_t lo, hi;
    inside_pairs(a, b, w, pw, &lo, &hi);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t ah = 0; ah < sh; ++ah) {
        const int64_t i = i0 + r, y = sh * i + ah - ph;
        T* p0 = win + phase_index(g, ah, 0) * plane + r * cols + (j - j0);  // column a
        T* p1 = p0 + plane;
        if (i >= hs || y < 0 || y >= h) {
          std::fill(p0, p0 + (b - a), T(0));
          std::fill(p1, p1 + (b - a), T(0));
          continue;
        }
        const T* row = x + ((img * g.c + c) * h + y) * w;
        const auto get = [&](int64_t t) {
          const int64_t xc = 2 * t - pw;
          p0[t - a] = xc >= 0 && xc < w ? row[xc] : T(0);
          p1[t - a] = xc + 1 >= 0 && xc + 1 < w ? row[xc + 1] : T(0);
        };
        for (int64_t t = a; t < lo; ++t) get(t);
        tr.deinterleave2(row + 2 * lo - pw, hi - lo, p0 + (lo - a), p1 + (lo - a));
        for (int64_t t = hi; t < b; ++t) get(t);
      }
  });
  // Past the run's columns, zero to the window's end.
  if (end < j0 + cols)
    for (int64_t p = 0; p < s.phases; ++p)
      for (int64_t r = 0; r < rows; ++r) {
        T* dst = win + p * plane + r * cols;
        std::fill(dst + (end - j0), dst + cols, T(0));
      }
}

int64_t window_tiles(const Split& s, int64_t mh, int64_t mw, int64_t r, int64_t lanes,
                     int64_t elem, bool output) {
  const int64_t rows = output ? mh : (s.g.rank == 2 ? mh + r - 1 : 1);
  const int64_t per_row = kWindowBytes / elem / (s.phases * rows);  // window columns at most
  const int64_t tiles = std::max<int64_t>(0, (per_row - (output ? 0 : r - 1)) / mw);
  return tiles >= lanes ? tiles / lanes * lanes : tiles;
}

bool has_unread(const Split& s) {
  const ConvGeometry& g = s.g;
  return (g.in[1] - 1 + g.pad_lo[1]) / g.stride[1] >= s.stacked.in[1] ||
         (g.in[2] - 1 + g.pad_lo[2]) / g.stride[2] >= s.stacked.in[2];
}

template <typename T>
void zero_unread(const Split& s, T* grad_x) {
  const ConvGeometry& g = s.g;
  const int64_t h = g.in[1], w = g.in[2], hs = s.stacked.in[1], ws = s.stacked.in[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], ph = g.pad_lo[1], pw = g.pad_lo[2];
  // Columns x with (x + pw) / sw >= ws, i.e. x >= ws * sw - pw, and whole rows past hs.
  const int64_t x0 = std::clamp<int64_t>(ws * sw - pw, 0, w);
  parallel_for(g.n * g.c, 16, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t y = 0; y < h; ++y) {
        T* row = grad_x + (p * h + y) * w;
        std::fill(row + ((y + ph) / sh >= hs ? 0 : x0), row + w, T(0));
      }
  });
}

template <typename T>
void fold_output(const Split& s, const T* y, T* wide) {
  const ConvGeometry& g = s.g;
  const int64_t oh = g.out[1], ow = g.out[2], cols = s.run.out[2];
  parallel_for(g.k, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t i = 0; i < oh; ++i) {
        T* row = wide + (k * oh + i) * cols;
        for (int64_t n = 0; n < g.n; ++n) {
          const T* src = y + ((n * g.k + k) * oh + i) * ow;
          copy_short(src, ow, row + n * s.seg);  // rows of a few values: no libc call
          if (n + 1 < g.n) std::fill(row + n * s.seg + ow, row + (n + 1) * s.seg, T(0));
        }
      }
  });
}

int64_t fold_window_tiles(int64_t mh, int64_t mw, int64_t lanes, int64_t elem) {
  const int64_t tiles = kWindowBytes / elem / mh / mw;
  return std::max(lanes, tiles / lanes * lanes);
}

template <typename T>
void unfold_window(const Split& s, const T* win, int64_t k, int64_t i0, int64_t rows, int64_t j0,
                   int64_t cols, T* y) {
  const ConvGeometry& g = s.g;
  const int64_t oh = g.out[1], ow = g.out[2];
  for_each_piece(s, 0, j0, j0 + cols, [&](int64_t img, int64_t a, int64_t b, int64_t j) {
    if (a >= ow) return;  // the gap between images
    const int64_t len = std::min(b, ow) - a;
    T* dst = y + ((img * g.k + k) * oh + i0) * ow + a;
    for (int64_t r = 0; r < rows; ++r) copy_short(win + r * cols + (j - j0), len, dst + r * ow);
  });
}

#define FASTCONV_INSTANTIATE(T)                                                       \
  template void stack_input<T>(const Split&, const T*, T*);                           \
  template void gather_kernels<T>(const PhasedWeight&, const T*, int64_t, int64_t, int64_t,  \
                                  int64_t, int64_t, int64_t, int64_t, T*);                 \
  template void unstack_weight_gradient<T>(const Split&, const T*, T*);               \
  template void unstack_input_gradient<T>(const Split&, const T*, T*);                \
  template void unstack_input_channels<T>(const Split&, const T*, int64_t, int64_t, T*);  \
  template void unstack_window<T>(const Split&, const T*, int64_t, int64_t, int64_t, int64_t, \
                                  int64_t, int64_t, T*);                                     \
  template void zero_unread<T>(const Split&, T*);                                     \
  template void stack_window<T>(const Split&, const T*, int64_t, int64_t, int64_t, int64_t,  \
                                int64_t, int64_t, T*);                                       \
  template void fold_output<T>(const Split&, const T*, T*);                           \
  template void unfold_window<T>(const Split&, const T*, int64_t, int64_t, int64_t, int64_t,  \
                                 int64_t, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo::winograd_phases
