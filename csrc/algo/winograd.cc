// Winograd F(m,3) / F(mxm,3x3) convolution driver: kernel transforms once per call, then blocks
// of tiles (across images) go through input transform -> alpha^2 batched GEMMs -> output
// transform, each block's transform-domain data sized to stay in the outer caches.
#include "algo/winograd.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "algo/gemm_conv.h"
#include "common/tuning.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "gemm/gemm.h"
#include "isa/isa_dispatch.h"
#include "ukernels/winograd/winograd_ukernels.h"

namespace fastconv::algo {

namespace {

std::string dims_text(const ConvGeometry& g, const Dims& v) {
  std::vector<int64_t> d(v.begin() + (kMaxRank - g.rank), v.end());
  return format_dims(d);
}

// The active ISA's tile transforms: its table function is chosen once per dtype, then each call
// looks the tile up in that table.
template <typename T>
const winograd::TileKernels<T>& tile_kernels(int m, bool two_d) {
  if constexpr (sizeof(T) == 4) {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f32_winograd_tiles);
    return isa_tiles(m, two_d);
  } else {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f64_winograd_tiles);
    return isa_tiles(m, two_d);
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// The stride-1 correlation that runs: forward is g itself; backward data is the correlation of
// grad_y with the flipped, channel-transposed kernel, padded so its output is g.in.
ConvGeometry pass_geometry(const ConvGeometry& g, ConvPass pass) {
  if (pass != ConvPass::kBackwardData) return g;
  ConvGeometry f = g;
  f.c = g.k;
  f.k = g.c;
  f.in = g.out;
  f.out = g.in;
  for (int d = 0; d < kMaxRank; ++d) {
    f.pad_lo[d] = g.kernel[d] - 1 - g.pad_lo[d];
    f.pad_hi[d] = g.kernel[d] - 1 - g.pad_hi[d];
  }
  f.mode = g.mode == ConvMode::kCross ? ConvMode::kConv : ConvMode::kCross;
  return f;
}

// Everything the driver and the workspace size derive from a geometry and tile, decided once by
// winograd_plan and kept in the ConvPlan's detail. Two schedules:
// - tile blocks (many tiles): all kernels are transformed once (U for every k, c); threads take
//   blocks of tiles through input transform -> alpha^2 GEMMs -> output transform;
// - kernel blocks (fewer tiles than output channels, e.g. 7x7 or 14x14 images): every tile is
//   input-transformed once (V for every c, tile); threads take blocks of output channels through
//   kernel transform -> alpha^2 GEMMs -> output transform, so U is never whole in memory.
struct Schedule {
  ConvGeometry f;            // the stride-1 correlation that runs (pass_geometry)
  int m = 4;                 // output tile along W (and H in 2-D)
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
};

// Bytes of transform-domain data per block (FASTCONV_WINOGRAD_BLOCK_BYTES overrides, for
// tuning). Measured on Zen 5 (1 MiB L2, 2 threads, noisy): tile blocks run best at one to a few
// MiB and at least 128 tiles (fewer and packing each GEMM's A costs ~10%: vgg16.conv1_2 F(4x4)
// 14.0 ms at 1 MiB, 15.0 at 3, 20.0 at 12; F(2x2) conv2_2 22.4 ms at 2.5 MiB vs 24.1 at 1),
// kernel blocks with large channel counts at a few MiB (conv4_2 12.8 ms at 6 MiB vs 17.5 at 1).
int64_t block_budget_bytes(bool kernel_blocks) {
  if (const int64_t forced = tuning().winograd_block_bytes) return forced;
  return kernel_blocks ? int64_t(6) << 20 : int64_t(2) << 20;
}

// The schedule of `pass` of g with output tile m, for elements of `elem` bytes and `threads`
// workers (the plan's thread count: run_conv re-plans when it changes).
Schedule make_schedule(const ConvGeometry& g, ConvPass pass, int m, int64_t elem, int64_t threads) {
  Schedule p;
  p.f = pass_geometry(g, pass);
  const ConvGeometry& f = p.f;
  p.m = m;
  const bool two_d = g.rank == 2;
  p.mw = p.m;
  p.mh = two_d ? p.m : 1;
  p.coords = int64_t(p.mw + 2) * (two_d ? p.mh + 2 : 1);
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
  if (p.kernel_blocks) {
    p.block = all_tiles;
    const int64_t budget = block_budget_bytes(true);
    int64_t kb = std::clamp<int64_t>(budget / (p.coords * (p.cg + p.block) * elem), 16, p.kg);
    if (threads > 1 && ceil_div(p.kg, kb) < 2 * threads)
      kb = std::max<int64_t>(16, round_up(ceil_div(p.kg, 2 * threads), 16));
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
    // Enough blocks for every thread: shrink blocks down to 64 tiles before splitting inside.
    if (!weight_pass && threads > 1 && ceil_div(p.tiles, block) < 2 * threads) {
      const int64_t even = round_up(ceil_div(p.tiles, 2 * threads), lanes);
      if (even >= 64) block = even;
    }
    p.block = block;
    p.kb = p.kg;
    p.blocks = ceil_div(p.tiles, p.block);
  }
  // Tile blocks of every group are independent units (grouped convolutions); kernel blocks
  // share one group's input transform.
  const int64_t units = p.kernel_blocks ? p.blocks : p.blocks * f.groups;
  // The weight gradient sums over blocks: one block at a time, each stage split over threads.
  p.parallel_blocks = !weight_pass && threads > 1 && units >= 2 * threads;
  p.slots = p.parallel_blocks ? threads : 1;
  const int64_t v_block = round_up(p.coords * p.cg * p.block, 16);
  p.slot_m = round_up(p.coords * p.kb * p.block, 16);
  if (p.kernel_blocks) {
    p.v_elems = v_block;
    p.slot_u = round_up(p.coords * p.kb * p.cg, 16);
  } else {
    p.u_elems = round_up(p.coords * (weight_pass ? p.kg : f.k) * p.cg, 16);
    p.slot_v = v_block;
  }
  return p;
}

// Scratch elements a schedule carves up: shared transforms plus one scratch per slot.
int64_t schedule_elems(const Schedule& p) {
  return p.u_elems + p.v_elems + p.slots * (p.slot_u + p.slot_v + p.slot_m);
}

// The weight gradient in the transform domain holds alpha^2 x K x C values, reduced over the
// output tiles: with few tiles per channel (small images, e.g. 7x7 or 14x14 with 256-512
// channels) forming it costs more than it saves, and implicit_gemm runs instead. Measured on a
// quiet machine (2 threads, F(3x3,4x4) forced vs implicit_gemm): resnet50.res3 (49 tiles, 128
// ch) 1.53x faster; res4 (16 tiles, 256 ch) 0.46x; res5 (4 tiles, 512) 0.05x; vgg16.conv4_2
// (49 tiles, 512) 0.48x. Few channels per group leave each group's GEMMs and transforms too
// small to pay for their passes over the data (resnext50.g32, 8 per group: 0.69x).
bool weight_gradient_by_winograd(const Schedule& p) {
  return 4 * p.tiles >= std::max(p.cg, p.kg) && std::min(p.cg, p.kg) >= 16;
}

// Calls fn(n, ty, tx, t, len) for each run of tiles [t, t + len) of [t0, t1) that lies in one
// tile row and is at most `lanes` long.
template <typename F>
void for_each_run(const Schedule& p, int64_t t0, int64_t t1, int64_t lanes, F&& fn) {
  const int64_t per_image = p.tiles_h * p.tiles_w;
  for (int64_t t = t0; t < t1;) {
    const int64_t n = t / per_image, r = t % per_image;
    const int64_t ty = r / p.tiles_w, tx = r % p.tiles_w;
    const int64_t len = std::min({lanes, p.tiles_w - tx, t1 - t});
    fn(n, ty, tx, t, len);
    t += len;
  }
}

// The three stages on one block; ranges of channels let the callers share a stage out.
template <typename T>
struct Stages {
  const Schedule& p;
  const ConvGeometry& f;
  const winograd::TileKernels<T>& tk;
  const T* x;
  const T* w;
  int64_t gs, ks, cs;  // weight element (grp, k, c) of f at w + grp * gs + k * ks + c * cs
  const T* bias;
  T* y;

