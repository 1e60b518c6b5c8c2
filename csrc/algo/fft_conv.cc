// FFT convolution: overlap-save tiles of the input, our own batched real FFTs (fft/fft.h), the
// channel reduction as a complex GEMM per frequency (elementwise for depthwise), inverse FFTs,
// crop. Forward and backward data are one engine (backward data correlates zero-inserted grad_y
// with the flipped, K<->C transposed kernel); backward weight correlates input and grad_y tiles
// and sums over batch and tiles in the frequency domain before one inverse FFT per (k, c).
// Strided forward / backward weight split the input into stride^d polyphase components that act
// as extra input channels of a stride-1 correlation with the matching kernel taps.
#include "algo/fft_conv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "fft/fft.h"
#include "fft/fft_nd.h"
#include "gemm/gemm.h"

namespace fastconv::algo {
namespace {

// How tiles read one dim of their source. Tile position m of tile t, polyphase component r,
// reads source index src(t, m, r), or nothing (-1): the virtual sequence is
// source[((t * tile_step + m) * phases + r + offset) / upsample] where that divides exactly and
// lies in [0, extent). phases > 1 splits a strided conv into stride-1 phases; upsample > 1 reads
// zero-inserted grad_y (backward data of a strided conv).
struct AxisLoad {
  int64_t tile_step = 1;  // source positions between tiles (before the phase split)
  int64_t window = 1;     // positions a tile reads; the rest of the transform is zero
  int64_t offset = 0;     // source position of tile 0's position 0 (minus the padding)
  int64_t upsample = 1;   // zero-insertion factor
  int64_t extent = 1;     // source length
  int64_t phases = 1;     // polyphase split (the stride)
  int64_t src(int64_t t, int64_t m, int64_t r = 0) const {
    if (m >= window) return -1;
    int64_t s = (t * tile_step + m) * phases + r + offset;
    if (upsample > 1) {
      if (s < 0 || s % upsample != 0) return -1;
      s /= upsample;
    }
    return s >= 0 && s < extent ? s : -1;
  }
};

// Everything a pass needs to know about tiles, transforms, blocks and the workspace carve-up,
// made once per plan by make_layout.
struct Layout {
  ConvPass pass = ConvPass::kForward;

  // Transforms and tiles, per dim (unused leading dims are 1).
  Dims fft_length{1, 1, 1};     // transform length: a tile's span, kernel_extent - 1 overlap
  Dims kernel_extent{1, 1, 1};  // extent of the (phase) kernel the stride-1 correlation sees
  Dims tile_outputs{1, 1, 1};   // outputs per tile
  Dims tile_count{1, 1, 1};     // tiles covering the output
  int64_t tiles_per_image = 1, total_tiles = 0;
  int64_t points = 1;                // real points per tile: the product of fft_length
  int64_t frequencies = 1;           // complex frequencies per tile (half spectrum on the last dim)
  int64_t last_dim_frequencies = 1;  // fft_length[2] / 2 + 1

  // Polyphase split (the stride, forward and backward weight) and how tiles read their sources.
  Dims phases{1, 1, 1};
  int64_t phase_count = 1;  // phases per input channel: in_channels = C * phase_count
  AxisLoad input_load[3];   // the transformed input: x, or grad_y for backward data
  AxisLoad grad_y_load[3];  // backward weight's grad_y

  // Sides of the frequency-domain products: transformed channels in, result channels out.
  int64_t in_channels = 0, out_channels = 0, groups = 1, in_per_group = 0, out_per_group = 0;

  // Blocks of tiles, lanes (channel x tile of a block) of each buffer.
  int64_t tiles_per_block = 1;
  int64_t in_lanes = 0, out_lanes = 0;
  int64_t tile_buffer_lanes = 0;  // the real-domain tile buffer (R), shared by both sides
  int64_t weight_grad_lanes = 0;  // backward weight: (k, c) pairs of the accumulated spectra

  // Lane-local layers (depthwise): each worker runs chunks of chunk_pairs two-for-one pairs from
  // start to end in its own tile buffer and spectra.
  bool lane_local = false;
  int64_t chunk_pairs = 0, workers = 1, worker_buffer_elems = 0;

  // Workspace regions, in bytes from the 64-byte aligned start.
  int64_t fft_plans_offset[3] = {0, 0, 0}, kernel_spectra_offset = 0;
  int64_t tile_buffer_offset = 0, in_spectra_offset = 0, out_spectra_offset = 0;
  int64_t worker_buffers_offset = 0;
  int64_t workspace_bytes = 0;  // every region plus 64 bytes of slack to align the start
};

int64_t round64(int64_t b) { return (b + 63) / 64 * 64; }

// Most two-for-one pairs a worker of the lane-local path carries through a whole tile at once.
constexpr int64_t kFusedPairs = 32;
int64_t round_even(int64_t v) { return v + (v & 1); }

// a * b with an int64 overflow check (sizes are validated before anything is allocated).
int64_t mul(int64_t a, int64_t b) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a)
    throw InvalidArgument("fft: workspace size overflows int64");
  return a * b;
}

