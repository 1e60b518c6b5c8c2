// Implicit-GEMM convolution: the GEMM's B panels are packed straight from the input (or the
// output gradient) with padding, stride and dilation applied on the fly, so no column buffer
// exists; 1x1 / stride-1 / unpadded convolutions run the GEMM on the tensors themselves.
#include <algorithm>

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

}  // namespace

int64_t implicit_gemm_workspace_bytes(const ConvGeometry& g, Pass pass, int64_t elem_size) {
  // Backward data reads the weight as (c, (k, tap)): one transposed copy when taps > 1.
  if (pass == Pass::kBackwardData && g.kernel_spatial() > 1) {
    return g.k * g.c_per_group() * g.kernel_spatial() * elem_size;
  }
  return 0;
}

template <typename T>
void implicit_gemm_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                           T*) {
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

template <typename T>
void implicit_gemm_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x,
                                 T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), depth = kg * taps;
  // wt[grp][c][k * taps + t] = w[grp * kg + k][c][t]
  if (taps > 1) {
    parallel_for(g.groups * cg, 1, [&](int64_t begin, int64_t end) {
      for (int64_t gc = begin; gc < end; ++gc) {
        const int64_t grp = gc / cg, c = gc % cg;
        for (int64_t k = 0; k < kg; ++k)
          std::copy_n(w + ((grp * kg + k) * cg + c) * taps, taps, ws + gc * depth + k * taps);
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
void implicit_gemm_backward_weight(const ConvGeometry& g, const T* x, const T* grad_y, T* grad_w,
                                   T*) {
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

#define FASTCONV_INSTANTIATE(T)                                                                   \
  template void implicit_gemm_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*,  \
                                         T*);                                                     \
  template void implicit_gemm_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, T*); \
  template void implicit_gemm_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