  // U[k - k_base][a][c] for k in [k0, k1) of group grp.
  void kernels(int64_t grp, int64_t k0, int64_t k1, int64_t k_base, T* u) const {
    const bool flip = f.mode == ConvMode::kConv;
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t c = 0; c < p.cg; c += tk.lanes)
        tk.kernel(w + grp * gs + k * ks + c * cs, cs, std::min<int64_t>(tk.lanes, p.cg - c), flip,
                  u + (k - k_base) * p.coords * p.cg + c, p.cg);
  }

  // V[c][a][t - t0] for channels [c0, c1) and tiles [t0, t1) of group grp.
  void input(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1, T* v) const {
    const int64_t in_sp = f.in_spatial(), cstride = p.coords * p.block;
    // Channel outer: each plane's rows are read in order (prefetch-friendly) and V is written
    // sequentially.
    for (int64_t c = c0; c < c1; ++c) {
      for_each_run(p, t0, t1, tk.lanes, [&](int64_t n, int64_t ty, int64_t tx, int64_t t,
                                            int64_t len) {
        const T* plane = x + ((n * f.c + grp * p.cg) + c) * in_sp;
        const int64_t iy0 = ty * p.mh - f.pad_lo[1], ix0 = tx * p.mw - f.pad_lo[2];
        tk.input(plane, f.in[1], f.in[2], iy0, ix0, len, v + c * cstride + (t - t0), p.block);
      });
    }
  }

