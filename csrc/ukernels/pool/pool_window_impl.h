// Bodies of the window kernels: max, argmax and sum over one output row, and the gradient
// scatter into row accumulators (see pool_ukernels.h), over pool_vector.h's primitives.
// Register blocking: NB vectors of consecutive outputs stay in registers across every tap of
// the window. The taps along W are unrolled for windows 2 and 3 wide (2x2 and 3x3 at any
// stride: the phase split makes stride 2 contiguous) and looped for any other width.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "ukernels/pool/pool_ukernels.h"
#include "ukernels/pool/pool_vector.h"

namespace fastconv::FASTCONV_POOL_NS {
namespace {

template <typename T>
inline void put(T* y, typename V<T>::type v, int64_t count) {  // count > 0 outputs of v
  if (count >= V<T>::lanes) {
    V<T>::store(y, v);
  } else {
    V<T>::store_n(y, v, count);
  }
}

// The window's taps along W: KW when unrolled, else the run-time count.
template <int KW, typename T>
inline int64_t taps_of(const PoolWindow<T>& w) {
  return KW > 0 ? KW : w.tap_count;
}

// y[o : o + count) = window maxima for count <= NB * lanes outputs. -inf starts every lane:
// padding holds -inf too, so it never wins; the only index rule it needs is argmax's.
template <typename T, int KW, int NB, bool NanFree>
inline void max_block(const PoolWindow<T>& w, int64_t o, T* y, int64_t count) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type best[NB];
  for (int i = 0; i < NB; ++i) best[i] = Vec::set1(-std::numeric_limits<T>::infinity());
  const int64_t taps = taps_of<KW>(w);
  for (int64_t r = 0; r < w.row_count; ++r) {
    const T* row = w.rows[r] + o;
    for (int64_t k = 0; k < taps; ++k) {
      const T* src = row + w.tap_offset[k];
      for (int i = 0; i < NB; ++i) {
        const typename Vec::type v = Vec::load(src + i * L);
        if (NanFree) {
          best[i] = Vec::max(v, best[i]);  // v > best ? v : best: a tie keeps the earlier tap
        } else {
          best[i] = Vec::select(Vec::mask_or(Vec::gt(v, best[i]), Vec::isnan(v)), v, best[i]);
        }
      }
    }
  }
  for (int i = 0; i < NB && i * L < count; ++i) put<T>(y + i * L, best[i], count - i * L);
}

// max_block and the winners' plane offsets. Each lane starts at -inf with the index of its
// first tap inside the input (the reference's answer when nothing beats -inf); a tap replaces
// the best when greater (so ties keep the first in scan order) or NaN.
template <typename T, int KW, int NB, bool NanFree>
inline void argmax_block(const PoolWindow<T>& w, const PoolArgmaxMap& m, int64_t o, T* y,
                         int64_t* idx, int64_t count) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type best[NB];
  typename Vec::itype at[NB];
  const typename Vec::itype first_row = Vec::iset1(m.row_start[0]);
  for (int i = 0; i < NB; ++i) {
    best[i] = Vec::set1(-std::numeric_limits<T>::infinity());
    at[i] = Vec::iadd(first_row, Vec::iload(m.first_col + o + i * L));
  }
  const int64_t taps = taps_of<KW>(w);
  for (int64_t r = 0; r < w.row_count; ++r) {
    const T* row = w.rows[r] + o;
    for (int64_t k = 0; k < taps; ++k) {
      const T* src = row + w.tap_offset[k];
      const typename Vec::itype tap = Vec::iset1(m.row_start[r] + m.tap_col[k]);
      for (int i = 0; i < NB; ++i) {
        const typename Vec::type v = Vec::load(src + i * L);
        typename Vec::mask better = Vec::gt(v, best[i]);
        if (!NanFree) better = Vec::mask_or(better, Vec::isnan(v));
        best[i] = NanFree ? Vec::max(v, best[i]) : Vec::select(better, v, best[i]);
        at[i] = Vec::iselect(better, tap, at[i]);
      }
    }
  }
  for (int i = 0; i < NB && i * L < count; ++i) {
    put<T>(y + i * L, best[i], count - i * L);
    const typename Vec::itype col = Vec::iload(m.col_base + o + i * L);
    Vec::istore_n(idx + i * L, Vec::iadd(at[i], col), std::min(L, count - i * L));
  }
}

template <typename T, int KW, int NB>
inline void sum_block(const PoolWindow<T>& w, int64_t o, const T* scale, T* y, int64_t count) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type acc[NB];
  for (int i = 0; i < NB; ++i) acc[i] = Vec::set1(T(0));
  const int64_t taps = taps_of<KW>(w);
  for (int64_t r = 0; r < w.row_count; ++r) {
    const T* row = w.rows[r] + o;
    for (int64_t k = 0; k < taps; ++k) {
      const T* src = row + w.tap_offset[k];
      for (int i = 0; i < NB; ++i) acc[i] = Vec::add(acc[i], Vec::load(src + i * L));
    }
  }
  for (int i = 0; i < NB && i * L < count; ++i) {
    if (scale) acc[i] = Vec::mul(acc[i], Vec::load(scale + o + i * L));
    put<T>(y + i * L, acc[i], count - i * L);
  }
}

