// Winograd's schedule: how a pass's tiles and channels split into blocks, the transform-domain
// layouts (strides, packed kernels) and the scratch they take, decided once per plan, and the
// runs of tiles its transforms take (algo/winograd.cc runs it).
#pragma once
#include <algorithm>
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"
#include "algo/winograd_tiles.h"
#include "gemm/gemm.h"

namespace fastconv::algo::winograd_schedule {

// Everything the driver and the workspace size derive from a geometry and tile, decided once by
// winograd_plan and kept in the ConvPlan's detail. Two schedules:
// - tile blocks (many tiles): all kernels are transformed once (U for every k, c); threads take
//   blocks of tiles through input transform -> alpha^2 GEMMs -> output transform;
// - kernel blocks (fewer tiles than output channels, e.g. 7x7 or 14x14 images): every tile is
//   input-transformed once (V for every c, tile); threads take blocks of output channels through
//   kernel transform -> alpha^2 GEMMs -> output transform, so U is never whole in memory.
struct Schedule {
  ConvGeometry f;            // the stride-1 correlation that runs (pass_geometry)
  int r = 3;                 // kernel taps per dim
  int mh = 4, mw = 4;        // output tile per dim (mh = 1 in 1-D)
  int64_t coords = 36;       // alpha_h * alpha_w
  int64_t tiles_h = 0, tiles_w = 0, tiles = 0;  // per image, and over the batch
  int64_t cg = 0, kg = 0;    // channels per group of the correlation that runs
  bool kernel_blocks = false;
  int64_t block = 0;         // tiles per block (kernel blocks: all tiles), a multiple of lanes
  int64_t kb = 0;            // output channels per block (tile blocks: kg)
  int64_t blocks = 0;        // blocks per group
  int64_t slots = 1;         // blocks in flight at once (one scratch each)
  bool parallel_blocks = false;  // threads take whole blocks; else they split each block
  int64_t u_elems = 0, v_elems = 0;  // shared: all kernels (tile blocks) or all tiles (kernel)
  int64_t slot_u = 0, slot_v = 0, slot_m = 0;  // per slot
  // Row strides: U[k][a][c] k-major, V[c][a][t] c-major, M[k][a][t] k-major (unaliased()).
  int64_t u_ks = 0, v_cs = 0, m_ks = 0;
  // Forward and backward data write V per coordinate as the GEMM's packed B (channels x the
  // block's tiles, gemm::packed_b_layout), v_as elements apart, instead of V[c][a][t]: no GEMM
  // packs it again (each packed all of V once per kernel block or panel: 12-16% of res3/res4's
  // forward). The weight gradient keeps V[c][a][t] (its GEMMs reduce over tiles).
  bool packed_v = false;
  gemm::PackedBLayout v_layout;
  int64_t v_as = 0;
  // Forward and backward-data tile blocks keep U packed for the GEMMs (gemm::pack_a_rows; the
  // weight gradient's U is its dense sum), u_packed elements per group and coordinate: every
  // block reads it in place instead of packing it again. It is made from panels of MR output
  // channels transformed into per-thread scratch (pack_slots of pack_slot elements), which the
  // blocks' scratch reuses afterwards.
  int64_t u_packed = 0, pack_slots = 0, pack_slot = 0;
  // The weight gradient of one block of tiles folds its sums chunk by chunk: V is packed once per
  // coordinate as the GEMMs' B (fold_layout, fold_b elements apart), then threads take chunks of
  // fold_rows output channels through their alpha^2 GEMMs into a scratch of fold_slot elements
  // (one of fold_slots per thread) and fold it into taps while it is in cache. The whole
  // alpha^2 x K x C sums went through memory before: written by the GEMMs, read back by the fold
  // (13 MiB on dcgan.g3, the fold 15% of its time). fold_rows 0: the sums whole in U[k][a][c]
  // (several blocks accumulate there; one block with sums under 4 budget blocks or under twice
  // V stays in cache).
  int64_t fold_rows = 0, fold_b = 0, fold_slots = 0, fold_slot = 0;
  int64_t fold_scratch = 0;  // where the slots' scratch starts, after the packed V
  gemm::PackedBLayout fold_layout;
};

// The schedule of `pass` of g with output tile t (h x w), for elements of `elem` bytes and `threads`
// workers (the plan's thread count: run_conv re-plans when it changes).
Schedule make_schedule(const ConvGeometry& g, ConvPass pass, winograd_tiles::Tile t,
                       int64_t elem, int64_t threads);

// Scratch elements a schedule carves up: shared transforms plus one scratch per slot (or the
// kernel-packing scratch, which the slots reuse, where that is larger).
int64_t schedule_elems(const Schedule& p);

// Whether the weight gradient of g (the stored geometry; p runs its stacked or flattened form)
// runs in the transform domain (else implicit_gemm runs it).
bool weight_gradient_by_winograd(const Schedule& p, const ConvGeometry& g);

// Calls fn(n, ty, tx, t, len) for each run of tiles [t, t + len) of [t0, t1) that lies in one
// tile row (`wrap`: in one image, over its tile rows; `cross`: over images too) and is at most
// `lanes` long.
template <typename F>
void for_each_run(const Schedule& p, int64_t t0, int64_t t1, int64_t lanes, F&& fn,
                  bool wrap = false, bool cross = false) {
  const int64_t per_image = p.tiles_h * p.tiles_w;
  for (int64_t t = t0; t < t1;) {
    const int64_t n = t / per_image, r = t % per_image;
    const int64_t ty = r / p.tiles_w, tx = r % p.tiles_w;
    const int64_t len =
        std::min({lanes, cross ? t1 - t : wrap ? per_image - r : p.tiles_w - tx, t1 - t});
    fn(n, ty, tx, t, len);
    t += len;
  }
}

// Whether the tile transforms' runs go on over the next tile rows (TileKernels::Rows): where
// runs of one row leave over a quarter of the lanes idle (Inception's 5x5 on 35x35, 18 tiles of
// F(2x2) per row: 2 runs of 16 lanes per row; ResNet's 14x14, 7 tiles: 7 of 16 lanes; a run
// over rows gathers through two buffers, so rows that fill their runs keep to one row), and
// with rows of at least (r - 1) / m_w tiles (the transforms' condition).
inline bool wrap_runs(const Schedule& p, int64_t lanes) {
  const int64_t lanes_used = (p.tiles_w + lanes - 1) / lanes * lanes;
  return p.mh > 1 && 4 * p.tiles_w < 3 * lanes_used && p.tiles_w * p.mw >= p.r - 1;
}

}  // namespace fastconv::algo::winograd_schedule
