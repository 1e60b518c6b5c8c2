// Tiled / locally connected convolution as one GEMM per kernel phase (see tiled_gemm.h).
#include "algo/tiled_gemm.h"

#include "fastconv/status.h"

#include <algorithm>
#include <vector>

#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

// Output positions of each phase, in phase order: phase p = (p0, p1, p2) (flat over tiles)
// covers o_d = p_d + tiles_d * j_d, j_d < count_d; its columns start at start[p] positions.
struct Phases {
  int64_t P = 0;
  std::vector<int64_t> count;  // L_p
  std::vector<int64_t> start;  // sum of L_q, q < p
  bool uniform = true;         // every L_p equal
  explicit Phases(const TiledGeometry& g) : P(g.phases()), count(size_t(P)), start(size_t(P)) {
    int64_t total = 0;
    for (int64_t p = 0; p < P; ++p) {
      int64_t l = 1;
      const int64_t pd[3] = {p / (g.tiles[1] * g.tiles[2]), (p / g.tiles[2]) % g.tiles[1],
                             p % g.tiles[2]};
      for (int d = 0; d < 3; ++d)
        l *= pd[d] < g.out[d] ? (g.out[d] - pd[d] + g.tiles[d] - 1) / g.tiles[d] : 0;
      count[size_t(p)] = l;
      start[size_t(p)] = total;
      total += l;
      uniform = uniform && l == count[0];
    }
  }
};

// Calls fn(j, o) for the positions of phase p: j its index in the phase, o the flat output
// offset; with a tap, fn(j, i) gets the flat input offset instead (-1 in the padding).
template <typename Fn>
void for_positions(const TiledGeometry& g, int64_t p, Fn&& fn) {
  const int64_t pd[3] = {p / (g.tiles[1] * g.tiles[2]), (p / g.tiles[2]) % g.tiles[1],
                         p % g.tiles[2]};
  int64_t j = 0;
  for (int64_t o0 = pd[0]; o0 < g.out[0]; o0 += g.tiles[0])
    for (int64_t o1 = pd[1]; o1 < g.out[1]; o1 += g.tiles[1])
      for (int64_t o2 = pd[2]; o2 < g.out[2]; o2 += g.tiles[2])
        fn(j++, (o0 * g.out[1] + o1) * g.out[2] + o2, o0, o1, o2);
}

template <typename Fn>
void for_taps(const TiledGeometry& g, Fn&& fn) {
  for (int64_t t0 = 0; t0 < g.kernel[0]; ++t0)
    for (int64_t t1 = 0; t1 < g.kernel[1]; ++t1)
      for (int64_t t2 = 0; t2 < g.kernel[2]; ++t2)
        fn((t0 * g.kernel[1] + t1) * g.kernel[2] + t2, t0, t1, t2);
}

// Flat input offset (within one plane) that tap (t0, t1, t2) of output (o0, o1, o2) reads, or -1.
inline int64_t input_at(const TiledGeometry& g, int64_t o0, int64_t o1, int64_t o2, int64_t t0,
                        int64_t t1, int64_t t2) {
  const int64_t i0 = o0 * g.stride[0] - g.pad_lo[0] + t0 * g.dilation[0];
  const int64_t i1 = o1 * g.stride[1] - g.pad_lo[1] + t1 * g.dilation[1];
  const int64_t i2 = o2 * g.stride[2] - g.pad_lo[2] + t2 * g.dilation[2];
  if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2]) return -1;
  return (i0 * g.in[1] + i1) * g.in[2] + i2;
}

// cols: per phase a (C * taps) x (N * L_p) matrix, columns (n, j), at row() * N * start[p].
template <typename T>
void gather_columns(const TiledGeometry& g, const Phases& ph, const T* x, T* cols) {
  const int64_t T_ = g.taps(), S = g.in_spatial(), N = g.n;
  parallel_for(ph.P * g.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t pc = b; pc < e; ++pc) {
      const int64_t p = pc / g.c, c = pc % g.c, L = ph.count[size_t(p)];
      T* base = cols + g.row() * N * ph.start[size_t(p)];
      for_taps(g, [&](int64_t t, int64_t t0, int64_t t1, int64_t t2) {
        T* dst = base + (c * T_ + t) * N * L;
        for_positions(g, p, [&](int64_t j, int64_t, int64_t o0, int64_t o1, int64_t o2) {
          const int64_t i = input_at(g, o0, o1, o2, t0, t1, t2);
          for (int64_t n = 0; n < N; ++n)
            dst[n * L + j] = i < 0 ? T(0) : x[(n * g.c + c) * S + i];
        });
      });
    }
  });
}

