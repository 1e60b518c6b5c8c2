// The F(3,7) line transforms (line_ukernels.h), written once as plain loops over a run of
// channels that each ISA's file compiles (and vectorizes) with its own flags. Each point is a
// sum over the nonzero coefficients of its matrix row only, picked at compile time.
// Defines FASTCONV_LINE_NS's kernels; include once per ISA file after defining it and
// FASTCONV_LINE_NAME(dtype).
#include <algorithm>

#include "ukernels/winograd/line_ukernels.h"
#include "ukernels/winograd/winograd_matrices.h"

namespace fastconv::FASTCONV_LINE_NS {
namespace {

using F = winograd::SplitLine37;
constexpr int kPoints = F::kPoints, kInputs = F::kInputs, kTaps = F::kR, kOut = F::kM;
static_assert(kPoints == kLinePoints && kInputs == kLineInputs && kOut == kLineOutputs);
constexpr int64_t kMaxFold = 64;  // fold's lanes per step (its taps' rows on the stack)

// Coefficient (Q, J) of M, or of M's transpose (Tr: the transposed transforms of the weight
// gradient, AT's and G's columns).
template <const auto& M, bool Tr, int Q, int J>
constexpr double coef() {
  if constexpr (Tr) {
    return M[J][Q];
  } else {
    return M[Q][J];
  }
}

// sum over j >= J of coef(Q, j) * x[j] for j < N, the zero terms left out.
template <const auto& M, bool Tr, int N, int Q, int J, typename T>
inline T dot(const T* x) {
  if constexpr (J == N) {
    return T(0);
  } else if constexpr (coef<M, Tr, Q, J>() == 0.0) {
    return dot<M, Tr, N, Q, J + 1>(x);
  } else {
    return T(coef<M, Tr, Q, J>()) * x[J] + dot<M, Tr, N, Q, J + 1>(x);
  }
}

// o[q * os + e] = row q of M (or of M's transpose) times x (N long), for q < Count.
template <const auto& M, bool Tr, int N, int Count, int Q = 0, typename T>
inline void all_dots(const T* x, T* o, int64_t os, int64_t e) {
  if constexpr (Q < Count) {
    o[Q * os + e] = dot<M, Tr, N, Q, 0>(x);
    all_dots<M, Tr, N, Count, Q + 1>(x, o, os, e);
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
    T d[kInputs];
    for (int j = 0; j < kInputs; ++j) d[j] = src[j * step + e];
    all_dots<F::BT, false, kInputs, kPoints>(d, o, vs, e);
  }
}

// The first Outputs of a tile's outputs from its points' products.
template <int Outputs, typename T>
void output_n(const T* m, int64_t ms, int64_t n, T* y, int64_t ys) {
  const T* __restrict p = m;
  T* __restrict o = y;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T q[kPoints];
    for (int j = 0; j < kPoints; ++j) q[j] = p[j * ms + e];
    o[e] = dot<F::AT, false, kPoints, 0, 0>(q);
    if constexpr (Outputs > 1) o[ys + e] = dot<F::AT, false, kPoints, 1, 0>(q);
    if constexpr (Outputs > 2) o[2 * ys + e] = dot<F::AT, false, kPoints, 2, 0>(q);
  }
}

template <typename T>
void output(const T* m, int64_t ms, int64_t n, T* y, int64_t ys, int outputs) {
  static_assert(kOut == 3, "output_n writes up to 3 outputs");
  if (outputs >= 3) return output_n<3>(m, ms, n, y, ys);
  if (outputs == 2) return output_n<2>(m, ms, n, y, ys);
  output_n<1>(m, ms, n, y, ys);
}

template <typename T>
void weights(const T* w, int64_t n, bool flip, T* u, int64_t us) {
  const T* __restrict tap[kTaps];  // the taps' runs in correlation order (no choice in the loop)
  for (int t = 0; t < kTaps; ++t) tap[t] = w + (flip ? kTaps - 1 - t : t) * n;
  T* __restrict o = u;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T g[kTaps];
    for (int t = 0; t < kTaps; ++t) g[t] = tap[t][e];
    all_dots<F::G, false, kTaps, kPoints>(g, o, us, e);
  }
}

// A tile's points of grad_y from its first Outputs outputs (the rest zero).
template <int Outputs, typename T>
void grad_n(const T* y, int64_t ys, int64_t n, T* g, int64_t gs) {
  const T* __restrict a = y;
  T* __restrict o = g;
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t e = 0; e < n; ++e) {
    T v[kOut];
    for (int i = 0; i < kOut; ++i) v[i] = i < Outputs ? a[i * ys + e] : T(0);
    all_dots<F::AT, true, kOut, kPoints>(v, o, gs, e);
  }
}

template <typename T>
void grad(const T* y, int64_t ys, int outputs, int64_t n, T* g, int64_t gs) {
  static_assert(kOut == 3, "grad_n reads up to 3 outputs");
  if (outputs >= 3) return grad_n<3>(y, ys, n, g, gs);
  if (outputs == 2) return grad_n<2>(y, ys, n, g, gs);
  grad_n<1>(y, ys, n, g, gs);
}

template <typename T>
void fold(const T* u, int64_t us, int64_t n, bool flip, T* w) {
  const T* __restrict src = u;
  T* __restrict o = w;
  T taps[kTaps][kMaxFold];
  for (int64_t e0 = 0; e0 < n; e0 += kMaxFold) {
    const int64_t en = std::min<int64_t>(kMaxFold, n - e0);
#if defined(__GNUC__)
#pragma GCC ivdep
#endif
    for (int64_t e = 0; e < en; ++e) {
      T p[kPoints];
      for (int q = 0; q < kPoints; ++q) p[q] = src[q * us + e0 + e];
      all_dots<F::G, true, kPoints, kTaps>(p, &taps[0][0], kMaxFold, e);
    }
    for (int t = 0; t < kTaps; ++t)
      std::copy(taps[t], taps[t] + en, o + (flip ? kTaps - 1 - t : t) * n + e0);
  }
}

}  // namespace

extern const LineKernels<float> line_f32_kernels{&input<float>,   &output<float>,
                                                 &weights<float>, &grad<float>,
                                                 &fold<float>,    FASTCONV_LINE_NAME("f32")};
extern const LineKernels<double> line_f64_kernels{&input<double>,   &output<double>,
                                                  &weights<double>, &grad<double>,
                                                  &fold<double>,    FASTCONV_LINE_NAME("f64")};

}  // namespace fastconv::FASTCONV_LINE_NS