int64_t dilated(const ConvGeometry& g, int d) { return (g.kernel[d] - 1) * g.dilation[d] + 1; }

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
    // Chunks of at most kFusedPairs pairs, multiples of 8, split evenly over the workers.
    const int64_t half = L.in_lanes / 2, workers = std::max(1, threads);
    const int64_t per_worker = (half + workers - 1) / workers;
    L.chunk_pairs = std::min(kFusedPairs, (per_worker + 7) / 8 * 8);
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

// The layout of `pass` of g for elements of `elem` bytes and `threads` workers (the plan's
// thread count: run_conv re-plans when it changes). Runs the length search: once per plan.
Layout make_layout(const ConvGeometry& g, ConvPass pass, int64_t elem, int threads) {
  Layout L;
  L.pass = pass;
  layout_tiles(g, L);
  if (L.total_tiles == 0) return L;  // empty batch: nothing transformed, no workspace
  layout_blocks(g, L, elem);
  layout_workspace(L, elem, threads);
  return L;
}

// ---- tiles in and out

struct TileCoord {
  int64_t n, t[3];
};

TileCoord tile_coord(const Layout& L, int64_t tg) {
  TileCoord c;
  c.n = tg / L.tiles_per_image;
  int64_t ts = tg % L.tiles_per_image;
  c.t[2] = ts % L.tile_count[2];
  ts /= L.tile_count[2];
  c.t[1] = ts % L.tile_count[1];
  c.t[0] = ts / L.tile_count[1];
  return c;
}

// Lanes move between tensors and [pos][lane] tiles in chunks of 16 lanes (a cache line of f32)
// and blocks of 64 positions, so both sides stay in L1 while the block transposes.
constexpr int64_t kLaneChunk = 16, kPosBlock = 64;

// Local lanes of a chunk buffer (stride rs): lanes [0, nh) are global lanes [ga, ga + nh), the
// rest [gb, ...) (the two halves of a two-for-one chunk). Null map: local == global.
struct LaneMap {
  int64_t rs, nh, ga, gb;
  int64_t global(int64_t l) const { return l < nh ? ga + l : gb + l - nh; }
};

// R[pos][ch * T + t] = tile t0 + t of src (N, channels / nph, *ext) read through the axis
// loads; with a polyphase split (phase != null) channel ch is source channel ch / nph, phase
// ch % nph (row-major over the per-dim phases).
template <typename T>
void load_tiles(const Layout& L, const AxisLoad* ax, const T* src, int64_t channels,
                const Dims& ext, int64_t t0, T* R, int64_t r0 = 0, int64_t r1 = -1,
                const LaneMap* map = nullptr, const Dims* phase = nullptr) {
  const int64_t lanes = channels * L.tiles_per_block, n0 = L.fft_length[0], n1 = L.fft_length[1],
                n2 = L.fft_length[2];
  const int64_t plane = ext[0] * ext[1] * ext[2], rs = map ? map->rs : fft::rstride(lanes);
  const Dims ph_ = phase ? *phase : Dims{1, 1, 1};
  const int64_t nph = ph_[0] * ph_[1] * ph_[2], src_channels = channels / nph;
  if (r1 < 0) r1 = lanes;
  parallel_for((r1 - r0 + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t l0 = r0 + chunk * kLaneChunk, l1 = std::min(r1, l0 + kLaneChunk);
      const T* base[kLaneChunk];
      TileCoord tc[kLaneChunk];
      int64_t rp[kLaneChunk][3];  // phase per dim
      for (int64_t l = l0; l < l1; ++l) {
        const int64_t gl = map ? map->global(l) : l, tg = t0 + gl % L.tiles_per_block,
                      ch = gl / L.tiles_per_block;
        const int64_t rf = ch % nph;
        rp[l - l0][2] = rf % ph_[2];
        rp[l - l0][1] = (rf / ph_[2]) % ph_[1];
        rp[l - l0][0] = rf / (ph_[2] * ph_[1]);
        base[l - l0] = nullptr;
        if (tg >= L.total_tiles) continue;
        tc[l - l0] = tile_coord(L, tg);
        base[l - l0] = src + (tc[l - l0].n * src_channels + ch / nph) * plane;
      }
      for (int64_t pd = 0; pd < n0; ++pd)
        for (int64_t ph = 0; ph < n1; ++ph) {
          T* row = R + (pd * n1 + ph) * n2 * rs;
          for (int64_t p0 = 0; p0 < n2; p0 += kPosBlock) {
            const int64_t p1 = std::min(n2, p0 + kPosBlock);
            for (int64_t l = l0; l < l1; ++l) {
              const int64_t i = l - l0;
              const int64_t sd = base[i] ? ax[0].src(tc[i].t[0], pd, rp[i][0]) : -1;
              const int64_t sh = sd >= 0 ? ax[1].src(tc[i].t[1], ph, rp[i][1]) : -1;
              if (sh < 0) {
                for (int64_t pw = p0; pw < p1; ++pw) row[pw * rs + l] = T(0);
                continue;
              }
              const T* srow = base[i] + (sd * ext[1] + sh) * ext[2];
              const AxisLoad& a = ax[2];
              // A contiguous source run: copy [lo, hi) of this block, zero the rest.
              if (a.upsample == 1 && a.phases == 1) {
                const int64_t s0 = tc[i].t[2] * a.tile_step + a.offset;
                const int64_t lo = std::clamp<int64_t>(-s0, p0, p1);
                const int64_t hi = std::clamp<int64_t>(std::min(a.window, a.extent - s0), lo, p1);
                for (int64_t pw = p0; pw < lo; ++pw) row[pw * rs + l] = T(0);
                for (int64_t pw = lo; pw < hi; ++pw) row[pw * rs + l] = srow[s0 + pw];
                for (int64_t pw = hi; pw < p1; ++pw) row[pw * rs + l] = T(0);
              } else {
                for (int64_t pw = p0; pw < p1; ++pw) {
                  const int64_t sw = a.src(tc[i].t[2], pw, rp[i][2]);
                  row[pw * rs + l] = sw >= 0 ? srow[sw] : T(0);
                }
              }
            }
          }
        }
    }
  });
}

