// Winograd F(2x2,3x3) at stride 2 (winograd_stride2.h).
#include "algo/winograd_stride2.h"

#include <algorithm>
#include <cstring>

#include "algo/plane_transpose.h"
#include "fastconv/parallel.h"
#include "gemm/cache_sizes.h"
#include "gemm/gemm.h"
#include "gemm/kernel_table.h"
#include "ukernels/winograd/stride2_ukernels.h"

namespace fastconv::algo {
namespace {

constexpr int64_t kPoints = 5;    // per dim
constexpr int64_t kTilePoints = kPoints * kPoints;
constexpr int64_t kDistinct = 16;  // distinct weight points (4 x 4: points 3 and 4 are both g1)
constexpr int kSame[kPoints] = {0, 1, 2, 3, 3};  // a point's distinct weight point per dim

// Offsets (elements) into the workspace and the blocking. Two schedules:
//  - fused (the transformed weights fit in half the L2): per image, blocks of tb tiles, each
//    one thread's from its points to its outputs, in the thread's slot;
//  - staged (larger weights: 16 C K elements, 7 MiB on Inception's 288 -> 384, streamed from
//    memory once per block made the path slower than the direct sum): chunks of tc tiles (whole
//    images, or part of one), each in three parallel stages: every point of the chunk's tiles
//    (V: point, tile, C), the 25 GEMMs split over (point, panel) (M: point, tile, K; a point's
//    rows stay in cache across one thread's panels), the outputs.
// The weight gradient is staged: per chunk the input's points (V), grad_y's (M: the output
// transform's transpose) and the 25 GEMMs V^T M summed over the tiles into the points' gradients
// (u: point, K, C), turned into grad_w at the end; ycl then holds grad_y channels-last.
struct Layout {
  int64_t th, tw, tiles;  // tiles of 2x2 outputs per column, per row, per image
  int64_t rows, cols;     // the padded channels-last input: 4 * th + 1 rows, 4 * tw + 1 columns
  int64_t nr, panels;     // the GEMM's B panels over output channels
  bool fused;
  bool banded;         // fused, in blocks along tile rows with their own input and output windows
  int64_t tb, blocks;  // fused: tiles per block, blocks per image (banded: per tile row); staged:
                       // tiles per output run
  int64_t tc;          // staged: tiles per chunk
  int64_t slots;       // scratch slots (one per concurrent block or run)
  int64_t packed;      // a slot's kernels transposed (transform_weights), from the slot's start
  int64_t xcl, ycl, u, v, m, scratch, slot, end;
  int64_t window, outs;  // banded: a slot's input window and output block, from its start
};

// A chunk's points and products (V and M). res3's 3x3 / 2 on 112x112 (784 tiles, 2 threads,
// median ms; chunks of 4 / 8 / 16 MiB): 4.53-4.64 / 4.45-4.60 / 4.68-4.87; on 56x56 and
// Inception's 288 -> 384 35x35 (one chunk at 8 MiB) they tie.
constexpr int64_t kStagedChunkBytes = 8 << 20;

// A banded block's window row: the columns of tb tiles (4 tb + 1) and up to 7 more, which the
// fill transposes where the input has them so that its rows are whole 8-column tiles.
inline int64_t window_row(int64_t tb, int64_t c) { return (4 * tb + 8) * c; }

template <typename T>
Layout layout(const ConvGeometry& g, ConvPass pass, int threads) {
  Layout l{};
  const bool weight = pass == ConvPass::kBackwardWeight;
  const int64_t c = g.c, k = g.k, elem = sizeof(T);
  l.th = (g.out[1] + 1) / 2;
  l.tw = (g.out[2] + 1) / 2;
  l.tiles = l.th * l.tw;
  l.rows = 4 * l.th + 1;
  l.cols = 4 * l.tw + 1;
  l.nr = gemm::gemm_kernel<T>().nr;
  l.panels = (k + l.nr - 1) / l.nr;
  const int64_t t = std::max(1, threads), l2 = gemm::cache_sizes().l2;
  const int64_t u_elems = weight ? kTilePoints * c * k : l.panels * kDistinct * c * l.nr;
  const int64_t per_tile = kTilePoints * (c + k);
  l.fused = !weight && u_elems * elem <= l2 / 2;
  // Banded where an image's whole channels-last copies (input and output) would not stay in the
  // L2: each block then fills its own input window from x and transposes its outputs into y, so
  // neither copy makes a round trip through memory (see run_banded).
  l.banded = l.fused && (l.rows * l.cols * c + g.out_spatial() * k) * elem > l2;
  if (l.banded) {
    // A block's window (5 rows of 4 columns per tile), points, products and output block in half
    // the L2; a tile row's blocks of nearly equal size.
    const int64_t banded_tile = per_tile + 4 * k + kPoints * 4 * c;
    const int64_t fit = std::max<int64_t>(8, l2 / 2 / (elem * banded_tile));
    l.blocks = (l.tw + fit - 1) / fit;
    // Whole 8-column tiles of the transpose kernel in each output row (2 tb positions).
    l.tb = std::min(l.tw, ((l.tw + l.blocks - 1) / l.blocks + 3) / 4 * 4);
    l.blocks = (l.tw + l.tb - 1) / l.tb;
    l.slots = t;
  } else if (l.fused) {
    // A block's points, products and outputs in half the L2; the blocks a multiple of the
    // threads, of nearly equal size.
    const int64_t fit = std::max<int64_t>(8, l2 / 2 / (elem * (per_tile + 4 * k)));
    l.blocks = std::max<int64_t>(1, (l.tiles + fit - 1) / fit);
    l.blocks = std::max<int64_t>(1, std::min(l.tiles, (l.blocks + t - 1) / t * t));
    l.tb = (l.tiles + l.blocks - 1) / l.blocks;
    l.slots = std::min(t, l.blocks);
  } else {
    l.tc = std::max<int64_t>(16, kStagedChunkBytes / (elem * per_tile));
    l.tc = std::min(l.tc, g.n * l.tiles);
    if (l.tc > l.tiles) l.tc = l.tc / l.tiles * l.tiles;  // whole images
    l.tb = 16;
    l.slots = t;
  }
  l.xcl = 0;
  l.ycl = l.xcl + (l.banded ? 0 : (l.rows * l.cols * c + 15) / 16 * 16);
  l.u = l.ycl + (l.banded ? 0 : (g.out_spatial() * k + 15) / 16 * 16);
  l.v = l.u + u_elems;
  l.m = l.v + (l.fused ? 0 : kTilePoints * l.tc * c);
  l.scratch = l.m + (l.fused ? 0 : kTilePoints * l.tc * k);
  l.slot = (l.fused ? per_tile * l.tb : 0) + 4 * k;  // a tile's 2x2 outputs (store_outputs)
  if (l.banded) {
    l.window = (l.slot + 15) / 16 * 16;
    l.outs = l.window + (kPoints * window_row(l.tb, c) + 15) / 16 * 16;
    l.slot = l.outs + 4 * l.tb * k;
  }
  l.packed = l.slot;
  // The weight gradient: a zero run of K, later grad_w's 9 tap rows of C.
  l.slot = weight ? std::max(k, 9 * c) : l.slot + 9 * c * l.nr;
  l.slot = (l.slot + 15) / 16 * 16;
  l.end = l.scratch + l.slots * l.slot;
  return l;
}

// The transformed weights as B panels: u[((panel * 16 + d) * C + c) * nr + lane] is distinct
// point d of kernel (panel * nr + lane, c) (point (a, b) is d = 4 * kSame[a] + kSame[b]). Per
// panel, its kernels transposed to (channel, tap, lane) in the slot, then each channel's points
// at once over the lanes (kernel by kernel, strided stores took a third of res3's 3x3 / 2 time).
template <typename T>
void transform_weights(const ConvGeometry& g, const Layout& l, const T* w, T* ws) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const Stride2Kernels<T>& kern = stride2_kernels<T>();
  const int64_t c = g.c, k = g.k, nr = l.nr;
  const bool flip = g.mode == ConvMode::kConv;
  const int64_t slots = std::min(l.slots, l.panels);
  parallel_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* packed = ws + l.scratch + s * l.slot + l.packed;
      for (int64_t p = l.panels * s / slots; p < l.panels * (s + 1) / slots; ++p) {
        const int64_t col0 = p * nr, nc = std::min(nr, k - col0);
        if (nc < nr) std::fill(packed, packed + 9 * c * nr, T(0));
        tr.transpose(w + col0 * c * 9, c * 9, nc, c * 9, static_cast<const T*>(nullptr), packed,
                     nr);
        T* u = ws + l.u + p * kDistinct * c * nr;
        for (int64_t cc = 0; cc < c; ++cc)
          kern.weights(packed + cc * 9 * nr, nr, flip, u + cc * nr, c * nr);
      }
    }
  });
}

