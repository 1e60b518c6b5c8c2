// Bodies of the depthwise plane kernels (see dw_ukernels.h). Included by one file per ISA level
// inside that level's namespace; the vector primitives (dw_vector.h) map to AVX-512, AVX2 or
// plain scalars, so the same loops run at each level. Register blocking: a row is produced
// kBlock vectors at a time, held in registers across all taps; tap addresses come from the
// plane's precomputed offsets, so no index arithmetic runs per tap.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/depthwise/dw_pack_impl.h"
#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/depthwise/dw_vector.h"

#ifndef FASTCONV_DW_NS
#error "define FASTCONV_DW_NS (the ISA namespace) before including dw_impl.h"
#endif

namespace fastconv::FASTCONV_DW_NS {
namespace {

// Fully unrolled loops over register blocks, so GCC keeps the accumulator arrays in registers.
#define FASTCONV_DW_UNROLL _Pragma("GCC unroll 8")

constexpr int64_t kBlock = 4;  // vectors per register block (4 x 16 f32 outputs on AVX-512)

int64_t tap_count(const DwPlane& p) { return p.taps(); }

// For KB filters: row[f][0 : NV * lanes) = (Init ? row[f] : 0) + sum over taps of
// w[f * ws + t] * base[tap_offset[t] + j]; each source vector is loaded once for all KB.
template <typename T, int64_t NV, int KB, bool Init>
inline void block_forward(const DwPlane& p, int64_t taps, const T* base, const T* w, int64_t ws,
                          T* const* row, int64_t x) {
  using Vec = V<T>;
  typename Vec::type acc[KB][NV];
  FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f)
    FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i)
      acc[f][i] = Init ? Vec::load(row[f] + x + i * Vec::lanes) : Vec::set1(T(0));
  for (int64_t t = 0; t < taps; ++t) {
    const T* src = base + p.tap_offset[t];
    typename Vec::type sv[NV];
    FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) sv[i] = Vec::load(src + i * Vec::lanes);
    FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f) {
      const typename Vec::type wv = Vec::set1(w[f * ws + t]);
      FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) acc[f][i] = Vec::fma(wv, sv[i], acc[f][i]);
    }
  }
  FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f)
    FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) Vec::store(row[f] + x + i * Vec::lanes, acc[f][i]);
}

// Registers of one vector type: 32 with AVX-512, else 16.
template <typename T>
constexpr int kRegisters = sizeof(typename V<T>::type) >= 64 ? 32 : 16;

// Register blocks per filter count: one filter keeps 4 vectors of outputs in flight, several
// filters 2 each (at most 8 accumulators + 2 source vectors: fits AVX2's 16 registers); with
// AVX-512's 32 registers, 4 each (16 accumulators: half the broadcasts per multiply-add).
template <typename T, int KB>
constexpr int64_t block_vectors() {
  return KB == 1 || kRegisters<T> == 32 ? 4 : 2;
}

// For KB filters, row[f][x0 : x0 + n) = (Init ? row[f] : 0) + taps' sum, in register blocks.
template <typename T, int KB, bool Init>
void run_forward(const DwPlane& p, int64_t taps, const T* base, const T* w, int64_t ws,
                 T* const* row, int64_t x0, int64_t n) {
  constexpr int64_t L = V<T>::lanes, NB = block_vectors<T, KB>();
  int64_t x = x0;
  const int64_t end = x0 + n;
  for (; x + NB * L <= end; x += NB * L)
    block_forward<T, NB, KB, Init>(p, taps, base + x, w, ws, row, x);
  for (; x + L <= end; x += L) block_forward<T, 1, KB, Init>(p, taps, base + x, w, ws, row, x);
  if (x < end) {  // last partial vector: computed in scratch vectors (reads stay in the slack)
    T tmp[KB][L];
    T* tmp_rows[KB];
    for (int f = 0; f < KB; ++f) {
      tmp_rows[f] = tmp[f];
      if (Init) std::copy(row[f] + x, row[f] + end, tmp[f]);
    }
    block_forward<T, 1, KB, Init>(p, taps, base + x, w, ws, tmp_rows, 0);
    for (int f = 0; f < KB; ++f) std::copy(tmp[f], tmp[f] + (end - x), row[f] + x);
  }
}

// Output rows a register block spans (each of kRowVectors vectors): one filter 4 rows (8
// accumulators: the loads, one per multiply-add, bound it), several filters 2 rows with
// AVX-512 (16 accumulators), else 1.
template <typename T, int KB>
constexpr int row_block() {
  return KB == 1 ? 4 : kRegisters<T> == 32 ? 2 : 1;
}
constexpr int64_t kRowVectors = 2;

