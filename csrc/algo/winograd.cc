// Winograd F(m,r) / F(mxm,rxr) convolution driver (r = 2 or 3): kernel transforms once per call,
// then blocks of tiles (across images) go through input transform -> alpha^2 batched GEMMs ->
// output transform, each block's transform-domain data sized to stay in the outer caches.
// Strided layers run on their stride phases (algo/winograd_phases.h).
#include "algo/winograd.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algo/gemm_conv.h"
#include "algo/winograd_phases.h"
#include "algo/winograd_tiles.h"
#include "common/tuning.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "gemm/gemm.h"
#include "isa/isa_dispatch.h"
#include "ukernels/winograd/winograd_ukernels.h"

namespace fastconv::algo {

namespace {

using winograd_tiles::choose_tile;
using winograd_tiles::pass_geometry;
using winograd_tiles::tile_note;

std::string dims_text(const ConvGeometry& g, const Dims& v) {
  std::vector<int64_t> d(v.begin() + (kMaxRank - g.rank), v.end());
  return format_dims(d);
}

// The active ISA's tile transforms: its table function is chosen once per dtype, then each call
// looks the tile up in that table.
template <typename T>
const winograd::TileKernels<T>& tile_kernels(int m, int r, bool two_d) {
  if constexpr (sizeof(T) == 4) {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f32_winograd_tiles);
    return isa_tiles(m, r, two_d);
  } else {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f64_winograd_tiles);
    return isa_tiles(m, r, two_d);
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

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
  p.r = int(f.kernel[2]);
  const bool two_d = g.rank == 2;
  p.mw = p.m;
  p.mh = two_d ? p.m : 1;
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
  const Stages<T> st{p, p.f, tile_kernels<T>(p.m, p.r, p.f.rank == 2), x, w, gs, ks, cs, bias, y};
  if (p.kernel_blocks)
    run_kernel_blocks(p, st, ws);
  else
    run_tile_blocks(p, st, ws);
}

// Weight gradient by F(rxr, mxm) per output tile: the x patch under each tile goes through the
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
  const auto& tk = tile_kernels<T>(p.m, p.r, g.rank == 2);
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

// Taps per dim of the stride-1 kernel that runs: the kernel itself at stride 1, a stride phase's
// share ceil(kernel / stride) on strided layers (winograd_phases.h).
int64_t phase_taps(const ConvGeometry& g, int d) {
  return (g.kernel[d] + g.stride[d] - 1) / g.stride[d];
}

bool strided(const ConvGeometry& g) {
  for (int d = 0; d < kMaxRank; ++d)
    if (g.stride[d] != 1) return true;
  return false;
}

std::string unsupported_reason(const ConvGeometry& g) {
  if (g.rank == 3)
    return "winograd supports 1-D F(m,r) and 2-D F(mxm,rxr) only, not 3-D convolutions";
  const int first = kMaxRank - g.rank;
  for (int d = first; d < kMaxRank; ++d)
    if (g.dilation[d] != 1)
      return "winograd needs dilation 1 in every dim, got dilation " + dims_text(g, g.dilation);
  const int64_t r = phase_taps(g, first);
  bool ok = r == 2 || r == 3;
  for (int d = first; d < kMaxRank; ++d) ok = ok && phase_taps(g, d) == r;
  if (!ok) {
    if (!strided(g))
      return "winograd needs 2 or 3 taps in every dim (the same in each), got kernel " +
             dims_text(g, g.kernel);
    return "winograd needs 2 or 3 taps per stride phase in every dim (kernel / stride rounded "
           "up, the same in each), got kernel " +
           dims_text(g, g.kernel) + " at stride " + dims_text(g, g.stride);
  }
  return "";
}

constexpr const char* kImplicitGemmFallbackNote =
    "implicit_gemm (fewer than C/4 output tiles or fewer than 16 channels per group: the "
    "transform-domain weight gradient would cost more than it saves)";

// What winograd_plan decides, kept in the ConvPlan's detail (a weight gradient that falls back
// is run by implicit_gemm's runners: ConvPlan::runner, so winograd's runners always have one).
// Stride-1 layers run `main` on the pass itself; strided ones (`phased`) on the stacked stride-1
// convolution (winograd_phases.h: split.run), the workspace then starting with the stacked
// weight (or its gradient) in a_elems, the stacked input (or its gradient) in b_elems and,
// folded, grad_y or y in the wide layout in c_elems.
struct WinogradPlan {
  Schedule main;
  bool phased = false;
  winograd_phases::Split split;
  int64_t a_elems = 0, b_elems = 0, c_elems = 0;
  int64_t buffers() const { return a_elems + b_elems + c_elems; }
};

const WinogradPlan& plan_of(const ConvPlan& plan) {
  return *static_cast<const WinogradPlan*>(plan.detail.get());
}

}  // namespace

