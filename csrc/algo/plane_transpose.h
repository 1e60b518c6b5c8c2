// Transposes between a batch item's NCHW planes (channels x positions) and the channels-last
// blocks (positions x channels) the GEMM-based paths compute in, in tiles so both sides touch
// whole cache lines, parallel over blocks of source rows.
#pragma once
#include <algorithm>
#include <cstdint>

#include "fastconv/parallel.h"

namespace fastconv::algo {

// dst[j * rows + i] = src[i * cols + j] (+ bias[j]) in 16 x 16 tiles, parallel over blocks of
// 16 source rows, each swept along its rows: 16 sequential streams the prefetchers follow, and
// every line read and written whole (sweeping down the columns instead jumped a page per load
// on 32x32 planes: 17% of dcgan.g4's direct forward).
template <typename T>
void transpose_tiles(const T* src, int64_t rows, int64_t cols, const T* bias, T* dst) {
  constexpr int64_t kTile = 16;
  parallel_for((rows + kTile - 1) / kTile, 1, [&](int64_t b0, int64_t b1) {
    T tile[kTile][kTile];
    for (int64_t i0 = b0 * kTile; i0 < std::min(rows, b1 * kTile); i0 += kTile) {
      const int64_t ni = std::min(kTile, rows - i0);
      for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
        const int64_t nj = std::min(kTile, cols - j0);
        for (int64_t i = 0; i < ni; ++i)
          for (int64_t j = 0; j < nj; ++j) tile[j][i] = src[(i0 + i) * cols + j0 + j];
        for (int64_t j = 0; j < nj; ++j) {
          const T b = bias ? bias[j0 + j] : T(0);
          T* d = dst + (j0 + j) * rows + i0;
          for (int64_t i = 0; i < ni; ++i) d[i] = tile[j][i] + b;
        }
      }
    }
  });
}

// dst[r * positions + p] = src[p * rows + r] (+ bias[r]): a transposed block into NCHW planes.
template <typename T>
void transpose_into(const T* src, int64_t positions, int64_t rows, const T* bias, T* dst) {
  transpose_tiles(src, positions, rows, bias, dst);
}

// dst[p * channels + c] = src[c * positions + p]: NCHW planes into a channels-last block.
template <typename T>
void transpose_to_positions(const T* src, int64_t channels, int64_t positions, T* dst) {
  transpose_tiles(src, channels, positions, static_cast<const T*>(nullptr), dst);
}

}  // namespace fastconv::algo