// dst (N, cout, *ext) tile outputs from R[pos][o * T + t] (output i of a tile is position i);
// adds bias.
template <typename T>
void store_tiles(const Layout& L, const T* R, const Dims& ext, const T* bias, int64_t t0, T* dst,
                 int64_t r0 = 0, int64_t r1 = -1, const LaneMap* map = nullptr) {
  const int64_t lanes = L.out_lanes, n1 = L.fft_length[1], n2 = L.fft_length[2];
  const int64_t rs = map ? map->rs : fft::rstride(lanes);
  const int64_t plane = ext[0] * ext[1] * ext[2];
  if (r1 < 0) r1 = lanes;
  parallel_for((r1 - r0 + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t l0 = r0 + chunk * kLaneChunk, l1 = std::min(r1, l0 + kLaneChunk);
      // All lanes of a chunk share the tile shape only when they share the tile; go lane by lane
      // inside each block of 64 output positions.
      Dims rows{1, 1, 1};
      for (int d = 0; d < 2; ++d) rows[d] = L.tile_outputs[d];
      for (int64_t i0 = 0; i0 < rows[0]; ++i0)
        for (int64_t i1 = 0; i1 < rows[1]; ++i1) {
          const T* r = R + ((i0 * n1 + i1) * n2) * rs;
          for (int64_t q0 = 0; q0 < L.tile_outputs[2]; q0 += kPosBlock) {
            for (int64_t l = l0; l < l1; ++l) {
              const int64_t gl = map ? map->global(l) : l, o = gl / L.tiles_per_block,
                            tg = t0 + gl % L.tiles_per_block;
              if (tg >= L.total_tiles) continue;
              const TileCoord tc = tile_coord(L, tg);
              const int64_t od = tc.t[0] * L.tile_outputs[0] + i0,
                            oh = tc.t[1] * L.tile_outputs[1] + i1;
              const int64_t ow = tc.t[2] * L.tile_outputs[2];
              if (od >= ext[0] || oh >= ext[1]) continue;
              const int64_t q1 = std::min({L.tile_outputs[2], q0 + kPosBlock, ext[2] - ow});
              const T b = bias ? bias[o] : T(0);
              T* out = dst + (tc.n * L.out_channels + o) * plane + (od * ext[1] + oh) * ext[2] + ow;
              for (int64_t q = q0; q < q1; ++q) out[q] = r[q * rs + l] + b;
            }
          }
        }
    }
  });
}

// Weight index along dim d feeding tap q of the correlation kernel (polyphase component r of a
// strided forward: dilated tap q * stride + r), or -1.
int64_t kernel_tap(const ConvGeometry& g, ConvPass pass, int d, int64_t q, int64_t r = 0) {
  const int64_t ke = dilated(g, d);
  if (pass == ConvPass::kForward) q = q * g.stride[d] + r;
  if (q >= ke) return -1;
  const int64_t t = pass == ConvPass::kBackwardData ? ke - 1 - q : q;
  if (t % g.dilation[d] != 0) return -1;
  const int64_t j = t / g.dilation[d];
  return g.mode == ConvMode::kConv ? g.kernel[d] - 1 - j : j;
}