  // M[k][a][t] = sum_c U[k][a][c] V[c][a][t] for kn rows of U. Channel-major layouts keep
  // each transform's alpha^2 outputs (or inputs) within a few KiB instead of alpha^2 streams a
  // power of two apart (which cost a store miss per vector).
  void gemms(int64_t kn, int64_t nt, const T* u, const T* v, T* mdom) const {
    gemm::gemm_batched<T>(p.coords, kn, nt, p.cg, T(1),
                          gemm::MatrixRef<T>{u, p.coords * p.cg, 1}, p.cg,
                          gemm::MatrixRef<T>{v, p.coords * p.block, 1}, p.block, T(0), mdom,
                          p.coords * p.block, p.block);
  }

  // y for channels [k0, k1) of group grp, tiles [t0, t1), from M rows k - k_base.
  void output(int64_t grp, int64_t t0, int64_t t1, int64_t k0, int64_t k1, int64_t k_base,
              const T* mdom) const {
    const int64_t out_sp = f.out_spatial(), kstride = p.coords * p.block;
    for (int64_t k = k0; k < k1; ++k) {
      const T b = bias ? bias[grp * p.kg + k] : T(0);
      for_each_run(p, t0, t1, tk.lanes, [&](int64_t n, int64_t ty, int64_t tx, int64_t t,
                                            int64_t len) {
        T* plane = y + ((n * f.k + grp * p.kg) + k) * out_sp;
        tk.output(mdom + (k - k_base) * kstride + (t - t0), p.block, len, b, plane, f.out[1],
                  f.out[2], ty * p.mh, tx * p.mw);
      });
    }
  }
};

// Runs fn(block, slot) for every block, spread over the pool when the schedule says so (threads
// take the next block as they finish), else in order on the calling thread.
template <typename F>
void for_each_block(const Schedule& p, int64_t blocks, F&& fn) {
  if (!p.parallel_blocks) {
    for (int64_t b = 0; b < blocks; ++b) fn(b, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  parallel_for(p.slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t b = next++; b < blocks; b = next++) fn(b, s);
  });
}

template <typename T>
void run_tile_blocks(const Schedule& p, const Stages<T>& st, T* ws) {
  const ConvGeometry& f = st.f;
  T* u = ws;
  parallel_for(f.k, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t gk = k0; gk < k1; ++gk)
      st.kernels(gk / p.kg, gk % p.kg, gk % p.kg + 1, gk % p.kg - gk, u);
  });
  T* scratch = ws + p.u_elems;
  for_each_block(p, f.groups * p.blocks, [&](int64_t unit, int64_t s) {
      const int64_t grp = unit / p.blocks, b = unit % p.blocks;
      const T* ug = u + grp * p.kg * p.coords * p.cg;
      T* v = scratch + s * (p.slot_v + p.slot_m);
      T* mdom = v + p.slot_v;
      const int64_t t0 = b * p.block, t1 = std::min(p.tiles, t0 + p.block);
      if (p.parallel_blocks) {
        st.input(grp, t0, t1, 0, p.cg, v);
        st.gemms(p.kg, t1 - t0, ug, v, mdom);
        st.output(grp, t0, t1, 0, p.kg, 0, mdom);
        return;
      }
      parallel_for(p.cg, 1, [&](int64_t c0, int64_t c1) { st.input(grp, t0, t1, c0, c1, v); });
      st.gemms(p.kg, t1 - t0, ug, v, mdom);
      parallel_for(p.kg, 1,
                   [&](int64_t k0, int64_t k1) { st.output(grp, t0, t1, k0, k1, 0, mdom); });
  });
}

