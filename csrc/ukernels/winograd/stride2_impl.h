// The stride-2 Winograd transforms (stride2_ukernels.h), written once as plain loops over a run
// of channels that each ISA's file compiles (and vectorizes) with its own flags.
// Defines FASTCONV_STRIDE2_NS's kernels; include once per ISA file after defining it and
// FASTCONV_STRIDE2_NAME(dtype).
#include "ukernels/winograd/stride2_ukernels.h"

namespace fastconv::FASTCONV_STRIDE2_NS {
namespace {

template <typename T>
void input(const T* x, int64_t rs, int64_t n, T* v, int64_t vs) {
  const T* __restrict r[5];
  for (int i = 0; i < 5; ++i) r[i] = x + i * rs;
  T* __restrict o = v;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T c[5][5];  // rows' column points
    for (int i = 0; i < 5; ++i) {
      const T a0 = r[i][e], a1 = r[i][n + e], a2 = r[i][2 * n + e], a3 = r[i][3 * n + e],
              a4 = r[i][4 * n + e];
      c[i][0] = a0 - a2;
      c[i][1] = a2;
      c[i][2] = a4 - a2;
      c[i][3] = a1;
      c[i][4] = a3;
    }
    for (int j = 0; j < 5; ++j) {
      o[(0 + j) * vs + e] = c[0][j] - c[2][j];
      o[(5 + j) * vs + e] = c[2][j];
      o[(10 + j) * vs + e] = c[4][j] - c[2][j];
      o[(15 + j) * vs + e] = c[1][j];
      o[(20 + j) * vs + e] = c[3][j];
    }
  }
}

template <typename T>
void output(const T* m, int64_t ms, int64_t n, T* y) {
  const T* __restrict p = m;
  T* __restrict o = y;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T s0[5], s1[5];  // per row point: the column sums of output columns 0 and 1
    for (int i = 0; i < 5; ++i) {
      const T* q = p + 5 * i * ms + e;
      s0[i] = q[0] + q[ms] + q[3 * ms];
      s1[i] = q[ms] + q[2 * ms] + q[4 * ms];
    }
    o[e] = s0[0] + s0[1] + s0[3];
    o[n + e] = s1[0] + s1[1] + s1[3];
    o[2 * n + e] = s0[1] + s0[2] + s0[4];
    o[3 * n + e] = s1[1] + s1[2] + s1[4];
  }
}

template <typename T>
void weights(const T* w, int64_t n, bool flip, T* u, int64_t us) {
  const T* __restrict t[9];
  for (int i = 0; i < 9; ++i) t[i] = w + (flip ? 8 - i : i) * n;
  T* __restrict o = u;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T r[4][3];  // row points 0-3 (g0, g0 + g2, g2, g1) of the kernel's columns
    for (int j = 0; j < 3; ++j) {
      const T g0 = t[j][e], g1 = t[3 + j][e], g2 = t[6 + j][e];
      r[0][j] = g0;
      r[1][j] = g0 + g2;
      r[2][j] = g2;
      r[3][j] = g1;
    }
    for (int a = 0; a < 4; ++a) {
      o[(4 * a + 0) * us + e] = r[a][0];
      o[(4 * a + 1) * us + e] = r[a][0] + r[a][2];
      o[(4 * a + 2) * us + e] = r[a][2];
      o[(4 * a + 3) * us + e] = r[a][1];
    }
  }
}

}  // namespace

extern const Stride2Kernels<float> stride2_f32_kernels{&input<float>, &output<float>,
                                                       &weights<float>,
                                                       FASTCONV_STRIDE2_NAME("f32")};
extern const Stride2Kernels<double> stride2_f64_kernels{&input<double>, &output<double>,
                                                        &weights<double>,
                                                        FASTCONV_STRIDE2_NAME("f64")};

}  // namespace fastconv::FASTCONV_STRIDE2_NS
