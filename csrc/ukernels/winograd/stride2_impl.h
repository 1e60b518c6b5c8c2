// The stride-2 Winograd transforms (stride2_ukernels.h), written once as plain loops over a run
// of channels that each ISA's file compiles (and vectorizes) with its own flags.
// Defines FASTCONV_STRIDE2_NS's kernels; include once per ISA file after defining it and
// FASTCONV_STRIDE2_NAME(dtype).
#include "ukernels/winograd/stride2_ukernels.h"

namespace fastconv::FASTCONV_STRIDE2_NS {
namespace {

// Row 2's column points first (every row point but 3 and 4 uses them), then each other row's,
// stored as soon as they are formed: at most 10 vectors live (16 registers at AVX2; holding all
// 25 spilled and took twice AVX-512's time on the same 256-bit units).
template <typename T>
void input(const T* x, int64_t rs, int64_t n, T* v, int64_t vs) {
  const T* __restrict r0 = x;
  const T* __restrict r1 = x + rs;
  const T* __restrict r2 = x + 2 * rs;
  const T* __restrict r3 = x + 3 * rs;
  const T* __restrict r4 = x + 4 * rs;
  T* __restrict o = v;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    const T m0 = r2[e], m1 = r2[n + e], m2 = r2[2 * n + e], m3 = r2[3 * n + e], m4 = r2[4 * n + e];
    const T c0 = m0 - m2, c2 = m4 - m2;  // row 2's column points: (c0, m2, c2, m1, m3)
    o[5 * vs + e] = c0;
    o[6 * vs + e] = m2;
    o[7 * vs + e] = c2;
    o[8 * vs + e] = m1;
    o[9 * vs + e] = m3;
    // Rows 0 and 4 minus row 2 (row points 0 and 2), rows 1 and 3 as they are (3 and 4).
    const T* __restrict diff[2] = {r0, r4};
    for (int i = 0; i < 2; ++i) {
      const T* __restrict r = diff[i];
      const T a0 = r[e], a1 = r[n + e], a2 = r[2 * n + e], a3 = r[3 * n + e], a4 = r[4 * n + e];
      T* __restrict out = o + (i == 0 ? 0 : 10) * vs;
      out[e] = (a0 - a2) - c0;
      out[vs + e] = a2 - m2;
      out[2 * vs + e] = (a4 - a2) - c2;
      out[3 * vs + e] = a1 - m1;
      out[4 * vs + e] = a3 - m3;
    }
    const T* __restrict same[2] = {r1, r3};
    for (int i = 0; i < 2; ++i) {
      const T* __restrict r = same[i];
      const T a0 = r[e], a1 = r[n + e], a2 = r[2 * n + e], a3 = r[3 * n + e], a4 = r[4 * n + e];
      T* __restrict out = o + (i == 0 ? 15 : 20) * vs;
      out[e] = a0 - a2;
      out[vs + e] = a2;
      out[2 * vs + e] = a4 - a2;
      out[3 * vs + e] = a1;
      out[4 * vs + e] = a3;
    }
  }
}

// Row point by row point into the four outputs' sums (6 vectors live).
template <typename T>
void output(const T* m, int64_t ms, int64_t n, T* y) {
  const T* __restrict p = m;
  T* __restrict o = y;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T y00 = 0, y01 = 0, y10 = 0, y11 = 0;
    for (int i = 0; i < 5; ++i) {
      const T* q = p + 5 * i * ms + e;
      const T q1 = q[ms];
      const T s0 = q[0] + q1 + q[3 * ms], s1 = q1 + q[2 * ms] + q[4 * ms];
      if (i != 2 && i != 4) y00 += s0, y01 += s1;  // output row 0: row points 0, 1, 3
      if (i != 0 && i != 3) y10 += s0, y11 += s1;  // output row 1: row points 1, 2, 4
    }
    o[e] = y00;
    o[n + e] = y01;
    o[2 * n + e] = y10;
    o[3 * n + e] = y11;
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

template <typename T>
void grad(const T* y00, const T* y01, const T* y10, const T* y11, int64_t n, T* g, int64_t gs) {
  const T* __restrict a = y00;
  const T* __restrict b = y01;
  const T* __restrict c = y10;
  const T* __restrict d = y11;
  T* __restrict o = g;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    const T t0[5] = {a[e], a[e] + b[e], b[e], a[e], b[e]};  // output row 0's column points
    const T t1[5] = {c[e], c[e] + d[e], d[e], c[e], d[e]};  // row 1's
    for (int j = 0; j < 5; ++j) {
      const T s = t0[j] + t1[j];
      o[j * gs + e] = t0[j];
      o[(5 + j) * gs + e] = s;
      o[(10 + j) * gs + e] = t1[j];
      o[(15 + j) * gs + e] = t0[j];
      o[(20 + j) * gs + e] = t1[j];
    }
  }
}

}  // namespace

extern const Stride2Kernels<float> stride2_f32_kernels{
    &input<float>, &output<float>, &weights<float>, &grad<float>, FASTCONV_STRIDE2_NAME("f32")};
extern const Stride2Kernels<double> stride2_f64_kernels{&input<double>, &output<double>,
                                                        &weights<double>, &grad<double>,
                                                        FASTCONV_STRIDE2_NAME("f64")};

}  // namespace fastconv::FASTCONV_STRIDE2_NS
