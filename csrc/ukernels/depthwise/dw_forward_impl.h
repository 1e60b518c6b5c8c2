// Forward plane kernels of the depthwise family (see dw_ukernels.h), over dw_vector.h's
// primitives: register blocks of output vectors (and of filters sharing one source plane) held
// across all taps, tap addresses from the plane's precomputed offsets; kernels up to 3x3 keep
// their weights in registers and load each source row vector once for every output row that reads it.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/depthwise/dw_vector.h"

namespace fastconv::FASTCONV_DW_NS {
namespace {

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
        const typename Vec::type sv = Vec::pin(Vec::load(src + r * pitch + i * L));
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
    // Blocks of kRowVectors while more than one vector is left (the last one partial).
    int64_t x = 0;
    for (; x + L < ow; x += kRowVectors * L)
      block_rows<T, kRowVectors, KB, NR, Init>(p, taps, base + x, w, ws, b, r, x,
                                               std::min(L, ow - x - (kRowVectors - 1) * L));
    if (x < ow) block_rows<T, 1, KB, NR, Init>(p, taps, base + x, w, ws, b, r, x, ow - x);
  }
  if constexpr (NR > 1) {
    if (oy < p.out[1]) forward_rows<T, KB, Init, NR / 2>(p, taps, buf, oz, oy, w, ws, b, rows);
  }
}

