// Weight-gradient plane kernels of the depthwise family (see dw_ukernels.h), over
// dw_vector.h's primitives: accumulators for a block of (grad_y plane, tap) pairs live in
// registers across the whole plane and are reduced once at the end.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/depthwise/dw_vector.h"

namespace fastconv::FASTCONV_DW_NS {
namespace {

constexpr int64_t kWeightVectors = 4;  // accumulators of one tap over a row (any tap count)

// Weight gradient of a kernel with exactly Taps taps: each vector of grad_y is loaded once and
// multiplied into every tap's accumulator (one load of the source per multiply-add instead of
// two), with Taps accumulators living in registers.
template <typename T, int64_t Taps>
void weight_fixed(const DwPlane& p, const T* buf, const T* gy, T* gw) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2], tail = ow % L;
  typename Vec::type acc[Taps];
  int64_t off[Taps];
  FASTCONV_DW_TAPS for (int64_t t = 0; t < Taps; ++t) acc[t] = Vec::set1(T(0)), off[t] = p.tap_offset[t];
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    for (int64_t oy = 0; oy < p.out[1]; ++oy) {
      const T* base = buf + p.row_base(oz, oy);
      const T* g = gy + (oz * p.out[1] + oy) * ow;
      int64_t x = 0;
      for (; x + L <= ow; x += L) {
        const typename Vec::type gv = Vec::load(g + x);
        FASTCONV_DW_TAPS for (int64_t t = 0; t < Taps; ++t)
          acc[t] = Vec::fma(gv, Vec::load(base + off[t] + x), acc[t]);
      }
      if (tail) {  // exact: lanes past the row are zero in both operands
        const typename Vec::type gv = Vec::load_n(g + x, tail);
        FASTCONV_DW_TAPS for (int64_t t = 0; t < Taps; ++t)
          acc[t] = Vec::fma(gv, Vec::load_n(base + off[t] + x, tail), acc[t]);
      }
    }
  }
  FASTCONV_DW_TAPS for (int64_t t = 0; t < Taps; ++t) gw[t] += Vec::sum(acc[t]);
}

template <typename T>
void weight_one(const DwPlane& p, const T* buf, const T* gy, T* gw) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2], taps = p.taps();
  if (L > 1 && taps == 9) return weight_fixed<T, 9>(p, buf, gy, gw);
  if (L > 1 && taps == 3) return weight_fixed<T, 3>(p, buf, gy, gw);
  for (int64_t t = 0; t < taps; ++t) {
    typename Vec::type acc[kWeightVectors];
    for (int64_t i = 0; i < kWeightVectors; ++i) acc[i] = Vec::set1(T(0));
    for (int64_t oz = 0; oz < p.out[0]; ++oz) {
      for (int64_t oy = 0; oy < p.out[1]; ++oy) {
        const T* src = buf + p.row_base(oz, oy) + p.tap_offset[t];
        const T* g = gy + (oz * p.out[1] + oy) * ow;
        int64_t x = 0;
        for (; x + kWeightVectors * L <= ow; x += kWeightVectors * L)
          for (int64_t i = 0; i < kWeightVectors; ++i)
            acc[i] = Vec::fma(Vec::load(g + x + i * L), Vec::load(src + x + i * L), acc[i]);
        for (; x + L <= ow; x += L) acc[1] = Vec::fma(Vec::load(g + x), Vec::load(src + x), acc[1]);
        if (x < ow)  // exact: lanes past the row are zero in both operands
          acc[2] = Vec::fma(Vec::load_n(g + x, ow - x), Vec::load_n(src + x, ow - x), acc[2]);
      }
    }
    for (int64_t i = 1; i < kWeightVectors; ++i) acc[0] = acc[0] + acc[i];
    gw[t] += Vec::sum(acc[0]);
  }
}