// Kernel spectra for the forward / backward-data engine, conj and 1/P folded in: elementwise
// layout [f][re | im][out_channels] when in_per_group == 1, else per (f, group) the real
// (2 out_per_group) x (2 in_per_group) matrix [Wr -Wi; Wi Wr] of W' = conj(W) / P. Chunks of
// pairs go through R and S_in.
template <typename T>
void kernel_spectra(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& pl, const T* w,
                    T* kspec, T* R, T* S) {
  const int64_t pairs = L.out_channels * L.in_per_group, ksp = g.kernel_spatial();
  const int64_t chunk = std::min(round_even(pairs), L.in_lanes - L.in_lanes % 2);
  const T scale = T(1.0 / double(L.points));
  const int64_t n1 = L.fft_length[1], n2 = L.fft_length[2];
  for (int64_t l0 = 0; l0 < pairs; l0 += chunk) {
    const int64_t lanes = chunk, rs = fft::rstride(lanes), fs = fft::fstride(lanes);
    // Only rows inside the kernel extent are read by forward_nd (the rest are zero).
    parallel_for((lanes + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t chunk = c0; chunk < c1; ++chunk) {
        const int64_t b0 = chunk * kLaneChunk, b1 = std::min(lanes, b0 + kLaneChunk);
        const T* wl[kLaneChunk];
        int64_t rp[kLaneChunk][3];  // polyphase component per dim (forward of a strided conv)
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t idx = l0 + b;
          wl[b - b0] = nullptr;
          if (idx >= pairs) continue;
          const int64_t o = idx / L.in_per_group, i = idx % L.in_per_group, rf = i % L.phase_count;
          rp[b - b0][2] = rf % L.phases[2];
          rp[b - b0][1] = (rf / L.phases[2]) % L.phases[1];
          rp[b - b0][0] = rf / (L.phases[2] * L.phases[1]);
          const int64_t cg = L.in_per_group / L.phase_count;
          const int64_t wrow =
              L.pass == ConvPass::kForward
                  ? o * cg + i / L.phase_count  // (k, c-in-group)
                  : ((o / L.out_per_group) * L.in_per_group + i) * L.out_per_group +
                        o % L.out_per_group;
          wl[b - b0] = w + wrow * ksp;
        }
        if (L.phase_count > 1) {  // taps differ per lane: one lookup per element
          for (int64_t pd = 0; pd < std::min(L.kernel_extent[0], L.fft_length[0]); ++pd)
            for (int64_t ph = 0; ph < std::min(L.kernel_extent[1], n1); ++ph) {
              T* r = R + (pd * n1 + ph) * n2 * rs;
              for (int64_t pw = 0; pw < n2; ++pw)
                for (int64_t b = b0; b < b1; ++b) {
                  const int64_t* q = rp[b - b0];
                  const int64_t td = kernel_tap(g, L.pass, 0, pd, q[0]);
                  const int64_t th = kernel_tap(g, L.pass, 1, ph, q[1]);
                  const int64_t tw = kernel_tap(g, L.pass, 2, pw, q[2]);
                  const bool on = td >= 0 && th >= 0 && tw >= 0 && wl[b - b0];
                  r[pw * rs + b] =
                      on ? wl[b - b0][(td * g.kernel[1] + th) * g.kernel[2] + tw] : T(0);
                }
            }
          continue;
        }
        for (int64_t pd = 0; pd < std::min(L.kernel_extent[0], L.fft_length[0]); ++pd)
          for (int64_t ph = 0; ph < std::min(L.kernel_extent[1], n1); ++ph) {
            const int64_t td = kernel_tap(g, L.pass, 0, pd), th = kernel_tap(g, L.pass, 1, ph);
            T* r = R + (pd * n1 + ph) * n2 * rs;
            for (int64_t pw = 0; pw < n2; ++pw) {
              const int64_t tw = kernel_tap(g, L.pass, 2, pw);
              const bool on = td >= 0 && th >= 0 && tw >= 0;
              const int64_t off = (td * g.kernel[1] + th) * g.kernel[2] + tw;
              for (int64_t b = b0; b < b1; ++b)
                r[pw * rs + b] = on && wl[b - b0] ? wl[b - b0][off] : T(0);
            }
          }
      }
    });
    fft::forward_nd(pl, R, lanes, S, L.kernel_extent[0], L.kernel_extent[1]);
    const int64_t count = std::min(chunk, pairs - l0);
    parallel_for(L.frequencies, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        const T* sr = S + f * fs;
        const T* si = sr + lanes;
        if (L.in_per_group == 1) {
          for (int64_t b = 0; b < count; ++b) {
            kspec[f * 2 * L.out_channels + l0 + b] = scale * sr[b];
            kspec[f * 2 * L.out_channels + L.out_channels + l0 + b] =
                -scale * si[b];  // W' = conj(W) / P
          }
          continue;
        }
        // Walk the (o, i) pairs of this chunk row by row: no divisions per element.
        const int64_t ld = 2 * L.in_per_group;
        for (int64_t idx = l0; idx < l0 + count;) {
          const int64_t o = idx / L.in_per_group, i0 = idx % L.in_per_group;
          const int64_t n = std::min(L.in_per_group - i0, l0 + count - idx);
          const int64_t grp = o / L.out_per_group, ol = o % L.out_per_group;
          T* a = kspec + (f * L.groups + grp) * 4 * L.out_per_group * L.in_per_group;
          T* top = a + ol * ld + i0;
          T* bottom = a + (L.out_per_group + ol) * ld + i0;
          const T* pr = sr + (idx - l0);
          const T* pi = si + (idx - l0);
          for (int64_t j = 0; j < n; ++j) {
            const T wr = scale * pr[j], wi = -scale * pi[j];  // W' = conj(W) / P
            top[j] = wr;
            top[L.in_per_group + j] = -wi;
            bottom[j] = wi;
            bottom[L.in_per_group + j] = wr;
          }
          idx += n;
        }
      }
    });
  }
}

