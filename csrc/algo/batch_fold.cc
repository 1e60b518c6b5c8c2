// Batch folding: how many images one implicit-GEMM pass folds into a GEMM (batch_fold.h).
#include "algo/batch_fold.h"

#include <algorithm>

#include "algo/phase_backward_data.h"
#include "gemm/cache_sizes.h"

namespace fastconv::algo {

namespace {

constexpr int64_t kFoldMaxImage = 512, kFoldPositions = 4096;
// Pointwise layers (1x1, unit stride, unpadded) run each image's GEMM on the tensors themselves
// (no gather, no block to copy back) from this many positions: folded, their blocks of outputs
// (546 channels x 8 x 361 positions: 6.3 MiB, SSDLite's class head at batch 8) spilled the L2
// and the copy back cost more than the 32-wide panels' fill gained (361 positions: 94% -> 99%).
// benchmarks/ab_processes.py, 2 threads, folded / per image: 8 x 19x19 576 -> 546 forward 1.11x,
// weight gradient 1.06-1.09x, 20x20 512 -> 256 1.18x / 1.06-1.11x, 22x22 1.11x / 1.04-1.08x,
// 18x18 1.06x / 1.09-1.12x, backward data -0.06..+0.19x (noisy, geometric mean 1.05 over both
// levels); 16x16 at AVX-512 0.98-1.04x (AVX2 1.02-1.40x). 10x10 (ssd_mobilenet_v1.pw10 at batch
// 8) ran 0.83x per image and 14x14 0.95x: smaller images keep folding.
constexpr int64_t kPointwiseOwnGemm = 256;

// Positions per image along the GEMM dimension that folding extends, per pass.
int64_t fold_unit(const ConvGeometry& g, ConvPass pass) {
  if (pass != ConvPass::kBackwardData) return g.out_spatial();
  const bool unit_stride = g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
  return unit_stride ? g.in_spatial() : phase_backward_data_positions(g);
}

}  // namespace

bool is_pointwise(const ConvGeometry& g) {
  for (int d = 0; d < kMaxRank; ++d)
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad_lo[d] != 0 || g.pad_hi[d] != 0) return false;
  return true;
}

int64_t fold_images(const ConvGeometry& g, ConvPass pass) {
  const int64_t unit = fold_unit(g, pass);
  if (g.n < 2 || unit <= 0 || unit > kFoldMaxImage) return 1;
  if (unit >= kPointwiseOwnGemm && is_pointwise(g)) return 1;
  return std::min(g.n, std::max<int64_t>(1, kFoldPositions / unit));
}

int64_t thread_block_images(int64_t n, int64_t images, int64_t positions, int64_t per_image,
                            int threads) {
  const int64_t budget = gemm::cache_sizes().l2 / 4;
  if (threads < 2 || images < 2 || positions <= 0 || per_image > budget) return 0;
  const int64_t least = (512 + positions - 1) / positions;
  const int64_t fit = std::min(images, std::max(budget / std::max<int64_t>(1, per_image), least));
  return (n + fit - 1) / fit >= 2 * threads ? fit : 0;
}

}  // namespace fastconv::algo
