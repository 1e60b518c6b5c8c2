// Winograd F(3,7) along a line (winograd_line.h).
#include "algo/winograd_line.h"

#include <algorithm>

#include "algo/plane_transpose.h"
#include "algo/winograd_tiles.h"
#include "common/tuning.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"
#include "gemm/cache_sizes.h"
#include "gemm/kernel_table.h"
#include "ukernels/transpose/transpose_ukernels.h"
#include "ukernels/winograd/line_ukernels.h"

namespace fastconv::algo {
namespace {

constexpr int64_t kTaps = 7;
constexpr int64_t kPoints = kLinePoints, kOut = kLineOutputs;  // winograd::SplitLine37

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// A stride of at least n elements, one cache line past a multiple of 4 KiB: the 11 points' rows
// (written together by the weight transform, read together by the fold) would otherwise all
// land in one L1 set, three more than its 8 ways (the transform took 21% of a batch of two
// Inception 1x7 layers' forward).
template <typename T>
int64_t unaliased(int64_t n) {
  constexpr int64_t line = 64 / sizeof(T);
  return (n * int64_t(sizeof(T))) % 4096 == 0 ? n + line : n;
}

// The correlation that runs (f: the pass's, winograd_tiles::pass_geometry) and the blocking.
// Tiles of an image are numbered line by line along W (1x7: tile = line * tl + t), and across
// the lines first along H (7x1: tile = t * lines + line), so that a block's tiles lie side by
// side in memory either way.
struct Layout {
  ConvGeometry f;
  bool along_h = false;                   // the taps along H (7x1)
  int64_t lines = 0, len_out = 0;         // per image: lines across the axis, outputs along it
  int64_t tl = 0, tiles = 0;              // tiles per line (kOut outputs each), per image
  int64_t prows = 0, pcols = 0;           // the padded channels-last input
  int64_t pad_top = 0, pad_left = 0;      // where the input starts in it
  int64_t step = 0;                       // elements between a tile's consecutive inputs
  int64_t nr = 0, panels = 0;             // the GEMM's B panels over output channels
  int64_t ustride = 0;                    // elements between two points' kernels in u
  int64_t tb = 0, blocks = 0, slots = 0;  // tiles per block, blocks per image, scratch slots
  int64_t tc = 0;                         // the weight gradient's tiles per chunk
  int64_t vstride = 0;                    // its points' V matrices apart (packed B)
  int64_t xcl = 0, ycl = 0, u = 0, v = 0, m = 0, scratch = 0, slot = 0, end = 0;  // offsets
};

// The weight gradient's chunk of tiles over the batch: its points and grad_y's (V and M) in
// about this many bytes (FASTCONV_WINOGRAD_BLOCK_BYTES replaces it), the 11 GEMMs summing over
// the chunk's tiles at once.
constexpr int64_t kWeightChunkBytes = int64_t(8) << 20;

template <typename T>
Layout layout(const ConvGeometry& g, ConvPass pass, int threads) {
  Layout l;
  l.f = winograd_tiles::pass_geometry(g, pass);
  const ConvGeometry& f = l.f;
  l.along_h = f.kernel[1] == kTaps;
  const int ax = l.along_h ? 1 : 2;
  l.lines = f.out[3 - ax];
  l.len_out = f.out[ax];
  l.tl = (l.len_out + kOut - 1) / kOut;
  l.tiles = l.lines * l.tl;
  const int64_t span = kOut * l.tl + kTaps - 1, c = f.c, k = f.k, elem = sizeof(T);
  if (l.along_h) {
    l.prows = span;
    l.pcols = f.in[2];
    l.pad_top = f.pad_lo[1];
    l.step = l.pcols * c;
  } else {
    l.prows = f.in[1];
    l.pcols = span;
    l.pad_left = f.pad_lo[2];
    l.step = c;
  }
  l.ycl = l.xcl + round16(l.prows * l.pcols * c);
  if (pass == ConvPass::kBackwardWeight) {
    // u: the points' gradients (point, K, C); a slot: one kernel's 7 tap rows of C.
    const int64_t per_tile = kPoints * (c + k), total = f.n * l.tiles;
    const int64_t budget = tuning().winograd_block_bytes ? tuning().winograd_block_bytes
                                                         : kWeightChunkBytes;
    l.tc = std::min(std::max<int64_t>(16, budget / (elem * per_tile)), total);
    if (l.tc > l.tiles) l.tc = l.tc / l.tiles * l.tiles;  // whole images
    l.slots = std::max(1, threads);
    l.ustride = unaliased<T>(k * c);
    l.u = l.ycl + round16(f.out_spatial() * k);
    l.v = l.u + round16(kPoints * l.ustride);
    l.vstride = round16(gemm::packed_b_layout<T>(l.tc, c).elems());  // a shorter chunk's fits
    l.m = l.v + kPoints * l.vstride;
    l.scratch = l.m + round16(kPoints * l.tc * k);
    l.slot = round16(kTaps * c);
    l.end = l.scratch + l.slots * l.slot;
    return l;
  }
  l.nr = gemm::gemm_kernel<T>().nr;
  l.panels = (k + l.nr - 1) / l.nr;
  l.ustride = unaliased<T>(c * l.nr);
  // A block's points and products in half the L2; the blocks a multiple of the threads, of
  // nearly equal size.
  const int64_t t = std::max(1, threads), per_tile = kPoints * (c + k);
  const int64_t fit = std::max<int64_t>(8, gemm::cache_sizes().l2 / 2 / (elem * per_tile));
  l.blocks = std::max<int64_t>(1, (l.tiles + fit - 1) / fit);
  l.blocks = std::max<int64_t>(1, std::min(l.tiles, (l.blocks + t - 1) / t * t));
  l.tb = std::max<int64_t>(1, (l.tiles + l.blocks - 1) / l.blocks);
  l.slots = std::min(t, l.blocks);
  l.u = l.ycl + round16(f.out_spatial() * k);
  l.scratch = l.u + round16(l.panels * kPoints * l.ustride);
  // A block's points and products, or (transforming the weight) a panel's kernels transposed.
  l.slot = round16(std::max(per_tile * l.tb, kTaps * c * l.nr));
  l.end = l.scratch + l.slots * l.slot;
  return l;
}

// u[(panel * 11 + q) * ustride + c * nr + lane]: point q of kernel (panel * nr + lane, c) of the
// correlation f. Per panel its kernels transposed to (channel, tap, lane) in the slot, then each
// channel's points at once over the lanes. The forward's kernel (ko, c) is w[ko][c]; backward
// data's is w[c][ko] (channel-transposed; flipped through f's mode).
template <typename T>
void transform_weights(const ConvGeometry& g, ConvPass pass, const Layout& l, const T* w, T* ws) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const LineKernels<T>& kern = line_kernels<T>();
  const ConvGeometry& f = l.f;
  const int64_t c = f.c, k = f.k, nr = l.nr;
  const bool flip = f.mode == ConvMode::kConv, bd = pass == ConvPass::kBackwardData;
  const int64_t slots = std::min(l.slots, l.panels);
  parallel_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* packed = ws + l.scratch + s * l.slot;
      for (int64_t p = l.panels * s / slots; p < l.panels * (s + 1) / slots; ++p) {
        const int64_t col0 = p * nr, nc = std::min(nr, k - col0);
        if (nc < nr) std::fill(packed, packed + kTaps * c * nr, T(0));
        if (!bd) {
          tr.transpose(w + col0 * c * kTaps, c * kTaps, nc, c * kTaps,
                       static_cast<const T*>(nullptr), packed, nr);
        } else {
          for (int64_t cc = 0; cc < c; ++cc)
            tr.transpose(w + (cc * g.c + col0) * kTaps, kTaps, nc, kTaps,
                         static_cast<const T*>(nullptr), packed + cc * kTaps * nr, nr);
        }
        T* u = ws + l.u + p * kPoints * l.ustride;
        for (int64_t cc = 0; cc < c; ++cc)
          kern.weights(packed + cc * kTaps * nr, nr, flip, u + cc * nr, l.ustride);
      }
    }
  });
}