// For KB filters, NR output rows from oy and NV vectors from x (the last one n_last lanes):
// out[f] row = (Init ? out[f] row : b[f]) + the taps' sum, each store made once. Rows are
// out[2] apart in out[f], one source row pitch apart in the padded plane.
template <typename T, int64_t NV, int KB, int NR, bool Init>
inline void block_rows(const DwPlane& p, int64_t taps, const T* base, const T* w, int64_t ws,
                       const T* b, T* const* row, int64_t x, int64_t n_last) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2], pitch = p.stride[1] * p.stride[2] * p.width;
  typename Vec::type acc[KB][NR][NV];
  FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f)
    FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
      FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) {
        const T* o = row[f] + r * ow + x + i * L;
        acc[f][r][i] = !Init ? Vec::set1(b[f]) : i + 1 < NV ? Vec::load(o) : Vec::load_n(o, n_last);
      }
  for (int64_t t = 0; t < taps; ++t) {
    const T* src = base + p.tap_offset[t];
    typename Vec::type wv[KB];
    FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f) wv[f] = Vec::set1(w[f * ws + t]);
    FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
      FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) {
        const typename Vec::type sv = Vec::load(src + r * pitch + i * L);
        FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f) acc[f][r][i] = Vec::fma(wv[f], sv, acc[f][r][i]);
      }
  }
  FASTCONV_DW_UNROLL for (int f = 0; f < KB; ++f)
    FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
      FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) {
        T* o = row[f] + r * ow + x + i * L;
        if (i + 1 < NV || n_last == L) {
          Vec::store(o, acc[f][r][i]);
        } else {
          Vec::store_n(o, acc[f][r][i], n_last);
        }
      }
}

// Output rows [oy, out[1]) of depth slice oz, NR rows at a time (fewer for the last ones),
// each row kRowVectors vectors at a time; rows[f] points at the slice's first row.
template <typename T, int KB, bool Init, int NR>
void forward_rows(const DwPlane& p, int64_t taps, const T* buf, int64_t oz, int64_t oy,
                  const T* w, int64_t ws, const T* b, T* const* rows) {
  constexpr int64_t L = V<T>::lanes;
  const int64_t ow = p.out[2];
  for (; oy + NR <= p.out[1]; oy += NR) {
    const T* base = buf + p.row_base(oz, oy);
    T* r[KB];
    for (int f = 0; f < KB; ++f) r[f] = rows[f] + oy * ow;
    int64_t x = 0;
    for (; x + kRowVectors * L <= ow; x += kRowVectors * L)
      block_rows<T, kRowVectors, KB, NR, Init>(p, taps, base + x, w, ws, b, r, x, L);
    for (; x < ow; x += L)
      block_rows<T, 1, KB, NR, Init>(p, taps, base + x, w, ws, b, r, x, std::min(L, ow - x));
  }
  if constexpr (NR > 1) {
    if (oy < p.out[1]) forward_rows<T, KB, Init, NR / 2>(p, taps, buf, oz, oy, w, ws, b, rows);
  }
}

template <typename T, int KB>
void forward_n(const DwPlane& p, const T* buf, const T* w, int64_t ws, const T* bias,
               bool accumulate, T* const* out, T* scratch) {
  const int64_t ow = p.out[2], taps = tap_count(p);
  if (p.flat()) {
    // One flat run per depth slice and filter in scratch, then rows copied out with the bias.
    const int64_t run = p.flat_elems() + 16;
    T* runs[KB];
    for (int f = 0; f < KB; ++f) runs[f] = scratch + f * run;
    for (int64_t oz = 0; oz < p.out[0]; ++oz) {
      run_forward<T, KB, false>(p, taps, buf + p.row_base(oz, 0), w, ws, runs, 0, p.flat_elems());
      for (int f = 0; f < KB; ++f) {
        const T b = bias ? bias[f] : T(0);
        for (int64_t oy = 0; oy < p.out[1]; ++oy) {
          T* row = out[f] + (oz * p.out[1] + oy) * ow;
          const T* s = runs[f] + oy * p.width;
          if (accumulate) {
            for (int64_t x = 0; x < ow; ++x) row[x] += s[x];
          } else {
            for (int64_t x = 0; x < ow; ++x) row[x] = b + s[x];
          }
        }
      }
    }
    return;
  }
  T b[KB];
  for (int f = 0; f < KB; ++f) b[f] = bias && !accumulate ? bias[f] : T(0);
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    T* rows[KB];
    for (int f = 0; f < KB; ++f) rows[f] = out[f] + oz * p.out[1] * ow;
    // Rows of one vector: twice the rows per block, for as many accumulators.
    constexpr int NR = row_block<T, KB>();
    const bool narrow = ow <= V<T>::lanes;
    if (accumulate && narrow) {
      forward_rows<T, KB, true, 2 * NR>(p, taps, buf, oz, 0, w, ws, b, rows);
    } else if (accumulate) {
      forward_rows<T, KB, true, NR>(p, taps, buf, oz, 0, w, ws, b, rows);
    } else if (narrow) {
      forward_rows<T, KB, false, 2 * NR>(p, taps, buf, oz, 0, w, ws, b, rows);
    } else {
      forward_rows<T, KB, false, NR>(p, taps, buf, oz, 0, w, ws, b, rows);
    }
  }
}