// x[n] into the padded channels-last copy: row Y, column X hold input (Y - pad_top, X -
// pad_left), zero outside the input (rows and columns past the tiles' reach are not copied).
template <typename T>
void fill_input(const ConvGeometry& g, const Layout& l, const T* x, T* xcl) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t c = g.c, h = g.in[1], wd = g.in[2], pt = g.pad_lo[1], pl = g.pad_lo[2];
  const int64_t row_elems = l.cols * c;
  const int64_t cols_in = std::max<int64_t>(0, std::min(wd, l.cols - pl));
  parallel_for(l.rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* row = xcl + r * row_elems;
      const int64_t iy = r - pt;
      if (iy < 0 || iy >= h || cols_in == 0) {
        std::fill(row, row + row_elems, T(0));
        continue;
      }
      std::fill(row, row + pl * c, T(0));
      std::fill(row + (pl + cols_in) * c, row + row_elems, T(0));
      tr.transpose(x + iy * wd, h * wd, c, cols_in, static_cast<const T*>(nullptr), row + pl * c,
                   c);
    }
  });
}

// The 25 points of an image's tiles [t0, t0 + nt): point q of tile t0 + i at v + (q * ts + i) * C.
template <typename T>
void input_points(const ConvGeometry& g, const Layout& l, const T* xcl, int64_t t0, int64_t nt,
                  T* v, int64_t ts) {
  const Stride2Kernels<T>& kern = stride2_kernels<T>();
  const int64_t c = g.c, row_elems = l.cols * c;
  for (int64_t i = 0; i < nt; ++i) {
    const int64_t t = t0 + i, ty = t / l.tw, tx = t % l.tw;
    kern.input(xcl + 4 * ty * row_elems + 4 * tx * c, row_elems, c, v + i * c, ts * c);
  }
}