// One image's input (f's) into the padded channels-last copy: row Y, column X hold input (Y -
// pad_top, X - pad_left), zero outside it.
template <typename T>
void fill_input(const Layout& l, const T* x, T* xcl) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const ConvGeometry& f = l.f;
  const int64_t c = f.c, h = f.in[1], wd = f.in[2], row_elems = l.pcols * c;
  const int64_t cols_in = std::clamp<int64_t>(std::min(wd, l.pcols - l.pad_left), 0, wd);
  parallel_for(l.prows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* row = xcl + r * row_elems;
      const int64_t iy = r - l.pad_top;
      if (iy < 0 || iy >= h || cols_in == 0) {
        std::fill(row, row + row_elems, T(0));
        continue;
      }
      std::fill(row, row + l.pad_left * c, T(0));
      std::fill(row + (l.pad_left + cols_in) * c, row + row_elems, T(0));
      tr.transpose(x + iy * wd, h * wd, c, cols_in, static_cast<const T*>(nullptr),
                   row + l.pad_left * c, c);
    }
  });
}

// Tile i's line and position along it, its first input and first output (channels-last).
struct Tile {
  int64_t input, output, outputs;
};
inline Tile tile_at(const Layout& l, int64_t i) {
  const int64_t line = l.along_h ? i % l.lines : i / l.tl;
  const int64_t t = l.along_h ? i / l.lines : i % l.tl;
  const int64_t c = l.f.c, k = l.f.k, ow = l.f.out[2];
  Tile tile;
  tile.outputs = std::min<int64_t>(kOut, l.len_out - kOut * t);
  if (l.along_h) {
    tile.input = (kOut * t * l.pcols + line) * c;
    tile.output = (kOut * t * ow + line) * k;
  } else {
    tile.input = (line * l.pcols + kOut * t) * c;
    tile.output = (line * ow + kOut * t) * k;
  }
  return tile;
}

