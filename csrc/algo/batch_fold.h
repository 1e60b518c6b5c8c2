// Batch folding for implicit GEMM (csrc/algo/implicit_gemm.cc): on small images one GEMM per
// image has too few positions to fill the micro-kernel's panels and to amortise packing the
// weight (dcgan.g2: 16 output positions, half of a 32-wide panel), so the GEMM's position
// dimension runs over several images, up to about 4096 positions; its block is then copied into
// the NCHW tensor (a row copy per image and channel). Images of more than 512 positions fill the
// GEMM on their own, and so do pointwise layers' images of 256+ (batch_fold.cc).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"
#include "fastconv/parallel.h"

namespace fastconv::algo {

// A 1x1 window with unit stride and no padding: the patch matrix is the input itself.
bool is_pointwise(const ConvGeometry& g);

// Images per GEMM for this pass (1: no folding).
int64_t fold_images(const ConvGeometry& g, ConvPass pass);

// Folded batches whose threads take whole blocks of images, each through its own buffers of
// about a quarter of the L2 (implicit GEMM's folded forward and its packed stride phases): images
// per block (at most `images`, at least 512 GEMM positions, given `positions` per image and
// `per_image` bytes of buffers), or 0 where the blocks stay shared (one thread, buffers past
// the budget, or fewer than two blocks per thread of a batch of n).
int64_t thread_block_images(int64_t n, int64_t images, int64_t positions, int64_t per_image,
                            int threads);

// fn(block, slot) for blocks [0, blocks), the threads taking them in turn, each with its own
// slot < threads (nested calls inside run inline).
template <typename F>
void for_each_thread_block(int threads, int64_t blocks, F&& fn) {
  std::atomic<int64_t> next{0};
  parallel_for(threads, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t b = next++; b < blocks; b = next++) fn(b, s);
  });
}

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
