// Winograd's schedule (winograd_schedule.h).
#include "algo/winograd_schedule.h"

#include <algorithm>

#include "algo/winograd_tiles.h"
#include "common/tuning.h"
#include "gemm/cache_sizes.h"
#include "gemm/gemm.h"

namespace fastconv::algo::winograd_schedule {

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Tiles of the busiest thread when `tiles` run in blocks of `block` taken in turn by `threads`.
inline int64_t busiest_tiles(int64_t tiles, int64_t block, int64_t threads) {
  return ceil_div(ceil_div(tiles, block), threads) * block;
}

// A row stride of at least `elems` elements whose bytes are not a multiple of 4 KiB, the
// period of the L1 sets: the GEMMs write M in micro-tiles of 12 rows (and read U's rows in
// place on kernel blocks), and rows 4 KiB apart all land in one L1 set and evict each other.
// res3.3x3 at batch 1, F(2x2), has such rows (128 channels or tiles x 16 coordinates); there
// the GEMM also packed U again for every block because of it (gemm.cc, a_rows_alias), before
// U was packed ahead. The padding alone measured within noise there (0.89 vs 0.87-0.97 ms).
int64_t unaliased(int64_t elems, int64_t elem) {
  return (elems * elem) % 4096 == 0 ? elems + 64 / elem : elems;
}

// Bytes of transform-domain data per block (FASTCONV_WINOGRAD_BLOCK_BYTES overrides, for
// tuning). Measured on Zen 5 (1 MiB L2, 2 threads, noisy), when each block's GEMMs still packed
// U: tile blocks run best at one to a few MiB and at least 128 tiles (fewer and packing each
// GEMM's A costs ~10%: vgg16.conv1_2 F(4x4)
// 14.0 ms at 1 MiB, 15.0 at 3, 20.0 at 12; F(2x2) conv2_2 22.4 ms at 2.5 MiB vs 24.1 at 1),
// kernel blocks with large channel counts at a few MiB (conv4_2 12.8 ms at 6 MiB vs 17.5 at 1).
int64_t block_budget_bytes(bool kernel_blocks) {
  if (const int64_t forced = tuning().winograd_block_bytes) return forced;
  return kernel_blocks ? int64_t(6) << 20 : int64_t(2) << 20;
}

}  // namespace

