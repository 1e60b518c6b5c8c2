// Winograd F(m, 3) along depth for 3 x 1 x 1 kernels (see winograd_temporal.h).
#include "algo/winograd_temporal.h"

#include <algorithm>
#include <array>
#include <vector>

#include "fastconv/parallel.h"
#include "gemm/gemm.h"
#include "ukernels/winograd/winograd_matrices.h"

namespace fastconv::algo::winograd_temporal {
namespace {

constexpr int kMaxAlpha = 8;
// V and M of one chunk of (image, tile) pairs: about this many bytes (at least one pair). The
// GEMMs stream them once per point at 40+ FLOP per byte (R(2+1)D's 576 -> 256 channels), so
// they need not stay in cache; the cap only bounds the workspace.
constexpr int64_t kChunkBytes = int64_t(16) << 20;

struct Coefficients {
  double at[kMaxAlpha][kMaxAlpha] = {}, g[kMaxAlpha][3] = {}, bt[kMaxAlpha][kMaxAlpha] = {};
};

template <int M>
Coefficients copy_of() {
  using F = winograd::Matrices<M, 3>;
  Coefficients c;
  for (int a = 0; a < F::kAlpha; ++a) {
    for (int i = 0; i < M; ++i) c.at[i][a] = F::AT[i][a];
    for (int j = 0; j < 3; ++j) c.g[a][j] = F::G[a][j];
    for (int j = 0; j < F::kAlpha; ++j) c.bt[a][j] = F::BT[a][j];
  }
  return c;
}

const Coefficients& coefficients(int m) {
  static const Coefficients c2 = copy_of<2>(), c4 = copy_of<4>(), c6 = copy_of<6>();
  return m == 2 ? c2 : m == 4 ? c4 : c6;
}

// dst[p] = sum_j coef[j] * src[j][p] over the sources present (nullptr: a zero plane) with a
// nonzero coefficient, plus `add`; zero when none.
template <typename T>
void combine(const T* const* src, const double* coef, int count, int64_t n, T add, T* dst) {
  bool first = true;
  for (int j = 0; j < count; ++j) {
    if (src[j] == nullptr || coef[j] == 0.0) continue;
    const T c = static_cast<T>(coef[j]);
    const T* s = src[j];
    if (first) {
      for (int64_t p = 0; p < n; ++p) dst[p] = c * s[p] + add;
    } else {
      for (int64_t p = 0; p < n; ++p) dst[p] += c * s[p];
    }
    first = false;
  }
  if (first) std::fill(dst, dst + n, add);
}

// The workspace: the kernels' points (or their gradient), a chunk's input points and its
// output points (or grad_y's).
template <typename T>
struct Parts {
  T *u, *v, *m;
};
template <typename T>
Parts<T> parts(const Temporal& t, T* ws) {
  return {ws, ws + t.u_elems, ws + t.u_elems + t.v_elems};
}

// V[a][ci][pair][:] = sum_j BT[a][j] in[n][ci][tile * m + j - pad][:] for the chunk's pairs
// (image, tile) = q0 + pair.
template <typename T>
void transform_input(const Temporal& t, const Coefficients& k, const T* in, int64_t q0,
                     int64_t pairs, T* v) {
  const int alpha = t.alpha;
  const int64_t plane = t.plane, cols = pairs * plane;
  parallel_for(t.cin * pairs, 1, [&](int64_t b, int64_t e) {
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
        combine(src.data(), k.bt[a], alpha, plane, T(0),
                v + (int64_t(a) * t.cin + ci) * cols + pl * plane);
    }
  });
}

// Where the correlation's kernels lie: the 3 taps of (co, ci) at w + co * co_step + ci * ci_step,
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
void correlate(const Temporal& t, int64_t images, const T* in, Kernels<T> wk, const T* bias,
               T* out, T* ws) {
  const Coefficients& k = coefficients(t.m);
  const int alpha = t.alpha;
  const Parts<T> part = parts(t, ws);
  T* u = part.u;
  T* v = part.v;
  T* mm = part.m;
  // U[a][co][ci] = sum_j G[a][j] wt(j, co, ci): each output channel's taps gathered into three
  // rows, then every point's row as a vector sum of them.
  parallel_for(t.cout, 1, [&](int64_t b, int64_t e) {
    std::vector<T> taps(size_t(3 * t.cin));
    for (int64_t co = b; co < e; ++co) {
      for (int64_t ci = 0; ci < t.cin; ++ci) {
        const T* tri = wk.w + co * wk.co_step + ci * wk.ci_step;
        for (int j = 0; j < 3; ++j) taps[size_t(j * t.cin + ci)] = tri[wk.flip ? 2 - j : j];
      }
      const T* w0 = taps.data();
      const T* w1 = w0 + t.cin;
      const T* w2 = w1 + t.cin;
      for (int a = 0; a < alpha; ++a) {
        const T g0 = T(k.g[a][0]), g1 = T(k.g[a][1]), g2 = T(k.g[a][2]);
        T* row = u + (int64_t(a) * t.cout + co) * t.cin;
        for (int64_t ci = 0; ci < t.cin; ++ci) row[ci] = g0 * w0[ci] + g1 * w1[ci] + g2 * w2[ci];
      }
    }
  });
  const int64_t total = images * t.tiles, plane = t.plane;
  for (int64_t q0 = 0; q0 < total; q0 += t.pairs) {
    const int64_t pairs = std::min(t.pairs, total - q0), cols = pairs * plane;
    transform_input(t, k, in, q0, pairs, v);
    gemm::gemm_batched<T>(alpha, t.cout, cols, t.cin, T(1), gemm::MatrixRef<T>{u, t.cin, 1},
                          t.cout * t.cin, gemm::MatrixRef<T>{v, cols, 1}, t.cin * cols, T(0), mm,
                          cols, t.cout * cols);
    // out[n][co][tile * m + r][:] = sum_a AT[r][a] M[a][co][pair][:] (+ bias).
    parallel_for(t.cout * pairs, 1, [&](int64_t b, int64_t e) {
      std::array<const T*, kMaxAlpha> src{};
      for (int64_t i = b; i < e; ++i) {
        const int64_t co = i / pairs, pl = i % pairs, q = q0 + pl;
        const int64_t n = q / t.tiles, d0 = q % t.tiles * t.m;
        for (int a = 0; a < alpha; ++a)
          src[size_t(a)] = mm + (int64_t(a) * t.cout + co) * cols + pl * plane;
        T* chan = out + (n * t.cout + co) * t.depth_out * plane;
        const T add = bias != nullptr ? bias[co] : T(0);
        for (int r = 0; r < t.m && d0 + r < t.depth_out; ++r)
          combine(src.data(), k.at[r], alpha, plane, add, chan + (d0 + r) * plane);
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
void weight_gradient(const Temporal& t, int64_t images, const T* x, const T* grad_y, bool flip,
                     T* grad_w, T* ws) {
  const Coefficients& k = coefficients(t.m);
  const int alpha = t.alpha;
  const Parts<T> part = parts(t, ws);
  const int64_t total = images * t.tiles, plane = t.plane;
  for (int64_t q0 = 0; q0 < total; q0 += t.pairs) {
    const int64_t pairs = std::min(t.pairs, total - q0), cols = pairs * plane;
    transform_input(t, k, x, q0, pairs, part.v);
    parallel_for(t.cout * pairs, 1, [&](int64_t b, int64_t e) {
      std::array<const T*, kMaxAlpha> src{};
      std::array<double, kMaxAlpha> coef{};
      for (int64_t i = b; i < e; ++i) {
        const int64_t co = i / pairs, pl = i % pairs, q = q0 + pl;
        const int64_t n = q / t.tiles, d0 = q % t.tiles * t.m;
        const T* chan = grad_y + (n * t.cout + co) * t.depth_out * plane;
        for (int r = 0; r < t.m; ++r)
          src[size_t(r)] = d0 + r < t.depth_out ? chan + (d0 + r) * plane : nullptr;
        for (int a = 0; a < alpha; ++a) {
          for (int r = 0; r < t.m; ++r) coef[size_t(r)] = k.at[r][a];
          combine(src.data(), coef.data(), t.m, plane, T(0),
                  part.m + (int64_t(a) * t.cout + co) * cols + pl * plane);
        }
      }
    });
    gemm::gemm_batched<T>(alpha, t.cout, t.cin, cols, T(1), gemm::MatrixRef<T>{part.m, cols, 1},
                          t.cout * cols, gemm::MatrixRef<T>{part.v, 1, cols}, t.cin * cols,
                          q0 == 0 ? T(0) : T(1), part.u, t.cin, t.cout * t.cin);
  }
  // Each output channel's three tap rows as vector sums of its points' rows, then interleaved.
  parallel_for(t.cout, 1, [&](int64_t b, int64_t e) {
    std::vector<T> rows(size_t(3 * t.cin));
    for (int64_t co = b; co < e; ++co) {
      for (int j = 0; j < 3; ++j) {
        T* row = rows.data() + j * t.cin;
        std::fill(row, row + t.cin, T(0));
        for (int a = 0; a < alpha; ++a) {
          if (k.g[a][j] == 0.0) continue;
          const T c = T(k.g[a][j]);
          const T* src = part.u + (int64_t(a) * t.cout + co) * t.cin;
          for (int64_t ci = 0; ci < t.cin; ++ci) row[ci] += c * src[ci];
        }
      }
      for (int64_t ci = 0; ci < t.cin; ++ci)
        for (int j = 0; j < 3; ++j)
          grad_w[(co * t.cin + ci) * 3 + (flip ? 2 - j : j)] = rows[size_t(j * t.cin + ci)];
    }
  });
}

}  // namespace

bool serves(const ConvGeometry& g) {
  if (g.rank != 3 || g.groups != 1) return false;
  if (g.kernel[0] != 3 || g.kernel[1] != 1 || g.kernel[2] != 1) return false;
  for (int d = 0; d < kMaxRank; ++d)
    if (g.stride[d] != 1 || g.dilation[d] != 1) return false;
  return g.pad_lo[1] == 0 && g.pad_hi[1] == 0 && g.pad_lo[2] == 0 && g.pad_hi[2] == 0;
}

Temporal make(const ConvGeometry& g, ConvPass pass, int tile, int64_t elem) {
  Temporal t;
  t.backward_data = pass == ConvPass::kBackwardData;
  t.cin = t.backward_data ? g.k : g.c;
  t.cout = t.backward_data ? g.c : g.k;
  t.depth_in = t.backward_data ? g.out[0] : g.in[0];
  t.depth_out = t.backward_data ? g.in[0] : g.out[0];
  t.pad = t.backward_data ? g.kernel[0] - 1 - g.pad_lo[0] : g.pad_lo[0];
  t.plane = g.in[1] * g.in[2];
  t.m = tile == 2 || tile == 4 || tile == 6 ? tile : (t.depth_out <= 2 ? 2 : 4);
  t.alpha = t.m + 2;
  t.tiles = (t.depth_out + t.m - 1) / t.m;
  const int64_t per_pair = t.alpha * (t.cin + t.cout) * std::max<int64_t>(t.plane, 1) * elem;
  const int64_t total = g.n * t.tiles;
  t.pairs = std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(per_pair, 1), 1,
                                std::max<int64_t>(total, 1));
  t.u_elems = t.alpha * t.cout * t.cin;
  t.v_elems = t.alpha * t.cin * t.pairs * t.plane;
  t.m_elems = t.alpha * t.cout * t.pairs * t.plane;
  return t;
}

template <typename T>
void forward(const ConvGeometry& g, const Temporal& t, const T* x, const T* w, const T* bias,
             T* y, T* ws) {
  // w (K, C, 3, 1, 1); true convolution reads the taps reversed.
  correlate(t, g.n, x, Kernels<T>{w, g.c * 3, 3, g.mode == ConvMode::kConv}, bias, y, ws);
}

template <typename T>
void backward_data(const ConvGeometry& g, const Temporal& t, const T* grad_y, const T* w,
                   T* grad_x, T* ws) {
  // grad_x[c][d] = sum_k sum_j w[k][c][2 - j] grad_y[k][d + j - pad'], pad' = 2 - pad: the
  // kernels transposed (co = c, ci = k) and reversed (true convolution's stored reversed
  // already).
  correlate(t, g.n, grad_y, Kernels<T>{w, 3, g.c * 3, g.mode != ConvMode::kConv},
            static_cast<const T*>(nullptr), grad_x, ws);
}

template <typename T>
void backward_weight(const ConvGeometry& g, const Temporal& t, const T* x, const T* grad_y,
                     T* grad_w, T* ws) {
  weight_gradient(t, g.n, x, grad_y, g.mode == ConvMode::kConv, grad_w, ws);
}

#define FASTCONV_INSTANTIATE(T)                                                              \
  template void forward<T>(const ConvGeometry&, const Temporal&, const T*, const T*, const T*, \
                           T*, T*);                                                          \
  template void backward_data<T>(const ConvGeometry&, const Temporal&, const T*, const T*, T*, \
                                 T*);                                                          \
  template void backward_weight<T>(const ConvGeometry&, const Temporal&, const T*, const T*,   \
                                   T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo::winograd_temporal