std::string winograd_plan(ConvPlan& plan) {
  const ConvGeometry& g = plan.g;
  const std::string why = unsupported_reason(g);
  if (!why.empty()) return why;
  WinogradPlan wp;
  wp.phased = strided(g);
  const int64_t elem = dtype_size(plan.dtype);
  if (wp.phased) wp.split = winograd_phases::make_split(g, false);
  const ConvGeometry& f = wp.phased ? wp.split.stacked : g;  // the stride-1 convolution
  const int64_t summed = plan.pass == ConvPass::kBackwardData ? f.k_per_group() : f.c_per_group();
  const int tile = choose_tile(f, plan.pass, summed);
  std::string note = tile_note(g.rank, f.kernel[2], plan.pass, tile);
  if (wp.phased) {
    // Fold a batch whose image rows hold less than a run of tiles (the transforms' vectors):
    // dcgan.g3's backward data (9 columns, 3 F(3x3) tiles per row) wasted 13 of 16 lanes.
    const int64_t cols = pass_geometry(f, plan.pass).out[2];
    if (ceil_div(cols, tile) < 64 / elem) wp.split = winograd_phases::make_split(g, true);
    wp.a_elems = round_up(winograd_phases::stacked_weight_elems(wp.split), 16);
    wp.b_elems = round_up(winograd_phases::stacked_input_elems(wp.split), 16);
    wp.c_elems = round_up(winograd_phases::wide_output_elems(wp.split), 16);
    note += " over the " + std::to_string(wp.split.phases) + " stride phases stacked as channels";
    if (wp.split.folded) note += ", the batch's images side by side";
  }
  wp.main = make_schedule(wp.phased ? wp.split.run : g, plan.pass, tile, elem, plan.threads);
  if (plan.pass == ConvPass::kBackwardWeight && !weight_gradient_by_winograd(wp.main)) {
    plan.runner = Algorithm::kImplicitGemm;
    const std::string implicit_gemm_why = implicit_gemm_plan(plan);  // its workspace and detail
    if (!implicit_gemm_why.empty()) return implicit_gemm_why;
    plan.note = kImplicitGemmFallbackNote;
    return "";
  }
  const bool empty = g.n * g.out_spatial() == 0 || wp.main.tiles == 0;
  plan.workspace_bytes =
      empty ? 0 : (wp.buffers() + schedule_elems(wp.main)) * dtype_size(plan.dtype);
  plan.note = note;
  plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
  return "";
}

template <typename T>
void winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  if (!wp.phased) {
    const ConvGeometry& g = plan.g;
    const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
    run_correlation<T>(wp.main, x, w, kg * cg * taps, cg * taps, taps, bias, y, ws);
    return;
  }
  if (wp.main.tiles == 0) return;
  const winograd_phases::Split& sp = wp.split;
  T* w_stacked = ws;
  T* x_stacked = ws + wp.a_elems;
  T* y_wide = x_stacked + wp.b_elems;
  winograd_phases::stack_weight(sp, w, w_stacked);
  winograd_phases::stack_input(sp, x, x_stacked);
  const int64_t taps = sp.run.kernel_spatial(), cg = sp.run.c_per_group(), kg = sp.run.k_per_group();
  run_correlation<T>(wp.main, x_stacked, w_stacked, kg * cg * taps, cg * taps, taps, bias,
                     sp.folded ? y_wide : y, ws + wp.buffers());
  if (sp.folded) winograd_phases::unfold_output(sp, y_wide, y);
}

template <typename T>
void winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                            T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  if (!wp.phased) {
    // Correlation with k' = c, c' = k: element (grp, c, k) at w[grp][k][c].
    const int64_t taps = g.kernel_spatial();
    run_correlation<T>(wp.main, grad_y, w, kg * cg * taps, taps, cg * taps, nullptr, grad_x, ws);
    return;
  }
  if (g.n * g.c * g.in_spatial() == 0) return;
  if (g.n * g.out_spatial() == 0) {  // no workspace: no output reaches the input
    std::fill(grad_x, grad_x + g.n * g.c * g.in_spatial(), T(0));
    return;
  }
  // The stacked input's gradient: a full correlation of grad_y with the stacked weight, read
  // transposed (output channel c * P + phase, input channel k) in its forward layout.
  const winograd_phases::Split& sp = wp.split;
  T* w_stacked = ws;
  T* gx_stacked = ws + wp.a_elems;
  T* gy_wide = gx_stacked + wp.b_elems;
  winograd_phases::stack_weight_transposed(sp, w, w_stacked);
  if (sp.folded) winograd_phases::fold_output(sp, grad_y, gy_wide);
  const int64_t taps = sp.run.kernel_spatial(), scg = sp.run.c_per_group();
  run_correlation<T>(wp.main, sp.folded ? gy_wide : grad_y, w_stacked, scg * kg * taps,
                     kg * taps, taps, nullptr, gx_stacked, ws + wp.buffers());
  winograd_phases::unstack_input_gradient(sp, gx_stacked, grad_x);
}

template <typename T>
void winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                              T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  if (!wp.phased) {
    run_weight_gradient<T>(wp.main, x, grad_y, grad_w, ws);
    return;
  }
  const ConvGeometry& g = plan.g;
  if (g.n * g.out_spatial() == 0 || wp.main.tiles == 0) {  // no workspace: nothing to sum
    std::fill(grad_w, grad_w + g.k * g.c_per_group() * g.kernel_spatial(), T(0));
    return;
  }
  const winograd_phases::Split& sp = wp.split;
  T* gw_stacked = ws;
  T* x_stacked = ws + wp.a_elems;
  T* gy_wide = x_stacked + wp.b_elems;
  winograd_phases::stack_input(sp, x, x_stacked);
  if (sp.folded) winograd_phases::fold_output(sp, grad_y, gy_wide);
  run_weight_gradient<T>(wp.main, x_stacked, sp.folded ? gy_wide : grad_y, gw_stacked,
                         ws + wp.buffers());
  winograd_phases::unstack_weight_gradient(sp, gw_stacked, grad_w);
}

#define FASTCONV_INSTANTIATE(T)                                                          \
  template void winograd_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void winograd_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void winograd_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
