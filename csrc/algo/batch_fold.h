// Batch folding for implicit GEMM (csrc/algo/implicit_gemm.cc): on small images one GEMM per
// image has too few positions to fill the micro-kernel's panels and to amortise packing the
// weight (dcgan.g2: 16 output positions, half of a 32-wide panel), so the GEMM's position
// dimension runs over several images, up to about 4096 positions; its block is then copied into
// the NCHW tensor (a row copy per image and channel). Images of more than 512 positions fill the
// GEMM on their own.
#pragma once
#include <algorithm>
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"
#include "fastconv/parallel.h"

namespace fastconv::algo {

// Images per GEMM for this pass (1: no folding).
int64_t fold_images(const ConvGeometry& g, ConvPass pass);

// Copies a folded GEMM block (rows x cnt * per_image, row r holding cnt images' planes one
// after the other) into the tensor: row r of image i goes to dst + i * image_stride +
// r * per_image, plus bias[r] when given.
template <typename T>
void unfold_block(const T* block, int64_t rows, int64_t cnt, int64_t per_image, T* dst,
                  int64_t image_stride, const T* bias) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, per_image));
  parallel_for(rows * cnt, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t r = idx / cnt, i = idx % cnt;
      const T* src = block + (r * cnt + i) * per_image;
      T* out = dst + i * image_stride + r * per_image;
      if (bias) {
        for (int64_t j = 0; j < per_image; ++j) out[j] = src[j] + bias[r];
      } else {
        std::copy_n(src, per_image, out);
      }
    }
  });
}

// The inverse for an operand: block row r holds the planes of cnt images, read from
// src + i * image_stride + r * per_image.
template <typename T>
void fold_block(const T* src, int64_t rows, int64_t cnt, int64_t per_image, int64_t image_stride,
                T* block) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, per_image));
  parallel_for(rows * cnt, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t r = idx / cnt, i = idx % cnt;
      std::copy_n(src + i * image_stride + r * per_image, per_image,
                  block + (r * cnt + i) * per_image);
    }
  });
}

}  // namespace fastconv::algo