template <typename T>
void run_kernel_blocks(const Schedule& p, const Stages<T>& st, T* ws) {
  T* v = ws;
  T* scratch = ws + p.v_elems;
  for (int64_t grp = 0; grp < st.f.groups; ++grp) {
    parallel_for(p.cg, 1, [&](int64_t c0, int64_t c1) { st.input(grp, 0, p.tiles, c0, c1, v); });
    for_each_block(p, p.blocks, [&](int64_t b, int64_t s) {
      T* u = scratch + s * (p.slot_u + p.slot_m);
      T* mdom = u + p.slot_u;
      const int64_t k0 = b * p.kb, k1 = std::min(p.kg, k0 + p.kb);
      if (p.parallel_blocks) {
        st.kernels(grp, k0, k1, k0, u);
        st.gemms(k1 - k0, p.tiles, u, v, mdom);
        st.output(grp, 0, p.tiles, k0, k1, k0, mdom);
        return;
      }
      parallel_for(k1 - k0, 1, [&](int64_t a0, int64_t a1) {
        st.kernels(grp, k0 + a0, k0 + a1, k0, u);
      });
      st.gemms(k1 - k0, p.tiles, u, v, mdom);
      parallel_for(k1 - k0, 1, [&](int64_t a0, int64_t a1) {
        st.output(grp, 0, p.tiles, k0 + a0, k0 + a1, k0, mdom);
      });
    });
  }
}

// The stride-1 correlation p.f of x with the weight at w (element (grp, k, c) at w + grp * gs +
// k * ks + c * cs) plus bias, into y.
template <typename T>
void run_correlation(const Schedule& p, const T* x, const T* w, int64_t gs, int64_t ks, int64_t cs,
                     const T* bias, T* y, T* ws) {
  if (p.tiles == 0) return;
  const Stages<T> st{p, p.f, tile_kernels<T>(p.m, p.f.rank == 2), x, w, gs, ks, cs, bias, y};
  if (p.kernel_blocks)
    run_kernel_blocks(p, st, ws);
  else
    run_tile_blocks(p, st, ws);
}