// Weight-gradient register block: JB grad_y planes x RB taps of accumulators, plus JB grad_y
// vectors and one source vector (AVX-512: 4 x 6 + 5 = 29 of 32 registers; AVX2: 2 x 5 + 3).
template <typename T>
constexpr int kWeightPlanes = kRegisters<T> == 32 ? 4 : 2;
template <typename T>
constexpr int kWeightTaps = kRegisters<T> == 32 ? 6 : 5;

// gw[f * gs + r0 + i] += sum over outputs of gy[f][o] * buf[... + tap_offset[r0 + i]] for
// f < JB, i < RB: each grad_y vector is loaded once for RB taps, each source vector once for JB
// planes.
template <typename T, int JB, int RB>
void weight_block(const DwPlane& p, const T* buf, const T* const* gy, int64_t r0, T* gw,
                  int64_t gs) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2];
  typename Vec::type acc[JB][RB];
  int64_t off[RB];
  for (int i = 0; i < RB; ++i) off[i] = p.tap_offset[r0 + i];
  FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f)
    FASTCONV_DW_UNROLL for (int i = 0; i < RB; ++i) acc[f][i] = Vec::set1(T(0));
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    for (int64_t oy = 0; oy < p.out[1]; ++oy) {
      const T* base = buf + p.row_base(oz, oy);
      const int64_t o = (oz * p.out[1] + oy) * ow;
      int64_t x = 0;
      for (; x + L <= ow; x += L) {
        typename Vec::type gv[JB];
        FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f) gv[f] = Vec::load(gy[f] + o + x);
        FASTCONV_DW_UNROLL for (int i = 0; i < RB; ++i) {
          const typename Vec::type sv = Vec::load(base + off[i] + x);
          FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f) acc[f][i] = Vec::fma(gv[f], sv, acc[f][i]);
        }
      }
      if (x < ow) {  // exact: lanes past the row are zero in both operands
        const int64_t n = ow - x;
        typename Vec::type gv[JB];
        FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f) gv[f] = Vec::load_n(gy[f] + o + x, n);
        FASTCONV_DW_UNROLL for (int i = 0; i < RB; ++i) {
          const typename Vec::type sv = Vec::load_n(base + off[i] + x, n);
          FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f) acc[f][i] = Vec::fma(gv[f], sv, acc[f][i]);
        }
      }
    }
  }
  FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f)
    for (int i = 0; i < RB; ++i) gw[f * gs + r0 + i] += Vec::sum(acc[f][i]);
}

// Taps [r0, taps) in blocks of RB, the remainder in smaller blocks.
template <typename T, int JB, int RB>
void weight_taps(const DwPlane& p, const T* buf, const T* const* gy, int64_t r0, T* gw,
                 int64_t gs) {
  const int64_t taps = p.taps();
  for (; r0 + RB <= taps; r0 += RB) weight_block<T, JB, RB>(p, buf, gy, r0, gw, gs);
  if constexpr (RB > 1) {
    if (r0 < taps) weight_taps<T, JB, RB / 2>(p, buf, gy, r0, gw, gs);
  }
}

template <typename T, int JB>
void weight_planes(const DwPlane& p, const T* buf, const T* const* gy, int count, T* gw,
                   int64_t gs) {
  for (int f = 0; f + JB <= count; f += JB)
    weight_taps<T, JB, kWeightTaps<T>>(p, buf, gy + f, 0, gw + f * gs, gs);
  const int rest = count % JB;
  if constexpr (JB > 1) {
    if (rest) weight_planes<T, JB / 2>(p, buf, gy + (count - rest), rest, gw + (count - rest) * gs, gs);
  }
}

template <typename T>
void weight(const DwPlane& p, const T* buf, const T* const* gy, int count, T* gw, int64_t gs) {
  // One plane pair (depthwise, multiplier 1): the tap-specialised loops.
  if (count == 1 && p.channels == 1) return weight_one(p, buf, gy[0], gw);
  weight_planes<T, kWeightPlanes<T>>(p, buf, gy, count, gw, gs);
}

}  // namespace
}  // namespace fastconv::FASTCONV_DW_NS
