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

enum class Role { kForward, kBackwardData, kBackwardWeight };

// Tile position m of tile t along one dim, polyphase component r, reads source index
// src(t, m, r), or nothing (-1): the virtual sequence is src[((t * tstep + m) * mult + r + off) /
// up] where that divides exactly and lies inside. mult > 1 splits a strided conv into mult
// stride-1 phases; up > 1 reads zero-inserted grad_y (backward data of a strided conv).
struct AxisLoad {
  int64_t tstep = 1, win = 1, off = 0, up = 1, ext = 1, mult = 1;
  int64_t src(int64_t t, int64_t m, int64_t r = 0) const {
    if (m >= win) return -1;
    int64_t s = (t * tstep + m) * mult + r + off;
    if (up > 1) {
      if (s < 0 || s % up != 0) return -1;
      s /= up;
    }
    return s >= 0 && s < ext ? s : -1;
  }
};

// Everything a pass needs to know about tiles, transforms, blocks and the workspace carve-up.
struct Layout {
  Role role = Role::kForward;
  Dims nfft{1, 1, 1}, ke{1, 1, 1}, tout{1, 1, 1}, ntiles{1, 1, 1};
  Dims phase{1, 1, 1};   // polyphase split per dim (the stride, forward and backward weight)
  int64_t nph = 1;       // phases per input channel: the transformed side has cin = C * nph
  AxisLoad in_load[3];   // the transformed input: x, or grad_y for backward data
  AxisLoad aux_load[3];  // backward weight's grad_y
  int64_t tiles_per_image = 1, total_tiles = 0;
  int64_t P = 1, F = 1, fw = 1;
  int64_t cin = 0, cout = 0, groups = 1, cin_g = 0, cout_g = 0;  // sides of the frequency GEMM
  int64_t T = 1;                                                 // tiles per block
  bool fused = false;  // lane-local (depthwise): chunks of fpairs pairs run start to end per worker
  int64_t fpairs = 0;
  int64_t workers = 1, off_loc = 0, loc_elems = 0;  // fused: per-worker R and S of one chunk
  int64_t lanes_in = 0, lanes_out = 0, lanes_r = 0, lanes_gw = 0;
  // Workspace regions in bytes from the start.
  int64_t off_plan[3] = {0, 0, 0}, off_kspec = 0, off_r = 0, off_sin = 0, off_sout = 0, total = 0;
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
int64_t phases(const ConvGeometry& g, Role role, int d) {
  return role == Role::kBackwardData ? 1 : g.stride[d];
}
// Extent of the (phase) kernel the stride-1 correlation sees along dim d.
int64_t kext(const ConvGeometry& g, Role role, int d) {
  const int64_t s = phases(g, role, d);
  return (dilated(g, d) + s - 1) / s;
}
// Extent of the stride-1 output the tiles cover along dim d.
int64_t tiled_extent(const ConvGeometry& g, Role role, int d) {
  return role == Role::kBackwardData ? g.in[d] : g.out[d];
}

// Per-dim tile rule: outputs per tile and tiles for FFT length n.
void axis_tiles(const ConvGeometry& g, Role role, int d, int64_t n, int64_t* tout,
                int64_t* ntiles) {
  *tout = n - kext(g, role, d) + 1;
  *ntiles = (tiled_extent(g, role, d) + *tout - 1) / *tout;
}

// Smallest FFT length covering the whole extent in one tile along dim d.
int64_t full_span(const ConvGeometry& g, Role role, int d) {
  return tiled_extent(g, role, d) + kext(g, role, d) - 1;
}

// FFT lengths per dim from a flop model: frequency-domain products + forward and inverse FFTs of
// every tile + the kernel (or weight-gradient) transforms, FFT flops weighted 4x (they run well
// below the GEMM's peak). Candidates: smooth lengths from the kernel extent to the whole extent,
// capped at max(8 ke, 64) (rank 3: max(4 ke, 32)).
Dims choose_fft_lengths(const ConvGeometry& g, Role role, int64_t cin, int64_t cout,
                        int64_t cin_g) {
  std::vector<int64_t> cand[3];
  for (int d = 0; d < 3; ++d) {
    const int64_t ke = kext(g, role, d);
    const int64_t full = fft::next_smooth(std::max<int64_t>(full_span(g, role, d), 1));
    // Rank 3 searches a product of three lists: keep each shorter there.
    const int64_t reach = g.rank == 3 ? 4 : 8, floor = g.rank == 3 ? 32 : 64;
    const int64_t cap = std::min<int64_t>(full, std::max<int64_t>(reach * ke, floor));
    for (int64_t n = fft::next_smooth(ke); n <= cap; n = fft::next_smooth(n + 1))
      cand[d].push_back(n);
    if (cand[d].empty()) cand[d].push_back(fft::next_smooth(ke));
  }
  const double red = cin_g == 1 ? 32.0 * double(cout) : 8.0 * double(cout) * double(cin_g);
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
          axis_tiles(g, role, d, n[d], &tout, &nt);
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
        // (4 cout cin_g per frequency, memory bound: weight 4 per element).
        double gemm = tiles * F * red;
        if (cin_g > 1) {
          const double blocks = std::max(1.0, std::ceil(tiles / 256.0));
          gemm = F * red * std::max(tiles, std::ceil(tiles / blocks / 16.0) * 16.0 * blocks) +
                 blocks * F * 16.0 * double(cout * cin_g);
        }
        const double cost =
            gemm + fft_pt * P * (lanes(cin) + lanes(cout)) + fft_pt * P * double(cout * cin_g);
        if (best < 0 || cost < best) best = cost, pick = n;
      }
  return pick;
}

