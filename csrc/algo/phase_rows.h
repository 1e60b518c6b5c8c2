// A stride-2 source row split into its two column phases in one pass, shared by the stride-phase
// layouts (Winograd's stacked phases, implicit GEMM's column planes).
#pragma once
#include <algorithm>
#include <cstdint>

namespace fastconv::algo {

// One source row of w elements split into its two column phases, read once: row_a[j] =
// src[2 j + a - pw] for phase a (pw >= 0), 0 outside the row, each `ws` long. Source column pairs
// (2t, 2t + 1) land at (phase e, j = t + pw / 2) and (phase 1 - e, j + e) with e = pw % 2, so
// the copy is one deinterleave loop, which the compiler vectorises with shuffles (the per-phase
// strided loop took 9% of dcgan.g4's Winograd backward data, this one 5.5%).
template <typename T>
inline void split_pair_row(const T* src, int64_t w, int64_t pw, int64_t ws, T* row0, T* row1) {
  const int64_t e = pw % 2, h = pw / 2;
  T* a = e ? row1 : row0;
  T* b = e ? row0 : row1;
  const int64_t a0 = std::min(h, ws), b0 = std::min(h + e, ws);
  const int64_t na = std::min((w + 1) / 2, ws - a0), nb = std::min(w / 2, ws - b0);
  std::fill(a, a + a0, T(0));
  std::fill(b, b + b0, T(0));
  const int64_t both = std::min(na, nb);
  T* __restrict pa = a + a0;
  T* __restrict pb = b + b0;
  for (int64_t t = 0; t < both; ++t) {
    pa[t] = src[2 * t];
    pb[t] = src[2 * t + 1];
  }
  for (int64_t t = both; t < na; ++t) pa[t] = src[2 * t];
  for (int64_t t = both; t < nb; ++t) pb[t] = src[2 * t + 1];
  std::fill(a + a0 + na, a + ws, T(0));
  std::fill(b + b0 + nb, b + ws, T(0));
}


}  // namespace fastconv::algo
