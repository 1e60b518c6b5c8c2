// Batch folding: how many images one implicit-GEMM pass folds into a GEMM (batch_fold.h).
#include "algo/batch_fold.h"

#include <algorithm>

#include "algo/phase_backward_data.h"
#include "gemm/cache_sizes.h"

namespace fastconv::algo {

namespace {

constexpr int64_t kFoldMaxImage = 512, kFoldPositions = 4096;

// Positions per image along the GEMM dimension that folding extends, per pass.
int64_t fold_unit(const ConvGeometry& g, ConvPass pass) {
  if (pass != ConvPass::kBackwardData) return g.out_spatial();
  const bool unit_stride = g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
  return unit_stride ? g.in_spatial() : phase_backward_data_positions(g);
}

}  // namespace

int64_t fold_images(const ConvGeometry& g, ConvPass pass) {
  const int64_t unit = fold_unit(g, pass);
  if (g.n < 2 || unit <= 0 || unit > kFoldMaxImage) return 1;
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
