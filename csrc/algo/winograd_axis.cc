// Winograd F(m, r) along one axis (see winograd_axis.h).
#include "algo/winograd_axis.h"

#include <algorithm>
#include <array>
#include <vector>

#include "fastconv/parallel.h"
#include "gemm/gemm.h"
#include "ukernels/combine/combine_ukernels.h"
#include "ukernels/transpose/transpose_ukernels.h"
#include "ukernels/winograd/winograd_matrices.h"

namespace fastconv::algo::winograd_axis {
namespace {

constexpr int kMaxAlpha = kCombineMaxSources, kMaxTaps = kCombineMaxTaps;
// V and M of one chunk of (image, tile) pairs: about this many bytes (at least one pair; a
// folded batch folds only where one pair fits). The GEMMs stream them once per point at 40+
// FLOP per byte (R(2+1)D's 576 -> 256 channels), so they need not stay in cache; the cap only
// bounds V and M (the transposed or folded copies of the two sides are tensor-sized).
constexpr int64_t kChunkBytes = int64_t(16) << 20;
// Slices shorter than this fold a batch's images side by side (unfolded, the 8-element slices
// of Inception's 8x8 maps made the vector sums' calls 32% of mixed7c's 1x3 forward).
constexpr int64_t kFoldBelow = 64;

struct Coefficients {
  double at[kMaxAlpha][kMaxAlpha] = {}, g[kMaxAlpha][kMaxTaps] = {},
         bt[kMaxAlpha][kMaxAlpha] = {};
};

template <int M, int R>
Coefficients copy_of() {
  using F = winograd::Matrices<M, R>;
  Coefficients c;
  for (int a = 0; a < F::kAlpha; ++a) {
    for (int i = 0; i < M; ++i) c.at[i][a] = F::AT[i][a];
    for (int j = 0; j < R; ++j) c.g[a][j] = F::G[a][j];
    for (int j = 0; j < F::kAlpha; ++j) c.bt[a][j] = F::BT[a][j];
  }
  return c;
}

const Coefficients& coefficients(int m) {
  static const Coefficients c2 = copy_of<2, 3>(), c4 = copy_of<4, 3>(), c6 = copy_of<6, 3>();
  return m == 2 ? c2 : m == 4 ? c4 : c6;
}

// The transform matrices' rows in T, converted once per call for the combination kernels: BT and
// AT by row, G by point (its r taps).
template <typename T>
struct TypedRows {
  std::array<std::array<T, kMaxAlpha>, kMaxAlpha> bt{}, at{}, g{};
};
template <typename T>
TypedRows<T> typed_rows(const Coefficients& k) {
  TypedRows<T> t;
  for (int i = 0; i < kMaxAlpha; ++i)
    for (int j = 0; j < kMaxAlpha; ++j) {
      t.bt[size_t(i)][size_t(j)] = static_cast<T>(k.bt[i][j]);
      t.at[size_t(i)][size_t(j)] = static_cast<T>(k.at[i][j]);
      if (j < kMaxTaps) t.g[size_t(i)][size_t(j)] = static_cast<T>(k.g[i][j]);
    }
  return t;
}

// The workspace: the kernels' points (or their gradient), a chunk's input points and its
// output points (or grad_y's), and the run's views of the two sides (transposed along W and/or
// folded: move_view).
template <typename T>
struct Parts {
  T *u, *v, *m, *src, *dst;  // src, dst: the views of the two sides (transposed or folded)
};
template <typename T>
Parts<T> parts(const Along& t, T* ws) {
  T* m = ws + t.u_elems + t.v_elems;
  T* src = m + t.m_elems;
  return {ws, ws + t.u_elems, m, src, src + t.src_elems};
}

// V[a][ci][pair][:] = sum_j BT[a][j] in[n][ci][tile * m + j - pad][:] for the chunk's pairs
// (image, tile) = q0 + pair.
template <typename T>
void transform_input(const Along& t, const TypedRows<T>& k, const T* in, int64_t q0,
                     int64_t pairs, T* v) {
  const int alpha = t.alpha;
  const int64_t plane = t.plane, cols = pairs * plane;
  parallel_for(t.cin * pairs, 1, [&](int64_t b, int64_t e) {
    const auto combine = combine_kernels<T>().combine;
    std::array<const T*, kMaxAlpha> src{};
    for (int64_t i = b; i < e; ++i) {
      const int64_t ci = i / pairs, pl = i % pairs, q = q0 + pl;
      const int64_t n = q / t.tiles, d0 = q % t.tiles * t.m - t.pad;
      const T* chan = in + (n * t.cin + ci) * t.depth_in * plane;
      for (int j = 0; j < alpha; ++j) {
        const int64_t d = d0 + j;
        src[size_t(j)] = d >= 0 && d < t.depth_in ? chan + d * plane : nullptr;
      }
      for (int a = 0; a < alpha; ++a)
        combine(src.data(), k.bt[size_t(a)].data(), alpha, plane, T(0),
                v + (int64_t(a) * t.cin + ci) * cols + pl * plane);
    }
  });
}

// The correlation's kernels: runs of r taps (reversed when `flip`) stored (co, ci) by output
// channel (`by_co`: the forward's weight (K, C, r)) or by input channel (backward data's).
template <typename T>
struct Kernels {
  const T* w;
  bool by_co, flip;
};

// The correlation: out[n][co][d] = sum_ci sum_j tap j of (co, ci) * in[n][ci][d + j - pad]
// (+ bias), planes of t.plane elements.
template <typename T>
void correlate(const Along& t, int64_t images, const T* in, Kernels<T> wk, const T* bias,
               T* out, T* ws) {
  const TypedRows<T> kt = typed_rows<T>(coefficients(t.m));
  const int alpha = t.alpha;
  const Parts<T> part = parts(t, ws);
  T* u = part.u;
  T* v = part.v;
  T* mm = part.m;
  // U[a] = sum_j G[a][j] wt(j, co, ci) over the weight's (co, ci) runs of r taps in their stored
  // order: the forward's (K, C, r) by output channel, U[a][co][ci] (the GEMMs' A row-major);
  // backward data's by input channel, U[a][ci][co] (A transposed). One interleaved combination
  // per block of runs.
  const bool by_co = wk.by_co;
  const int64_t rows = by_co ? t.cout : t.cin, len = by_co ? t.cin : t.cout;
  std::array<T, kMaxAlpha * kMaxTaps> coef{};
  for (int a = 0; a < alpha; ++a)
    for (int j = 0; j < t.r; ++j)
      coef[size_t(a * t.r + j)] = kt.g[size_t(a)][size_t(wk.flip ? t.r - 1 - j : j)];
  parallel_for(rows, 1, [&](int64_t b, int64_t e) {
    std::array<T*, kMaxAlpha> dst{};
    for (int a = 0; a < alpha; ++a) dst[size_t(a)] = u + (int64_t(a) * rows + b) * len;
    combine_kernels<T>().runs_to_points(wk.w + b * len * t.r, t.r, coef.data(), alpha,
                                        (e - b) * len, dst.data());
  });
  const gemm::MatrixRef<T> a_ref = by_co ? gemm::MatrixRef<T>{u, t.cin, 1}
                                         : gemm::MatrixRef<T>{u, 1, t.cout};
  const int64_t total = images * t.tiles, plane = t.plane;
  for (int64_t q0 = 0; q0 < total; q0 += t.pairs) {
    const int64_t pairs = std::min(t.pairs, total - q0), cols = pairs * plane;
    transform_input(t, kt, in, q0, pairs, v);
    gemm::gemm_batched<T>(alpha, t.cout, cols, t.cin, T(1), a_ref,
                          t.cout * t.cin, gemm::MatrixRef<T>{v, cols, 1}, t.cin * cols, T(0), mm,
                          cols, t.cout * cols);
    // out[n][co][tile * m + r][:] = sum_a AT[r][a] M[a][co][pair][:] (+ bias).
    parallel_for(t.cout * pairs, 1, [&](int64_t b, int64_t e) {
      const auto combine = combine_kernels<T>().combine;
      std::array<const T*, kMaxAlpha> src{};
      for (int64_t i = b; i < e; ++i) {
        const int64_t co = i / pairs, pl = i % pairs, q = q0 + pl;
        const int64_t n = q / t.tiles, d0 = q % t.tiles * t.m;
        for (int a = 0; a < alpha; ++a)
          src[size_t(a)] = mm + (int64_t(a) * t.cout + co) * cols + pl * plane;
        T* chan = out + (n * t.cout + co) * t.depth_out * plane;
        const T add = bias != nullptr ? bias[co] : T(0);
        for (int r = 0; r < t.m && d0 + r < t.depth_out; ++r)
          combine(src.data(), kt.at[size_t(r)].data(), alpha, plane, add,
                  chan + (d0 + r) * plane);
      }
    });
  }
}

// The weight gradient: per point a, dU[a] (cout x cin) = sum over the columns of Z[a] V[a]^T,
// Z[a][co][pair][:] = sum_r AT[r][a] grad_y[n][co][tile * m + r][:] (the output transform's
// transpose; planes past the output read as zeros) and V the input's points; then
// grad_w[co][ci][j] = sum_a G[a][j] dU[a][co][ci]. The chunks add into dU in order (beta 1
// after the first), and the engine never splits a reduction over threads: the sums do not
// depend on the threads.
template <typename T>
void weight_gradient(const Along& t, int64_t images, const T* x, const T* grad_y, bool flip,
                     T* grad_w, T* ws) {
  const TypedRows<T> kt = typed_rows<T>(coefficients(t.m));
  const int alpha = t.alpha;
  const Parts<T> part = parts(t, ws);
  const int64_t total = images * t.tiles, plane = t.plane;
  for (int64_t q0 = 0; q0 < total; q0 += t.pairs) {
    const int64_t pairs = std::min(t.pairs, total - q0), cols = pairs * plane;
    transform_input(t, kt, x, q0, pairs, part.v);
    parallel_for(t.cout * pairs, 1, [&](int64_t b, int64_t e) {
      const auto combine = combine_kernels<T>().combine;
      std::array<const T*, kMaxAlpha> src{};
      std::array<T, kMaxAlpha> coef{};
      for (int64_t i = b; i < e; ++i) {
        const int64_t co = i / pairs, pl = i % pairs, q = q0 + pl;
        const int64_t n = q / t.tiles, d0 = q % t.tiles * t.m;
        const T* chan = grad_y + (n * t.cout + co) * t.depth_out * plane;
        for (int r = 0; r < t.m; ++r)
          src[size_t(r)] = d0 + r < t.depth_out ? chan + (d0 + r) * plane : nullptr;
        for (int a = 0; a < alpha; ++a) {
          for (int r = 0; r < t.m; ++r) coef[size_t(r)] = kt.at[size_t(r)][size_t(a)];
          combine(src.data(), coef.data(), t.m, plane, T(0),
                  part.m + (int64_t(a) * t.cout + co) * cols + pl * plane);
        }
      }
    });
    gemm::gemm_batched<T>(alpha, t.cout, t.cin, cols, T(1), gemm::MatrixRef<T>{part.m, cols, 1},
                          t.cout * cols, gemm::MatrixRef<T>{part.v, 1, cols}, t.cin * cols,
                          q0 == 0 ? T(0) : T(1), part.u, t.cin, t.cout * t.cin);
  }
  // grad_w[co][ci][j] = sum_a G[a][j] dU[a][co][ci]: the points folded into interleaved taps (j
  // reversed for true convolution), block by block of (co, ci) runs.
  std::array<T, kMaxAlpha * kMaxTaps> coef{};
  for (int j = 0; j < t.r; ++j)
    for (int a = 0; a < alpha; ++a)
      coef[size_t((flip ? t.r - 1 - j : j) * alpha + a)] = kt.g[size_t(a)][size_t(j)];
  parallel_for(t.cout, 1, [&](int64_t b, int64_t e) {
    std::array<const T*, kMaxAlpha> points{};
    for (int a = 0; a < alpha; ++a) points[size_t(a)] = part.u + (int64_t(a) * t.cout + b) * t.cin;
    combine_kernels<T>().points_to_runs(points.data(), alpha, coef.data(), t.r, (e - b) * t.cin,
                                        grad_w + b * t.cin * t.r);
  });
}

// Where image n's channel c starts in the run's view of `channels` channels of `depth` slices:
// [n][c][depth][slice], or folded [c][depth][n][slice].
inline int64_t view_offset(const Along& t, int64_t n, int64_t c, int64_t channels,
                           int64_t depth) {
  return t.folded ? c * depth * t.plane + n * t.slice : (n * channels + c) * depth * t.slice;
}

// Moves images x channels planes of `depth` slices (transposed: (slice, depth) planes) between
// the tensor and the run's view, into the view (`into`) or back, in parallel over the channels:
// the images of one channel, which share the view's cache lines where folded, stay on one
// thread.
template <typename T>
void move_view(const Along& t, bool into, int64_t images, int64_t channels, int64_t depth,
               const T* src, T* dst) {
  const TransposeKernels<T>& kern = transpose_kernels<T>();
  const int64_t s = t.slice, size = s * depth;
  // The view's and the tensor's strides between slices.
  const int64_t view_step = t.plane, tensor_step = s;
  parallel_for(channels, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t n = 0; n < images; ++n) {
        const int64_t view = view_offset(t, n, c, channels, depth);
        const int64_t tensor = (n * channels + c) * size;
        const T* from = src + (into ? tensor : view);
        T* to = dst + (into ? view : tensor);
        if (t.transposed) {  // the tensor's (slice rows of depth) <-> the view's (depth rows)
          if (into)
            kern.transpose(from, depth, s, depth, static_cast<const T*>(nullptr), to, view_step);
          else
            kern.transpose(from, view_step, depth, s, static_cast<const T*>(nullptr), to, depth);
          continue;
        }
        const int64_t from_step = into ? tensor_step : view_step;
        const int64_t to_step = into ? view_step : tensor_step;
        for (int64_t d = 0; d < depth; ++d)
          std::copy(from + d * from_step, from + d * from_step + s, to + d * to_step);
      }
  });
}

}  // namespace