// Tiles [t0, t0 + nt)'s 2x2 outputs from their products (point q of tile i at m + (q * ts + i)
// * K) into the channels-last ycl (those inside the output), through the slot's buffer yb.
template <typename T>
void store_outputs(const ConvGeometry& g, const Layout& l, const T* m, int64_t ts, int64_t t0,
                   int64_t nt, T* yb, T* ycl) {
  const Stride2Kernels<T>& kern = stride2_kernels<T>();
  const int64_t oh = g.out[1], ow = g.out[2], k = g.k;
  for (int64_t i = 0; i < nt; ++i) {
    kern.output(m + i * k, ts * k, k, yb);
    const int64_t t = t0 + i, ty = t / l.tw, tx = t % l.tw;
    for (int64_t dy = 0; dy < 2 && 2 * ty + dy < oh; ++dy)
      for (int64_t dx = 0; dx < 2 && 2 * tx + dx < ow; ++dx)
        std::memcpy(ycl + ((2 * ty + dy) * ow + 2 * tx + dx) * k, yb + (2 * dy + dx) * k,
                    static_cast<size_t>(k) * sizeof(T));
  }
}

// M = V U for point q over `rows` tiles (V's rows C apart, M's K apart) and the output channels
// of panel p: micro-kernel calls of nearly equal numbers of rows (48: 4 x 12, not 3 x 14 + 6).
template <typename T>
void point_products(const ConvGeometry& g, const Layout& l, const T* v, const T* u, int64_t q,
                    int64_t rows, int64_t p, T* m) {
  const gemm::GemmKernel<T>& kern = gemm::gemm_kernel<T>();
  const int64_t c = g.c, k = g.k, col0 = p * l.nr, nc = std::min(l.nr, k - col0);
  const int64_t d = 4 * kSame[q / kPoints] + kSame[q % kPoints];
  const T* b = u + (p * kDistinct + d) * c * l.nr;
  const int64_t calls = (rows + kern.rows_a - 1) / kern.rows_a;
  for (int64_t i = 0; i < calls; ++i) {
    const int64_t r0 = rows * i / calls, r1 = rows * (i + 1) / calls;
    kern.fn_rows_a(c, v + r0 * c, c, b, l.nr, m + r0 * k + col0, k, r1 - r0, nc, T(1), T(0));
  }
}