// Phase-ordered K x (N * L_p) matrices (transposed: (N * L_p) x K) <-> (N, K, *out): to_y with
// optional bias, else from y.
template <typename T>
void reorder_outputs(const TiledGeometry& g, const Phases& ph, T* mat, T* y, const T* bias,
                     bool bias_per_phase, bool to_y, bool transposed = false) {
  const int64_t O = g.out_spatial(), N = g.n, K = g.k;
  parallel_for(N * K, 1, [&](int64_t b, int64_t e) {
    for (int64_t nk = b; nk < e; ++nk) {
      const int64_t n = nk / K, k = nk % K;
      T* plane = y + nk * O;
      for (int64_t p = 0; p < ph.P; ++p) {
        const int64_t L = ph.count[size_t(p)];
        T* row = mat + K * N * ph.start[size_t(p)] + (transposed ? n * L * K + k : (k * N + n) * L);
        const int64_t step = transposed ? K : 1;
        const T add = bias ? bias[bias_per_phase ? k * ph.P + p : k] : T(0);
        for_positions(g, p, [&](int64_t j, int64_t o, int64_t, int64_t, int64_t) {
          if (to_y)
            plane[o] = row[j * step] + add;
          else
            row[j * step] = plane[o];
        });
      }
    }
  });
}

// One GEMM of phase p with L_p positions: C (m x n, row stride ldc) = A (m x k) . B (k x n).
struct PhaseGemm {
  int64_t m, n, k;
  int64_t a_rs, a_cs, b_rs, b_cs, ldc;
};

// Runs shape_of(L_p) for every phase, operands at a + a_off(p), b + b_off(p), c + c_off(p)
// (offsets linear in p when the phases are uniform): one gemm_batched call then, else one
// gemm per phase (each parallel inside).
template <typename T, typename ShapeOf, typename OffA, typename OffB, typename OffC>
void per_phase_gemm(const Phases& ph, ShapeOf shape_of, const T* a, OffA a_off, const T* b,
                    OffB b_off, T* c, OffC c_off) {
  if (ph.uniform && ph.P > 1) {
    const PhaseGemm s = shape_of(ph.count[0]);
    gemm::gemm_batched<T>(ph.P, s.m, s.n, s.k, T(1), {a, s.a_rs, s.a_cs}, a_off(1) - a_off(0),
                          {b, s.b_rs, s.b_cs}, b_off(1) - b_off(0), T(0), c, s.ldc,
                          c_off(1) - c_off(0));
    return;
  }
  for (int64_t p = 0; p < ph.P; ++p) {
    const PhaseGemm s = shape_of(ph.count[size_t(p)]);
    if (s.m == 0 || s.n == 0) continue;
    gemm::gemm<T>(s.m, s.n, s.k, T(1), {a + a_off(p), s.a_rs, s.a_cs},
                  {b + b_off(p), s.b_rs, s.b_cs}, T(0), c + c_off(p), s.ldc);
  }
}

}  // namespace

int64_t tiled_gemm_workspace_elements(const TiledGeometry& g) {
  // (C * taps + K) * N * L, checked: the problem bounds x, w and y, not this product.
  int64_t rows = 0, e = 0;
  if (__builtin_mul_overflow(g.c, g.taps(), &rows) || __builtin_add_overflow(rows, g.k, &rows) ||
      __builtin_mul_overflow(rows, g.n, &e) || __builtin_mul_overflow(e, g.out_spatial(), &e) ||
      e > (int64_t(1) << 60)) {
    throw InvalidArgument("the tiled convolution's workspace ((C * taps + K) * N * output "
                          "positions elements) does not fit in int64: x, w or the output is too "
                          "large");
  }
  return e;
}

template <typename T>
void tiled_gemm_forward(const TiledGeometry& g, const T* x, const T* w, const T* bias,
                        bool bias_per_phase, T* y, T* ws) {
  const Phases ph(g);
  const int64_t R = g.row(), K = g.k, N = g.n, P = ph.P;
  T* cols = ws;
  T* ymat = ws + R * N * g.out_spatial();
  gather_columns(g, ph, x, cols);
  // Y_p^T (N*L_p x K) = X_p^T (X_p: R x N*L_p) . W_p^T (W_p: K x R, row stride P*R): the
  // positions are the GEMM's rows, so a small batch (locally connected: N columns per GEMM)
  // does not leave most of the micro-kernel's output tile empty.
  per_phase_gemm<T>(
      ph, [&](int64_t L) { return PhaseGemm{N * L, K, R, 1, N * L, 1, P * R, K}; }, cols,
      [&](int64_t p) { return R * N * ph.start[p]; }, w, [&](int64_t p) { return p * R; }, ymat,
      [&](int64_t p) { return K * N * ph.start[p]; });
  reorder_outputs<T>(g, ph, ymat, y, bias, bias_per_phase, true, true);
}