namespace {

// The dim the kernel's taps lie along (0: not one of this path's kernels).
int axis_of(const ConvGeometry& g) {
  if (g.rank == 3) return g.kernel[0] == 3 && g.kernel[1] == 1 && g.kernel[2] == 1 ? 0 : -1;
  if (g.rank != 2) return -1;
  const int64_t h = g.kernel[1], w = g.kernel[2];
  if (w == 1 && h == 3) return 1;
  if (h == 1 && w == 3) return 2;
  return -1;
}

}  // namespace

bool serves(const ConvGeometry& g) {
  const int axis = axis_of(g);
  if (axis < 0 || g.groups != 1) return false;
  for (int d = 0; d < kMaxRank; ++d) {
    if (g.stride[d] != 1 || g.dilation[d] != 1) return false;
    if (d != axis && (g.pad_lo[d] != 0 || g.pad_hi[d] != 0)) return false;
  }
  return true;
}

Along make(const ConvGeometry& g, ConvPass pass, int tile, int64_t elem) {
  Along t;
  const int axis = axis_of(g);
  const bool bd = pass == ConvPass::kBackwardData;
  t.r = static_cast<int>(g.kernel[axis]);
  t.transposed = axis == 2;
  t.cin = bd ? g.k : g.c;
  t.cout = bd ? g.c : g.k;
  t.depth_in = bd ? g.out[axis] : g.in[axis];
  t.depth_out = bd ? g.in[axis] : g.out[axis];
  t.pad = bd ? g.kernel[axis] - 1 - g.pad_lo[axis] : g.pad_lo[axis];
  t.m = tile == 2 || tile == 4 || tile == 6 ? tile : (t.depth_out <= 2 ? 2 : 4);
  t.alpha = t.m + t.r - 1;
  t.tiles = (t.depth_out + t.m - 1) / t.m;
  // The slice across the axis: the dims after it, or (transposed) the rows. Short ones fold the
  // batch's images side by side where one tile of the folded slices' points fits a chunk.
  t.slice = t.transposed ? g.in[1] : (axis == 0 ? g.in[1] * g.in[2] : g.in[2]);
  const int64_t per_image_tile = t.alpha * (t.cin + t.cout) * std::max<int64_t>(t.slice, 1) * elem;
  t.folded = g.n > 1 && t.slice < kFoldBelow && g.n * per_image_tile <= kChunkBytes;
  t.images = t.folded ? 1 : g.n;
  t.plane = t.slice * (t.folded ? g.n : 1);
  const int64_t per_pair = t.alpha * (t.cin + t.cout) * std::max<int64_t>(t.plane, 1) * elem;
  const int64_t total = t.images * t.tiles;
  t.pairs = std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(per_pair, 1), 1,
                                std::max<int64_t>(total, 1));
  t.u_elems = t.alpha * t.cout * t.cin;
  t.v_elems = t.alpha * t.cin * t.pairs * t.plane;
  t.m_elems = t.alpha * t.cout * t.pairs * t.plane;
  if (t.transposed || t.folded) {
    t.src_elems = g.n * t.cin * t.depth_in * t.slice;
    t.dst_elems = g.n * t.cout * t.depth_out * t.slice;
  }
  return t;
}