template <typename T>
void run_fused(const ConvGeometry& g, const Layout& l, const T* x, const T* bias, T* y, T* ws) {
  const int64_t c = g.c, k = g.k, out_sp = g.out_spatial();
  T* xcl = ws + l.xcl;
  T* ycl = ws + l.ycl;
  const T* u = ws + l.u;
  for (int64_t n = 0; n < g.n; ++n) {
    fill_input(g, l, x + n * c * g.in_spatial(), xcl);
    parallel_for(l.slots, 1, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        T* v = ws + l.scratch + s * l.slot;
        T* m = v + kTilePoints * l.tb * c;
        T* yb = m + kTilePoints * l.tb * k;
        for (int64_t b = l.blocks * s / l.slots; b < l.blocks * (s + 1) / l.slots; ++b) {
          const int64_t t0 = b * l.tb, nt = std::min(l.tb, l.tiles - t0);
          if (nt <= 0) continue;
          input_points(g, l, xcl, t0, nt, v, l.tb);
          for (int64_t p = 0; p < l.panels; ++p)
            for (int64_t q = 0; q < kTilePoints; ++q)
              point_products(g, l, v + q * l.tb * c, u, q, nt, p, m + q * l.tb * k);
          store_outputs(g, l, m, l.tb, t0, nt, yb, ycl);
        }
      }
    });
    transpose_into(static_cast<const T*>(ycl), out_sp, k, bias, y + n * k * out_sp);
  }
}

// A banded block's window (Layout::banded): the 5 input rows of image n's tiles [tx0, tx0 + nt)
// in tile row ty, channels-last and zero-padded as fill_input's copy, rows window_row() apart.
template <typename T>
void fill_window(const ConvGeometry& g, const Layout& l, const T* x, int64_t n, int64_t ty,
                 int64_t tx0, int64_t nt, T* win) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t c = g.c, h = g.in[1], wd = g.in[2], plane = g.in_spatial();
  const int64_t wc = 4 * nt + 1, wr = window_row(l.tb, c), x0 = 4 * tx0 - g.pad_lo[2];
  // Window column j is input column x0 + j: [jlo, jhi) lie inside the input.
  const int64_t jlo = std::clamp<int64_t>(-x0, 0, wc), jhi = std::clamp<int64_t>(wd - x0, jlo, wc);
  // Columns transposed: rounded up to whole 8-column tiles of the kernel where the row has them
  // (the scalar edges took 7% of YOLOv5s's 32 -> 64 on 320x320).
  const int64_t whole = (jhi - jlo + 7) / 8 * 8;
  const int64_t cols = x0 + jlo + whole <= wd ? whole : jhi - jlo;
  for (int64_t r = 0; r < kPoints; ++r) {
    T* row = win + r * wr;
    const int64_t iy = 4 * ty + r - g.pad_lo[1];
    if (iy < 0 || iy >= h || jhi == jlo) {
      std::fill(row, row + wc * c, T(0));
      continue;
    }
    std::fill(row, row + jlo * c, T(0));
    std::fill(row + jhi * c, row + wc * c, T(0));
    // 8 channels per call: the kernel sweeps along the columns for each 8 source rows, 8
    // streams at once (all 32 of YOLOv5s's, their planes 400 KiB apart, shared one L1 set).
    const T* src = x + n * c * plane + iy * wd + x0 + jlo;
    for (int64_t cc = 0; cc < c; cc += 8)
      tr.transpose(src + cc * plane, plane, std::min<int64_t>(8, c - cc), cols,
                   static_cast<const T*>(nullptr), row + jlo * c + cc, c);
  }
}