Schedule make_schedule(const ConvGeometry& g, ConvPass pass, winograd_tiles::Tile t,
                       int64_t elem, int64_t threads) {
  Schedule p;
  p.f = winograd_tiles::pass_geometry(g, pass);
  const ConvGeometry& f = p.f;
  p.r = int(f.kernel[2]);
  const bool two_d = g.rank == 2;
  p.mw = t.w;
  p.mh = two_d ? t.h : 1;
  p.coords = int64_t(p.mw + p.r - 1) * (two_d ? p.mh + p.r - 1 : 1);
  p.tiles_h = ceil_div(f.out[1], p.mh);
  p.tiles_w = ceil_div(f.out[2], p.mw);
  p.tiles = f.n * p.tiles_h * p.tiles_w;
  p.cg = f.c_per_group();
  p.kg = f.k_per_group();
  const int64_t lanes = 64 / elem;
  const int64_t all_tiles = round_up(std::max<int64_t>(p.tiles, 1), lanes);
  const bool weight_pass = pass == ConvPass::kBackwardWeight;
  p.kernel_blocks = !weight_pass && p.tiles < p.kg &&
                    p.coords * p.cg * all_tiles * elem <= (int64_t(16) << 20);
  int64_t blocks_per_thread = 2;  // for parallel blocks (below)
  if (p.kernel_blocks) {
    p.block = all_tiles;
    const int64_t budget = block_budget_bytes(true);
    // (not std::clamp: kg may be under 16)
    int64_t kb = std::min<int64_t>(
        std::max<int64_t>(budget / (p.coords * (p.cg + p.block) * elem), 16), p.kg);
    // At least one block per thread, their count a multiple of the threads and their sizes
    // even: blocks straight from the budget could leave one thread a near-empty last block
    // (512 -> 512 on 16x16, 64 tiles, F(2x2): 170 + 170 + 170 + 2 output channels, one thread
    // doing 340 and the other 172). Each block's GEMMs pack all of V again, so no more blocks
    // than that: two per thread packed it 4 times on res4.3x3 (256 ch 14x14, 0.72 vs 0.67 ms
    // as one block per thread; AVX2 1.16 vs 1.07), unless rounding to 16 channels leaves the
    // last one short (40 channels: 32 + 8), where two per thread stay.
    if (threads > 1) {
      const int64_t from_budget = kb;
      const auto sized = [&](int64_t per_thread) {
        const int64_t count =
            round_up(std::max(ceil_div(p.kg, from_budget), per_thread * threads), threads);
        return std::max<int64_t>(16, round_up(ceil_div(p.kg, count), 16));
      };
      const int64_t one = sized(1), blocks = ceil_div(p.kg, one);
      const int64_t last = p.kg - (blocks - 1) * one;
      if (blocks % threads == 0 && 20 * last >= 19 * one) {
        kb = one;
        blocks_per_thread = 1;
      } else {
        kb = sized(2);
      }
    }
    p.kb = std::min(kb, p.kg);
    p.blocks = ceil_div(p.kg, p.kb);
  } else {
    const int64_t per_tile = p.coords * (p.cg + p.kg) * elem;
    // The weight gradient's GEMMs reduce over a block's tiles: long blocks (>= 256 tiles) keep
    // them efficient and read-modify-write the alpha^2 x K x C sums less often.
    int64_t block = weight_pass
                        ? std::clamp<int64_t>(4 * block_budget_bytes(false) / per_tile, 256, 2048)
                        : std::clamp<int64_t>(block_budget_bytes(false) / per_tile, 128, 1024);
    block = round_up(std::min(block, all_tiles), lanes);
    // Too few blocks to give every thread two. With at most two blocks' worth of tiles: one
    // block, which the threads share stage by stage (of one group; groups >= 2 x threads run
    // whole blocks in parallel instead). Whole blocks of that size left threads idle: 196 tiles
    // ran as 64 + 64 + 64 + 4, one thread doing 128 and the other 68. Measured on a Xeon with
    // AVX-512 (2 threads, U packed once): res3.3x3 at batch 1, F(2x2), 196 tiles 0.69 ms as one
    // block vs 0.79 as four; res2.3x3, F(4x4), 0.645 vs 0.69. At batch 8 (1568 tiles) the block
    // size mattered within noise (4.1-4.4 ms for 128 to 1568 tiles). More tiles (many
    // threads): blocks shrunk down to 64 tiles, so that every thread takes two.
    //
    // Even blocks rounded up to whole vectors can still leave a thread a block short: dcgan.g3's
    // backward data (288 folded tiles, when it ran F(2x2,2x2)) ran as 80 + 80 + 80 + 48, one
    // thread doing 160 tiles and the other 128; as one block split stage by stage, 3.09 vs
    // 3.43 ms (AVX2 4.53 vs 4.81).
    // So one block unless the even blocks come out within 5% of a perfect split, while that
    // block holds at most 4 budget blocks' tiles (the 2-thread case measured; with more threads
    // even blocks of a larger image stay, or one block would grow far past the cache budget).
    if (!weight_pass && threads > 1 && p.tiles > 0 && ceil_div(p.tiles, block) < 2 * threads) {
      const int64_t even = round_up(ceil_div(p.tiles, 2 * threads), lanes);
      const int64_t busiest = busiest_tiles(p.tiles, even, threads);
      const bool balanced = 20 * busiest * threads <= 21 * p.tiles;
      if (all_tiles <= 2 * block || (even >= 64 && !balanced && all_tiles <= 4 * block))
        block = all_tiles;
      else if (even >= 64)
        block = even;
    }
    // Many blocks, run in parallel: as many per thread (the last block may fall short), so no
    // thread takes one block more than the others. dcgan.g4's backward data (1,088 folded
    // tiles, when its conv forward folded) ran as 7 blocks of 160, one thread doing 640 tiles
    // and the other 448; as 8 of 144,
    // AVX2 4.54-4.70 vs 4.83-4.98 ms (AVX-512 about 2% faster); alexnet.conv1's (841 tiles)
    // 0.73 vs 0.80 ms (AVX2 1.17 vs 1.27); resnet50.res3.3x3 at batch 8 (1,568) AVX2 5.07 vs
    // 5.23, AVX-512 within noise. Only to a count the threads divide: smaller blocks that leave
    // it odd only add passes over U (vgg16.conv3_2, 784 tiles as 7 x 112 instead of 7 x 128:
    // 6.4-7.3 vs 5.7-6.2 ms; 6 x 144 also slower, 6.1-6.6).
    if (!weight_pass && threads > 1 && p.tiles > block) {
      const int64_t count = ceil_div(p.tiles, block);
      const int64_t even = round_up(ceil_div(p.tiles, round_up(count, threads)), lanes);
      if (ceil_div(p.tiles, even) % threads == 0 &&
          busiest_tiles(p.tiles, even, threads) < busiest_tiles(p.tiles, block, threads))
        block = even;
    }
    p.block = block;
    p.kb = p.kg;
    p.blocks = ceil_div(p.tiles, p.block);
  }
  // Tile blocks of every group are independent units (grouped convolutions); kernel blocks
  // share one group's input transform.
  const int64_t units = p.kernel_blocks ? p.blocks : p.blocks * f.groups;
  // The weight gradient sums over blocks: one block at a time, each stage split over threads.
  // Even kernel blocks (above) run in parallel from one per thread; others need two.
  p.parallel_blocks = !weight_pass && threads > 1 && units >= blocks_per_thread * threads;
  p.slots = p.parallel_blocks ? threads : 1;
  p.u_ks = unaliased(p.coords * p.cg, elem);
  p.v_cs = unaliased(p.coords * p.block, elem);
  p.m_ks = unaliased(p.coords * p.block, elem);
  int64_t v_block = round_up(p.v_cs * p.cg, 16);
  // The packed layout writes each tile's alpha^2 outputs to alpha^2 separate matrices, which
  // costs the input transform about what one packing of V saves (perf, AVX2 128 ch 28x28
  // F(2x2): pack_b 7.5% gone, the input transform 11.9 -> 18.1%; 64 ch 56x56 F(4x4) at AVX-512
  // 0.68 -> 0.74 ms). It pays where V was packed again for every block of output channels:
  // kernel blocks (small images), with up to 20 coordinates (F(3x3,2x2)'s 16, F(4x3,2x2)'s 20:
  // dcgan.g3's conv forward by F(4x3) spent 8.5% in pack_b with V packed by the GEMMs).
  p.packed_v = !weight_pass && p.kernel_blocks && p.coords <= 20;
  if (p.packed_v) {
    p.v_layout = elem == 4 ? gemm::packed_b_layout<float>(p.cg, p.block)
                           : gemm::packed_b_layout<double>(p.cg, p.block);
    p.v_as = unaliased(p.v_layout.elems(), elem);
    v_block = round_up(p.coords * p.v_as, 16);
  }
  p.slot_m = round_up(p.m_ks * p.kb, 16);
  if (p.kernel_blocks) {
    p.v_elems = v_block;
    p.slot_u = round_up(p.u_ks * p.kb, 16);
  } else if (weight_pass) {
    p.u_elems = round_up(p.u_ks * p.kg, 16);
    p.slot_v = v_block;
    // Folded chunk by chunk where the sums are large (from 4 budget blocks: 8 MiB) and at least
    // twice V: each chunk reads all of V again. 2 threads, AVX-512, ms, chunks vs whole sums:
    // unet.down4.conv (75 MiB of sums, V 1.2) 6.6 vs 40.6; vgg16.conv4_2 (38, 3.6) 7.3 vs 10.0;
    // r2plus1d_18.layer3.1x3x3 (21, 2.4) 5.1 vs 6.3; dcgan.g3 (13, 3.7) 3.6 vs 4.5;
    // resnet50.res4.3x3 (9.4, 0.6) 0.76 vs 0.82. Smaller sums stay in cache and chunks lose:
    // res2.3x3 (0.6, 1.8) 0.59 vs 0.47, res3.3x3 (2.4, 0.9) 0.56 vs 0.52, unet.up3.conv (4.7,
    // 9.4) 5.0 vs 4.2, dcgan.g4 (3.3, 7) 4.2 vs 3.8.
    const int64_t sums = p.coords * p.kg * p.cg * elem, v_bytes = p.coords * p.tiles * p.cg * elem;
    if (p.blocks == 1 && p.tiles > 0 && sums >= 4 * block_budget_bytes(false) &&
        sums >= 2 * v_bytes) {
      // Chunks of whole micro-kernel rows whose sums take at most 5/8 of L2, at least two per
      // thread where K allows.
      const bool f32 = elem == 4;
      const int64_t mr = f32 ? gemm::packed_a_row_step<float>() : gemm::packed_a_row_step<double>();
      const int64_t fits = 5 * gemm::cache_sizes().l2 / 8 / (p.u_ks * elem) / mr * mr;
      const int64_t even = round_up(ceil_div(p.kg, 2 * threads), mr);
      p.fold_rows = std::max(mr, std::min(fits, even));
      p.fold_layout = f32 ? gemm::packed_b_layout<float>(p.tiles, p.cg)
                          : gemm::packed_b_layout<double>(p.tiles, p.cg);
      p.fold_b = unaliased(p.fold_layout.elems(), elem);
      p.fold_slots = std::min(threads, ceil_div(p.kg, p.fold_rows));
      p.fold_slot = round_up(p.u_ks * p.fold_rows, 16);
      p.fold_scratch = round_up(p.coords * p.fold_b, 16);
      p.u_elems = p.fold_scratch + p.fold_slots * p.fold_slot;
    }
  } else {
    const bool f32 = elem == 4;
    p.u_packed = round_up(f32 ? gemm::packed_a_elems<float>(p.kg, p.cg)
                              : gemm::packed_a_elems<double>(p.kg, p.cg), 16);
    p.u_elems = f.groups * p.coords * p.u_packed;
    p.pack_slots = threads;
    p.pack_slot = round_up(p.u_ks * (f32 ? gemm::packed_a_row_step<float>()
                                         : gemm::packed_a_row_step<double>()), 16);
    p.slot_v = v_block;
  }
  return p;
}