// S_out[f] = W'[f] S_in[f] per group: one stacked real GEMM per frequency (groups == 1), four per
// group (groups > 1), or an elementwise complex product (one input channel per group).
template <typename T>
void frequency_products(const Layout& L, const T* kspec, const T* sin, T* sout) {
  const int64_t Tt = L.tiles_per_block, li = L.in_lanes, lo = L.out_lanes, fsi = fft::fstride(li),
                fso = fft::fstride(lo);
  if (L.in_per_group == 1) {
    parallel_for(L.frequencies, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        const T* wr = kspec + f * 2 * L.out_channels;
        const T* wi = wr + L.out_channels;
        const T* xr = sin + f * fsi;
        const T* xi = xr + li;
        T* yr = sout + f * fso;
        T* yi = yr + lo;
        if (Tt == 1 && L.out_per_group == 1) {  // depthwise, one tile: vectorise over channels
#pragma GCC ivdep
          for (int64_t o = 0; o < L.out_channels; ++o) {
            yr[o] = wr[o] * xr[o] - wi[o] * xi[o];
            yi[o] = wr[o] * xi[o] + wi[o] * xr[o];
          }
          continue;
        }
        if (Tt < 16 && L.out_per_group == 1) {  // few tiles: weights expanded per 16 lanes
          for (int64_t l0 = 0; l0 < lo; l0 += 16) {
            const int64_t n = std::min<int64_t>(16, lo - l0);
            T a[16], b[16];
            for (int64_t j = 0; j < n; ++j) a[j] = wr[(l0 + j) / Tt], b[j] = wi[(l0 + j) / Tt];
            for (int64_t j = 0; j < n; ++j) {
              const T p = xr[l0 + j], q = xi[l0 + j];
              yr[l0 + j] = a[j] * p - b[j] * q;
              yi[l0 + j] = a[j] * q + b[j] * p;
            }
          }
          continue;
        }
        for (int64_t o = 0; o < L.out_channels; ++o) {
          const int64_t c = o / L.out_per_group;
          const T a = wr[o], b = wi[o];
#pragma GCC ivdep
          for (int64_t t = 0; t < Tt; ++t) {
            yr[o * Tt + t] = a * xr[c * Tt + t] - b * xi[c * Tt + t];
            yi[o * Tt + t] = a * xi[c * Tt + t] + b * xr[c * Tt + t];
          }
        }
      }
    });
    return;
  }
  using gemm::MatrixRef;
  const int64_t cg = L.in_per_group, kg = L.out_per_group;
  if (L.groups == 1) {
    gemm::gemm_batched<T>(L.frequencies, 2 * kg, Tt, 2 * cg, T(1), MatrixRef<T>{kspec, 2 * cg, 1},
                          4 * kg * cg, MatrixRef<T>{sin, Tt, 1}, fsi, T(0), sout, Tt, fso);
    return;
  }
  for (int64_t grp = 0; grp < L.groups; ++grp) {
    const T* a = kspec + grp * 4 * kg * cg;
    const int64_t sa = L.groups * 4 * kg * cg, ld = 2 * cg;
    const T* xr = sin + grp * cg * Tt;
    const T* xi = xr + li;
    T* yr = sout + grp * kg * Tt;
    T* yi = yr + lo;
    auto run = [&](const T* am, const T* b, T beta, T* c) {
      gemm::gemm_batched<T>(L.frequencies, kg, Tt, cg, T(1), MatrixRef<T>{am, ld, 1}, sa,
                            MatrixRef<T>{b, Tt, 1}, fsi, beta, c, Tt, fso);
    };
    run(a, xr, T(0), yr);                 // Wr' Xr
    run(a + cg, xi, T(1), yr);            // - Wi' Xi
    run(a + kg * ld, xr, T(0), yi);       // Wi' Xr
    run(a + kg * ld + cg, xi, T(1), yi);  // Wr' Xi
  }
}

