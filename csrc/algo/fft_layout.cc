// The FFT convolution's layout (algo/fft_layout.h): transform lengths from a flop model, tiles,
// blocks and the workspace carve-up.
#include "algo/fft_layout.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fastconv/status.h"
#include "fft/fft.h"

namespace fastconv::algo::fft_conv {
namespace {

// a * b with an int64 overflow check (sizes are validated before anything is allocated).
int64_t mul(int64_t a, int64_t b) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a)
    throw InvalidArgument("fft: workspace size overflows int64");
  return a * b;
}

// Forward and backward weight of a strided conv run as stride-1 correlations of stride^d
// polyphase components (input phase r meets kernel taps q * stride + r); backward data reads
// zero-inserted grad_y instead, which is already stride 1 over grad_x.
int64_t phase_split(const ConvGeometry& g, ConvPass pass, int d) {
  return pass == ConvPass::kBackwardData ? 1 : g.stride[d];
}
// Extent of the (phase) kernel the stride-1 correlation sees along dim d.
int64_t kext(const ConvGeometry& g, ConvPass pass, int d) {
  const int64_t s = phase_split(g, pass, d);
  return (dilated(g, d) + s - 1) / s;
}
// Extent of the stride-1 output the tiles cover along dim d.
int64_t tiled_extent(const ConvGeometry& g, ConvPass pass, int d) {
  return pass == ConvPass::kBackwardData ? g.in[d] : g.out[d];
}

// Per-dim tile rule: outputs per tile and tiles for FFT length n.
void axis_tiles(const ConvGeometry& g, ConvPass pass, int d, int64_t n, int64_t* tout,
                int64_t* ntiles) {
  *tout = n - kext(g, pass, d) + 1;
  *ntiles = (tiled_extent(g, pass, d) + *tout - 1) / *tout;
}

// Smallest FFT length covering the whole extent in one tile along dim d.
int64_t full_span(const ConvGeometry& g, ConvPass pass, int d) {
  return tiled_extent(g, pass, d) + kext(g, pass, d) - 1;
}

// FFT lengths per dim from a flop model: frequency-domain products + forward and inverse FFTs of
// every tile + the kernel (or weight-gradient) transforms, FFT flops weighted 4x (they run well
// below the GEMM's peak). Candidates: smooth lengths from the kernel extent to the whole extent,
// capped at max(8 ke, 64) (rank 3: max(4 ke, 32)).
Dims choose_fft_lengths(const ConvGeometry& g, ConvPass pass, int64_t in_channels,
                        int64_t out_channels, int64_t in_per_group) {
  std::vector<int64_t> cand[3];
  for (int d = 0; d < 3; ++d) {
    const int64_t ke = kext(g, pass, d);
    const int64_t full = fft::next_smooth(std::max<int64_t>(full_span(g, pass, d), 1));
    // Rank 3 searches a product of three lists: keep each shorter there.
    const int64_t reach = g.rank == 3 ? 4 : 8, floor = g.rank == 3 ? 32 : 64;
    const int64_t cap = std::min<int64_t>(full, std::max<int64_t>(reach * ke, floor));
    for (int64_t n = fft::next_smooth(ke); n <= cap; n = fft::next_smooth(n + 1))
      cand[d].push_back(n);
    if (cand[d].empty()) cand[d].push_back(fft::next_smooth(ke));
  }
  const double red = in_per_group == 1 ? 32.0 * double(out_channels)
                                       : 8.0 * double(out_channels) * double(in_per_group);
  const double nimg = double(std::max<int64_t>(g.n, 1));
  double best = -1;
  Dims pick{cand[0][0], cand[1][0], cand[2][0]};
  for (int64_t n0 : cand[0])
    for (int64_t n1 : cand[1])
      for (int64_t n2 : cand[2]) {
        const Dims n{n0, n1, n2};
        double tiles = nimg;
        for (int d = 0; d < 3; ++d) {
          int64_t tout, nt;
          axis_tiles(g, pass, d, n[d], &tout, &nt);
          tiles *= double(nt);
        }
        const double P = double(n0 * n1 * n2), F = double(n0 * n1 * (n2 / 2 + 1));
        // Transforms run 16 complex lanes (32 real) at a time: lanes round up to 32. Lines past
        // 5120 points stop fitting L2 (measured on the 1-D k=1025 layer, Zen 5: 5120 fastest,
        // 6144 ~1.35x slower per call).
        auto lanes = [&](int64_t c) { return std::ceil(double(c) * tiles / 32.0) * 32.0; };
        const double big = std::max({n0, n1, n2}) > 5120 ? 1.3 : 1.0;
        const double fft_pt = 10.0 * std::log2(std::max(P, 2.0)) * big;
        // Frequency GEMMs have the tiles of a block as n: below ~16 the micro-kernel's columns
        // run empty, so charge n rounded up to 16; each block also streams the kernel spectra
        // (4 out_channels x in_per_group per frequency, memory bound: weight 4 per element).
        double gemm = tiles * F * red;
        if (in_per_group > 1) {
          const double blocks = std::max(1.0, std::ceil(tiles / 256.0));
          gemm = F * red * std::max(tiles, std::ceil(tiles / blocks / 16.0) * 16.0 * blocks) +
                 blocks * F * 16.0 * double(out_channels * in_per_group);
        }
        const double cost = gemm + fft_pt * P * (lanes(in_channels) + lanes(out_channels)) +
                            fft_pt * P * double(out_channels * in_per_group);
        if (best < 0 || cost < best) best = cost, pick = n;
      }
  return pick;
}