// M = V U for point q over `rows` tiles (V's rows C apart, M's K apart) and the output channels
// of panel p: micro-kernel calls of nearly equal numbers of rows.
template <typename T>
void point_products(const Layout& l, const T* v, const T* u, int64_t q, int64_t rows, int64_t p,
                    T* m) {
  const gemm::GemmKernel<T>& kern = gemm::gemm_kernel<T>();
  const int64_t c = l.f.c, k = l.f.k, col0 = p * l.nr, nc = std::min(l.nr, k - col0);
  const T* b = u + (p * kPoints + q) * l.ustride;
  const int64_t calls = (rows + kern.rows_a - 1) / kern.rows_a;
  for (int64_t i = 0; i < calls; ++i) {
    const int64_t r0 = rows * i / calls, r1 = rows * (i + 1) / calls;
    kern.fn_rows_a(c, v + r0 * c, c, b, l.nr, m + r0 * k + col0, k, r1 - r0, nc, T(1), T(0));
  }
}

// The pass over f: per image the padded input, blocks of tiles in parallel (points, the 11 GEMMs
// per panel, outputs into the channels-last copy), then the copy transposed into the output.
template <typename T>
void run(const Layout& l, const T* x, const T* bias, T* y, T* ws) {
  const LineKernels<T>& kern = line_kernels<T>();
  const ConvGeometry& f = l.f;
  const int64_t c = f.c, k = f.k, out_sp = f.out_spatial(), ys = l.along_h ? f.out[2] * k : k;
  T* xcl = ws + l.xcl;
  T* ycl = ws + l.ycl;
  const T* u = ws + l.u;
  for (int64_t n = 0; n < f.n; ++n) {
    fill_input(l, x + n * c * f.in_spatial(), xcl);
    parallel_for(l.slots, 1, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        T* v = ws + l.scratch + s * l.slot;
        T* m = v + kPoints * l.tb * c;
        for (int64_t b = l.blocks * s / l.slots; b < l.blocks * (s + 1) / l.slots; ++b) {
          const int64_t t0 = b * l.tb, nt = std::min(l.tb, l.tiles - t0);
          if (nt <= 0) continue;
          for (int64_t i = 0; i < nt; ++i)
            kern.input(xcl + tile_at(l, t0 + i).input, l.step, c, v + i * c, l.tb * c);
          for (int64_t p = 0; p < l.panels; ++p)
            for (int64_t q = 0; q < kPoints; ++q)
              point_products(l, v + q * l.tb * c, u, q, nt, p, m + q * l.tb * k);
          for (int64_t i = 0; i < nt; ++i) {
            const Tile tile = tile_at(l, t0 + i);
            kern.output(m + i * k, l.tb * k, k, ycl + tile.output, ys, int(tile.outputs));
          }
        }
      }
    });
    transpose_into(static_cast<const T*>(ycl), out_sp, k, bias, y + n * k * out_sp);
  }
}