template <typename T>
T* carve(T* ws, int64_t off) {
  return reinterpret_cast<T*>(reinterpret_cast<char*>(ws) + off);
}

template <typename T>
fft::PlanNd<T> build_plans(const Layout& L, T* base) {
  fft::PlanNd<T> pl;
  for (int d = 0; d < 3; ++d)
    pl.p[d] = fft::make_plan<T>(L.fft_length[d], carve(base, L.fft_plans_offset[d]));
  pl.n = L.fft_length;
  pl.fw = L.last_dim_frequencies;
  return pl;
}

template <typename T>
T* aligned_base(T* ws) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ws);
  return reinterpret_cast<T*>((p + 63) / 64 * 64);
}

// Lane-local layers: each worker takes chunks of chunk_pairs two-for-one pairs (lanes: channel x
// tile) through load, forward transforms, product with the kernel spectrum, inverse and store in
// its own small buffers, so a chunk stays in L2 and no phase waits for another worker.
template <typename T>
void run_fused(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& pl, const T* src,
               const Dims& src_ext, const T* w, const T* bias, T* dst, const Dims& dst_ext,
               T* kspec, T* loc, const Dims& need) {
  const int64_t s_off =
      round64(L.points * fft::rstride(2 * L.chunk_pairs) * int64_t(sizeof(T))) / int64_t(sizeof(T));
  {  // kernel spectra through worker 0's buffers, in chunks of 2 chunk_pairs pairs
    Layout K = L;
    K.in_lanes = 2 * L.chunk_pairs;
    kernel_spectra(g, K, pl, w, kspec, loc, loc + s_off);
  }
  const int64_t half = L.in_lanes / 2, chunks = (half + L.chunk_pairs - 1) / L.chunk_pairs;
  parallel_for(L.workers, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t wk = w0; wk < w1; ++wk) {
      T* R = loc + wk * L.worker_buffer_elems;
      T* S = R + s_off;
      for (int64_t c = wk; c < chunks; c += L.workers) {
        const int64_t p0 = c * L.chunk_pairs, nh = std::min(L.chunk_pairs, half - p0),
                      lanes = 2 * nh;
        const LaneMap map{fft::rstride(lanes), nh, p0, half + p0};
        const int64_t fs = fft::fstride(lanes);
        load_tiles(L, L.input_load, src, L.in_channels, src_ext, 0, R, 0, lanes, &map);
        fft::forward_nd(pl, R, lanes, S, L.fft_length[0], L.fft_length[1]);
        int64_t ch[2 * kFusedPairs];  // channel of each local lane
        for (int64_t l = 0; l < lanes; ++l) ch[l] = map.global(l) / L.tiles_per_block;
        for (int64_t f = 0; f < L.frequencies; ++f) {
          const T* wr = kspec + f * 2 * L.out_channels;
          const T* wi = wr + L.out_channels;
          T* yr = S + f * fs;
          T* yi = yr + lanes;
          for (int64_t l = 0; l < lanes; ++l) {
            const T a = wr[ch[l]], b = wi[ch[l]], p = yr[l], q = yi[l];
            yr[l] = a * p - b * q;
            yi[l] = a * q + b * p;
          }
        }
        fft::inverse_dh(pl, S, lanes, need[0]);
        fft::inverse_w(pl, S, lanes, 0, lanes, R, need[0], need[1]);
        store_tiles(L, R, dst_ext, bias, 0, dst, 0, lanes, &map);
      }
    }
  });
}