// Channels on both sides of the frequency-domain products and the per-dim tiles.
void layout_tiles(const ConvGeometry& g, Layout& L) {
  L.groups = g.groups;
  for (int d = 0; d < 3; ++d) L.phases[d] = phase_split(g, L.pass, d);
  L.phase_count = L.phases[0] * L.phases[1] * L.phases[2];
  if (L.pass == ConvPass::kBackwardData) {
    L.in_channels = g.k, L.out_channels = g.c;
    L.in_per_group = g.k_per_group(), L.out_per_group = g.c_per_group();
  } else {  // forward; backward weight: x (C phases) and grad_y (K) tiles, GEMM K x C per group
    L.in_channels = mul(g.c, L.phase_count), L.out_channels = g.k;
    L.in_per_group = g.c_per_group() * L.phase_count, L.out_per_group = g.k_per_group();
  }
  L.fft_length = choose_fft_lengths(g, L.pass, L.in_channels, L.out_channels, L.in_per_group);
  for (int d = 0; d < 3; ++d) {
    const int64_t n = L.fft_length[d];
    L.kernel_extent[d] = kext(g, L.pass, d);
    axis_tiles(g, L.pass, d, n, &L.tile_outputs[d], &L.tile_count[d]);
    L.tiles_per_image = mul(L.tiles_per_image, L.tile_count[d]);
    const int64_t step = L.tile_outputs[d];
    if (L.pass == ConvPass::kBackwardData) {
      const int64_t offset = g.pad_lo[d] - (L.kernel_extent[d] - 1);
      L.input_load[d] = AxisLoad{step, n, offset, g.stride[d], g.out[d], 1};
    } else {
      L.input_load[d] = AxisLoad{step, n, -g.pad_lo[d], 1, g.in[d], g.stride[d]};
      L.grad_y_load[d] = AxisLoad{step, step, 0, 1, g.out[d], 1};
    }
  }
  L.total_tiles = mul(g.n, L.tiles_per_image);
  L.last_dim_frequencies = L.fft_length[2] / 2 + 1;
  L.points = mul(mul(L.fft_length[0], L.fft_length[1]), L.fft_length[2]);
  L.frequencies = mul(mul(L.fft_length[0], L.fft_length[1]), L.last_dim_frequencies);
}

