// Channels-last depthwise kernels (see DwChannelsLast in dw_ukernels.h): vectors run across
// channels, so a plane of a few positions (7x7) fills whole vectors, which a plane kernel along
// output rows cannot. Included by dw_impl.h inside one ISA namespace, over dw_vector.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/depthwise/dw_vector.h"

namespace fastconv::FASTCONV_DW_NS {
namespace {

// Vectors of channels one weight-gradient block keeps in registers (accumulators plus one
// source and one gradient vector each fit every level's register file).
constexpr int kClBlock = 4;

// NV vectors of channels from c, the last one masked to `tail` lanes when kTail. The mask is
// decided at compile time: a run-time choice per load kept the accumulators on the stack
// (a store and reload per multiply-add).
template <typename T, int NV, bool kTail>
struct ClSpan {
  using Vec = V<T>;
  static constexpr int64_t L = Vec::lanes;
  int64_t tail;  // lanes of the last vector (kTail)
  typename Vec::type load(const T* p, int v) const {
    if constexpr (kTail) {
      if (v + 1 == NV) return Vec::load_n(p + v * L, tail);
    }
    return Vec::load(p + v * L);
  }
  void store(T* p, int v, typename Vec::type x) const {
    if constexpr (kTail) {
      if (v + 1 == NV) return Vec::store_n(p + v * L, x, tail);
    }
    Vec::store(p + v * L, x);
  }
};

#if defined(__GNUC__)
#define FASTCONV_CL_UNROLL _Pragma("GCC unroll 16")
#else
#define FASTCONV_CL_UNROLL
#endif

// Output positions a forward block keeps in registers: a row segment of up to kClRun outputs,
// one vector of channels each, so a tap's weight vector is loaded once for the whole segment
// (one load per multiply-add plus one per segment, where one position at a time loaded a
// weight and a source vector per multiply-add: 1152 channels, 7x7, 5x5, 1 thread, AVX2, the
// kernel took half of the call).
constexpr int kClRun = 8;

// Outputs [ox, ox + R) of one row, one vector of channels from c (only its first `tail` lanes
// when kTail): y[o] = bias + sum over taps of w[tap] * x[o's input for tap]; x at the segment's
// first input, y at its first output (p.c apart per position).
template <typename T, int R, bool kTail>
inline void cl_forward_run(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y,
                           int64_t tail) {
  using Vec = V<T>;
  const ClSpan<T, 1, kTail> s{tail};
  const int64_t step = p.sx * p.c;
  typename Vec::type acc[R];
  const typename Vec::type b = bias ? s.load(bias, 0) : Vec::set1(T(0));
  FASTCONV_CL_UNROLL
  for (int r = 0; r < R; ++r) acc[r] = b;
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const T* row = x + ky * p.dy * p.wp * p.c;
    const T* wr = w + ky * p.kw * p.c;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const T* src = row + kx * p.dx * p.c;
      const typename Vec::type wv = s.load(wr + kx * p.c, 0);
      FASTCONV_CL_UNROLL
      for (int r = 0; r < R; ++r) acc[r] = Vec::fma(wv, s.load(src + r * step, 0), acc[r]);
    }
  }
  FASTCONV_CL_UNROLL
  for (int r = 0; r < R; ++r) s.store(y + r * p.c, 0, acc[r]);
}

template <typename T, int R>
void cl_forward_runs(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y,
                     int64_t c0, int64_t c1, int64_t len) {
  constexpr int64_t L = V<T>::lanes;
  if constexpr (R > 1) {
    if (len < R) return cl_forward_runs<T, R - 1>(p, x, w, bias, y, c0, c1, len);
  }
  int64_t c = c0;
  for (; c + L <= c1; c += L)
    cl_forward_run<T, R, false>(p, x + c, w + c, bias ? bias + c : nullptr, y + c, L);
  if (c < c1)
    cl_forward_run<T, R, true>(p, x + c, w + c, bias ? bias + c : nullptr, y + c, c1 - c);
}

#if defined(__GNUC__)
#define FASTCONV_CL_INLINE_LAMBDA __attribute__((always_inline))
#else
#define FASTCONV_CL_INLINE_LAMBDA
#endif

// f(integral_constant<int, I>) for I in the sequence, unrolled at compile time.
template <typename F, int... I>
inline void cl_unroll(std::integer_sequence<int, I...>, F&& f) {
  (f(std::integral_constant<int, I>{}), ...);
}