// Forward and backward data: tiles of src (N, cin, *src_ext) -> dst (N, cout, *dst_ext).
template <typename T>
void run_engine(const ConvGeometry& g, const Layout& L, const T* src, const Dims& src_ext,
                const T* w, const T* bias, T* dst, const Dims& dst_ext, T* ws) {
  T* base = aligned_base(ws);
  const fft::PlanNd<T> pl = build_plans(L, base);
  T* kspec = carve(base, L.kernel_spectra_offset);
  const Dims need = L.tile_outputs;  // rows of the inverse transform that outputs read
  if (L.lane_local) {
    run_fused(g, L, pl, src, src_ext, w, bias, dst, dst_ext, kspec,
              carve(base, L.worker_buffers_offset), need);
    return;
  }
  T* R = carve(base, L.tile_buffer_offset);
  T* sin = carve(base, L.in_spectra_offset);
  T* sout = carve(base, L.out_spectra_offset);
  kernel_spectra(g, L, pl, w, kspec, R, sin);
  for (int64_t t0 = 0; t0 < L.total_tiles; t0 += L.tiles_per_block) {
    load_tiles(L, L.input_load, src, L.in_channels, src_ext, t0, R, 0, -1, nullptr, &L.phases);
    fft::forward_nd(pl, R, L.in_lanes, sin, L.fft_length[0], L.fft_length[1]);
    frequency_products(L, kspec, sin, sout);
    fft::inverse_dh(pl, sout, L.out_lanes, need[0]);
    fft::inverse_w(pl, sout, L.out_lanes, 0, L.out_lanes, R, need[0], need[1]);
    store_tiles(L, R, dst_ext, bias, t0, dst);
  }
}

// Backward weight: GW[f] += sum over tiles conj(GY[f]) X[f]^T per group, then one inverse per
// (k, c) and a crop to the kernel taps.
template <typename T>
void run_weight(const ConvGeometry& g, const Layout& L, const T* x, const T* gy, T* gw, T* ws) {
  T* base = aligned_base(ws);
  const fft::PlanNd<T> pl = build_plans(L, base);
  T* acc = carve(base, L.kernel_spectra_offset);
  T* R = carve(base, L.tile_buffer_offset);
  T* sx = carve(base, L.in_spectra_offset);
  T* sg = carve(base, L.out_spectra_offset);
  // cg: x channels (times phases) per group, the GEMMs' n; lanes of acc are (k, c * phase_count +
  // r).
  const int64_t lg = L.weight_grad_lanes, cg = L.in_per_group, kg = g.k_per_group(),
                Tt = L.tiles_per_block;
  const int64_t li = L.in_lanes, lo = L.out_lanes;
  const int64_t fsi = fft::fstride(li), fso = fft::fstride(lo), fsg = fft::fstride(lg);
  std::memset(acc, 0, size_t(L.frequencies * fsg) * sizeof(T));
  for (int64_t t0 = 0; t0 < L.total_tiles; t0 += L.tiles_per_block) {
    load_tiles(L, L.input_load, x, L.in_channels, g.in, t0, R, 0, -1, nullptr, &L.phases);
    fft::forward_nd(pl, R, li, sx, L.fft_length[0], L.fft_length[1]);
    load_tiles(L, L.grad_y_load, gy, g.k, g.out, t0, R);
    fft::forward_nd(pl, R, lo, sg, L.tile_outputs[0], L.tile_outputs[1]);
    if (cg == 1) {
      parallel_for(L.frequencies, 1, [&](int64_t f0, int64_t f1) {
        for (int64_t f = f0; f < f1; ++f) {
          const T* xr = sx + f * fsi;
          const T* xi = xr + li;
          const T* gr = sg + f * fso;
          const T* gi = gr + lo;
          T* ar = acc + f * fsg;
          T* ai = ar + lg;
          if (kg == 1) {  // depthwise: lane k of grad_y meets lane k of x; vectorise over k
            for (int64_t t = 0; t < Tt; ++t)
#pragma GCC ivdep
              for (int64_t k = 0; k < g.k; ++k) {
                const T a = gr[k * Tt + t], b = gi[k * Tt + t];
                const T p = xr[k * Tt + t], q = xi[k * Tt + t];
                ar[k] += a * p + b * q;
                ai[k] += a * q - b * p;
              }
            continue;
          }
          for (int64_t k = 0; k < g.k; ++k) {
            const int64_t c = k / kg;
            T sr = 0, si = 0;
            for (int64_t t = 0; t < Tt; ++t) {
              const T a = gr[k * Tt + t], b = gi[k * Tt + t];
              const T p = xr[c * Tt + t], q = xi[c * Tt + t];
              sr += a * p + b * q;
              si += a * q - b * p;
            }
            ar[k] += sr;
            ai[k] += si;
          }
        }
      });
      continue;
    }
    using gemm::MatrixRef;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* gr = sg + grp * kg * Tt;
      const T* gi = gr + lo;
      const T* xr = sx + grp * cg * Tt;
      const T* xi = xr + li;
      T* cr = acc + grp * kg * cg;
      T* ci = cr + lg;
      auto run = [&](const T* a, const T* b, T alpha, T* c) {
        gemm::gemm_batched<T>(L.frequencies, kg, cg, Tt, alpha, MatrixRef<T>{a, Tt, 1}, fso,
                              MatrixRef<T>{b, 1, Tt}, fsi, T(1), c, cg, fsg);
      };
      run(gr, xr, T(1), cr);
      run(gi, xi, T(1), cr);
      run(gr, xi, T(1), ci);
      run(gi, xr, T(-1), ci);
    }
  }
  // Inverse of the accumulated spectra, lanes (k, c) in chunks through R, crop to the taps.
  fft::inverse_dh(pl, acc, lg, L.kernel_extent[0]);
  const int64_t chunk = std::min(lg, L.tile_buffer_lanes - L.tile_buffer_lanes % 2);
  const T scale = T(1.0 / double(L.points));
  const int64_t ksp = g.kernel_spatial(), pairs = g.k * cg, n1 = L.fft_length[1],
                n2 = L.fft_length[2];
  for (int64_t l0 = 0; l0 < pairs; l0 += chunk) {
    const int64_t lanes = std::min(chunk, lg - l0);  // even: a pair never reads past lg
    fft::inverse_w(pl, acc, lg, l0, lanes, R, L.kernel_extent[0], L.kernel_extent[1]);
    const int64_t count = std::min(lanes, pairs - l0), cg0 = g.c_per_group();
    parallel_for(count, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        // Lane (k, c * phase_count + r) holds the taps j with j * dilation = q * stride + r.
        const int64_t k = (l0 + b) / cg, ip = (l0 + b) % cg, rf = ip % L.phase_count;
        const int64_t r[3] = {rf / (L.phases[2] * L.phases[1]), (rf / L.phases[2]) % L.phases[1],
                              rf % L.phases[2]};
        T* out = gw + (k * cg0 + ip / L.phase_count) * ksp;
        for (int64_t jd = 0; jd < g.kernel[0]; ++jd)
          for (int64_t jh = 0; jh < g.kernel[1]; ++jh)
            for (int64_t jw = 0; jw < g.kernel[2]; ++jw) {
              const int64_t td = jd * g.dilation[0], th = jh * g.dilation[1],
                            tw = jw * g.dilation[2];
              if (td % L.phases[0] != r[0] || th % L.phases[1] != r[1] || tw % L.phases[2] != r[2])
                continue;
              const int64_t qd = td / L.phases[0], qh = th / L.phases[1], qw = tw / L.phases[2];
              const T v = R[((qd * n1 + qh) * n2 + qw) * fft::rstride(lanes) + b] * scale;
              const bool flip = g.mode == ConvMode::kConv;
              const int64_t od = flip ? g.kernel[0] - 1 - jd : jd;
              const int64_t oh = flip ? g.kernel[1] - 1 - jh : jh;
              const int64_t ow = flip ? g.kernel[2] - 1 - jw : jw;
              out[(od * g.kernel[1] + oh) * g.kernel[2] + ow] = v;
            }
      }
    });
  }
}