// The layout of `pass` of g for elements of `elem` bytes and `threads` workers (the plan's
// thread count: run_conv re-plans when it changes). Runs the length search: once per plan.
Layout make_layout(const ConvGeometry& g, ConvPass pass, int64_t elem, int threads) {
  Layout L;
  L.role = pass == ConvPass::kForward        ? Role::kForward
           : pass == ConvPass::kBackwardData ? Role::kBackwardData
                                             : Role::kBackwardWeight;
  L.groups = g.groups;
  for (int d = 0; d < 3; ++d) L.phase[d] = phases(g, L.role, d);
  L.nph = L.phase[0] * L.phase[1] * L.phase[2];
  if (L.role == Role::kBackwardData) {
    L.cin = g.k, L.cout = g.c, L.cin_g = g.k_per_group(), L.cout_g = g.c_per_group();
  } else {  // forward; backward weight: x (C phases) and grad_y (K) tiles, GEMM K x C per group
    L.cin = mul(g.c, L.nph), L.cout = g.k, L.cin_g = g.c_per_group() * L.nph;
    L.cout_g = g.k_per_group();
  }
  L.nfft = choose_fft_lengths(g, L.role, L.cin, L.cout, L.cin_g);
  for (int d = 0; d < 3; ++d) {
    L.ke[d] = kext(g, L.role, d);
    axis_tiles(g, L.role, d, L.nfft[d], &L.tout[d], &L.ntiles[d]);
    L.tiles_per_image = mul(L.tiles_per_image, L.ntiles[d]);
    if (L.role == Role::kBackwardData) {
      L.in_load[d] =
          AxisLoad{L.tout[d], L.nfft[d], g.pad_lo[d] - (L.ke[d] - 1), g.stride[d], g.out[d], 1};
    } else {
      L.in_load[d] = AxisLoad{L.tout[d], L.nfft[d], -g.pad_lo[d], 1, g.in[d], g.stride[d]};
      L.aux_load[d] = AxisLoad{L.tout[d], L.tout[d], 0, 1, g.out[d], 1};
    }
  }
  L.total_tiles = mul(g.n, L.tiles_per_image);
  L.fw = L.nfft[2] / 2 + 1;
  L.P = mul(mul(L.nfft[0], L.nfft[1]), L.nfft[2]);
  L.F = mul(mul(L.nfft[0], L.nfft[1]), L.fw);
  if (L.total_tiles == 0) return L;  // empty batch: nothing transformed, no workspace

  // Depthwise without multiplier (and single-channel) layers are lane-local: no block buffers.
  L.fused = L.role != Role::kBackwardWeight && L.cin_g == 1 && L.cout_g == 1;
  // Tiles per block: bounded buffers (~8 MB), blocks of equal size, even lane counts.
  const int64_t per_tile = mul(L.P, std::max(L.cin, L.cout)) + mul(2 * L.F, L.cin + L.cout);
  const int64_t budget = L.fused ? std::numeric_limits<int64_t>::max() : (int64_t(1) << 23) / elem;
  const int64_t tmax = std::max<int64_t>(1, budget / std::max<int64_t>(per_tile, 1));
  const int64_t nblocks = (L.total_tiles + tmax - 1) / tmax;
  L.T = (L.total_tiles + nblocks - 1) / nblocks;
  if ((L.cin * L.T) % 2 || (L.cout * L.T) % 2) ++L.T;
  L.lanes_in = mul(L.cin, L.T);
  L.lanes_out = mul(L.cout, L.T);
  L.lanes_r = std::max(L.lanes_in, L.lanes_out);

  int64_t kspec_elems;
  if (L.role == Role::kBackwardWeight) {
    L.lanes_gw = round_even(mul(g.k, L.cin_g));
    kspec_elems = mul(L.F, fft::fstride(L.lanes_gw));
    L.lanes_r = std::max(L.lanes_r, int64_t(2));
  } else if (L.cin_g == 1) {
    kspec_elems = mul(mul(2, L.F), L.cout);
  } else {
    kspec_elems = mul(mul(L.F, L.groups), mul(4 * L.cout_g, L.cin_g));
  }
  int64_t off = 0;
  for (int d = 0; d < 3; ++d) {
    L.off_plan[d] = off;
    off += elem == 4 ? fft::plan_bytes<float>(L.nfft[d]) : fft::plan_bytes<double>(L.nfft[d]);
  }
  L.off_kspec = off;
  off += round64(mul(kspec_elems, elem));
  if (L.fused) {
    // Chunks of at most kFusedPairs pairs, multiples of 8, split evenly over the workers.
    const int64_t half = L.lanes_in / 2, workers = std::max(1, threads);
    const int64_t per_worker = (half + workers - 1) / workers;
    L.fpairs = std::min(kFusedPairs, (per_worker + 7) / 8 * 8);
    L.workers = std::min<int64_t>(workers, (half + L.fpairs - 1) / L.fpairs);
    L.loc_elems = round64(mul(mul(L.P, fft::rstride(2 * L.fpairs)), elem)) / elem +
                  mul(L.F, fft::fstride(2 * L.fpairs));
    L.off_loc = off;
    off += round64(mul(mul(L.workers, L.loc_elems), elem));
    L.total = off + 64;
    return L;
  }
  L.off_r = off;
  off += round64(mul(mul(L.P, fft::rstride(L.lanes_r)), elem));
  L.off_sin = off;
  off += round64(mul(mul(L.F, fft::fstride(L.lanes_in)), elem));
  L.off_sout = off;
  off += round64(mul(mul(L.F, fft::fstride(L.lanes_out)), elem));
  L.total = off + 64;  // slack to align the start
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
  c.t[2] = ts % L.ntiles[2];
  ts /= L.ntiles[2];
  c.t[1] = ts % L.ntiles[1];
  c.t[0] = ts / L.ntiles[1];
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
  const int64_t lanes = channels * L.T, n0 = L.nfft[0], n1 = L.nfft[1], n2 = L.nfft[2];
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
        const int64_t gl = map ? map->global(l) : l, tg = t0 + gl % L.T, ch = gl / L.T;
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
              if (a.up == 1 && a.mult == 1) {  // contiguous source run: [lo, hi) of this block
                const int64_t s0 = tc[i].t[2] * a.tstep + a.off;
                const int64_t lo = std::clamp<int64_t>(-s0, p0, p1);
                const int64_t hi = std::clamp<int64_t>(std::min(a.win, a.ext - s0), lo, p1);
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
  const int64_t lanes = L.lanes_out, n1 = L.nfft[1], n2 = L.nfft[2];
  const int64_t rs = map ? map->rs : fft::rstride(lanes);
  const int64_t plane = ext[0] * ext[1] * ext[2];
  if (r1 < 0) r1 = lanes;
  parallel_for((r1 - r0 + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t l0 = r0 + chunk * kLaneChunk, l1 = std::min(r1, l0 + kLaneChunk);
      // All lanes of a chunk share the tile shape only when they share the tile; go lane by lane
      // inside each block of 64 output positions.
      Dims rows{1, 1, 1};
      for (int d = 0; d < 2; ++d) rows[d] = L.tout[d];
      for (int64_t i0 = 0; i0 < rows[0]; ++i0)
        for (int64_t i1 = 0; i1 < rows[1]; ++i1) {
          const T* r = R + ((i0 * n1 + i1) * n2) * rs;
          for (int64_t q0 = 0; q0 < L.tout[2]; q0 += kPosBlock) {
            for (int64_t l = l0; l < l1; ++l) {
              const int64_t gl = map ? map->global(l) : l, o = gl / L.T, tg = t0 + gl % L.T;
              if (tg >= L.total_tiles) continue;
              const TileCoord tc = tile_coord(L, tg);
              const int64_t od = tc.t[0] * L.tout[0] + i0, oh = tc.t[1] * L.tout[1] + i1;
              const int64_t ow = tc.t[2] * L.tout[2];
              if (od >= ext[0] || oh >= ext[1]) continue;
              const int64_t q1 = std::min({L.tout[2], q0 + kPosBlock, ext[2] - ow});
              const T b = bias ? bias[o] : T(0);
              T* out = dst + (tc.n * L.cout + o) * plane + (od * ext[1] + oh) * ext[2] + ow;
              for (int64_t q = q0; q < q1; ++q) out[q] = r[q * rs + l] + b;
            }
          }
        }
    }
  });
}

