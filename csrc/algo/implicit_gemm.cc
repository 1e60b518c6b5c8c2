// Implicit-GEMM convolution: the GEMM's B panels are packed straight from the input (or the
// output gradient) with padding, stride and dilation applied on the fly, so no column buffer
// exists; 1x1 / stride-1 / unpadded convolutions run the GEMM on the tensors themselves.
#include <algorithm>
#include <vector>

#include "algo/conv_panels.h"
#include "algo/gemm_conv.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

// A 1x1 window with unit stride and no padding: the patch matrix is the input itself.
bool is_pointwise(const ConvGeometry& g) {
  for (int d = 0; d < kMaxRank; ++d) {
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad_lo[d] != 0 || g.pad_hi[d] != 0) return false;
  }
  return true;
}

bool unit_stride(const ConvGeometry& g) {
  return g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
}

// Input positions of phase q along one dim: q, q + s, q + 2s, ... below `in`.
inline int64_t phase_extent(int64_t in, int64_t q, int64_t s) {
  return q < in ? (in - q + s - 1) / s : 0;
}

// Largest phase grid (the phase q = 0 in every dim).
int64_t max_phase_positions(const ConvGeometry& g) {
  int64_t n = 1;
  for (int d = 0; d < kMaxRank; ++d) n *= phase_extent(g.in[d], 0, g.stride[d]);
  return n;
}

}  // namespace

int64_t implicit_gemm_workspace_bytes(const ConvGeometry& g, Pass pass, int64_t elem_size) {
  if (pass != Pass::kBackwardData) return 0;
  const int64_t weight = g.k * g.c_per_group() * g.kernel_spatial();
  // Strided: one phase's gathered weight (at most one group's) and its output block.
  if (!unit_stride(g)) {
    return (g.k_per_group() * g.c_per_group() * g.kernel_spatial() +
            g.c_per_group() * max_phase_positions(g)) * elem_size;
  }
  // Unit stride reads the weight as (c, (k, tap)): one transposed copy when taps > 1.
  return g.kernel_spatial() > 1 ? weight * elem_size : 0;
}

template <typename T>
void implicit_gemm_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                           T*) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const bool pointwise = is_pointwise(g);
  // With a bias the GEMM accumulates onto it; without, it overwrites y (no extra pass).
  if (bias) fill_bias(g, bias, y);
  const T beta = bias ? T(1) : T(0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c + grp * cg) * in_sp;
      T* yg = y + (n * g.k + grp * kg) * out_sp;
      const gemm::MatrixRef<T> a{w + grp * kg * rows, rows, 1};
      if (pointwise) {
        gemm::gemm<T>(kg, out_sp, rows, T(1), a, gemm::MatrixRef<T>{xg, in_sp, 1}, beta, yg, out_sp);
      } else {
        gemm::gemm<T>(kg, out_sp, rows, T(1), a, ForwardColumns<T>(g, xg), beta, yg, out_sp);
      }
    }
}

// Strided backward data by phases: input positions of one residue class modulo the stride
// receive only the taps of that class, from grad_y positions that advance one per step, so
// each phase is a unit-stride GEMM over contiguous grad_y rows (no multiply-by-zero work).
template <typename T>
void strided_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x,
                           T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  T* a_buf = ws;                      // (cg, kg * phase taps) gathered weight
  T* c_buf = ws + kg * cg * taps;     // (cg, phase positions) GEMM output
  for (int64_t qz = 0; qz < g.stride[0]; ++qz)
    for (int64_t qy = 0; qy < g.stride[1]; ++qy)
      for (int64_t qx = 0; qx < g.stride[2]; ++qx) {
        const int64_t q[3] = {qz, qy, qx};
        ConvGeometry phase = g;  // stride 1, no padding, input = grad_y, output = phase grid
        std::vector<int64_t> tap_list[3], offset_list[3];
        for (int d = 0; d < kMaxRank; ++d) {
          phase.in[d] = g.out[d];
          phase.out[d] = phase_extent(g.in[d], q[d], g.stride[d]);
          phase.stride[d] = 1;
          phase.pad_lo[d] = phase.pad_hi[d] = 0;
          for (int64_t t = 0; t < g.kernel[d]; ++t) {
            const int64_t s = q[d] + g.pad_lo[d] - tap_position(g, d, t) * g.dilation[d];
            if (((s % g.stride[d]) + g.stride[d]) % g.stride[d] != 0) continue;
            tap_list[d].push_back(t);
            offset_list[d].push_back((s - ((s % g.stride[d]) + g.stride[d]) % g.stride[d]) /
                                     g.stride[d]);
          }
        }
        const int64_t positions = phase.out_spatial();
        if (positions == 0) continue;
        TapTable offsets;
        std::vector<int64_t> full_tap;
        for (size_t a = 0; a < tap_list[0].size(); ++a)
          for (size_t b = 0; b < tap_list[1].size(); ++b)
            for (size_t c = 0; c < tap_list[2].size(); ++c) {
              offsets.dz.push_back(offset_list[0][a]);
              offsets.dy.push_back(offset_list[1][b]);
              offsets.dx.push_back(offset_list[2][c]);
              full_tap.push_back((tap_list[0][a] * g.kernel[1] + tap_list[1][b]) * g.kernel[2] +
                                 tap_list[2][c]);
            }
        const int64_t ntaps = int64_t(full_tap.size()), depth = kg * ntaps;
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          // a_buf[c][k * ntaps + i] = w[grp * kg + k][c][full_tap[i]]
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t k = 0; k < kg; ++k)
              for (int64_t i = 0; i < ntaps; ++i)
                a_buf[c * depth + k * ntaps + i] = w[((grp * kg + k) * cg + c) * taps + full_tap[i]];
          for (int64_t n = 0; n < g.n; ++n) {
            if (ntaps > 0) {
              const PhaseColumns<T> b(phase, offsets, ntaps,
                                      grad_y + (n * g.k + grp * kg) * out_sp);
              gemm::gemm<T>(cg, positions, depth, T(1), gemm::MatrixRef<T>{a_buf, depth, 1}, b,
                            T(0), c_buf, positions);
            }
            // Scatter the phase block into grad_x (zeros where no tap reaches).
            T* gx = grad_x + (n * g.c + grp * cg) * in_sp;
            parallel_for(cg, 1, [&](int64_t c0, int64_t c1) {
              for (int64_t c = c0; c < c1; ++c) {
                const T* src = c_buf + c * positions;
                int64_t m = 0;
                for (int64_t mz = 0; mz < phase.out[0]; ++mz)
                  for (int64_t my = 0; my < phase.out[1]; ++my) {
                    T* row = gx + c * in_sp +
                             ((qz + mz * g.stride[0]) * g.in[1] + qy + my * g.stride[1]) * g.in[2] +
                             qx;
                    for (int64_t mx = 0; mx < phase.out[2]; ++mx, ++m)
                      row[mx * g.stride[2]] = ntaps > 0 ? src[m] : T(0);
                  }
              }
            });
          }
        }
      }
}

