// Channels-last depthwise kernels (see DwChannelsLast in dw_ukernels.h): vectors run across
// channels, so a plane of a few positions (7x7) fills whole vectors, which a plane kernel along
// output rows cannot. Included by dw_impl.h inside one ISA namespace, over dw_vector.h.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/depthwise/dw_vector.h"

namespace fastconv::FASTCONV_DW_NS {
namespace {

// Vectors of channels one block keeps in registers (accumulators plus one source and one
// weight vector each fit every level's register file).
constexpr int kClBlock = 4;

// n (1..kClBlock * lanes) channels from c: loads and stores masked only in the last vector.
template <typename T, int NV>
struct ClSpan {
  using Vec = V<T>;
  static constexpr int64_t L = Vec::lanes;
  int64_t tail;  // lanes of the last vector (L when full)
  typename Vec::type load(const T* p, int v) const {
    return v + 1 < NV || tail == L ? Vec::load(p + v * L) : Vec::load_n(p + v * L, tail);
  }
  void store(T* p, int v, typename Vec::type x) const {
    if (v + 1 < NV || tail == L) {
      Vec::store(p + v * L, x);
    } else {
      Vec::store_n(p + v * L, x, tail);
    }
  }
};

// One output position, channels [c, c + NV vectors): sum over taps of w[tap] * x[tap's input].
template <typename T, int NV>
inline void cl_forward_block(const DwChannelsLast& p, const T* x, const T* w, const T* bias,
                             T* y, int64_t tail) {
  using Vec = V<T>;
  const ClSpan<T, NV> s{tail};
  typename Vec::type acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = bias ? s.load(bias, v) : Vec::set1(T(0));
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const T* row = x + ky * p.dy * p.wp * p.c;
    const T* wr = w + ky * p.kw * p.c;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const T* src = row + kx * p.dx * p.c;
      const T* wt = wr + kx * p.c;
      for (int v = 0; v < NV; ++v) acc[v] = Vec::fma(s.load(wt, v), s.load(src, v), acc[v]);
    }
  }
  for (int v = 0; v < NV; ++v) s.store(y, v, acc[v]);
}

// Channels [c0, c1) of every output position: y (oh, ow, c) from x (padded, (hp, wp, c)) and
// w (taps, c); bias (c) or null.
template <typename T>
void cl_forward(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y, int64_t c0,
                int64_t c1) {
  constexpr int64_t L = V<T>::lanes, B = kClBlock * L;
  for (int64_t oy = 0; oy < p.oh; ++oy)
    for (int64_t ox = 0; ox < p.ow; ++ox) {
      const T* xp = x + (oy * p.sy * p.wp + ox * p.sx) * p.c;
      T* yp = y + (oy * p.ow + ox) * p.c;
      int64_t c = c0;
      for (; c + B <= c1; c += B)
        cl_forward_block<T, kClBlock>(p, xp + c, w + c, bias ? bias + c : nullptr, yp + c, L);
      for (; c < c1; c += L) {
        const int64_t n = std::min(L, c1 - c);
        cl_forward_block<T, 1>(p, xp + c, w + c, bias ? bias + c : nullptr, yp + c, n);
      }
    }
}

// Taps' weight gradients of channels [c, c + NV vectors): gw[tap] += sum over positions of
// gy[position] * x[position's input for tap].
template <typename T, int NV>
inline void cl_weight_block(const DwChannelsLast& p, const T* x, const T* gy, T* gw,
                            int64_t tail) {
  using Vec = V<T>;
  const ClSpan<T, NV> s{tail};
  for (int64_t ky = 0; ky < p.kh; ++ky)
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const T* xt = x + (ky * p.dy * p.wp + kx * p.dx) * p.c;
      typename Vec::type acc[NV];
      for (int v = 0; v < NV; ++v) acc[v] = Vec::set1(T(0));
      for (int64_t oy = 0; oy < p.oh; ++oy)
        for (int64_t ox = 0; ox < p.ow; ++ox) {
          const T* src = xt + (oy * p.sy * p.wp + ox * p.sx) * p.c;
          const T* g = gy + (oy * p.ow + ox) * p.c;
          for (int v = 0; v < NV; ++v) acc[v] = Vec::fma(s.load(g, v), s.load(src, v), acc[v]);
        }
      T* out = gw + (ky * p.kw + kx) * p.c;
      for (int v = 0; v < NV; ++v) s.store(out, v, Vec::fma(Vec::set1(T(1)), s.load(out, v), acc[v]));
    }
}

template <typename T>
void cl_weight(const DwChannelsLast& p, const T* x, const T* gy, T* gw, int64_t c0, int64_t c1) {
  constexpr int64_t L = V<T>::lanes, B = kClBlock * L;
  int64_t c = c0;
  for (; c + B <= c1; c += B) cl_weight_block<T, kClBlock>(p, x + c, gy + c, gw + c, L);
  for (; c < c1; c += L) cl_weight_block<T, 1>(p, x + c, gy + c, gw + c, std::min(L, c1 - c));
}

}  // namespace
}  // namespace fastconv::FASTCONV_DW_NS