// The weight gradient: per chunk of tiles the input's points (V) and grad_y's (M, the output
// transform's transpose), the 11 GEMMs u[q] (K x C) += M[q]^T V[q] over the chunk's tiles, then
// per kernel its taps from its points (G's columns), interleaved into grad_w's (channel, tap)
// order.
template <typename T>
void run_weight(const Layout& l, const T* x, const T* grad_y, T* grad_w, T* ws) {
  const LineKernels<T>& kern = line_kernels<T>();
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const ConvGeometry& f = l.f;
  const int64_t c = f.c, k = f.k, out_sp = f.out_spatial(), total = f.n * l.tiles;
  const int64_t ys = l.along_h ? f.out[2] * k : k;
  T* xcl = ws + l.xcl;
  T* gycl = ws + l.ycl;
  T* u = ws + l.u;
  T* v = ws + l.v;
  T* m = ws + l.m;
  int64_t copied = -1;  // the image in xcl and gycl (one that spans chunks is copied once)
  for (int64_t g0 = 0; g0 < total; g0 += l.tc) {
    const int64_t g1 = std::min(total, g0 + l.tc), rows = g1 - g0;
    // V as the GEMMs' packed B (tiles x channels, each point's l.vstride apart): the input
    // transform writes each panel's run of channels where the micro-kernel reads it, instead of
    // a row-major V the GEMM packs again (8% of an AVX2 Inception weight gradient).
    const gemm::PackedBLayout lb = gemm::packed_b_layout<T>(rows, c);
    if (c % lb.nr != 0) {  // the last panel's columns past C: read by the micro-kernel, zero
      for (int64_t q = 0; q < kPoints; ++q)
        for (int64_t i = 0; i < rows; ++i)
          std::fill_n(v + q * l.vstride + lb.offset(i, c), lb.n_pad - c, T(0));
    }
    for (int64_t n = g0 / l.tiles; n * l.tiles < g1; ++n) {
      if (n != copied) {
        fill_input(l, x + n * c * f.in_spatial(), xcl);
        transpose_to_positions(grad_y + n * k * out_sp, k, out_sp, gycl);
      }
      copied = n;
      const int64_t a = std::max(g0, n * l.tiles), b = std::min(g1, (n + 1) * l.tiles);
      parallel_for(b - a, 16, [&](int64_t i0, int64_t i1) {
        for (int64_t i = a + i0; i < a + i1; ++i) {
          const Tile tile = tile_at(l, i - n * l.tiles);
          kern.grad(gycl + tile.output, ys, int(tile.outputs), k, m + (i - g0) * k, rows * k);
        }
        // Panel by panel, so each point's runs of consecutive tiles are one sequential stream
        // (tile by tile, a tile's panels are C / nr streams a panel apart, for every point).
        for (int64_t j = 0; j < c; j += lb.nr)
          for (int64_t i = a + i0; i < a + i1; ++i)
            kern.input(xcl + tile_at(l, i - n * l.tiles).input + j, l.step,
                       std::min(lb.nr, c - j), v + lb.offset(i - g0, j), l.vstride);
      });
    }
    gemm::gemm_batched_packed_b<T>(kPoints, k, c, rows, T(1), gemm::MatrixRef<T>{m, 1, k},
                                   rows * k, v, lb, l.vstride, g0 == 0 ? T(0) : T(1), u, c,
                                   l.ustride);
  }
  const bool flip = f.mode == ConvMode::kConv;
  const int64_t slots = std::min(l.slots, k);
  parallel_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* taps = ws + l.scratch + s * l.slot;
      for (int64_t kk = k * s / slots; kk < k * (s + 1) / slots; ++kk) {
        kern.fold(u + kk * c, l.ustride, c, flip, taps);
        tr.transpose(taps, c, kTaps, c, static_cast<const T*>(nullptr), grad_w + kk * c * kTaps,
                     kTaps);
      }
    }
  });
}

}  // namespace

