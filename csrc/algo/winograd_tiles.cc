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
  return knobs.winograd_tile_h == 0 ? knobs.winograd_tile : 0;
}

namespace {

Tile square(int rank, int m) { return {rank == 2 ? m : 1, m}; }

// The tile FASTCONV_WINOGRAD_TILE forces in a pass of this rank ({0, 0}: none; a rectangular
// one only in 2-D).
Tile forced_shape(int rank) {
  const int m = forced_tile();  // throws for a bad value
  const Tuning& knobs = tuning();
  if (knobs.winograd_tile_h != 0)
    return rank == 2 ? Tile{knobs.winograd_tile_h, knobs.winograd_tile} : Tile{};
  return m == 0 ? Tile{} : square(rank, m);
}

// The rectangular tiles: 2-D, 2 taps.
bool rectangular(Tile t) { return (t.h == 4 && t.w == 3) || (t.h == 3 && t.w == 4); }

bool tile_exists(Tile t, int64_t r, int rank) {
  if (rank == 2 && t.h != t.w) return r == 2 && rectangular(t);
  const int m = t.w;
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
//
// 2-D also F(4x3,2x2) and F(3x4,2x2), where they take strictly fewer products than every square
// tile allowed (20 per 12 outputs against F(3x3)'s 16 per 9), at any channel count: float32
// error 3.5-6.2x implicit GEMM's over 256-2048 summed channels (dcgan.g3's stacked 512 and 256,
// 2x2 kernels over 1024 and 2048; F(3x3) 1.3-2.1x). dcgan.g3's conv forward (8x8 per phase)
// takes 6 F(4x3) tiles, 120 products, against 9 F(3x3), 144: A/B, 2 threads, AVX-512, 15 rounds,
// 1.14x. Its backward data (9x9 per phase) keeps F(3x3) (180 products against 144: forced,
// F(4x3) ran 0.83x). Not where the best square tile leaves the batch unfolded and the
// rectangular one would fold it (folds_batch): dcgan.g4's conv forward (16x16) by F(4x3)
// folded, 480 products an image against F(2x2)'s 576 unfolded, ran 0.95x.
Tile default_tile(const ConvGeometry& g, ConvPass pass, int64_t summed, int64_t lanes) {
  if (g.kernel[2] == 5) return square(g.rank, 2);  // F(2x2,5x5), F(5x5,2x2): the only 5-tap
  if (g.kernel[2] == 3) {
    if (g.rank == 1) return square(1, 6);
    if (pass == ConvPass::kBackwardWeight) return square(2, 4);
    return square(2, summed <= 64 ? 4 : 2);
  }
  const int largest = pass == ConvPass::kBackwardWeight || summed <= 64 ? 4 : 3;
  // The tiles cover the correlation's output (grad_y for the weight gradient: g.out); a folded
  // forward's, the rows of all images side by side, each out + r - 1 columns apart.
  const Dims& out = pass_geometry(g, pass).out;
  const auto products = [&](Tile t, bool folded) {
    int64_t cost = 1;
    for (int d = kMaxRank - g.rank; d < kMaxRank; ++d) {
      const int64_t m = d == kMaxRank - 1 ? t.w : t.h;
      const int64_t seam = g.kernel[d] - 1;
      const int64_t extent = folded && d == kMaxRank - 1 ? g.n * (out[d] + seam) - seam : out[d];
      cost *= ((extent + m - 1) / m) * (m + 1);
    }
    return cost;
  };
  Tile tiles[5];
  int count = 0;
  for (int m = 2; m <= largest; ++m) tiles[count++] = square(g.rank, m);
  const int squares = count;
  if (g.rank == 2) tiles[count++] = {4, 3}, tiles[count++] = {3, 4};
  const auto folds = [&](Tile t) { return lanes > 0 && folds_batch(g, pass, t, lanes); };
  Tile best = tiles[0];
  int64_t best_cost = products(best, false);
  for (int i = 1; i < count; ++i) {
    const int64_t cost = products(tiles[i], false);
    // A rectangular tile does not fold a batch the best square leaves unfolded.
    if (cost < best_cost && (i < squares || folds(best) || !folds(tiles[i])))
      best = tiles[i], best_cost = cost;
  }
  // A tie goes to a rectangle only from a rectangle (F(4x3) and F(3x4) on the folded plane): a
  // tied square keeps the square's smaller error.
  if (pass == ConvPass::kForward && folds(best))
    for (int i = 0; i < (best.h != best.w ? count : squares); ++i)
      if (products(tiles[i], false) == best_cost && folds(tiles[i]) &&
          products(tiles[i], true) < products(best, true))
        best = tiles[i];
  return best;
}

}  // namespace

Tile choose_tile(const ConvGeometry& g, ConvPass pass, int64_t summed, int64_t lanes) {
  const Tile forced = forced_shape(g.rank);
  return forced.w != 0 && tile_exists(forced, g.kernel[2], g.rank)
             ? forced
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
bool folds_batch(const ConvGeometry& g, ConvPass pass, Tile t, int64_t lanes) {
  const int64_t row_tiles = (pass_geometry(g, pass).out[2] + t.w - 1) / t.w;
  return g.n > 1 && row_tiles < lanes && (pass != ConvPass::kForward || 2 * row_tiles < lanes);
}

// explain()'s name for the transform: F(h x w, r x r) forward and backward data, F(r x r, h x w)
// for the weight gradient (the kernel-sized output of a tile-sized correlation).
std::string tile_note(int rank, int64_t r, ConvPass pass, Tile t) {
  const std::string m = std::to_string(t.w), k = std::to_string(r);
  const std::string mm = rank == 2 ? std::to_string(t.h) + "x" + m : m,
                    kk = rank == 2 ? k + "x" + k : k;
  return pass == ConvPass::kBackwardWeight ? "F(" + kk + "," + mm + ")" : "F(" + mm + "," + kk + ")";
}

}  // namespace fastconv::algo::winograd_tiles