// Weight gradient by F(3x3, mxm) per output tile: the x patch under each tile goes through the
// forward input transform, the grad_y tile through G', and for every transform coordinate
// dW^[k][c] += sum over tiles GY^[k][t] X^[c][t] (one GEMM per coordinate and block, reducing
// over tiles); dW = AT' dW^ A' once per group at the end.
template <typename T>
void run_weight_gradient(const Schedule& p, const T* x, const T* grad_y, T* grad_w, T* ws) {
  const ConvGeometry& g = p.f;  // the weight gradient correlates x with grad_y of g itself
  const int64_t taps = g.kernel_spatial();
  if (p.tiles == 0) {
    std::fill(grad_w, grad_w + g.k * p.cg * taps, T(0));
    return;
  }
  const auto& tk = tile_kernels<T>(p.m, g.rank == 2);
  const Stages<T> st{p, g, tk, x, nullptr, 0, 0, 0, nullptr, nullptr};
  T* dw = ws;                // [k][a][c] of one group
  T* v = ws + p.u_elems;     // [c][a][t]
  T* gy_hat = v + p.slot_v;  // [k][a][t]
  const int64_t out_sp = g.out_spatial(), kstride = p.coords * p.block;
  const bool flip = g.mode == ConvMode::kConv;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    for (int64_t b = 0; b < p.blocks; ++b) {
      const int64_t t0 = b * p.block, t1 = std::min(p.tiles, t0 + p.block);
      parallel_for(p.cg, 1, [&](int64_t c0, int64_t c1) { st.input(grp, t0, t1, c0, c1, v); });
      parallel_for(p.kg, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k)
          for_each_run(p, t0, t1, tk.lanes, [&](int64_t n, int64_t ty, int64_t tx, int64_t t,
                                                int64_t len) {
            const T* plane = grad_y + ((n * g.k + grp * p.kg) + k) * out_sp;
            tk.grad(plane, g.out[1], g.out[2], ty * p.mh, tx * p.mw, len,
                    gy_hat + k * kstride + (t - t0), p.block);
          });
      });
      gemm::gemm_batched<T>(p.coords, p.kg, p.cg, t1 - t0, T(1),
                            gemm::MatrixRef<T>{gy_hat, kstride, 1}, p.block,
                            gemm::MatrixRef<T>{v, 1, kstride}, p.block, b == 0 ? T(0) : T(1), dw,
                            p.coords * p.cg, p.cg);
    }
    parallel_for(p.kg, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t c = 0; c < p.cg; c += tk.lanes)
          tk.weight(dw + k * p.coords * p.cg + c, p.cg, std::min<int64_t>(tk.lanes, p.cg - c),
                    flip, grad_w + ((grp * p.kg + k) * p.cg + c) * taps, taps);
    });
  }
}

// ---- planning

std::string unsupported_reason(const ConvGeometry& g) {
  if (g.rank == 3)
    return "winograd supports 1-D F(m,3) and 2-D F(mxm,3x3) only, not 3-D convolutions";
  for (int d = kMaxRank - g.rank; d < kMaxRank; ++d) {
    if (g.stride[d] != 1)
      return "winograd needs stride 1 in every dim, got stride " + dims_text(g, g.stride);
    if (g.dilation[d] != 1)
      return "winograd needs dilation 1 in every dim, got dilation " + dims_text(g, g.dilation);
    if (g.kernel[d] != 3)
      return "winograd needs a 3-tap kernel in every dim, got kernel " + dims_text(g, g.kernel);
  }
  return "";
}

// The tile FASTCONV_WINOGRAD_TILE forces (read once per process, common/tuning.h), or 0 to let
// default_tile choose. Throws InvalidArgument for a value that is not a tile.
int forced_tile() {
  const Tuning& knobs = tuning();
  if (!knobs.winograd_tile_error.empty()) throw InvalidArgument(knobs.winograd_tile_error);
  return knobs.winograd_tile;
}