template <typename T, int KB>
void forward_n(const DwPlane& p, const T* buf, const T* w, int64_t ws, const T* bias,
               bool accumulate, T* const* out, T* scratch) {
  const int64_t ow = p.out[2], taps = p.taps();
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

// One filter, one plane, a KYxKX kernel (up to 3x3) with row dilation 1 and row stride SH: the
// weights stay in registers and each source row vector is loaded once for every output row of
// the block that reads it ((NR - 1) * SH + KY rows x KX columns of loads for KY * KX * NR
// multiply-adds, not KY * KX * NR).
template <typename T, int KY, int KX, int NR, int64_t NV, int SH>
inline void block_small(const DwPlane& p, const T* base, const typename V<T>::type* wv, T b,
                        T* row, int64_t x, int64_t n_last) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  constexpr int kSrcRows = (NR - 1) * SH + KY;
  const int64_t ow = p.out[2], pitch = p.stride[2] * p.width;
  typename Vec::type acc[NR][NV];
  FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r)
    FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) acc[r][i] = Vec::set1(b);
  _Pragma("GCC unroll 32") for (int sr = 0; sr < kSrcRows; ++sr)
    FASTCONV_DW_UNROLL for (int tx = 0; tx < KX; ++tx)
      FASTCONV_DW_UNROLL for (int64_t i = 0; i < NV; ++i) {
        typename Vec::type v = Vec::load(base + sr * pitch + p.tap_offset[tx] + i * L);
        v = Vec::pin(v);
        FASTCONV_DW_UNROLL for (int r = 0; r < NR; ++r) {
          const int ty = sr - r * SH;
          if (ty >= 0 && ty < KY) acc[r][i] = Vec::fma(wv[ty * KX + tx], v, acc[r][i]);
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

// NR output rows from oy of depth slice oz by block_small, across the row.
template <typename T, int KY, int KX, int NR, int SH>
inline void rows_small(const DwPlane& p, const T* buf, int64_t oz, int64_t oy,
                       const typename V<T>::type* wv, T b, T* out) {
  constexpr int64_t L = V<T>::lanes;
  constexpr int64_t NV = kRegisters<T> == 32 && (NR <= 4 || KY * KX <= 4) ? 2 : 1;
  const int64_t ow = p.out[2];
  const T* base = buf + p.row_base(oz, oy);
  T* row = out + (oz * p.out[1] + oy) * ow;
  // Blocks of NV vectors while more than one vector is left (the last one partial), then one.
  int64_t x = 0;
  for (; x + L < ow; x += NV * L)
    block_small<T, KY, KX, NR, NV, SH>(p, base + x, wv, b, row, x,
                                       std::min(L, ow - x - (NV - 1) * L));
  if (x < ow) block_small<T, KY, KX, NR, 1, SH>(p, base + x, wv, b, row, x, ow - x);
}

// The last `rows` (< R + 1) rows from oy in one block of exactly that many.
template <typename T, int KY, int KX, int R, int SH>
inline void tail_small(const DwPlane& p, const T* buf, int64_t oz, int64_t oy, int64_t rows,
                       const typename V<T>::type* wv, T b, T* out) {
  if constexpr (R > 0) {
    if (rows == R) return rows_small<T, KY, KX, R, SH>(p, buf, oz, oy, wv, b, out);
    tail_small<T, KY, KX, R - 1, SH>(p, buf, oz, oy, rows, wv, b, out);
  }
}

// The rows of depth slice oz, NR at a time, the rest in one block (a block costs a fixed setup:
// on small planes halving blocks for the last rows cost as much as the rows themselves).
template <typename T, int KY, int KX, int NR, int SH>
void small_rows(const DwPlane& p, const T* buf, int64_t oz, const typename V<T>::type* wv, T b,
                T* out) {
  int64_t oy = 0;
  for (; oy + NR <= p.out[1]; oy += NR) rows_small<T, KY, KX, NR, SH>(p, buf, oz, oy, wv, b, out);
  tail_small<T, KY, KX, NR - 1, SH>(p, buf, oz, oy, p.out[1] - oy, wv, b, out);
}

// Whether forward_small serves a call: one filter on one plane, kernel 1xKYxKX with KY, KX up
// to 3 (3x3 layers; the sub-kernels of strided backward data's phases, 1x1 to 2x2 for a 3x3
// kernel at stride 2), row dilation 1, row stride 1 or 2, rows too wide for the flat run.
inline bool serves_small(const DwPlane& p, int count, bool accumulate) {
  return count == 1 && !accumulate && p.channels == 1 && !p.flat() && p.kernel[0] == 1 &&
         p.kernel[1] >= 1 && p.kernel[1] <= 3 && p.kernel[2] >= 1 && p.kernel[2] <= 3 &&
         p.dilation[1] == 1 && (p.stride[1] == 1 || p.stride[1] == 2);
}

template <typename T, int KY, int KX>
void forward_small(const DwPlane& p, const T* buf, const T* w, const T* bias, T* out) {
  typename V<T>::type wv[KY * KX];
  for (int t = 0; t < KY * KX; ++t) wv[t] = V<T>::set1(w[t]);
  const T b = bias ? bias[0] : T(0);
  // With 32 registers, 8 rows per block for rows of one vector or kernels of up to 4 taps (two
  // vectors per row: 16 accumulators), else 4; AVX2's 16 registers: 9 weights + 4 rows (the
  // 8-row blocks, never run there, not instantiated there either).
  const bool tall = kRegisters<T> == 32 && (p.out[2] <= V<T>::lanes || KY * KX <= 4);
  for (int64_t oz = 0; oz < p.out[0]; ++oz) {
    if (p.stride[1] == 1) {
      if constexpr (kRegisters<T> == 32) {
        if (tall) {
          small_rows<T, KY, KX, 8, 1>(p, buf, oz, wv, b, out);
          continue;
        }
      }
      small_rows<T, KY, KX, 4, 1>(p, buf, oz, wv, b, out);
    } else {
      small_rows<T, KY, KX, 4, 2>(p, buf, oz, wv, b, out);
    }
  }
}

template <typename T, int KY>
void forward_small_rows(const DwPlane& p, const T* buf, const T* w, const T* bias, T* out) {
  switch (p.kernel[2]) {
    case 1: return forward_small<T, KY, 1>(p, buf, w, bias, out);
    case 2: return forward_small<T, KY, 2>(p, buf, w, bias, out);
    default: return forward_small<T, KY, 3>(p, buf, w, bias, out);
  }
}

template <typename T>
void forward(const DwPlane& p, const T* buf, const T* w, int64_t w_stride, int count,
             const T* bias, bool accumulate, T* const* out, T* scratch) {
  if (serves_small(p, count, accumulate)) {
    switch (p.kernel[1]) {
      case 1: return forward_small_rows<T, 1>(p, buf, w, bias, out[0]);
      case 2: return forward_small_rows<T, 2>(p, buf, w, bias, out[0]);
      default: return forward_small_rows<T, 3>(p, buf, w, bias, out[0]);
    }
  }
  switch (count) {
    case 1: return forward_n<T, 1>(p, buf, w, w_stride, bias, accumulate, out, scratch);
    case 2: return forward_n<T, 2>(p, buf, w, w_stride, bias, accumulate, out, scratch);
    case 3: return forward_n<T, 3>(p, buf, w, w_stride, bias, accumulate, out, scratch);
    default: return forward_n<T, 4>(p, buf, w, w_stride, bias, accumulate, out, scratch);
  }
}

}  // namespace
}  // namespace fastconv::FASTCONV_DW_NS
