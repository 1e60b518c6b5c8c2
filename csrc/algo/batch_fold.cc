// Batch folding: how many images one implicit-GEMM pass folds into a GEMM (batch_fold.h).
#include "algo/batch_fold.h"

#include "algo/phase_backward_data.h"

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

}  // namespace fastconv::algo