// run_fused for images whose channels-last copies would not stay in the L2 (Layout::banded): the
// batch's blocks of tb tiles along a tile row shared out over the threads in contiguous runs (a
// thread's next block is the one to the right, or the row below). Each block fills its own
// window from x (fill_window), takes its tiles from points to outputs, and transposes its 2
// output rows into y with the bias. Whole-image copies went to memory and back: YOLOv5s's 32 ->
// 64 on 320x320 (13 MiB of padded input, 6.5 MiB of output) took 6.4 ms against 5.7 for the
// same outputs as 16 images of 80x80 (AVX2, Zen 4, 2 threads); banded, 5.4.
template <typename T>
void run_banded(const ConvGeometry& g, const Layout& l, const T* x, const T* bias, T* y, T* ws) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const Stride2Kernels<T>& kern = stride2_kernels<T>();
  const int64_t c = g.c, k = g.k, oh = g.out[1], ow = g.out[2], out_sp = g.out_spatial();
  const int64_t per_image = l.th * l.blocks, total = g.n * per_image;
  const T* u = ws + l.u;
  parallel_for(l.slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* v = ws + l.scratch + s * l.slot;
      T* m = v + kTilePoints * l.tb * c;
      T* yb = m + kTilePoints * l.tb * k;
      T* win = v + l.window;
      T* outs = v + l.outs;  // output row dy of the block at outs + dy * 2 tb K, channels-last
      for (int64_t b = total * s / l.slots; b < total * (s + 1) / l.slots; ++b) {
        const int64_t n = b / per_image, ty = b % per_image / l.blocks;
        const int64_t tx0 = b % l.blocks * l.tb, nt = std::min(l.tb, l.tw - tx0);
        fill_window(g, l, x, n, ty, tx0, nt, win);
        for (int64_t i = 0; i < nt; ++i)
          kern.input(win + 4 * i * c, window_row(l.tb, c), c, v + i * c, l.tb * c);
        for (int64_t p = 0; p < l.panels; ++p)
          for (int64_t q = 0; q < kTilePoints; ++q)
            point_products(g, l, v + q * l.tb * c, u, q, nt, p, m + q * l.tb * k);
        for (int64_t i = 0; i < nt; ++i) {
          kern.output(m + i * k, l.tb * k, k, yb);
          std::memcpy(outs + 2 * i * k, yb, static_cast<size_t>(2 * k) * sizeof(T));
          std::memcpy(outs + (2 * l.tb + 2 * i) * k, yb + 2 * k,
                      static_cast<size_t>(2 * k) * sizeof(T));
        }
        const int64_t positions = std::min(2 * nt, ow - 2 * tx0);
        for (int64_t dy = 0; dy < 2 && 2 * ty + dy < oh; ++dy)
          tr.transpose(outs + dy * 2 * l.tb * k, k, positions, k, bias,
                       y + n * k * out_sp + (2 * ty + dy) * ow + 2 * tx0, out_sp);
      }
    }
  });
}

// fn(slot, i0, ni) over [0, count) in runs of at most tb, each of the slots a contiguous share.
template <typename Fn>
void over_runs(const Layout& l, int64_t count, const Fn& fn) {
  const int64_t slots = std::max<int64_t>(1, std::min(l.slots, count));
  parallel_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t a = count * s / slots, b = count * (s + 1) / slots;
      for (int64_t i0 = a; i0 < b; i0 += l.tb) fn(s, i0, std::min(l.tb, b - i0));
    }
  });
}

// fn(n, a, b) for each image n with tiles in the chunk [g0, g1) of the batch's tiles: its global
// tiles [a, b).
template <typename Fn>
void for_each_image(const Layout& l, int64_t g0, int64_t g1, const Fn& fn) {
  for (int64_t n = g0 / l.tiles; n * l.tiles < g1; ++n)
    fn(n, std::max(g0, n * l.tiles), std::min(g1, (n + 1) * l.tiles));
}

template <typename T>
void run_staged(const ConvGeometry& g, const Layout& l, const T* x, const T* bias, T* y, T* ws) {
  const int64_t c = g.c, k = g.k, out_sp = g.out_spatial(), total = g.n * l.tiles;
  T* xcl = ws + l.xcl;
  T* ycl = ws + l.ycl;
  T* v = ws + l.v;
  T* m = ws + l.m;
  const T* u = ws + l.u;
  int64_t copied = -1;  // the image in xcl (one that spans chunks is copied once)
  for (int64_t g0 = 0; g0 < total; g0 += l.tc) {
    const int64_t g1 = std::min(total, g0 + l.tc), rows = g1 - g0;
    // Every point of the chunk's tiles, image by image.
    for_each_image(l, g0, g1, [&](int64_t n, int64_t a, int64_t b) {
      if (n != copied) fill_input(g, l, x + n * c * g.in_spatial(), xcl);
      copied = n;
      over_runs(l, b - a, [&](int64_t, int64_t i0, int64_t ni) {
        input_points(g, l, xcl, a - n * l.tiles + i0, ni, v + (a - g0 + i0) * c, rows);
      });
    });
    // The 25 products, (point, panel) by (point, panel).
    parallel_for(kTilePoints * l.panels, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t q = i / l.panels, p = i % l.panels;
        point_products(g, l, v + q * rows * c, u, q, rows, p, m + q * rows * k);
      }
    });
    // The outputs, image by image; an image's y once its last tile is in.
    for_each_image(l, g0, g1, [&](int64_t n, int64_t a, int64_t b) {
      over_runs(l, b - a, [&](int64_t s, int64_t i0, int64_t ni) {
        store_outputs(g, l, m + (a - g0 + i0) * k, rows, a - n * l.tiles + i0, ni,
                      ws + l.scratch + s * l.slot, ycl);
      });
      if (b == (n + 1) * l.tiles)
        transpose_into(static_cast<const T*>(ycl), out_sp, k, bias, y + n * k * out_sp);
    });
  }
}

