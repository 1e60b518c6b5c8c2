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

constexpr int kMaxAlpha = 8, kMaxTaps = 3;
// V and M of one chunk of (image, tile) pairs: about this many bytes (at least one pair). The
// GEMMs stream them once per point at 40+ FLOP per byte (R(2+1)D's 576 -> 256 channels), so
// they need not stay in cache; the cap only bounds the workspace.
constexpr int64_t kChunkBytes = int64_t(16) << 20;

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
// output points (or grad_y's), and along W the two sides transposed.
template <typename T>
struct Parts {
  T *u, *v, *m, *src, *dst;  // src, dst: the transposed sides (along W)
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

// Where the correlation's kernels lie: the r taps of (co, ci) at w + co * co_step + ci * ci_step,
// reversed when `flip`.
template <typename T>
struct Kernels {
  const T* w;
  int64_t co_step, ci_step;
  bool flip;
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
  // U[a][co][ci] = sum_j G[a][j] wt(j, co, ci): each output channel's taps gathered into r
  // rows, then every point's row as a vector sum of them.
  parallel_for(t.cout, 1, [&](int64_t b, int64_t e) {
    const auto combine = combine_kernels<T>().combine;
    const int r = t.r;
    std::vector<T> taps(size_t(r * t.cin));
    for (int64_t co = b; co < e; ++co) {
      for (int64_t ci = 0; ci < t.cin; ++ci) {
        const T* run = wk.w + co * wk.co_step + ci * wk.ci_step;
        for (int j = 0; j < r; ++j) taps[size_t(j * t.cin + ci)] = run[wk.flip ? r - 1 - j : j];
      }
      const T* rows[kMaxTaps] = {taps.data(), taps.data() + t.cin, taps.data() + 2 * t.cin};
      for (int a = 0; a < alpha; ++a)
        combine(rows, kt.g[size_t(a)].data(), r, t.cin, T(0),
                u + (int64_t(a) * t.cout + co) * t.cin);
    }
  });
  const int64_t total = images * t.tiles, plane = t.plane;
  for (int64_t q0 = 0; q0 < total; q0 += t.pairs) {
    const int64_t pairs = std::min(t.pairs, total - q0), cols = pairs * plane;
    transform_input(t, kt, in, q0, pairs, v);
    gemm::gemm_batched<T>(alpha, t.cout, cols, t.cin, T(1), gemm::MatrixRef<T>{u, t.cin, 1},
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
  // Each output channel's r tap rows as vector sums of its points' rows, then interleaved.
  parallel_for(t.cout, 1, [&](int64_t b, int64_t e) {
    const auto combine = combine_kernels<T>().combine;
    const int r = t.r;
    std::vector<T> rows(size_t(r * t.cin));
    for (int64_t co = b; co < e; ++co) {
      std::array<const T*, kMaxAlpha> points{};
      for (int a = 0; a < alpha; ++a) points[size_t(a)] = part.u + (int64_t(a) * t.cout + co) * t.cin;
      for (int j = 0; j < r; ++j) {
        std::array<T, kMaxAlpha> coef{};
        for (int a = 0; a < alpha; ++a) coef[size_t(a)] = kt.g[size_t(a)][size_t(j)];
        combine(points.data(), coef.data(), alpha, t.cin, T(0), rows.data() + j * t.cin);
      }
      for (int64_t ci = 0; ci < t.cin; ++ci)
        for (int j = 0; j < r; ++j)
          grad_w[(co * t.cin + ci) * r + (flip ? r - 1 - j : j)] = rows[size_t(j * t.cin + ci)];
    }
  });
}

// Each of `planes` rows x cols planes of src transposed into dst (cols x rows), in parallel.
template <typename T>
void transpose_planes(const T* src, int64_t planes, int64_t rows, int64_t cols, T* dst) {
  const TransposeKernels<T>& kern = transpose_kernels<T>();
  const int64_t size = rows * cols;
  parallel_for(planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      kern.transpose(src + i * size, cols, rows, cols, static_cast<const T*>(nullptr),
                     dst + i * size, rows);
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
  // The slice across the axis: the dims after it, or (transposed) the rows.
  t.plane = t.transposed ? g.in[1] : (axis == 0 ? g.in[1] * g.in[2] : g.in[2]);
  t.m = tile == 2 || tile == 4 || tile == 6 ? tile : (t.depth_out <= 2 ? 2 : 4);
  t.alpha = t.m + t.r - 1;
  t.tiles = (t.depth_out + t.m - 1) / t.m;
  const int64_t per_pair = t.alpha * (t.cin + t.cout) * std::max<int64_t>(t.plane, 1) * elem;
  const int64_t total = g.n * t.tiles;
  t.pairs = std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(per_pair, 1), 1,
                                std::max<int64_t>(total, 1));
  t.u_elems = t.alpha * t.cout * t.cin;
  t.v_elems = t.alpha * t.cin * t.pairs * t.plane;
  t.m_elems = t.alpha * t.cout * t.pairs * t.plane;
  if (t.transposed) {
    t.src_elems = g.n * t.cin * t.depth_in * t.plane;
    t.dst_elems = g.n * t.cout * t.depth_out * t.plane;
  }
  return t;
}

namespace {

// The correlation of `in` (N x cin slices) into `out`, along W through transposed planes.
template <typename T>
void correlate_along(const ConvGeometry& g, const Along& t, const T* in, Kernels<T> wk,
                     const T* bias, T* out, T* ws) {
  if (!t.transposed) return correlate(t, g.n, in, wk, bias, out, ws);
  const Parts<T> part = parts(t, ws);
  transpose_planes(in, g.n * t.cin, t.plane, t.depth_in, part.src);
  correlate(t, g.n, static_cast<const T*>(part.src), wk, bias, part.dst, ws);
  transpose_planes(static_cast<const T*>(part.dst), g.n * t.cout, t.depth_out, t.plane, out);
}

}  // namespace

template <typename T>
void forward(const ConvGeometry& g, const Along& t, const T* x, const T* w, const T* bias, T* y,
             T* ws) {
  // w (K, C, taps) with the taps contiguous; true convolution reads them reversed.
  correlate_along(g, t, x, Kernels<T>{w, g.c * t.r, t.r, g.mode == ConvMode::kConv}, bias, y, ws);
}

template <typename T>
void backward_data(const ConvGeometry& g, const Along& t, const T* grad_y, const T* w,
                   T* grad_x, T* ws) {
  // grad_x[c][d] = sum_k sum_j w[k][c][r - 1 - j] grad_y[k][d + j - pad'], pad' = r - 1 - pad:
  // the kernels transposed (co = c, ci = k) and reversed (true convolution's stored reversed
  // already).
  correlate_along(g, t, grad_y, Kernels<T>{w, t.r, g.c * t.r, g.mode != ConvMode::kConv},
                  static_cast<const T*>(nullptr), grad_x, ws);
}

template <typename T>
void backward_weight(const ConvGeometry& g, const Along& t, const T* x, const T* grad_y,
                     T* grad_w, T* ws) {
  const bool flip = g.mode == ConvMode::kConv;
  if (!t.transposed) return weight_gradient(t, g.n, x, grad_y, flip, grad_w, ws);
  const Parts<T> part = parts(t, ws);
  transpose_planes(x, g.n * t.cin, t.plane, t.depth_in, part.src);
  transpose_planes(grad_y, g.n * t.cout, t.plane, t.depth_out, part.dst);
  weight_gradient(t, g.n, static_cast<const T*>(part.src), static_cast<const T*>(part.dst), flip,
                  grad_w, ws);
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
