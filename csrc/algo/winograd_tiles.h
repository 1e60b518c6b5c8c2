// Winograd's tile choice (FASTCONV_WINOGRAD_TILE or the per-layer default by error and cost),
// explain()'s name for it, and the stride-1 correlation a pass runs.
#pragma once
#include <cstdint>
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo::winograd_tiles {

// The stride-1 correlation that runs: forward (and the weight gradient's) is g itself; backward
// data is the correlation of grad_y with the flipped, channel-transposed kernel, padded so its
// output is g.in.
ConvGeometry pass_geometry(const ConvGeometry& g, ConvPass pass);

// An output tile: h x w outputs (h = 1 in 1-D; 2-D tiles are square but for F(4x3,2x2) and
// F(3x4,2x2)).
struct Tile {
  int h = 0, w = 0;
};

// The output tile of `pass` of the stride-1 g (kernel of 2, 3 or 5 taps per dim), `summed` the
// channels the transform domain sums over: FASTCONV_WINOGRAD_TILE where that tile exists for
// the kernel, else the default. `lanes`: the transforms' run (64 / element size) where g is a
// strided layer's stacked correlation, whose batch may fold (folds_batch; a forward's tie
// between tiles then goes to the one with fewer products over the folded plane), else 0. Throws
// InvalidArgument for a bad FASTCONV_WINOGRAD_TILE.
Tile choose_tile(const ConvGeometry& g, ConvPass pass, int64_t summed, int64_t lanes = 0);

// Whether a strided layer's stacked correlation g folds its batch's images side by side under
// tile t (winograd_phases::make_split): where a tile row of one image holds less than a run of
// `lanes` tiles, and in the forward less than half a run.
bool folds_batch(const ConvGeometry& g, ConvPass pass, Tile t, int64_t lanes);

// The square tile m FASTCONV_WINOGRAD_TILE forces (read once per process, common/tuning.h), or
// 0 where it forces none or a rectangular one. Throws InvalidArgument for a value that is not a
// tile.
int forced_tile();

// "F(hxw,rxr)" (forward, backward data) or "F(rxr,hxw)" (weight gradient); 1-D "F(w,r)".
std::string tile_note(int rank, int64_t r, ConvPass pass, Tile t);

}  // namespace fastconv::algo::winograd_tiles
