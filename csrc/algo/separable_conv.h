// Separable convolution on 2-D planes, both 1-D passes fused per band of output rows
// (fastconv/separable.py calls it through _C.separable_conv2d): the vertical pass of a band goes
// to a per-thread scratch block that stays in cache, the horizontal pass reads it from there.
// The channel sum of a dense (C/groups > 1) separable kernel and the bias are fused too.
#pragma once
#include <cstdint>

namespace fastconv::algo {

// y[n, o, l, i, j] = bias[o] + sum_{ci < cg} sum_{a, b} f0[o, ci, a] * f1[o, ci, b]
//                    * x[n, xc(o, ci), l, i * s0 - p0 + a * d0, j * s1 - p1 + b * d1]
// (zero outside x), with g = o / (k / groups), m = k / groups and
// xc(o, ci) = g * cg + ci, or (g * cg + ci) * m + o % m when `pairs` (x then holds one channel
// per (input channel, output channel of its group) pair: the output of a first chain pass).
struct SeparableShape {
  int64_t n = 1, x_channels = 1, k = 1, groups = 1, cg = 1;
  bool pairs = false;
  int64_t lines = 1;  // planes per (n, channel): a leading spatial dim the passes do not touch
  int64_t h_in = 1, w_in = 1, h_out = 1, w_out = 1;
  int64_t k0 = 1, k1 = 1, s0 = 1, s1 = 1, p0 = 0, p1 = 0, d0 = 1, d1 = 1;  // p: low padding
};

// Runs it; needs p0, p1 >= 0 (the caller checks the shapes). bias may be null.
template <typename T>
void separable_conv2d(const SeparableShape& s, const T* x, const T* f0, const T* f1,
                      const T* bias, T* y);

// The gradients of both factors at stride 1 (not `pairs`), per (output channel, input channel
// of its group) pair and band of output rows, the band's intermediates in cache:
//   t = the vertical pass of x (as the forward), gf1[o, ci, b] = sum g[i, j] t[i, j - p1 + b d1],
//   u = the horizontal pass's adjoint on g, gf0[o, ci, a] = sum u[i, c] x[i - p0 + a d0, c].
// Sums run in a fixed order whatever the thread count (partials per (pair, image), added in
// image order). Needs p1 <= (k1 - 1) * d1 + w_out - 1 (the caller checks the shapes).
template <typename T>
void separable_conv2d_backward_factors(const SeparableShape& s, const T* x, const T* grad_y,
                                       const T* f0, const T* f1, T* grad_f0, T* grad_f1);

}  // namespace fastconv::algo