bool line_winograd_serves(const ConvGeometry& g, ConvPass pass) {
  if (g.rank != 2 || g.groups != 1) return false;
  const bool h = g.kernel[1] == kTaps && g.kernel[2] == 1;
  const bool w = g.kernel[1] == 1 && g.kernel[2] == kTaps;
  if (!h && !w) return false;
  for (int d = 1; d < 3; ++d)
    if (g.stride[d] != 1 || g.dilation[d] != 1) return false;
  const int ax = h ? 1 : 2, other = 3 - ax;
  if (g.pad_lo[other] != 0 || g.pad_hi[other] != 0) return false;
  // Padding past the kernel would make backward data's negative.
  if (g.pad_lo[ax] < 0 || g.pad_hi[ax] < 0 || g.pad_lo[ax] >= kTaps || g.pad_hi[ax] >= kTaps)
    return false;
  const bool weight = pass == ConvPass::kBackwardWeight;
  if ((pass == ConvPass::kBackwardData ? g.k : g.c) < kLineMinChannels) return false;
  if (weight && g.k < kLineMinChannels) return false;
  const ConvGeometry f = winograd_tiles::pass_geometry(g, pass);
  const int64_t tl = (f.out[ax] + kOut - 1) / kOut, span = kOut * tl + kTaps - 1;
  const int64_t in_elems = (h ? span * f.in[2] : f.in[1] * span) * f.c;
  return in_elems + f.out_spatial() * f.k <= kLineMaxImageElems;
}

bool line_weight_tiles_pay(const ConvGeometry& g) {
  const int ax = g.kernel[1] == kTaps ? 1 : 2;
  return g.n * ((g.out[ax] + kOut - 1) / kOut) * g.out[3 - ax] >= kLineWeightMinTiles;
}

int64_t line_winograd_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t,
                                      int threads) {
  const bool f64 = t == DType::kFloat64;
  const Layout l = f64 ? layout<double>(g, pass, threads) : layout<float>(g, pass, threads);
  return checked_product({l.end, dtype_size(t)}, "winograd workspace");
}

template <typename T>
void line_winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                           T* ws) {
  const ConvGeometry& g = plan.g;
  if (g.n * g.out_spatial() == 0) return;
  const Layout l = layout<T>(g, ConvPass::kForward, plan.threads);
  transform_weights(g, ConvPass::kForward, l, w, ws);
  run(l, x, bias, y, ws);
}

template <typename T>
void line_winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                   T* ws) {
  // (planned where line_weight_tiles_pay: never an empty batch or output)
  const ConvGeometry& g = plan.g;
  run_weight(layout<T>(g, ConvPass::kBackwardWeight, plan.threads), x, grad_y, grad_w, ws);
}

template <typename T>
void line_winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                                 T* ws) {
  const ConvGeometry& g = plan.g;
  if (g.n * g.out_spatial() == 0) {  // no workspace: nothing reaches grad_x
    std::fill(grad_x, grad_x + g.n * g.c * g.in_spatial(), T(0));
    return;
  }
  const Layout l = layout<T>(g, ConvPass::kBackwardData, plan.threads);
  transform_weights(g, ConvPass::kBackwardData, l, w, ws);
  run(l, grad_y, static_cast<const T*>(nullptr), grad_x, ws);
}

#define FASTCONV_INSTANTIATE(T)                                                                \
  template void line_winograd_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*,    \
                                         T*);                                                  \
  template void line_winograd_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*); \
  template void line_winograd_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