template <typename T>
void tiled_gemm_backward_data(const TiledGeometry& g, const T* grad_y, const T* w, T* grad_x,
                              T* ws) {
  const Phases ph(g);
  const int64_t R = g.row(), K = g.k, N = g.n, P = ph.P, S = g.in_spatial(), T_ = g.taps();
  T* dcols = ws;
  T* gmat = ws + R * N * g.out_spatial();
  reorder_outputs<T>(g, ph, gmat, const_cast<T*>(grad_y), nullptr, false, false);
  // dX_p^T (N*L_p x R) = G_p^T (N*L_p x K; G_p is K x N*L_p) . W_p (K x R): rows of the
  // result are positions, so the col2im below reads each position's R values contiguously.
  per_phase_gemm<T>(
      ph, [&](int64_t L) { return PhaseGemm{N * L, R, K, 1, N * L, P * R, 1, R}; }, gmat,
      [&](int64_t p) { return K * N * ph.start[p]; }, w, [&](int64_t p) { return p * R; }, dcols,
      [&](int64_t p) { return R * N * ph.start[p]; });
  // col2im over (image, block of channels) tasks (no two write one element): per position the
  // R = C * taps values are contiguous, and the block's planes stay in cache.
  const int64_t blocks = std::min<int64_t>(g.c, (2 * get_num_threads() + N - 1) / std::max<int64_t>(N, 1));
  const int64_t per_block = (g.c + blocks - 1) / blocks;
  parallel_for(N * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t nb = b; nb < e; ++nb) {
      const int64_t n = nb / blocks, c0 = (nb % blocks) * per_block;
      const int64_t c1 = std::min(g.c, c0 + per_block);
      T* planes = grad_x + (n * g.c) * S;
      std::fill(planes + c0 * S, planes + c1 * S, T(0));
      for (int64_t p = 0; p < P; ++p) {
        const int64_t L = ph.count[size_t(p)];
        const T* base = dcols + R * (N * ph.start[size_t(p)] + n * L);
        for_positions(g, p, [&](int64_t j, int64_t, int64_t o0, int64_t o1, int64_t o2) {
          const T* src = base + j * R;
          for_taps(g, [&](int64_t t, int64_t t0, int64_t t1, int64_t t2) {
            const int64_t i = input_at(g, o0, o1, o2, t0, t1, t2);
            if (i < 0) return;
            for (int64_t c = c0; c < c1; ++c) planes[c * S + i] += src[c * T_ + t];
          });
        });
      }
    }
  });
}

template <typename T>
void tiled_gemm_backward_weight(const TiledGeometry& g, const T* x, const T* grad_y, T* grad_w,
                                T* ws) {
  const Phases ph(g);
  const int64_t R = g.row(), K = g.k, N = g.n, P = ph.P;
  T* cols = ws;
  T* gmat = ws + R * N * g.out_spatial();
  gather_columns(g, ph, x, cols);
  reorder_outputs<T>(g, ph, gmat, const_cast<T*>(grad_y), nullptr, false, false);
  for (int64_t p = 0; p < P; ++p)  // phases without positions (tiles beyond the output)
    if (ph.count[size_t(p)] == 0 || N == 0)
      for (int64_t k = 0; k < K; ++k) std::fill_n(grad_w + (k * P + p) * R, R, T(0));
  if (N == 0) return;
  // dW_p (K x R, row stride P*R) = G_p (K x N*L_p) . X_p^T (X_p: R x N*L_p)
  per_phase_gemm<T>(
      ph, [&](int64_t L) { return PhaseGemm{K, R, N * L, N * L, 1, 1, N * L, P * R}; }, gmat,
      [&](int64_t p) { return K * N * ph.start[p]; }, cols,
      [&](int64_t p) { return R * N * ph.start[p]; }, grad_w, [&](int64_t p) { return p * R; });
}

#define FASTCONV_INSTANTIATE(T)                                                                \
  template void tiled_gemm_forward<T>(const TiledGeometry&, const T*, const T*, const T*, bool, \
                                      T*, T*);                                                 \
  template void tiled_gemm_backward_data<T>(const TiledGeometry&, const T*, const T*, T*, T*); \
  template void tiled_gemm_backward_weight<T>(const TiledGeometry&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
