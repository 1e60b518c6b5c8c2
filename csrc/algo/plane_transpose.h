// Transposes between a batch item's NCHW planes (channels x positions) and the channels-last
// blocks (positions x channels) the GEMM-based paths compute in, in tiles so both sides touch
// whole cache lines, parallel over blocks of source rows.
#pragma once
#include <algorithm>
#include <cstdint>

#include "fastconv/parallel.h"
#include "ukernels/transpose/transpose_ukernels.h"

namespace fastconv::algo {

// dst[j * rows + i] = src[i * cols + j] (+ bias[j]), parallel over blocks of 16 source rows,
// each swept along its rows by the ISA's transpose kernel: 16 sequential streams the prefetchers
// follow, and every line of dst written whole (sweeping down the columns instead jumped a page
// per load on 32x32 planes: 17% of dcgan.g4's direct forward).
template <typename T>
void transpose_tiles(const T* src, int64_t rows, int64_t cols, const T* bias, T* dst) {
  constexpr int64_t kBlock = 16;
  const TransposeKernels<T>& kern = transpose_kernels<T>();
  parallel_for((rows + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i0 = b0 * kBlock; i0 < std::min(rows, b1 * kBlock); i0 += kBlock)
      kern.transpose(src + i0 * cols, cols, std::min(kBlock, rows - i0), cols, bias, dst + i0, rows);
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