// grad_w from the points' gradients u[(q * K + k) * C + c]: per dim G^T's rows (p0 + p1,
// p3 + p4, p1 + p2) for taps 0, 1, 2 (reversed for true convolution). Per output channel the 9
// taps' rows over the input channels first (vectorised along the points' contiguous rows, in the
// slot), then interleaved into grad_w's (channel, tap) order (element by element from the
// points, the strided reads took 28% of res3's weight gradient).
template <typename T>
void weight_from_points(const ConvGeometry& g, const Layout& l, const T* u, T* ws, T* grad_w) {
  const int64_t c = g.c, k = g.k, plane = k * c;
  static constexpr int kRows[3][2] = {{0, 1}, {3, 4}, {1, 2}};
  const bool flip = g.mode == ConvMode::kConv;
  const int64_t slots = std::min(l.slots, k);
  parallel_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* taps = ws + l.scratch + s * l.slot;
      for (int64_t kk = k * s / slots; kk < k * (s + 1) / slots; ++kk) {
        const T* at = u + kk * c;
        for (int t = 0; t < 9; ++t) {
          const int* ra = kRows[t / 3];
          const int* rb = kRows[t % 3];
          const T* __restrict p0 = at + (ra[0] * kPoints + rb[0]) * plane;
          const T* __restrict p1 = at + (ra[0] * kPoints + rb[1]) * plane;
          const T* __restrict p2 = at + (ra[1] * kPoints + rb[0]) * plane;
          const T* __restrict p3 = at + (ra[1] * kPoints + rb[1]) * plane;
          T* __restrict row = taps + (flip ? 8 - t : t) * c;
          for (int64_t cc = 0; cc < c; ++cc) row[cc] = (p0[cc] + p1[cc]) + (p2[cc] + p3[cc]);
        }
        T* dst = grad_w + kk * c * 9;
        for (int64_t cc = 0; cc < c; ++cc)
          for (int t = 0; t < 9; ++t) dst[cc * 9 + t] = taps[t * c + cc];
      }
    }
  });
}

// grad_y's 25 points of an image's tiles [t0, t0 + nt) from its channels-last copy gycl: point q
// of tile i at m + (q * ts + i) * K; outputs past grad_y (partial tiles) read the zero run.
template <typename T>
void grad_points(const ConvGeometry& g, const Layout& l, const T* gycl, const T* zero, int64_t t0,
                 int64_t nt, T* m, int64_t ts) {
  const Stride2Kernels<T>& kern = stride2_kernels<T>();
  const int64_t oh = g.out[1], ow = g.out[2], k = g.k;
  for (int64_t i = 0; i < nt; ++i) {
    const int64_t t = t0 + i, ty = t / l.tw, tx = t % l.tw;
    const T* y[2][2];
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        const int64_t oy = 2 * ty + dy, ox = 2 * tx + dx;
        y[dy][dx] = oy < oh && ox < ow ? gycl + (oy * ow + ox) * k : zero;
      }
    kern.grad(y[0][0], y[0][1], y[1][0], y[1][1], k, m + i * k, ts * k);
  }
}