namespace {

// The correlation of `in` (N x cin slices) into `out`, through the view where it is transposed
// or folded.
template <typename T>
void correlate_along(const ConvGeometry& g, const Along& t, const T* in, Kernels<T> wk,
                     const T* bias, T* out, T* ws) {
  if (!t.transposed && !t.folded) return correlate(t, t.images, in, wk, bias, out, ws);
  const Parts<T> part = parts(t, ws);
  move_view(t, true, g.n, t.cin, t.depth_in, in, part.src);
  correlate(t, t.images, static_cast<const T*>(part.src), wk, bias, part.dst, ws);
  move_view(t, false, g.n, t.cout, t.depth_out, static_cast<const T*>(part.dst), out);
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const Along& t, const T* x, const T* w, const T* bias, T* y,
             T* ws) {
  // w (K, C, taps) with the taps contiguous; true convolution reads them reversed.
  correlate_along(g, t, x, Kernels<T>{w, true, g.mode == ConvMode::kConv}, bias, y, ws);
}

template <typename T>
void backward_data(const ConvGeometry& g, const Along& t, const T* grad_y, const T* w,
                   T* grad_x, T* ws) {
  // grad_x[c][d] = sum_k sum_j w[k][c][r - 1 - j] grad_y[k][d + j - pad'], pad' = r - 1 - pad:
  // the kernels transposed (co = c, ci = k) and reversed (true convolution's stored reversed
  // already).
  correlate_along(g, t, grad_y, Kernels<T>{w, false, g.mode != ConvMode::kConv},
                  static_cast<const T*>(nullptr), grad_x, ws);
}

template <typename T>
void backward_weight(const ConvGeometry& g, const Along& t, const T* x, const T* grad_y,
                     T* grad_w, T* ws) {
  const bool flip = g.mode == ConvMode::kConv;
  if (!t.transposed && !t.folded) return weight_gradient(t, t.images, x, grad_y, flip, grad_w, ws);
  const Parts<T> part = parts(t, ws);
  move_view(t, true, g.n, t.cin, t.depth_in, x, part.src);
  move_view(t, true, g.n, t.cout, t.depth_out, grad_y, part.dst);
  weight_gradient(t, t.images, static_cast<const T*>(part.src), static_cast<const T*>(part.dst),
                  flip, grad_w, ws);
}

#define FASTCONV_INSTANTIATE(T)                                                              \
  template void forward<T>(const ConvGeometry&, const Along&, const T*, const T*, const T*, \
                           T*, T*);                                                          \
  template void backward_data<T>(const ConvGeometry&, const Along&, const T*, const T*, T*, \
                                 T*);                                                          \
  template void backward_weight<T>(const ConvGeometry&, const Along&, const T*, const T*,   \
                                   T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo::winograd_axis