// Each kernel's sweep over a row: blocks of NB vectors, then single vectors, the last one
// partial (its loads stay inside the row buffers' slack).
template <typename T, int KW, bool NanFree>
void max_sweep(const PoolWindow<T>& w, T* y) {
  constexpr int64_t L = V<T>::lanes, NB = 4;
  int64_t o = 0;
  for (; o + NB * L <= w.n; o += NB * L) max_block<T, KW, NB, NanFree>(w, o, y + o, NB * L);
  for (; o < w.n; o += L) max_block<T, KW, 1, NanFree>(w, o, y + o, std::min(L, w.n - o));
}

template <typename T, int KW, bool NanFree>
void argmax_sweep(const PoolWindow<T>& w, const PoolArgmaxMap& m, T* y, int64_t* idx) {
  constexpr int64_t L = V<T>::lanes, NB = 2;
  int64_t o = 0;
  for (; o + NB * L <= w.n; o += NB * L)
    argmax_block<T, KW, NB, NanFree>(w, m, o, y + o, idx + o, NB * L);
  for (; o < w.n; o += L)
    argmax_block<T, KW, 1, NanFree>(w, m, o, y + o, idx + o, std::min(L, w.n - o));
}

template <typename T, int KW>
void sum_sweep(const PoolWindow<T>& w, const T* scale, T* y) {
  constexpr int64_t L = V<T>::lanes, NB = 4;
  int64_t o = 0;
  for (; o + NB * L <= w.n; o += NB * L) sum_block<T, KW, NB>(w, o, scale, y + o, NB * L);
  for (; o < w.n; o += L) sum_block<T, KW, 1>(w, o, scale, y + o, std::min(L, w.n - o));
}

template <typename T, bool NanFree>
void max_row_by_width(const PoolWindow<T>& w, T* y) {
  if (w.tap_count == 3) return max_sweep<T, 3, NanFree>(w, y);
  if (w.tap_count == 2) return max_sweep<T, 2, NanFree>(w, y);
  max_sweep<T, 0, NanFree>(w, y);
}

template <typename T>
void max_row(const PoolWindow<T>& w, bool nan_free, T* y) {
  if (nan_free) return max_row_by_width<T, true>(w, y);
  max_row_by_width<T, false>(w, y);
}

template <typename T, bool NanFree>
void argmax_row_by_width(const PoolWindow<T>& w, const PoolArgmaxMap& m, T* y, int64_t* idx) {
  if (w.tap_count == 3) return argmax_sweep<T, 3, NanFree>(w, m, y, idx);
  if (w.tap_count == 2) return argmax_sweep<T, 2, NanFree>(w, m, y, idx);
  argmax_sweep<T, 0, NanFree>(w, m, y, idx);
}

template <typename T>
void argmax_row(const PoolWindow<T>& w, const PoolArgmaxMap& m, bool nan_free, T* y,
                int64_t* idx) {
  if (nan_free) return argmax_row_by_width<T, true>(w, m, y, idx);
  argmax_row_by_width<T, false>(w, m, y, idx);
}

template <typename T>
void sum_row(const PoolWindow<T>& w, const T* scale, T* y) {
  if (w.tap_count == 3) return sum_sweep<T, 3>(w, scale, y);
  if (w.tap_count == 2) return sum_sweep<T, 2>(w, scale, y);
  sum_sweep<T, 0>(w, scale, y);
}

// One phase of the scatter, gathered: every accumulator element of the phase adds the NT (or,
// for NT == 0, the phase's run-time list of) gradients that reach it, so each element is read
// and written once however many taps overlap.
template <typename T, int NT>
void scatter_phase(const T* g, const int64_t* shift, int64_t shifts, int64_t phase_width,
                   T* const* acc, int64_t row_count, int64_t phase_offset) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t count = NT > 0 ? NT : shifts;
  for (int64_t j = 0; j < phase_width; j += L) {
    typename Vec::type h = Vec::load(g + j - shift[0]);
    for (int64_t k = 1; k < count; ++k) h = Vec::add(h, Vec::load(g + j - shift[k]));
    for (int64_t r = 0; r < row_count; ++r) {
      T* dst = acc[r] + phase_offset + j;
      Vec::store(dst, Vec::add(Vec::load(dst), h));
    }
  }
}

template <typename T>
void scatter_row(const T* g, const PoolScatterTaps& taps, int64_t stride, int64_t phase_width,
                 T* const* acc, int64_t row_count) {
  constexpr int64_t kMaxListed = 64;  // taps per phase gathered in one pass; more take several
  for (int64_t q = 0; q < stride; ++q) {
    int64_t shift[kMaxListed];
    int64_t k = 0;
    while (k < taps.tap_count) {
      int64_t shifts = 0;
      for (; k < taps.tap_count && shifts < kMaxListed; ++k)
        if (taps.tap_phase[k] == q) shift[shifts++] = taps.tap_shift[k];
      const int64_t at = q * phase_width;
      if (shifts == 1) scatter_phase<T, 1>(g, shift, 1, phase_width, acc, row_count, at);
      if (shifts == 2) scatter_phase<T, 2>(g, shift, 2, phase_width, acc, row_count, at);
      if (shifts == 3) scatter_phase<T, 3>(g, shift, 3, phase_width, acc, row_count, at);
      if (shifts > 3) scatter_phase<T, 0>(g, shift, shifts, phase_width, acc, row_count, at);
    }
  }
}

}  // namespace
}  // namespace fastconv::FASTCONV_POOL_NS
