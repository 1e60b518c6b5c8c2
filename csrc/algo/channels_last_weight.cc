// The weight gradient on channels-last copies of the input (channels_last_weight.h).
#include "algo/channels_last_weight.h"

#include <algorithm>

#include "algo/batch_fold.h"
#include "algo/box_weight.h"
#include "algo/conv_panels.h"
#include "algo/plane_transpose.h"
#include "algo/split_gemm.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

// The weight gradient reads channels-last copies of the input (ChannelsLastWeightColumns) for
// kernels of 16+ taps (DCGAN's 4x4, 5x5, 3-D): packing B is then row copies where the (c, tap)
// columns transpose or gather short runs of many taps. Their cost, a transpose of the input
// and a reordering of the product, pays only where the reduction is long next to the output
// channels (N * output positions >= 2 K/G). 2 threads, interleaved, median ms, channels-last vs
// (c, tap) columns, AVX-512: dcgan.g4 5.82 vs 6.83, g3 5.62 vs 6.23, dense5x5 3.19 vs 3.49, c3d
// 7.24 vs 8.49, but dcgan.g2 (256 positions, 512 channels) 6.78 vs 6.12, res4.3x3 1.42 vs
// 1.19, res3.3x3s2 1.56 vs 1.43, wavenet 1.58 vs 1.42; AVX2 g3/g4 even (6.80 vs 6.75, 7.25 vs
// 7.18), dense5x5 3.42 vs 3.64, c3d 7.51 vs 8.88.
//
// Also 1xN / Nx1 kernels (2-D or 3-D, every tap along one dim) of 7+ taps: their (c, tap)
// columns gather runs of a short image row at 7 shifts, 20.6% of Inception's 1x7 weight gradient
// at batch 8 (perf, one thread, Zen 4). One thread, median ms, channels-last vs (c, tap)
// columns, AVX-512 on Zen 4: 128 -> 128 1x7 on 17x17 x8 5.76 vs 7.03, 160 -> 160 1x7 x8 8.9 vs
// 10.2, 128 -> 192 7x1 x8 8.1-8.4 vs 8.6-9.2, 192 -> 192 7x1 x8 12.4 vs 13.7, 768 -> 128 1x7 x1
// 4.33-4.41 vs 4.56-4.59; 3-tap 3x1 (384 ch 8x8 x8) even, so not them. 3x3 kernels measured
// within noise to 10% either way (32 -> 64 147x147 8.8-9.0 vs 9.1-9.2, 64 -> 128 160x160 / 2
// 10.7 vs 10.4) and stay on the columns.
constexpr int64_t kChannelsLastMinTaps = 16, kChannelsLastMinChannels = 16,
                  kChannelsLastMinRowTaps = 7;

// Whether every tap of g's kernel lies along one spatial dim (1xN, Nx1, Nx1x1, ...): 2-D and
// 3-D kernels only (rank-1 convolutions are rows already).
bool kernel_along_one_dim(const ConvGeometry& g) {
  if (g.rank < 2) return false;
  int dims = 0;
  for (int d = kMaxRank - g.rank; d < kMaxRank; ++d) dims += g.kernel[d] > 1 ? 1 : 0;
  return dims == 1;
}

// B's panels are read in place (ChannelsLastWeightColumns::rows) where each is used by many row
// tiles: there reading the input rows where they lie beats a packed copy, with few rows the
// copy's sequential stream wins. Median ms, in place vs packed, AVX-512, 2 threads, alternating
// runs: dcgan.g3 (256 rows) 3.34 vs 3.45 (AVX2 5.32 vs 5.35), g4 (128) 3.84 vs 3.82, dense5x5
// (64) 2.16 vs 2.04, c3d (64) 4.50 vs 4.42.
constexpr int64_t kInPlaceMinRows = 192;

}  // namespace

bool channels_last_weight(const ConvGeometry& g) {
  const int64_t taps = g.kernel_spatial();
  const bool many_taps = taps >= kChannelsLastMinTaps ||
                         (taps >= kChannelsLastMinRowTaps && kernel_along_one_dim(g));
  return many_taps &&
         g.c_per_group() >= kChannelsLastMinChannels &&
         g.n * g.out_spatial() >= 2 * g.k_per_group();
}

int64_t channels_last_weight_workspace(const ConvGeometry& g) {
  const int64_t nb = fold_images(g, ConvPass::kBackwardWeight), cg = g.c_per_group();
  const int64_t kg = g.k_per_group(), rows = cg * g.kernel_spatial(), depth = nb * g.out_spatial();
  const int64_t splits = reduction_splits(kg, rows, depth);
  return (nb > 1 ? kg * depth : 0) + (splits > 1 ? splits * kg * rows : 0) +
         nb * g.in_spatial() * cg + kg * rows;
}

// grad_w's group (kg x cg x taps) = the weight gradient through ChannelsLastWeightColumns:
// per block of images their channels-last input and (folded) grad_y, the product summed in
// `acc` as (k, tap, c), then reordered. ws: folded grad_y, split partials, input copies, acc.
template <typename T>
void channels_last_weight_gradient(const ConvGeometry& g, int64_t grp, const T* x,
                                   const T* grad_y, T* grad_w, T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t rows = cg * taps, in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const int64_t nb = fold_images(g, ConvPass::kBackwardWeight);
  const int64_t splits = reduction_splits(kg, rows, nb * out_sp);
  T* partial = ws + (nb > 1 ? kg * nb * out_sp : 0);
  T* xcl = partial + (splits > 1 ? splits * kg * rows : 0);
  T* acc = xcl + nb * in_sp * cg;
  for (int64_t n0 = 0; n0 < g.n; n0 += nb) {
    const int64_t cnt = std::min(nb, g.n - n0), depth = cnt * out_sp;
    for (int64_t i = 0; i < cnt; ++i)
      transpose_to_positions(x + ((n0 + i) * g.c + grp * cg) * in_sp, cg, in_sp,
                             xcl + i * in_sp * cg);
    const T* gy = grad_y + (n0 * g.k + grp * kg) * out_sp;
    gemm::MatrixRef<T> a{gy, out_sp, 1};
    if (nb > 1) {
      fold_block(gy, kg, cnt, out_sp, g.k * out_sp, ws);
      a = {ws, depth, 1};
    }
    split_gemm<T>(kg, rows, depth, a,
                  ChannelsLastWeightColumns<T>(g, xcl, cg, kg >= kInPlaceMinRows),
                  n0 == 0 ? T(0) : T(1), acc, rows, partial);
  }
  reorder_tap_major(g, acc, grad_w + grp * kg * rows);
}

template void channels_last_weight_gradient<float>(const ConvGeometry&, int64_t, const float*,
                                                   const float*, float*, float*);
template void channels_last_weight_gradient<double>(const ConvGeometry&, int64_t, const double*,
                                                    const double*, double*, double*);

}  // namespace fastconv::algo
