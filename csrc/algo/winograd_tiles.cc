// Winograd's tile choice and the correlation a pass runs (winograd_tiles.h).
#include "algo/winograd_tiles.h"

#include "common/tuning.h"
#include "fastconv/status.h"

namespace fastconv::algo::winograd_tiles {

ConvGeometry pass_geometry(const ConvGeometry& g, ConvPass pass) {
  return pass == ConvPass::kBackwardData ? data_correlation_geometry(g) : g;
}

int forced_tile() {
  const Tuning& knobs = tuning();
  if (!knobs.winograd_tile_error.empty()) throw InvalidArgument(knobs.winograd_tile_error);
  return knobs.winograd_tile;
}

namespace {

bool tile_exists(int m, int64_t r) {
  if (r == 5) return m == 2;
  return r == 3 ? (m == 2 || m == 4 || m == 6) : (m == 2 || m == 3 || m == 4);
}

// Default tile of 3-tap kernels: the largest whose float32 error stays within 10x
// implicit_gemm's (max |got - want| / max |want| vs float64) on the ResNet-50 and VGG-16 3x3
// layers, 3 seeds each; the ratio grows with the number of channels the transform domain sums
// over (C forward, K backward data). Forward and backward data, 2-D, F(4x4): 6.0-8.0x at 64
// channels (res2, conv1_2), 9.8-21x at 128-512; F(2x2) 0.8-2.0x everywhere; F(6x6) 25-68x. So
// F(4x4) up to 64 channels, else F(2x2) (FASTCONV_WINOGRAD_TILE=4 runs 1.1-1.8x faster than
// F(2x2) on the VGG layers at ~10-15x the error). Weight gradient F(3x3,mxm) (res2-res4): m = 2
// 0.7-1.4x, 4 2.4-4.5x, 6 7-12.5x, so 4. 1-D (64-512 channels): F(6,3) 2.5-8.3x.
//
// 2-tap kernels (strided layers' phases): F(2x2,2x2) and F(3x3,2x2) stay within 1.5x of the
// direct sum's error (2-D, 256 channels), F(4x4,2x2) reaches ~9x, so F(4x4) only up to 64
// summed channels; among the tiles allowed, the one with the fewest transform-domain products
// over the output (tiles x alpha^2: a 4x4 phase plane takes 4 F(2x2) tiles, 36 products,
// against 4 F(3x3) tiles, 64). In the forward, where two tie over each image and both fold the
// batch, the one with fewer over the folded plane, whose seams between images take tiles too:
// dcgan.g3's conv forward (8x8 per image, 9 columns a seam apart) takes 4.5 F(2x2) tiles a row
// but 3 F(3x3), 162 products per image against 144. A/B (benchmarks/ab_processes.py), 2 threads,
// F(2x2) / F(3x3) time: 1.10-1.12x at AVX-512, 1.03-1.05x at AVX2 and 0.96x in a third run
// (F(3x3)'s 144 tiles also run as kernel blocks, V packed in place). Not dcgan.g4's (16x16,
// which ties too): F(2x2) does not fold there, and F(3x3) folded measured 0.99x and 0.82x.
// Only the forward was measured: ties in backward data (whose folded output has no seam
// columns) and the weight gradient keep the first tile.
int default_tile(const ConvGeometry& g, ConvPass pass, int64_t summed, int64_t lanes) {
  if (g.kernel[2] == 5) return 2;  // F(2x2,5x5), F(5x5,2x2): the only 5-tap tiles
  if (g.kernel[2] == 3) {
    if (g.rank == 1) return 6;
    if (pass == ConvPass::kBackwardWeight) return 4;
    return summed <= 64 ? 4 : 2;
  }
  const int largest = pass == ConvPass::kBackwardWeight || summed <= 64 ? 4 : 3;
  // The tiles cover the correlation's output (grad_y for the weight gradient: g.out); a folded
  // forward's, the rows of all images side by side, each out + r - 1 columns apart.
  const Dims& out = pass_geometry(g, pass).out;
  const auto products = [&](int m, bool folded) {
    int64_t cost = 1;
    for (int d = kMaxRank - g.rank; d < kMaxRank; ++d) {
      const int64_t seam = g.kernel[d] - 1;
      const int64_t extent = folded && d == kMaxRank - 1 ? g.n * (out[d] + seam) - seam : out[d];
      cost *= ((extent + m - 1) / m) * (m + 1);
    }
    return cost;
  };
  int best = 2;
  int64_t best_cost = -1;
  for (int m = 2; m <= largest; ++m) {
    const int64_t cost = products(m, false);
    if (best_cost < 0 || cost < best_cost) best = m, best_cost = cost;
  }
  if (pass == ConvPass::kForward && lanes > 0 && folds_batch(g, pass, best, lanes))
    for (int m = 2; m <= largest; ++m)
      if (m != best && products(m, false) == best_cost && folds_batch(g, pass, m, lanes) &&
          products(m, true) < products(best, true))
        best = m;
  return best;
}

}  // namespace

int choose_tile(const ConvGeometry& g, ConvPass pass, int64_t summed, int64_t lanes) {
  const int forced = forced_tile();
  return forced != 0 && tile_exists(forced, g.kernel[2]) ? forced
                                                         : default_tile(g, pass, summed, lanes);
}

// A batch whose image rows hold less than a run of tiles (the transforms' vectors) folds:
// dcgan.g3's backward data (9 columns, 3 F(3x3) tiles per row) wasted 13 of 16 lanes. The
// forward only where a tile row fills under half a run: folded, its wide plane has tiles over
// the seams between images (1/17 of dcgan.g4's conv forward's F(2x2) tiles) and moves its output
// window by window into y; unfolded, each run is one tile row. 2 threads, A/B
// (benchmarks/ab_processes.py, 15 rounds), unfolded faster by: g4 (8 F(2x2) tiles a row) 1.12x
// at AVX-512, 1.22x at AVX2; g3 (4 a row) 1.05x and 0.96x, so it stays folded (and takes F(3x3),
// default_tile). Runs of several tile rows through windows of whole rows gathered their pieces
// slower than g3's runs of one row (0.86x at AVX-512).
bool folds_batch(const ConvGeometry& g, ConvPass pass, int m, int64_t lanes) {
  const int64_t row_tiles = (pass_geometry(g, pass).out[2] + m - 1) / m;
  return g.n > 1 && row_tiles < lanes && (pass != ConvPass::kForward || 2 * row_tiles < lanes);
}

// explain()'s name for the transform: F(m x m, r x r) forward and backward data, F(r x r, m x m)
// for the weight gradient (the kernel-sized output of a tile-sized correlation).
std::string tile_note(int rank, int64_t r, ConvPass pass, int tile) {
  const std::string m = std::to_string(tile), k = std::to_string(r);
  const std::string mm = rank == 2 ? m + "x" + m : m, kk = rank == 2 ? k + "x" + k : k;
  return pass == ConvPass::kBackwardWeight ? "F(" + kk + "," + mm + ")" : "F(" + mm + "," + kk + ")";
}

}  // namespace fastconv::algo::winograd_tiles