// Weight index along dim d feeding tap q of the correlation kernel (polyphase component r of a
// strided forward: dilated tap q * stride + r), or -1.
int64_t kernel_tap(const ConvGeometry& g, Role role, int d, int64_t q, int64_t r = 0) {
  const int64_t ke = dilated(g, d);
  if (role == Role::kForward) q = q * g.stride[d] + r;
  if (q >= ke) return -1;
  const int64_t t = role == Role::kBackwardData ? ke - 1 - q : q;
  if (t % g.dilation[d] != 0) return -1;
  const int64_t j = t / g.dilation[d];
  return g.mode == ConvMode::kConv ? g.kernel[d] - 1 - j : j;
}

// Kernel spectra for the forward / backward-data engine, conj and 1/P folded in: elementwise
// layout [f][re | im][cout] when cin_g == 1, else per (f, group) the real 2cout_g x 2cin_g
// matrix [Wr -Wi; Wi Wr] of W' = conj(W) / P. Chunks of pairs go through R and S_in.
template <typename T>
void kernel_spectra(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& pl, const T* w,
                    T* kspec, T* R, T* S) {
  const int64_t pairs = L.cout * L.cin_g, ksp = g.kernel_spatial();
  const int64_t chunk = std::min(round_even(pairs), L.lanes_in - L.lanes_in % 2);
  const T scale = T(1.0 / double(L.P));
  const int64_t n1 = L.nfft[1], n2 = L.nfft[2];
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
          const int64_t o = idx / L.cin_g, i = idx % L.cin_g, rf = i % L.nph;
          rp[b - b0][2] = rf % L.phase[2];
          rp[b - b0][1] = (rf / L.phase[2]) % L.phase[1];
          rp[b - b0][0] = rf / (L.phase[2] * L.phase[1]);
          const int64_t cg = L.cin_g / L.nph;
          const int64_t wrow = L.role == Role::kForward
                                   ? o * cg + i / L.nph  // (k, c-in-group)
                                   : ((o / L.cout_g) * L.cin_g + i) * L.cout_g + o % L.cout_g;
          wl[b - b0] = w + wrow * ksp;
        }
        if (L.nph > 1) {  // taps differ per lane: one lookup per element
          for (int64_t pd = 0; pd < std::min(L.ke[0], L.nfft[0]); ++pd)
            for (int64_t ph = 0; ph < std::min(L.ke[1], n1); ++ph) {
              T* r = R + (pd * n1 + ph) * n2 * rs;
              for (int64_t pw = 0; pw < n2; ++pw)
                for (int64_t b = b0; b < b1; ++b) {
                  const int64_t* q = rp[b - b0];
                  const int64_t td = kernel_tap(g, L.role, 0, pd, q[0]);
                  const int64_t th = kernel_tap(g, L.role, 1, ph, q[1]);
                  const int64_t tw = kernel_tap(g, L.role, 2, pw, q[2]);
                  const bool on = td >= 0 && th >= 0 && tw >= 0 && wl[b - b0];
                  r[pw * rs + b] =
                      on ? wl[b - b0][(td * g.kernel[1] + th) * g.kernel[2] + tw] : T(0);
                }
            }
          continue;
        }
        for (int64_t pd = 0; pd < std::min(L.ke[0], L.nfft[0]); ++pd)
          for (int64_t ph = 0; ph < std::min(L.ke[1], n1); ++ph) {
            const int64_t td = kernel_tap(g, L.role, 0, pd), th = kernel_tap(g, L.role, 1, ph);
            T* r = R + (pd * n1 + ph) * n2 * rs;
            for (int64_t pw = 0; pw < n2; ++pw) {
              const int64_t tw = kernel_tap(g, L.role, 2, pw);
              const bool on = td >= 0 && th >= 0 && tw >= 0;
              const int64_t off = (td * g.kernel[1] + th) * g.kernel[2] + tw;
              for (int64_t b = b0; b < b1; ++b)
                r[pw * rs + b] = on && wl[b - b0] ? wl[b - b0][off] : T(0);
            }
          }
      }
    });
    fft::forward_nd(pl, R, lanes, S, L.ke[0], L.ke[1]);
    const int64_t count = std::min(chunk, pairs - l0);
    parallel_for(L.F, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        const T* sr = S + f * fs;
        const T* si = sr + lanes;
        if (L.cin_g == 1) {
          for (int64_t b = 0; b < count; ++b) {
            kspec[f * 2 * L.cout + l0 + b] = scale * sr[b];
            kspec[f * 2 * L.cout + L.cout + l0 + b] = -scale * si[b];  // W' = conj(W) / P
          }
          continue;
        }
        // Walk the (o, i) pairs of this chunk row by row: no divisions per element.
        const int64_t ld = 2 * L.cin_g;
        for (int64_t idx = l0; idx < l0 + count;) {
          const int64_t o = idx / L.cin_g, i0 = idx % L.cin_g;
          const int64_t n = std::min(L.cin_g - i0, l0 + count - idx);
          const int64_t grp = o / L.cout_g, ol = o % L.cout_g;
          T* a = kspec + (f * L.groups + grp) * 4 * L.cout_g * L.cin_g;
          T* top = a + ol * ld + i0;
          T* bottom = a + (L.cout_g + ol) * ld + i0;
          const T* pr = sr + (idx - l0);
          const T* pi = si + (idx - l0);
          for (int64_t j = 0; j < n; ++j) {
            const T wr = scale * pr[j], wi = -scale * pi[j];  // W' = conj(W) / P
            top[j] = wr;
            top[L.cin_g + j] = -wi;
            bottom[j] = wi;
            bottom[L.cin_g + j] = wr;
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
  const int64_t Tt = L.T, li = L.lanes_in, lo = L.lanes_out, fsi = fft::fstride(li),
                fso = fft::fstride(lo);
  if (L.cin_g == 1) {
    parallel_for(L.F, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        const T* wr = kspec + f * 2 * L.cout;
        const T* wi = wr + L.cout;
        const T* xr = sin + f * fsi;
        const T* xi = xr + li;
        T* yr = sout + f * fso;
        T* yi = yr + lo;
        if (Tt == 1 && L.cout_g == 1) {  // depthwise, one tile: vectorise over channels
#pragma GCC ivdep
          for (int64_t o = 0; o < L.cout; ++o) {
            yr[o] = wr[o] * xr[o] - wi[o] * xi[o];
            yi[o] = wr[o] * xi[o] + wi[o] * xr[o];
          }
          continue;
        }
        if (Tt < 16 && L.cout_g == 1) {  // few tiles: weights expanded per 16 lanes
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
        for (int64_t o = 0; o < L.cout; ++o) {
          const int64_t c = o / L.cout_g;
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
  const int64_t cg = L.cin_g, kg = L.cout_g;
  if (L.groups == 1) {
    gemm::gemm_batched<T>(L.F, 2 * kg, Tt, 2 * cg, T(1), MatrixRef<T>{kspec, 2 * cg, 1},
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
      gemm::gemm_batched<T>(L.F, kg, Tt, cg, T(1), MatrixRef<T>{am, ld, 1}, sa,
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
  for (int d = 0; d < 3; ++d) pl.p[d] = fft::make_plan<T>(L.nfft[d], carve(base, L.off_plan[d]));
  pl.n = L.nfft;
  pl.fw = L.fw;
  return pl;
}

template <typename T>
T* aligned_base(T* ws) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ws);
  return reinterpret_cast<T*>((p + 63) / 64 * 64);
}

// Lane-local layers: each worker takes chunks of fpairs two-for-one pairs (lanes: channel x tile)
// through load, forward transforms, product with the kernel spectrum, inverse and store in its
// own small buffers, so a chunk stays in L2 and no phase waits for another worker.
template <typename T>
void run_fused(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& pl, const T* src,
               const Dims& src_ext, const T* w, const T* bias, T* dst, const Dims& dst_ext,
               T* kspec, T* loc, const Dims& need) {
  const int64_t s_off =
      round64(L.P * fft::rstride(2 * L.fpairs) * int64_t(sizeof(T))) / int64_t(sizeof(T));
  {  // kernel spectra through worker 0's buffers, in chunks of 2 fpairs pairs
    Layout K = L;
    K.lanes_in = 2 * L.fpairs;
    kernel_spectra(g, K, pl, w, kspec, loc, loc + s_off);
  }
  const int64_t half = L.lanes_in / 2, chunks = (half + L.fpairs - 1) / L.fpairs;
  parallel_for(L.workers, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t wk = w0; wk < w1; ++wk) {
      T* R = loc + wk * L.loc_elems;
      T* S = R + s_off;
      for (int64_t c = wk; c < chunks; c += L.workers) {
        const int64_t p0 = c * L.fpairs, nh = std::min(L.fpairs, half - p0), lanes = 2 * nh;
        const LaneMap map{fft::rstride(lanes), nh, p0, half + p0};
        const int64_t fs = fft::fstride(lanes);
        load_tiles(L, L.in_load, src, L.cin, src_ext, 0, R, 0, lanes, &map);
        fft::forward_nd(pl, R, lanes, S, L.nfft[0], L.nfft[1]);
        int64_t ch[2 * kFusedPairs];  // channel of each local lane
        for (int64_t l = 0; l < lanes; ++l) ch[l] = map.global(l) / L.T;
        for (int64_t f = 0; f < L.F; ++f) {
          const T* wr = kspec + f * 2 * L.cout;
          const T* wi = wr + L.cout;
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
  T* kspec = carve(base, L.off_kspec);
  const Dims need = L.tout;  // rows of the inverse transform that outputs read
  if (L.fused) {
    run_fused(g, L, pl, src, src_ext, w, bias, dst, dst_ext, kspec, carve(base, L.off_loc), need);
    return;
  }
  T* R = carve(base, L.off_r);
  T* sin = carve(base, L.off_sin);
  T* sout = carve(base, L.off_sout);
  kernel_spectra(g, L, pl, w, kspec, R, sin);
  for (int64_t t0 = 0; t0 < L.total_tiles; t0 += L.T) {
    load_tiles(L, L.in_load, src, L.cin, src_ext, t0, R, 0, -1, nullptr, &L.phase);
    fft::forward_nd(pl, R, L.lanes_in, sin, L.nfft[0], L.nfft[1]);
    frequency_products(L, kspec, sin, sout);
    fft::inverse_dh(pl, sout, L.lanes_out, need[0]);
    fft::inverse_w(pl, sout, L.lanes_out, 0, L.lanes_out, R, need[0], need[1]);
    store_tiles(L, R, dst_ext, bias, t0, dst);
  }
}

// Backward weight: GW[f] += sum over tiles conj(GY[f]) X[f]^T per group, then one inverse per
// (k, c) and a crop to the kernel taps.
template <typename T>
void run_weight(const ConvGeometry& g, const Layout& L, const T* x, const T* gy, T* gw, T* ws) {
  T* base = aligned_base(ws);
  const fft::PlanNd<T> pl = build_plans(L, base);
  T* acc = carve(base, L.off_kspec);
  T* R = carve(base, L.off_r);
  T* sx = carve(base, L.off_sin);
  T* sg = carve(base, L.off_sout);
  // cg: x channels (times phases) per group, the GEMMs' n; lanes of acc are (k, c * nph + r).
  const int64_t lg = L.lanes_gw, cg = L.cin_g, kg = g.k_per_group(), Tt = L.T;
  const int64_t li = L.lanes_in, lo = L.lanes_out;
  const int64_t fsi = fft::fstride(li), fso = fft::fstride(lo), fsg = fft::fstride(lg);
  std::memset(acc, 0, size_t(L.F * fsg) * sizeof(T));
  for (int64_t t0 = 0; t0 < L.total_tiles; t0 += L.T) {
    load_tiles(L, L.in_load, x, L.cin, g.in, t0, R, 0, -1, nullptr, &L.phase);
    fft::forward_nd(pl, R, li, sx, L.nfft[0], L.nfft[1]);
    load_tiles(L, L.aux_load, gy, g.k, g.out, t0, R);
    fft::forward_nd(pl, R, lo, sg, L.tout[0], L.tout[1]);
    if (cg == 1) {
      parallel_for(L.F, 1, [&](int64_t f0, int64_t f1) {
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
        gemm::gemm_batched<T>(L.F, kg, cg, Tt, alpha, MatrixRef<T>{a, Tt, 1}, fso,
                              MatrixRef<T>{b, 1, Tt}, fsi, T(1), c, cg, fsg);
      };
      run(gr, xr, T(1), cr);
      run(gi, xi, T(1), cr);
      run(gr, xi, T(1), ci);
      run(gi, xr, T(-1), ci);
    }
  }
  // Inverse of the accumulated spectra, lanes (k, c) in chunks through R, crop to the taps.
  fft::inverse_dh(pl, acc, lg, L.ke[0]);
  const int64_t chunk = std::min(lg, L.lanes_r - L.lanes_r % 2);
  const T scale = T(1.0 / double(L.P));
  const int64_t ksp = g.kernel_spatial(), pairs = g.k * cg, n1 = L.nfft[1], n2 = L.nfft[2];
  for (int64_t l0 = 0; l0 < pairs; l0 += chunk) {
    const int64_t lanes = std::min(chunk, lg - l0);  // even: a pair never reads past lg
    fft::inverse_w(pl, acc, lg, l0, lanes, R, L.ke[0], L.ke[1]);
    const int64_t count = std::min(lanes, pairs - l0), cg0 = g.c_per_group();
    parallel_for(count, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        // Lane (k, c * nph + r) holds the taps j with j * dilation = q * stride + r.
        const int64_t k = (l0 + b) / cg, ip = (l0 + b) % cg, rf = ip % L.nph;
        const int64_t r[3] = {rf / (L.phase[2] * L.phase[1]), (rf / L.phase[2]) % L.phase[1],
                              rf % L.phase[2]};
        T* out = gw + (k * cg0 + ip / L.nph) * ksp;
        for (int64_t jd = 0; jd < g.kernel[0]; ++jd)
          for (int64_t jh = 0; jh < g.kernel[1]; ++jh)
            for (int64_t jw = 0; jw < g.kernel[2]; ++jw) {
              const int64_t td = jd * g.dilation[0], th = jh * g.dilation[1],
                            tw = jw * g.dilation[2];
              if (td % L.phase[0] != r[0] || th % L.phase[1] != r[1] || tw % L.phase[2] != r[2])
                continue;
              const int64_t qd = td / L.phase[0], qh = th / L.phase[1], qw = tw / L.phase[2];
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
  plan.workspace_bytes = layout->total_tiles == 0 ? 0 : layout->total;
  plan.detail = std::move(layout);
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                            \
  template void fft_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void fft_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void fft_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