// wt[grp][c][k * taps + t] = w[grp * kg + k][c][t] for grp * Cg + c in [gc0, gc1), in blocks
// of 16 k: reading one channel's taps across all k jumped C * taps elements per copy, a cache
// miss each (res5.3x3, 512 x 512 x 9: 7 of its 14 ms); a block reads 16 rows and writes 16 runs
// of taps, both streamed. kTaps: the tap count when known at compile time (0: taps).
template <typename T, int kTaps>
void transpose_weight(const ConvGeometry& g, const T* w, int64_t gc0, int64_t gc1, T* ws) {
  constexpr int64_t kBlock = 16;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  const int64_t taps = kTaps > 0 ? kTaps : g.kernel_spatial(), depth = kg * taps;
  for (int64_t k0 = 0; k0 < kg; k0 += kBlock) {
    const int64_t k1 = std::min(kg, k0 + kBlock);
    for (int64_t gc = gc0; gc < gc1; ++gc) {
      const int64_t grp = gc / cg, c = gc % cg;
      for (int64_t k = k0; k < k1; ++k) {
        const T* src = w + ((grp * kg + k) * cg + c) * taps;
        T* dst = ws + gc * depth + k * taps;
        if constexpr (kTaps > 0) {
          for (int t = 0; t < kTaps; ++t) dst[t] = src[t];
        } else {
          copy_short(src, taps, dst);
        }
      }
    }
  }
}

template <typename T>
void implicit_gemm_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                                 T* ws) {
  const ConvGeometry& g = plan.g;
  if (!unit_stride(g)) return strided_backward_data(g, grad_y, w, grad_x, ws);
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), depth = kg * taps;
  if (taps > 1) {
    parallel_for(g.groups * cg, 1, [&](int64_t begin, int64_t end) {
      switch (taps) {  // the common kernels with their tap count known: copies unrolled inline
        case 3: return transpose_weight<T, 3>(g, w, begin, end, ws);
        case 9: return transpose_weight<T, 9>(g, w, begin, end, ws);
        case 27: return transpose_weight<T, 27>(g, w, begin, end, ws);
        default: return transpose_weight<T, 0>(g, w, begin, end, ws);
      }
    });
  }
  if (g.n == 0) return;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* gyg = grad_y + (n * g.k + grp * kg) * out_sp;
      T* gxg = grad_x + (n * g.c + grp * cg) * in_sp;
      const gemm::MatrixRef<T> a = taps > 1 ? gemm::MatrixRef<T>{ws + grp * cg * depth, depth, 1}
                                            : gemm::MatrixRef<T>{w + grp * kg * cg, 1, cg};
      if (is_pointwise(g)) {
        gemm::gemm<T>(cg, in_sp, kg, T(1), a, gemm::MatrixRef<T>{gyg, out_sp, 1}, T(0), gxg, in_sp);
      } else {
        gemm::gemm<T>(cg, in_sp, depth, T(1), a, BackwardDataColumns<T>(g, gyg), T(0), gxg, in_sp);
      }
    }
}

template <typename T>
void implicit_gemm_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                   T*) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  if (g.n == 0) std::fill(grad_w, grad_w + g.k * rows, T(0));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c + grp * cg) * in_sp;
      const gemm::MatrixRef<T> a{grad_y + (n * g.k + grp * kg) * out_sp, out_sp, 1};
      T* gw = grad_w + grp * kg * rows;
      const T beta = n == 0 ? T(0) : T(1);
      if (is_pointwise(g)) {
        gemm::gemm<T>(kg, rows, out_sp, T(1), a, gemm::MatrixRef<T>{xg, 1, in_sp}, beta, gw, rows);
      } else {
        gemm::gemm<T>(kg, rows, out_sp, T(1), a, WeightColumns<T>(g, xg), beta, gw, rows);
      }
    }
}

std::string implicit_gemm_plan(ConvPlan& plan) {
  plan.workspace_bytes = implicit_gemm_workspace_bytes(plan.g, plan.pass, dtype_size(plan.dtype));
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                                   \
  template void implicit_gemm_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*,  \
                                         T*);                                                     \
  template void implicit_gemm_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*); \
  template void implicit_gemm_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