int64_t schedule_elems(const Schedule& p) {
  return p.u_elems + p.v_elems +
         std::max(p.slots * (p.slot_u + p.slot_v + p.slot_m), p.pack_slots * p.pack_slot);
}

// The weight gradient in the transform domain holds alpha^2 x K x C sums, each reduced over the
// output tiles: with few tiles (small images) the GEMMs' reductions are short and forming the
// sums costs more than it saves. It runs where its products, discounted by tiles / (tiles + 16)
// for the short reductions, are at most 2/3 of the direct sum's (or, as before the fused fold,
// where the tiles are at least a quarter of the channels), with 16+ channels per group each
// side. Measured at AVX-512, 2 threads, ms, transform domain vs implicit_gemm (PyTorch), with
// the sums folded chunk by chunk (Schedule::fold_rows):
// - vgg16.conv4_2 (512 ch 28x28, 49 tiles, 4x fewer products): 7.1 vs 17.7 (18.3)
// - unet.down4 (512 -> 1024 16x16, 16 tiles, 4x): 6.4 vs 11.6 (25.6)
// - r2plus1d_18.layer3.1x3x3 (256 -> 576, 4 planes 14x14): 4.8 vs 9.9 (11.5)
// - dcgan.g3 (stacked phases, 72 folded tiles, 2.28x): 3.6 vs 5.5 (4.9)
// - resnet50.res4.3x3 (256 ch 14x14, 16 tiles, 3.06x): 1.02 vs 1.21 (1.36)
// - slower: dcgan.g2 (20 folded tiles, 2.05x, discounted 1.14x) 5.6 vs 4.8; res5.3x3 (4
//   tiles, 3.06x, 0.61x) 1.8-2.3 vs 1.2.
// Few channels per group leave each group's GEMMs and transforms too small to pay for their
// passes over the data (resnext50.g32, 8 per group: 0.69x).
bool weight_gradient_by_winograd(const Schedule& p, const ConvGeometry& g) {
  if (p.tiles == 0 || std::min(p.cg, p.kg) < 16) return false;
  if (4 * p.tiles >= std::max(p.cg, p.kg)) return true;
  // Per group, over the stored geometry: stacked stride phases hold more taps than the kernel
  // (3x3 / 2: 4 phases of 2x2) and folded images count the columns between them.
  const double direct = double(g.n) * double(g.out_spatial()) * double(g.kernel_spatial()) *
                        double(g.c_per_group()) * double(g.k_per_group());
  const double transformed = double(p.coords) * double(p.tiles) * double(p.cg) * double(p.kg);
  return 2 * direct * double(p.tiles) >= 3 * transformed * double(p.tiles + 16);
}

}  // namespace fastconv::algo::winograd_schedule
