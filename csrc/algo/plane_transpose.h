// Transposes between a batch item's NCHW planes (channels x positions) and the channels-last
// blocks (positions x channels) the GEMM-based paths compute in, blocked so both sides touch
// whole cache lines, parallel over channel blocks.
#pragma once
#include <algorithm>
#include <cstdint>

#include "fastconv/parallel.h"

namespace fastconv::algo {

// dst[r * positions + p] = src[p * rows + r] (+ bias[r]): a transposed block into NCHW planes.
template <typename T>
void transpose_into(const T* src, int64_t positions, int64_t rows, const T* bias, T* dst) {
  constexpr int64_t kBlock = 16;
  parallel_for((rows + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t r0 = b0 * kBlock; r0 < std::min(rows, b1 * kBlock); r0 += kBlock) {
      const int64_t r1 = std::min(rows, r0 + kBlock);
      for (int64_t p = 0; p < positions; ++p)
        for (int64_t r = r0; r < r1; ++r)
          dst[r * positions + p] = src[p * rows + r] + (bias ? bias[r] : T(0));
    }
  });
}

// dst[p * channels + c] = src[c * positions + p]: NCHW planes into a channels-last block.
template <typename T>
void transpose_to_positions(const T* src, int64_t channels, int64_t positions, T* dst) {
  constexpr int64_t kBlock = 16;
  parallel_for((channels + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t c0 = b0 * kBlock; c0 < std::min(channels, b1 * kBlock); c0 += kBlock) {
      const int64_t c1 = std::min(channels, c0 + kBlock);
      for (int64_t p = 0; p < positions; ++p)
        for (int64_t c = c0; c < c1; ++c) dst[p * channels + c] = src[c * positions + p];
    }
  });
}

}  // namespace fastconv::algo
