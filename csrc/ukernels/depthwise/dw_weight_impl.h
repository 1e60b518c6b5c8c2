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

// Weight gradient of one plane pair through a 1x3x3 kernel (row dilation 1, row stride SH), a
// band of NR grad_y rows at column x: the band's grad_y vectors stay in registers and each
// source row vector is loaded once for every (grad_y row, kernel row) pair that reads it,
// ((NR - 1) * SH + 3) x 3 loads for 9 * NR multiply-adds instead of 10 * NR. A Tail band reads
// the last n < lanes columns, both operands zero past them.
template <typename T, int NR, int SH, bool Tail>
inline void band_3x3(const DwPlane& p, const T* base, const T* g, int64_t n,
                     typename V<T>::type* acc) {
  using Vec = V<T>;
  constexpr int kSrcRows = (NR - 1) * SH + 3;
  const int64_t ow = p.out[2], pitch = p.stride[2] * p.width;
  typename Vec::type gv[NR];
  FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
    gv[r] = Tail ? Vec::load_n(g + r * ow, n) : Vec::load(g + r * ow);
  _Pragma("GCC unroll 32") for (int sr = 0; sr < kSrcRows; ++sr)
    FASTCONV_DW_UNROLL for (int tx = 0; tx < 3; ++tx) {
      const T* src = base + sr * pitch + p.tap_offset[tx];
      const typename Vec::type v = Vec::pin(Tail ? Vec::load_n(src, n) : Vec::load(src));
      FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r) {
        const int ty = sr - r * SH;
        if (ty >= 0 && ty < 3) acc[ty * 3 + tx] = Vec::fma(gv[r], v, acc[ty * 3 + tx]);
      }
    }
}

// NR grad_y rows from oy of depth slice oz, across the row.
template <typename T, int NR, int SH>
inline void rows_w3x3(const DwPlane& p, const T* buf, const T* gy, int64_t oz, int64_t oy,
                      typename V<T>::type* acc) {
  constexpr int64_t L = V<T>::lanes;
  const int64_t ow = p.out[2];
  const T* base = buf + p.row_base(oz, oy);
  const T* g = gy + (oz * p.out[1] + oy) * ow;
  int64_t x = 0;
  for (; x + L <= ow; x += L) band_3x3<T, NR, SH, false>(p, base + x, g + x, L, acc);
  if (x < ow) band_3x3<T, NR, SH, true>(p, base + x, g + x, ow - x, acc);
}

// The last `rows` (< R + 1) rows from oy in one band of exactly that many.
template <typename T, int R, int SH>
inline void tail_w3x3(const DwPlane& p, const T* buf, const T* gy, int64_t oz, int64_t oy,
                      int64_t rows, typename V<T>::type* acc) {
  if constexpr (R > 0) {
    if (rows == R) return rows_w3x3<T, R, SH>(p, buf, gy, oz, oy, acc);
    tail_w3x3<T, R - 1, SH>(p, buf, gy, oz, oy, rows, acc);
  }
}

// Whether weight_3x3 serves a plane pair: kernel 1x3x3, row dilation 1, row stride 1 or 2, and
// 32 vector registers (with AVX2's 16 the bands are too short to beat weight_fixed: Zen 4,
// dw112 219 vs 198 us, dw56s2 123 vs 110 us; AVX-512 159 vs 198 us, 96 vs 97 us).
template <typename T>
bool serves_w3x3(const DwPlane& p) {
  return kRegisters<T> == 32 && p.kernel[0] == 1 && p.kernel[1] == 3 && p.kernel[2] == 3 &&
         p.dilation[1] == 1 && (p.stride[1] == 1 || p.stride[1] == 2);
}

// Bands of 8 rows: 9 accumulators + 8 grad_y vectors + 1 source vector in registers.
template <typename T, int SH>
void weight_3x3(const DwPlane& p, const T* buf, const T* gy, T* gw) {
  constexpr int NR = 8;
  typename V<T>::type acc[9];
  FASTCONV_DW_UNROLL for (int t = 0; t < 9; ++t) acc[t] = V<T>::set1(T(0));
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    int64_t oy = 0;
    for (; oy + NR <= p.out[1]; oy += NR) rows_w3x3<T, NR, SH>(p, buf, gy, oz, oy, acc);
    tail_w3x3<T, NR - 1, SH>(p, buf, gy, oz, oy, p.out[1] - oy, acc);
  }
  FASTCONV_DW_UNROLL for (int t = 0; t < 9; ++t) gw[t] += V<T>::sum(acc[t]);
}

template <typename T>
void weight_one(const DwPlane& p, const T* buf, const T* gy, T* gw) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2], taps = p.taps();
  if (serves_w3x3<T>(p))
    return p.stride[1] == 1 ? weight_3x3<T, 1>(p, buf, gy, gw) : weight_3x3<T, 2>(p, buf, gy, gw);
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
// vectors and one source vector (AVX-512: 4 x 6 + 5 = 29 of 32 registers; AVX2: 2 x 6 + 3 = 15
// of 16; resnext50 g32 on Zen 4, AVX2: 2 x 6 379 us, 2 x 5 398, 4 x 3 434, 3 x 4 455).
template <typename T>
constexpr int kWeightPlanes = kRegisters<T> == 32 ? 4 : 2;
template <typename T>
constexpr int kWeightTaps = 6;

// gw[f * gs + r0 + i] += sum over outputs of gy[f][o] * buf[... + tap_offset[r0 + i]] for
// f < JB, i < RB: each grad_y vector is loaded once for RB taps, each source vector once for JB
// planes. Column by column down the rows: the inner loop runs over all rows of a depth slice
// (a 28-wide row is only 1-4 vectors, and per-row loop overhead and tails cost ~40%).
template <typename T, int JB, int RB>
void weight_block(const DwPlane& p, const T* buf, const T* const* gy, int64_t r0, T* gw,
                  int64_t gs) {
  using Vec = V<T>;
  using VT = typename Vec::type;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2], rows = p.out[1], pitch = p.stride[1] * p.stride[2] * p.width;
  const RowTail<T> tail(ow);
  VT acc[JB][RB];
  FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f)
    FASTCONV_DW_UNROLL for (int i = 0; i < RB; ++i) acc[f][i] = Vec::set1(T(0));
  // fma(gv, sv) over the rows of one column, gv and sv reading (grad_y row, source row) pairs.
  int64_t off[RB];
  FASTCONV_DW_UNROLL for (int i = 0; i < RB; ++i) off[i] = p.tap_offset[r0 + i];
  auto column = [&](const T* base, int64_t o, auto&& load) {
    for (int64_t oy = 0; oy < rows; ++oy, base += pitch, o += ow) {
      VT gv[JB];
      FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f) gv[f] = load(gy[f] + o);
      FASTCONV_DW_UNROLL for (int i = 0; i < RB; ++i) {
        const VT sv = Vec::pin(load(base + off[i]));
        FASTCONV_DW_UNROLL for (int f = 0; f < JB; ++f) acc[f][i] = Vec::fma(gv[f], sv, acc[f][i]);
      }
    }
  };
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    const T* base = buf + p.row_base(oz, 0);
    const int64_t o = oz * rows * ow;
    for (int64_t x = 0; x + L <= ow; x += L)
      column(base + x, o + x, [](const T* q) { return Vec::load(q); });
    if (tail.n) column(base, o, [&](const T* q) { return tail(q); });
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