std::string unsupported_reason(const ConvGeometry& g, ConvPass pass) {
  if (pass != ConvPass::kBackwardData)
    for (int d = 0; d < 3; ++d)
      if (g.stride[d] > dilated(g, d))
        return "fft: stride " + std::to_string(g.stride[d]) +
               " exceeds the dilated kernel extent " + std::to_string(dilated(g, d)) +
               " (the polyphase split would transform input phases no tap reads; use "
               "implicit_gemm)";
  return "";
}

// The Layout fft_plan made for this plan.
const Layout& layout_of(const ConvPlan& plan) {
  return *static_cast<const Layout*>(plan.detail.get());
}

}  // namespace

template <typename T>
void fft_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  const Layout& L = layout_of(plan);
  if (L.total_tiles == 0 || g.k == 0) return;
  run_engine(g, L, x, g.in, w, bias, y, g.out, ws);
}

template <typename T>
void fft_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  const ConvGeometry& g = plan.g;
  const Layout& L = layout_of(plan);
  if (L.total_tiles == 0 || g.c == 0) return;
  run_engine<T>(g, L, grad_y, g.out, w, nullptr, grad_x, g.in, ws);
}

template <typename T>
void fft_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws) {
  const ConvGeometry& g = plan.g;
  const Layout& L = layout_of(plan);
  if (L.total_tiles == 0) {
    std::fill(grad_w, grad_w + g.k * g.c_per_group() * g.kernel_spatial(), T(0));
    return;
  }
  run_weight(g, L, x, grad_y, grad_w, ws);
}

std::string fft_plan(ConvPlan& plan) {
  const std::string why = unsupported_reason(plan.g, plan.pass);
  if (!why.empty()) return why;
  auto layout = std::make_shared<const Layout>(
      make_layout(plan.g, plan.pass, dtype_size(plan.dtype), plan.threads));
  plan.workspace_bytes = layout->total_tiles == 0 ? 0 : layout->workspace_bytes;
  plan.detail = std::move(layout);
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                        \
  template void fft_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void fft_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void fft_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