template <typename T>
void run_weight(const ConvGeometry& g, const Layout& l, const T* x, const T* grad_y, T* grad_w,
                T* ws) {
  const int64_t c = g.c, k = g.k, out_sp = g.out_spatial(), total = g.n * l.tiles;
  T* xcl = ws + l.xcl;
  T* gycl = ws + l.ycl;
  T* v = ws + l.v;
  T* m = ws + l.m;
  T* u = ws + l.u;
  std::fill(ws + l.scratch, ws + l.scratch + l.slots * l.slot, T(0));  // the zero runs
  int64_t copied = -1;  // the image in xcl and gycl (one that spans chunks is copied once)
  for (int64_t g0 = 0; g0 < total; g0 += l.tc) {
    const int64_t g1 = std::min(total, g0 + l.tc), rows = g1 - g0;
    for_each_image(l, g0, g1, [&](int64_t n, int64_t a, int64_t b) {
      if (n != copied) {
        fill_input(g, l, x + n * c * g.in_spatial(), xcl);
        transpose_to_positions(grad_y + n * k * out_sp, k, out_sp, gycl);
      }
      copied = n;
      over_runs(l, b - a, [&](int64_t s, int64_t i0, int64_t ni) {
        const int64_t t0 = a - n * l.tiles + i0, at = a - g0 + i0;
        input_points(g, l, xcl, t0, ni, v + at * c, rows);
        grad_points(g, l, gycl, ws + l.scratch + s * l.slot, t0, ni, m + at * k, rows);
      });
    });
    // u[q] (K x C) += M[q]^T V[q], the sum over the chunk's tiles.
    gemm::gemm_batched<T>(kTilePoints, k, c, rows, T(1), gemm::MatrixRef<T>{m, 1, k}, rows * k,
                          gemm::MatrixRef<T>{v, c, 1}, rows * c, g0 == 0 ? T(0) : T(1), u, c,
                          c * k);
  }
  weight_from_points(g, l, u, ws, grad_w);
}

}  // namespace

bool stride2_winograd_serves(const ConvGeometry& g, ConvPass pass) {
  if (pass == ConvPass::kBackwardData || g.rank != 2 || g.groups != 1) return false;
  if (g.c < kStride2WinogradMinChannels) return false;
  for (int d = 1; d < 3; ++d)
    if (g.kernel[d] != 3 || g.stride[d] != 2 || g.dilation[d] != 1 || g.pad_lo[d] < 0)
      return false;
  // The padded channels-last input and the channels-last output of an image are whole in the
  // workspace: past kStride2MaxImageElems the stacked phases' windows keep the layer.
  const int64_t th = (g.out[1] + 1) / 2, tw = (g.out[2] + 1) / 2;
  if ((4 * th + 1) * (4 * tw + 1) * g.c + g.out_spatial() * g.k > kStride2MaxImageElems)
    return false;
  // The weight gradient's GEMMs sum over the tiles: fewer than kStride2WeightMinTiles and each
  // writes its K x C points for too short a depth (256 -> 512 on 7x7 outputs, 16 tiles: 10.8 ms
  // against implicit GEMM's 0.62); the stacked phases (or implicit GEMM) keep those.
  if (pass == ConvPass::kBackwardWeight)
    return g.n * th * tw >= kStride2WeightMinTiles;
  return true;
}

bool stride2_winograd_banded(const ConvGeometry& g, ConvPass pass, DType t, int threads) {
  return t == DType::kFloat64 ? layout<double>(g, pass, threads).banded
                              : layout<float>(g, pass, threads).banded;
}

int64_t stride2_winograd_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t,
                                         int threads) {
  const bool f64 = t == DType::kFloat64;
  const Layout l = f64 ? layout<double>(g, pass, threads) : layout<float>(g, pass, threads);
  return checked_product({l.end, dtype_size(t)}, "winograd workspace");
}

template <typename T>
void stride2_winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                              T* ws) {
  const ConvGeometry& g = plan.g;
  if (g.n * g.out_spatial() == 0) return;
  const Layout l = layout<T>(g, ConvPass::kForward, plan.threads);
  transform_weights(g, l, w, ws);
  if (l.banded)
    run_banded(g, l, x, bias, y, ws);
  else if (l.fused)
    run_fused(g, l, x, bias, y, ws);
  else
    run_staged(g, l, x, bias, y, ws);
}

template <typename T>
void stride2_winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y,
                                      T* grad_w, T* ws) {
  // (stride2_winograd_serves asks for 128+ tiles: never an empty batch or output)
  const ConvGeometry& g = plan.g;
  run_weight(g, layout<T>(g, ConvPass::kBackwardWeight, plan.threads), x, grad_y, grad_w, ws);
}

#define FASTCONV_INSTANTIATE(T)                                                             \
  template void stride2_winograd_forward<T>(const ConvPlan&, const T*, const T*, const T*, \
                                            T*, T*);           \
  template void stride2_winograd_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, \
                                                    T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