// Default tile: the largest whose float32 error stays within 10x implicit_gemm's (max |got -
// want| / max |want| vs float64) on the ResNet-50 and VGG-16 3x3 layers, 3 seeds each; the
// ratio grows with the number of channels the transform domain sums over (C forward, K
// backward data). Forward and backward data, 2-D, F(4x4): 6.0-8.0x at 64 channels (res2,
// conv1_2), 9.8-21x at 128-512; F(2x2) 0.8-2.0x everywhere; F(6x6) 25-68x. So F(4x4) up to 64
// channels, else F(2x2) (FASTCONV_WINOGRAD_TILE=4 runs 1.1-1.8x faster than F(2x2) on the VGG
// layers at ~10-15x the error). Weight gradient F(3x3,mxm) (res2-res4): m = 2 0.7-1.4x, 4
// 2.4-4.5x, 6 7-12.5x, so 4. 1-D (64-512 channels): F(6,3) 2.5-8.3x.
int default_tile(const ConvGeometry& g, ConvPass pass) {
  if (g.rank == 1) return 6;
  if (pass == ConvPass::kBackwardWeight) return 4;
  const int64_t summed = pass == ConvPass::kBackwardData ? g.k_per_group() : g.c_per_group();
  return summed <= 64 ? 4 : 2;
}

// explain()'s name for the transform: F(m x m, 3x3) forward and backward data, F(3x3, m x m)
// for the weight gradient (the kernel-sized output of a tile-sized correlation).
std::string tile_note(const ConvGeometry& g, ConvPass pass, int tile) {
  const std::string m = std::to_string(tile);
  if (pass == ConvPass::kBackwardWeight)
    return g.rank == 2 ? "F(3x3," + m + "x" + m + ")" : "F(3," + m + ")";
  return g.rank == 2 ? "F(" + m + "x" + m + ",3x3)" : "F(" + m + ",3)";
}

constexpr const char* kImplicitGemmFallbackNote =
    "implicit_gemm (fewer than C/4 output tiles or fewer than 16 channels per group: the "
    "transform-domain weight gradient would cost more than it saves)";

// A winograd plan's detail is its Schedule (a weight gradient that falls back is run by
// implicit_gemm's runners: ConvPlan::runner, so winograd's runners always have a Schedule).
const Schedule& schedule_of(const ConvPlan& plan) {
  return *static_cast<const Schedule*>(plan.detail.get());
}

}  // namespace

std::string winograd_plan(ConvPlan& plan) {
  const ConvGeometry& g = plan.g;
  const std::string why = unsupported_reason(g);
  if (!why.empty()) return why;
  const int forced = forced_tile();
  const int tile = forced != 0 ? forced : default_tile(g, plan.pass);
  const int64_t elem = dtype_size(plan.dtype);
  const Schedule schedule = make_schedule(g, plan.pass, tile, elem, plan.threads);
  if (plan.pass == ConvPass::kBackwardWeight && !weight_gradient_by_winograd(schedule)) {
    plan.runner = Algorithm::kImplicitGemm;
    const std::string implicit_gemm_why = implicit_gemm_plan(plan);  // its workspace and detail
    if (!implicit_gemm_why.empty()) return implicit_gemm_why;
    plan.note = kImplicitGemmFallbackNote;
    return "";
  }
  plan.workspace_bytes = schedule.tiles == 0 ? 0 : schedule_elems(schedule) * elem;
  plan.note = tile_note(g, plan.pass, tile);
  plan.detail = std::make_shared<const Schedule>(schedule);
  return "";
}

template <typename T>
void winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  run_correlation<T>(schedule_of(plan), x, w, kg * cg * taps, cg * taps, taps, bias, y, ws);
}

template <typename T>
void winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                            T* ws) {
  const ConvGeometry& g = plan.g;
  // Correlation with k' = c, c' = k: element (grp, c, k) at w[grp][k][c].
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  run_correlation<T>(schedule_of(plan), grad_y, w, kg * cg * taps, taps, cg * taps, nullptr,
                     grad_x, ws);
}

template <typename T>
void winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                              T* ws) {
  run_weight_gradient<T>(schedule_of(plan), x, grad_y, grad_w, ws);
}

#define FASTCONV_INSTANTIATE(T)                                                          \
  template void winograd_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void winograd_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void winograd_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