// Tiles per block: bounded buffers (~8 MB), blocks of equal size, even lane counts. Depthwise
// without multiplier (and single-channel) layers are lane-local: one block, no block buffers.
void layout_blocks(const ConvGeometry& g, Layout& L, int64_t elem) {
  L.lane_local = L.pass != ConvPass::kBackwardWeight && L.in_per_group == 1 && L.out_per_group == 1;
  const int64_t per_tile = mul(L.points, std::max(L.in_channels, L.out_channels)) +
                           mul(2 * L.frequencies, L.in_channels + L.out_channels);
  const int64_t budget =
      L.lane_local ? std::numeric_limits<int64_t>::max() : (int64_t(1) << 23) / elem;
  const int64_t most_tiles = std::max<int64_t>(1, budget / std::max<int64_t>(per_tile, 1));
  const int64_t blocks = (L.total_tiles + most_tiles - 1) / most_tiles;
  L.tiles_per_block = (L.total_tiles + blocks - 1) / blocks;
  if ((L.in_channels * L.tiles_per_block) % 2 || (L.out_channels * L.tiles_per_block) % 2)
    ++L.tiles_per_block;
  L.in_lanes = mul(L.in_channels, L.tiles_per_block);
  L.out_lanes = mul(L.out_channels, L.tiles_per_block);
  L.tile_buffer_lanes = std::max(L.in_lanes, L.out_lanes);
  if (L.pass == ConvPass::kBackwardWeight) {
    L.weight_grad_lanes = round_even(mul(g.k, L.in_per_group));
    L.tile_buffer_lanes = std::max(L.tile_buffer_lanes, int64_t(2));
  }
}

// Elements of the kernel spectra (backward weight: of the accumulated weight-gradient spectra).
int64_t kernel_spectra_elems(const Layout& L) {
  if (L.pass == ConvPass::kBackwardWeight)
    return mul(L.frequencies, fft::fstride(L.weight_grad_lanes));
  if (L.in_per_group == 1) return mul(mul(2, L.frequencies), L.out_channels);
  return mul(mul(L.frequencies, L.groups), mul(4 * L.out_per_group, L.in_per_group));
}

// The workspace carve-up: FFT plans, kernel spectra, then per-worker buffers (lane-local) or the
// tile buffer and both sides' spectra.
void layout_workspace(Layout& L, int64_t elem, int threads) {
  int64_t off = 0;
  for (int d = 0; d < 3; ++d) {
    L.fft_plans_offset[d] = off;
    off += elem == 4 ? fft::plan_bytes<float>(L.fft_length[d])
                     : fft::plan_bytes<double>(L.fft_length[d]);
  }
  L.kernel_spectra_offset = off;
  off += round64(mul(kernel_spectra_elems(L), elem));
  if (L.lane_local) {
    // Chunks of at most kMaxChunkPairs pairs, multiples of 8, split evenly over the workers.
    const int64_t half = L.in_lanes / 2, workers = std::max(1, threads);
    const int64_t per_worker = (half + workers - 1) / workers;
    L.chunk_pairs = std::min(kMaxChunkPairs, (per_worker + 7) / 8 * 8);
    L.workers = std::min<int64_t>(workers, (half + L.chunk_pairs - 1) / L.chunk_pairs);
    const int64_t chunk_lanes = 2 * L.chunk_pairs;
    L.worker_buffer_elems = round64(mul(mul(L.points, fft::rstride(chunk_lanes)), elem)) / elem +
                            mul(L.frequencies, fft::fstride(chunk_lanes));
    L.worker_buffers_offset = off;
    off += round64(mul(mul(L.workers, L.worker_buffer_elems), elem));
    L.workspace_bytes = off + 64;
    return;
  }
  L.tile_buffer_offset = off;
  off += round64(mul(mul(L.points, fft::rstride(L.tile_buffer_lanes)), elem));
  L.in_spectra_offset = off;
  off += round64(mul(mul(L.frequencies, fft::fstride(L.in_lanes)), elem));
  L.out_spectra_offset = off;
  off += round64(mul(mul(L.frequencies, fft::fstride(L.out_lanes)), elem));
  L.workspace_bytes = off + 64;  // slack to align the start
}

}  // namespace

Layout make_layout(const ConvGeometry& g, ConvPass pass, int64_t elem, int threads) {
  Layout L;
  L.pass = pass;
  layout_tiles(g, L);
  if (L.total_tiles == 0) return L;  // empty batch: nothing transformed, no workspace
  layout_blocks(g, L, elem);
  layout_workspace(L, elem, threads);
  return L;
}

}  // namespace fastconv::algo::fft_conv
