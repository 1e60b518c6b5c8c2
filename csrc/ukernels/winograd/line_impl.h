// The F(2,7) line transforms (line_ukernels.h), written once as plain loops over a run of
// channels that each ISA's file compiles (and vectorizes) with its own flags. Each point is a
// sum over the nonzero coefficients of its matrix row only, picked at compile time.
// Defines FASTCONV_LINE_NS's kernels; include once per ISA file after defining it and
// FASTCONV_LINE_NAME(dtype).
#include "ukernels/winograd/line_ukernels.h"
#include "ukernels/winograd/winograd_matrices.h"

namespace fastconv::FASTCONV_LINE_NS {
namespace {

using F = winograd::Matrices<2, 7>;
constexpr int kAlpha = F::kAlpha, kTaps = F::kR;

// sum over j >= J of M[Q][j] * x[j] (M: BT, AT or G, N columns), the zero terms left out.
template <const auto& M, int N, int Q, int J, typename T>
inline T row_sum(const T* x) {
  if constexpr (J == N) {
    return T(0);
  } else if constexpr (M[Q][J] == 0.0) {
    return row_sum<M, N, Q, J + 1>(x);
  } else {
    return T(M[Q][J]) * x[J] + row_sum<M, N, Q, J + 1>(x);
  }
}

// o[q * os + e] = row q of M (kAlpha rows, N columns) times x, every q.
template <const auto& M, int N, int Q = 0, typename T>
inline void all_rows(const T* x, T* o, int64_t os, int64_t e) {
  if constexpr (Q < kAlpha) {
    o[Q * os + e] = row_sum<M, N, Q, 0>(x);
    all_rows<M, N, Q + 1>(x, o, os, e);
  }
}

template <typename T>
void input(const T* x, int64_t step, int64_t n, T* v, int64_t vs) {
  const T* __restrict src = x;
  T* __restrict o = v;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T d[kAlpha];
    for (int j = 0; j < kAlpha; ++j) d[j] = src[j * step + e];
    all_rows<F::BT, kAlpha>(d, o, vs, e);
  }
}

template <typename T>
void output(const T* m, int64_t ms, int64_t n, T* y, int64_t ys, int outputs) {
  const T* __restrict p = m;
  T* __restrict o = y;
  if (outputs >= 2) {
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
    for (int64_t e = 0; e < n; ++e) {
      T q[kAlpha];
      for (int j = 0; j < kAlpha; ++j) q[j] = p[j * ms + e];
      o[e] = row_sum<F::AT, kAlpha, 0, 0>(q);
      o[ys + e] = row_sum<F::AT, kAlpha, 1, 0>(q);
    }
  } else {
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
    for (int64_t e = 0; e < n; ++e) {
      T q[kAlpha];
      for (int j = 0; j < kAlpha; ++j) q[j] = p[j * ms + e];
      o[e] = row_sum<F::AT, kAlpha, 0, 0>(q);
    }
  }
}

template <typename T>
void weights(const T* w, int64_t n, bool flip, T* u, int64_t us) {
  const T* __restrict src = w;
  T* __restrict o = u;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T g[kTaps];
    for (int t = 0; t < kTaps; ++t) g[t] = src[(flip ? kTaps - 1 - t : t) * n + e];
    all_rows<F::G, kTaps>(g, o, us, e);
  }
}

}  // namespace

extern const LineKernels<float> line_f32_kernels{&input<float>, &output<float>, &weights<float>,
                                                 FASTCONV_LINE_NAME("f32")};
extern const LineKernels<double> line_f64_kernels{&input<double>, &output<double>,
                                                  &weights<double>, FASTCONV_LINE_NAME("f64")};

}  // namespace fastconv::FASTCONV_LINE_NS