// cl_forward_run at stride and dilation 1 along rows (any along columns) with KW taps per
// kernel row: each input vector of a kernel row is loaded once and multiplied into every output
// of the run it reaches, the row's KW weight vectors held in registers (R + KW - 1 source loads
// per row instead of R x KW: 1152 channels 7x7 5x5 at AVX2, the loads had bound the kernel at
// about half the FMA rate).
template <typename T, int R, int KW, bool kTail>
inline void cl_forward_row_run(const DwChannelsLast& p, const T* x, const T* w, const T* bias,
                               T* y, int64_t tail) {
  using Vec = V<T>;
  using VT = typename Vec::type;
  const ClSpan<T, 1, kTail> s{tail};
  VT acc[R];
  const VT b = bias ? s.load(bias, 0) : Vec::set1(T(0));
  cl_unroll(std::make_integer_sequence<int, R>{},
            [&](auto r) FASTCONV_CL_INLINE_LAMBDA { acc[r] = b; });
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const T* row = x + ky * p.dy * p.wp * p.c;
    const T* wr = w + ky * KW * p.c;
    VT wv[KW];
    cl_unroll(std::make_integer_sequence<int, KW>{},
              [&](auto kx) FASTCONV_CL_INLINE_LAMBDA { wv[kx] = s.load(wr + kx * p.c, 0); });
    cl_unroll(std::make_integer_sequence<int, R + KW - 1>{}, [&](auto i) FASTCONV_CL_INLINE_LAMBDA {
      const VT xv = s.load(row + i * p.c, 0);
      cl_unroll(std::make_integer_sequence<int, KW>{}, [&](auto kx) FASTCONV_CL_INLINE_LAMBDA {
        constexpr int r = decltype(i)::value - decltype(kx)::value;
        if constexpr (r >= 0 && r < R) acc[r] = Vec::fma(wv[kx], xv, acc[r]);
      });
    });
  }
  cl_unroll(std::make_integer_sequence<int, R>{},
            [&](auto r) FASTCONV_CL_INLINE_LAMBDA { s.store(y + r * p.c, 0, acc[r]); });
}

template <typename T, int R, int KW>
void cl_forward_row_runs(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y,
                         int64_t c0, int64_t c1, int64_t len) {
  constexpr int64_t L = V<T>::lanes;
  if constexpr (R > 1) {
    if (len < R) return cl_forward_row_runs<T, R - 1, KW>(p, x, w, bias, y, c0, c1, len);
  }
  int64_t c = c0;
  for (; c + L <= c1; c += L)
    cl_forward_row_run<T, R, KW, false>(p, x + c, w + c, bias ? bias + c : nullptr, y + c, L);
  if (c < c1)
    cl_forward_row_run<T, R, KW, true>(p, x + c, w + c, bias ? bias + c : nullptr, y + c,
                                       c1 - c);
}

// Channels [c0, c1) of every output position: y (oh, ow, c) from x (padded, (hp, wp, c)) and
// w (taps, c); bias (c) or null.
template <typename T, int KW>
void cl_forward_rows(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y,
                     int64_t c0, int64_t c1) {
  for (int64_t oy = 0; oy < p.oh; ++oy)
    for (int64_t ox = 0; ox < p.ow; ox += kClRun) {
      const T* xp = x + (oy * p.sy * p.wp + ox * p.sx) * p.c;
      T* yp = y + (oy * p.ow + ox) * p.c;
      const int64_t len = std::min<int64_t>(kClRun, p.ow - ox);
      if constexpr (KW == 0) {
        cl_forward_runs<T, kClRun>(p, xp, w, bias, yp, c0, c1, len);
      } else {
        cl_forward_row_runs<T, kClRun, KW>(p, xp, w, bias, yp, c0, c1, len);
      }
    }
}

template <typename T>
void cl_forward(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y, int64_t c0,
                int64_t c1) {
  if (p.sx == 1 && p.dx == 1) {
    if (p.kw == 3) return cl_forward_rows<T, 3>(p, x, w, bias, y, c0, c1);
    if (p.kw == 5) return cl_forward_rows<T, 5>(p, x, w, bias, y, c0, c1);
    if (p.kw == 7) return cl_forward_rows<T, 7>(p, x, w, bias, y, c0, c1);
  }
  cl_forward_rows<T, 0>(p, x, w, bias, y, c0, c1);
}

// Taps' weight gradients of channels [c, c + NV vectors): gw[tap] += sum over positions of
// gy[position] * x[position's input for tap].
template <typename T, int NV, bool kTail>
inline void cl_weight_block(const DwChannelsLast& p, const T* x, const T* gy, T* gw,
                            int64_t tail) {
  using Vec = V<T>;
  const ClSpan<T, NV, kTail> s{tail};
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
  for (; c + B <= c1; c += B) cl_weight_block<T, kClBlock, false>(p, x + c, gy + c, gw + c, L);
  for (; c + L <= c1; c += L) cl_weight_block<T, 1, false>(p, x + c, gy + c, gw + c, L);
  if (c < c1) cl_weight_block<T, 1, true>(p, x + c, gy + c, gw + c, c1 - c);
}

}  // namespace
}  // namespace fastconv::FASTCONV_DW_NS