// One filter, one plane, a 3x3 kernel with row dilation 1 and row stride SH: the 9 weights stay
// in registers and each source row vector is loaded once for every output row of the block
// that reads it (NR + 2 rows x 3 columns of loads for 9 * NR multiply-adds, not 9 * NR).
template <typename T, int NR, int64_t NV, int SH>
inline void block_3x3(const DwPlane& p, const T* base, const typename V<T>::type* wv, T b, T* row,
                      int64_t x, int64_t n_last) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  constexpr int kSrcRows = (NR - 1) * SH + 3;
  const int64_t ow = p.out[2], pitch = p.stride[2] * p.width;
  typename Vec::type acc[NR][NV];
  FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
    FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) acc[r][i] = Vec::set1(b);
  _Pragma("GCC unroll 16") for (int sr = 0; sr < kSrcRows; ++sr)
    FASTCONV_DW_UNROLL for (int tx = 0; tx < 3; ++tx)
      FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) {
        const typename Vec::type v = Vec::load(base + sr * pitch + p.tap_offset[tx] + i * L);
        FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r) {
          const int ty = sr - r * SH;
          if (ty >= 0 && ty < 3) acc[r][i] = Vec::fma(wv[ty * 3 + tx], v, acc[r][i]);
        }
      }
  FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
    FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) {
      T* o = row + r * ow + x + i * L;
      if (i + 1 < NV || n_last == L) {
        Vec::store(o, acc[r][i]);
      } else {
        Vec::store_n(o, acc[r][i], n_last);
      }
    }
}

// Rows [oy, out[1]) of depth slice oz by block_3x3, NR rows at a time (fewer for the last).
template <typename T, int NR, int SH>
void forward_3x3_rows(const DwPlane& p, const T* buf, int64_t oz, int64_t oy,
                      const typename V<T>::type* wv, T b, T* out) {
  constexpr int64_t L = V<T>::lanes;
  constexpr int64_t NV = kRegisters<T> == 32 && NR <= 4 ? 2 : 1;
  const int64_t ow = p.out[2];
  for (; oy + NR <= p.out[1]; oy += NR) {
    const T* base = buf + p.row_base(oz, oy);
    T* row = out + (oz * p.out[1] + oy) * ow;
    int64_t x = 0;
    for (; x + NV * L <= ow; x += NV * L) block_3x3<T, NR, NV, SH>(p, base + x, wv, b, row, x, L);
    for (; x < ow; x += L)
      block_3x3<T, NR, 1, SH>(p, base + x, wv, b, row, x, std::min(L, ow - x));
  }
  if constexpr (NR > 1) {
    if (oy < p.out[1]) forward_3x3_rows<T, NR / 2, SH>(p, buf, oz, oy, wv, b, out);
  }
}

// Whether forward_3x3 serves a call: one filter on one plane, kernel 1x3x3 (any depth count
// of 1), row dilation 1, row stride 1 or 2, rows too wide for the flat run.
inline bool serves_3x3(const DwPlane& p, int count, bool accumulate) {
  return count == 1 && !accumulate && p.channels == 1 && !p.flat() && p.kernel[0] == 1 &&
         p.kernel[1] == 3 && p.kernel[2] == 3 && p.dilation[1] == 1 &&
         (p.stride[1] == 1 || p.stride[1] == 2);
}

template <typename T>
void forward_3x3(const DwPlane& p, const T* buf, const T* w, const T* bias, T* out) {
  typename V<T>::type wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = V<T>::set1(w[t]);
  const T b = bias ? bias[0] : T(0);
  // Narrow rows (one vector): more rows per block; AVX2's 16 registers: 9 weights + 4 rows.
  const bool narrow = p.out[2] <= V<T>::lanes && kRegisters<T> == 32;
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    if (p.stride[1] == 1) {
      if (narrow) forward_3x3_rows<T, 8, 1>(p, buf, oz, 0, wv, b, out);
      else forward_3x3_rows<T, 4, 1>(p, buf, oz, 0, wv, b, out);
    } else {
      forward_3x3_rows<T, 4, 2>(p, buf, oz, 0, wv, b, out);
    }
  }
}

