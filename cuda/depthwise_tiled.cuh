// Shared-memory tiled depthwise kernels for 1-D and 2-D convolutions (cuda/depthwise.cu picks
// them when a tile fits; the generic per-element kernels there run the rest). A block owns a
// tile of 512 positions of one plane: it stages the input region the tile reads (zero-filled at
// the padding) and the plane's taps in shared memory once, then every thread accumulates all
// taps of its two positions from shared memory, so a 31x31 kernel reads global memory once per
// input element instead of once per tap. Offsets inside a plane are 32-bit (the launcher checks
// that planes stay below 2^31 elements) and the tile's row and column come from one division per
// staged element, not 64-bit div/mod per tap. The weight gradient keeps one block per output
// channel, summing over images and tiles in a fixed order (deterministic, no atomics).
#pragma once
#include <cstdint>

#include "conv_kernels.h"
#include "dtype.cuh"
#include "launch.cuh"

namespace fastconv::cuda {

// Positions per tile (two per thread of a 256-thread block), staged bytes and taps.
constexpr int kTilePositions = 512;
constexpr int kTileThreads = 256;
constexpr int kTileStageBytes = 36 * 1024;
constexpr int kTileMaxTaps = 1024;

// One tile shape of a plane: tw columns x th rows (th * tw = kTilePositions); the input region a
// tile reads (ih x iw: of x for forward and weight, of grad_y for backward data); and the 2-D
// window as 32-bit values (kernel, stride, dilation, low padding; input and output extents).
struct DwTiles {
  int th, tw;              // tile rows and columns
  int tiles_h, tiles_w;    // tiles per plane
  int64_t planes, blocks;  // planes (images x channels) and planes x tiles
  int ih, iw;              // staged region
  int kh, kw, sh, sw, dh, dw, ph, pw;
  int h, w, oh, ow;
};

// Rows and columns of the plane's grid the tile starting at (y0, x0) covers, for a position
// index o < kTilePositions of the tile.
__device__ __forceinline__ void tile_position(const DwTiles& t, int o, int* r, int* col) {
  *r = o / t.tw;
  *col = o - *r * t.tw;
}

// Item `item` of the (plane, tile) sequence a kernel walks: its plane and its tile's first row
// and column.
struct TileOrigin {
  int64_t plane;
  int y0, x0;
};
__device__ __forceinline__ TileOrigin tile_origin(const DwTiles& t, int64_t item) {
  const int tiles = t.tiles_h * t.tiles_w;
  const int64_t plane = item / tiles;
  const int tile = static_cast<int>(item - plane * tiles);
  return {plane, (tile / t.tiles_w) * t.th, (tile % t.tiles_w) * t.tw};
}

// Stages rows [y0, y0 + rows) x columns [x0, x0 + cols) of a plane (h x w, row-major) into
// dst (rows x cols), zero outside the plane. Every thread of the block calls it.
template <typename T>
__device__ __forceinline__ void stage_region(const T* __restrict__ plane, int h, int w, int y0,
                                             int x0, int rows, int cols, T* dst) {
  const int n = rows * cols;
  for (int e = threadIdx.x; e < n; e += blockDim.x) {
    const int r = e / cols, col = e - r * cols;
    const int y = y0 + r, x = x0 + col;
    dst[e] = (static_cast<unsigned>(y) < static_cast<unsigned>(h) &&
              static_cast<unsigned>(x) < static_cast<unsigned>(w))
                 ? plane[y * w + x]
                 : zero_of<T>();
  }
}

// Stages the taps of output channel k as accumulator values, reversed for mode="conv".
template <typename T>
__device__ __forceinline__ void stage_taps(const ConvParams& p, const T* __restrict__ w,
                                           int64_t k, acc_t<T>* dst) {
  const int taps = static_cast<int>(p.taps);
  for (int t = threadIdx.x; t < taps; t += blockDim.x) {
    dst[t] = to_acc(w[k * p.taps + (p.flip ? taps - 1 - t : t)]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    depthwise_forward_tiled_kernel(ConvParams p, DwTiles t, const T* __restrict__ x,
                                   const T* __restrict__ w, const T* __restrict__ bias,
                                   T* __restrict__ y) {
  using Acc = acc_t<T>;
  __shared__ __align__(16) unsigned char stage_bytes[kTileStageBytes];
  __shared__ Acc taps_s[kTileMaxTaps];
  T* xs = reinterpret_cast<T*>(stage_bytes);
  for (int64_t blk = blockIdx.x; blk < t.blocks; blk += gridDim.x) {
    const TileOrigin at = tile_origin(t, blk);
    const int64_t plane = at.plane;
    const int oy0 = at.y0, ox0 = at.x0;
    const int64_t k = plane % p.k, b = plane / p.k, c = k / p.kg;
    __syncthreads();  // the previous tile's readers are done with the stage
    stage_region(x + (b * p.c + c) * p.in_sp, t.h, t.w, oy0 * t.sh - t.ph, ox0 * t.sw - t.pw,
                 t.ih, t.iw, xs);
    stage_taps(p, w, k, taps_s);
    __syncthreads();
    int r0, c0, r1, c1;
    tile_position(t, threadIdx.x, &r0, &c0);
    tile_position(t, threadIdx.x + kTileThreads, &r1, &c1);
    const T* in0 = xs + r0 * t.sh * t.iw + c0 * t.sw;
    const T* in1 = xs + r1 * t.sh * t.iw + c1 * t.sw;
    Acc s0 = 0, s1 = 0;
    for (int i = 0; i < t.kh; ++i) {
      const int row = i * t.dh * t.iw;
      const Acc* wrow = taps_s + i * t.kw;
      for (int j = 0; j < t.kw; ++j) {
        const Acc wv = wrow[j];
        const int off = row + j * t.dw;
        s0 = fma(to_acc(in0[off]), wv, s0);
        s1 = fma(to_acc(in1[off]), wv, s1);
      }
    }
    const Acc bv = bias ? to_acc(bias[k]) : Acc(0);
    T* yp = y + plane * p.out_sp;
    const int y0 = oy0 + r0, x0 = ox0 + c0, y1 = oy0 + r1, x1 = ox0 + c1;
    if (y0 < t.oh && x0 < t.ow) yp[y0 * t.ow + x0] = from_acc<T>(bias ? s0 + bv : s0);
    if (y1 < t.oh && x1 < t.ow) yp[y1 * t.ow + x1] = from_acc<T>(bias ? s1 + bv : s1);
  }
}

// grad_x position (y, x) of the tile: the sum over taps whose grad_y position
// (y + pad - tap * dil) / stride is whole and inside, read from the staged region that starts
// at grad_y (ry0, rx0).
template <typename Acc, typename T>
__device__ __forceinline__ Acc dw_backward_data_at(const DwTiles& t, const T* dys,
                                                   const Acc* taps_s, int y, int x, int ry0,
                                                   int rx0) {
  const int qy = y + t.ph, qx = x + t.pw;
  Acc s = 0;
  for (int i = 0; i < t.kh; ++i) {
    const int u = qy - i * t.dh;
    if (u < 0) break;  // more negative for every later tap
    const int oy = t.sh == 1 ? u : u / t.sh;
    if (oy * t.sh != u || oy >= t.oh) continue;
    const T* row = dys + (oy - ry0) * t.iw;
    const Acc* wrow = taps_s + i * t.kw;
    for (int j = 0; j < t.kw; ++j) {
      const int v = qx - j * t.dw;
      if (v < 0) break;
      const int ox = t.sw == 1 ? v : v / t.sw;
      if (ox * t.sw != v || ox >= t.ow) continue;
      s = fma(to_acc(row[ox - rx0]), wrow[j], s);
    }
  }
  return s;
}

// The grad_y region a grad_x tile at (y0, x0) reads, along one dim: first index and count.
__host__ __device__ inline void dw_data_region(int y0, int rows, int pad, int kernel, int dil,
                                               int stride, int out, int* first, int* count) {
  const int lo = y0 + pad - (kernel - 1) * dil;  // smallest grad_y numerator
  const int hi = y0 + rows - 1 + pad;            // largest
  const int a = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  const int b = (hi / stride < out - 1) ? hi / stride : out - 1;
  *first = a;
  *count = b >= a ? b - a + 1 : 0;
}

template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    depthwise_backward_data_tiled_kernel(ConvParams p, DwTiles t, const T* __restrict__ dy,
                                         const T* __restrict__ w, const T* __restrict__ bias,
                                         T* __restrict__ dx) {
  using Acc = acc_t<T>;
  __shared__ __align__(16) unsigned char stage_bytes[kTileStageBytes];
  __shared__ Acc taps_s[kTileMaxTaps];
  T* dys = reinterpret_cast<T*>(stage_bytes);
  for (int64_t blk = blockIdx.x; blk < t.blocks; blk += gridDim.x) {
    const TileOrigin at = tile_origin(t, blk);
    const int64_t plane = at.plane;  // (image, input channel)
    const int y0 = at.y0, x0 = at.x0;
    const int64_t c = plane % p.c, b = plane / p.c;
    int ry0, rows, rx0, cols;
    dw_data_region(y0, t.th, t.ph, t.kh, t.dh, t.sh, t.oh, &ry0, &rows);
    dw_data_region(x0, t.tw, t.pw, t.kw, t.dw, t.sw, t.ow, &rx0, &cols);
    int r0, c0, r1, c1;
    tile_position(t, threadIdx.x, &r0, &c0);
    tile_position(t, threadIdx.x + kTileThreads, &r1, &c1);
    Acc s0 = 0, s1 = 0;
    for (int64_t j = 0; j < p.kg; ++j) {  // the output channels of input channel c
      const int64_t k = c * p.kg + j;
      __syncthreads();  // the previous stage's readers are done
      // Staged with row length t.iw (the region's largest width), so rows index alike.
      if (rows > 0 && cols > 0) {
        const T* plane_dy = dy + (b * p.k + k) * p.out_sp;
        const int n = rows * t.iw;
        for (int e = threadIdx.x; e < n; e += blockDim.x) {
          const int r = e / t.iw, col = e - r * t.iw;
          dys[e] = col < cols ? plane_dy[(ry0 + r) * t.ow + rx0 + col] : zero_of<T>();
        }
      }
      stage_taps(p, w, k, taps_s);
      __syncthreads();
      if (rows > 0 && cols > 0) {
        s0 += dw_backward_data_at<Acc>(t, dys, taps_s, y0 + r0, x0 + c0, ry0, rx0);
        s1 += dw_backward_data_at<Acc>(t, dys, taps_s, y0 + r1, x0 + c1, ry0, rx0);
      }
    }
    const Acc bv = bias ? to_acc(bias[c]) : Acc(0);
    T* xp = dx + plane * p.in_sp;
    const int ya = y0 + r0, xa = x0 + c0, yb = y0 + r1, xb = x0 + c1;
    if (ya < t.h && xa < t.w) xp[ya * t.w + xa] = from_acc<T>(bias ? s0 + bv : s0);
    if (yb < t.h && xb < t.w) xp[yb * t.w + xb] = from_acc<T>(bias ? s1 + bv : s1);
  }
}

// dw[k][tap]: blocks (k, split) for output channel k (grid-stride over k) and slice
// blockIdx.y of the reduction over (image, tile) pairs, taken in a fixed order. Up to 256 taps,
// each tap has 256 / taps threads (its "parts") that take every parts-th position of a tile,
// summed per tap in part order at the end; more taps, each thread takes taps tid, tid + 256,
// ... (at most kTileMaxTaps / 256 = 4). One slice writes dw; several write their sums to
// `partial` (slice s at partial + s * K * taps, laid out as dw) for split_reduce_kernel.
template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    depthwise_backward_weight_tiled_kernel(ConvParams p, DwTiles t, const T* __restrict__ x,
                                           const T* __restrict__ dy, T* __restrict__ dw_out,
                                           acc_t<T>* __restrict__ partial) {
  using Acc = acc_t<T>;
  constexpr int kPer = kTileMaxTaps / kTileThreads;
  __shared__ __align__(16) unsigned char stage_bytes[kTileStageBytes];
  __shared__ Acc dy_s[kTilePositions];
  __shared__ Acc part_s[kTileThreads];
  T* xs = reinterpret_cast<T*>(stage_bytes);
  const int taps = static_cast<int>(p.taps);
  const int parts = taps <= kTileThreads ? kTileThreads / taps : 1;
  const int per = taps <= kTileThreads ? 1 : (taps + kTileThreads - 1) / kTileThreads;
  const int tid = threadIdx.x;
  const int part = taps <= kTileThreads ? tid / taps : 0;
  const bool active = taps <= kTileThreads ? part < parts : true;
  // This thread's taps and their offsets in the staged region.
  int tap_of[kPer], off_of[kPer];
  for (int q = 0; q < kPer; ++q) {
    const int tap = taps <= kTileThreads ? tid % taps : tid + q * kTileThreads;
    tap_of[q] = q < per && tap < taps ? tap : -1;
    off_of[q] = tap_of[q] < 0 ? 0 : (tap / t.kw) * t.dh * t.iw + (tap % t.kw) * t.dw;
  }
  const int64_t items = p.n * t.tiles_h * t.tiles_w;  // (image, tile) pairs
  const int64_t r0 = items * blockIdx.y / gridDim.y, r1 = items * (blockIdx.y + 1) / gridDim.y;
  Acc* slice = partial ? partial + static_cast<int64_t>(blockIdx.y) * p.k * p.taps : nullptr;
  for (int64_t k = blockIdx.x; k < p.k; k += gridDim.x) {
    const int64_t c = k / p.kg;
    Acc acc[kPer];
    for (int q = 0; q < kPer; ++q) acc[q] = 0;
    for (int64_t item = r0; item < r1; ++item) {
      const TileOrigin at = tile_origin(t, item);  // plane: the image
      const int64_t b = at.plane;
      const T* plane_x = x + (b * p.c + c) * p.in_sp;
      const T* plane_dy = dy + (b * p.k + k) * p.out_sp;
      {
        const int oy0 = at.y0, ox0 = at.x0;
        __syncthreads();  // the previous tile's readers are done
        stage_region(plane_x, t.h, t.w, oy0 * t.sh - t.ph, ox0 * t.sw - t.pw, t.ih, t.iw, xs);
        for (int o = tid; o < kTilePositions; o += blockDim.x) {
          int r, col;
          tile_position(t, o, &r, &col);
          const int yy = oy0 + r, xx = ox0 + col;
          dy_s[o] = yy < t.oh && xx < t.ow ? to_acc(plane_dy[yy * t.ow + xx]) : Acc(0);
        }
        __syncthreads();
        if (!active) continue;  // to the next item's barrier
        for (int o = part; o < kTilePositions; o += parts) {
          int r, col;
          tile_position(t, o, &r, &col);
          const Acc g = dy_s[o];
          const T* in = xs + r * t.sh * t.iw + col * t.sw;
          for (int q = 0; q < kPer; ++q) {
            if (tap_of[q] >= 0) acc[q] = fma(g, to_acc(in[off_of[q]]), acc[q]);
          }
        }
      }
    }
    // Each tap's parts, summed in part order.
    if (taps <= kTileThreads) {
      __syncthreads();
      part_s[tid] = active ? acc[0] : Acc(0);
      __syncthreads();
      if (tid < taps) {
        Acc s = 0;
        for (int q = 0; q < parts; ++q) s += part_s[q * taps + tid];
        const int64_t e = k * p.taps + (p.flip ? taps - 1 - tid : tid);
        if (slice) slice[e] = s;
        else dw_out[e] = from_acc<T>(s);
      }
    } else {
      for (int q = 0; q < kPer; ++q) {
        const int tap = tap_of[q];
        if (tap < 0) continue;
        const int64_t e = k * p.taps + (p.flip ? taps - 1 - tap : tap);
        if (slice) slice[e] = acc[q];
        else dw_out[e] = from_acc<T>(acc[q]);
      }
    }
  }
}

}  // namespace fastconv::cuda