template <typename T>
void forward(const DwPlane& p, const T* buf, const T* w, int64_t w_stride, int count,
             const T* bias, bool accumulate, T* const* out, T* scratch) {
  if (serves_3x3(p, count, accumulate)) return forward_3x3(p, buf, w, bias, out[0]);
  switch (count) {
    case 1: return forward_n<T, 1>(p, buf, w, w_stride, bias, accumulate, out, scratch);
    case 2: return forward_n<T, 2>(p, buf, w, w_stride, bias, accumulate, out, scratch);
    case 3: return forward_n<T, 3>(p, buf, w, w_stride, bias, accumulate, out, scratch);
    default: return forward_n<T, 4>(p, buf, w, w_stride, bias, accumulate, out, scratch);
  }
}

// Weight gradient of a kernel with exactly Taps taps: each vector of grad_y is loaded once and
// multiplied into every tap's accumulator (one load of the source per multiply-add instead of
// two), with Taps accumulators living in registers.
template <typename T, int64_t Taps>
void weight_fixed(const DwPlane& p, const T* buf, const T* gy, T* gw) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2];
  typename Vec::type acc[Taps];
  int64_t off[Taps];
  for (int64_t t = 0; t < Taps; ++t) acc[t] = Vec::set1(T(0)), off[t] = p.tap_offset[t];
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    for (int64_t oy = 0; oy < p.out[1]; ++oy) {
      const T* base = buf + p.row_base(oz, oy);
      const T* g = gy + (oz * p.out[1] + oy) * ow;
      int64_t x = 0;
      for (; x + L <= ow; x += L) {
        const typename Vec::type gv = Vec::load(g + x);
        for (int64_t t = 0; t < Taps; ++t)
          acc[t] = Vec::fma(gv, Vec::load(base + off[t] + x), acc[t]);
      }
      if (x < ow) {  // exact: lanes past the row are zero in both operands
        const int64_t n = ow - x;
        const typename Vec::type gv = Vec::load_n(g + x, n);
        for (int64_t t = 0; t < Taps; ++t)
          acc[t] = Vec::fma(gv, Vec::load_n(base + off[t] + x, n), acc[t]);
      }
    }
  }
  for (int64_t t = 0; t < Taps; ++t) gw[t] += Vec::sum(acc[t]);
}

template <typename T>
void weight_one(const DwPlane& p, const T* buf, const T* gy, T* gw) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t ow = p.out[2], taps = tap_count(p);
  if (L > 1 && taps == 9) return weight_fixed<T, 9>(p, buf, gy, gw);
  if (L > 1 && taps == 3) return weight_fixed<T, 3>(p, buf, gy, gw);
  for (int64_t t = 0; t < taps; ++t) {
    typename Vec::type acc[kBlock];
    for (int64_t i = 0; i < kBlock; ++i) acc[i] = Vec::set1(T(0));
    for (int64_t oz = 0; oz < p.out[0]; ++oz) {
      for (int64_t oy = 0; oy < p.out[1]; ++oy) {
        const T* src = buf + p.row_base(oz, oy) + p.tap_offset[t];
        const T* g = gy + (oz * p.out[1] + oy) * ow;
        int64_t x = 0;
        for (; x + kBlock * L <= ow; x += kBlock * L)
          for (int64_t i = 0; i < kBlock; ++i)
            acc[i] = Vec::fma(Vec::load(g + x + i * L), Vec::load(src + x + i * L), acc[i]);
        for (; x + L <= ow; x += L) acc[1] = Vec::fma(Vec::load(g + x), Vec::load(src + x), acc[1]);
        if (x < ow)  // exact: lanes past the row are zero in both operands
          acc[2] = Vec::fma(Vec::load_n(g + x, ow - x), Vec::load_n(src + x, ow - x), acc[2]);
      }
    }
    for (int64_t i = 1; i < kBlock; ++i) acc[0] = acc[0] + acc[i];
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
  const int64_t taps = tap_count(p);
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

extern const DwKernels<float> dw_f32_kernels;
extern const DwKernels<double> dw_f64_kernels;
const DwKernels<float> dw_f32_kernels = {forward<float>, weight<float>, pack_rows<float>,
                                         unpack_rows<float>, FASTCONV_DW_NAME("f32")};
const DwKernels<double> dw_f64_kernels = {forward<double>, weight<double>, pack_rows<double>,
                                          unpack_rows<double>, FASTCONV_DW_NAME("f64")};

}  // namespace fastconv::FASTCONV_DW_NS
