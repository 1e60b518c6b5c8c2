// Depthwise kernels for channels-last (NHWC) activations, 1-D and 2-D layers (cuda/depthwise.cu
// runs them when a call's activations are stored channels_last: depthwise_takes_order). The
// channel is the fastest index, so a warp's 32 threads take 32 neighbouring channels of one
// position and every load and store of x, grad_y and the result is one contiguous run; the
// filter stays (K, 1, R, S), each thread reading its channel's taps (L1-resident: a block's 32
// channels x taps are reused by all its positions). Positions and offsets are 32-bit (the
// launcher admits tensors below 2^31 elements), a position's row and column from two
// multiply-shift divisions (FastDiv) per thread, not per tap. The weight gradient sums a block of
// taps per thread in registers over a slice of the positions (each activation loaded once per block
// of taps, not per tap) and adds the 8 position lanes in a fixed order; slices are summed in a
// fixed order by split_reduce_kernel (deterministic, no atomics).
#pragma once
#include <cstdint>

#include "conv_kernels.h"
#include "dtype.cuh"
#include "launch.cuh"

namespace fastconv::cuda {

// Threads: 32 channels x 8 positions.
constexpr int kClChannels = 32;
constexpr int kClPositions = 8;
// Taps a weight-gradient thread sums at once (registers).
constexpr int kClTapBlock = 16;

// The 2-D window in 32-bit values: input H x W x C, output P x Q x K, multiplier m = K / C;
// the divisions a position's row and column (and backward data's stride test) take.
struct DwCl {
  int n, h, w, c, p, q, k, m;
  int kh, kw, sh, sw, dh, dw, ph, pw;
  int taps;
  bool flip;
  FastDiv by_p, by_q, by_h, by_w, by_sh, by_sw;
};

// y[n, oh, ow, k] = sum over taps of x[n, ih, iw, k / m] * w[k, tap] (+ bias[k]).
template <typename T>
__global__ void __launch_bounds__(kClChannels* kClPositions)
    depthwise_cl_forward_kernel(DwCl g, const T* __restrict__ x, const T* __restrict__ w,
                                const T* __restrict__ bias, T* __restrict__ y) {
  using Acc = acc_t<T>;
  const int k = static_cast<int>(blockIdx.y) * kClChannels + static_cast<int>(threadIdx.x);
  if (k >= g.k) return;  // no barrier below
  const int c = k / g.m;
  const T* wk = w + static_cast<int64_t>(k) * g.taps;
  const Acc b = bias ? to_acc(bias[k]) : Acc(0);
  const int positions = g.n * g.p * g.q;
  const int step = static_cast<int>(gridDim.x) * kClPositions;
  for (int pos = static_cast<int>(blockIdx.x) * kClPositions + static_cast<int>(threadIdx.y);
       pos < positions; pos += step) {
    const int t = int(g.by_q.div(pos)), ow = pos - t * g.q;
    const int img = int(g.by_p.div(t)), oh = t - img * g.p;
    const T* xi = x + static_cast<int64_t>(img) * g.h * g.w * g.c + c;
    Acc s = 0;
    for (int r = 0; r < g.kh; ++r) {
      const int ih = oh * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int u = 0; u < g.kw; ++u) {
        const int iw = ow * g.sw - g.pw + u * g.dw;
        if (iw < 0 || iw >= g.w) continue;
        const int tap = r * g.kw + u;
        s = fma(to_acc(xi[(ih * g.w + iw) * g.c]), to_acc(wk[g.flip ? g.taps - 1 - tap : tap]), s);
      }
    }
    y[static_cast<int64_t>(pos) * g.k + k] = from_acc<T>(s + b);
  }
}

// dx[n, ih, iw, c] = sum over j < m and the taps reaching (ih, iw) of
// dy[n, oh, ow, c * m + j] * w[c * m + j, tap] (+ bias[c]: a transposed conv's).
template <typename T>
__global__ void __launch_bounds__(kClChannels* kClPositions)
    depthwise_cl_backward_data_kernel(DwCl g, const T* __restrict__ dy, const T* __restrict__ w,
                                      const T* __restrict__ bias, T* __restrict__ dx) {
  using Acc = acc_t<T>;
  const int c = static_cast<int>(blockIdx.y) * kClChannels + static_cast<int>(threadIdx.x);
  if (c >= g.c) return;  // no barrier below
  const Acc b = bias ? to_acc(bias[c]) : Acc(0);
  const int positions = g.n * g.h * g.w;
  const int step = static_cast<int>(gridDim.x) * kClPositions;
  for (int pos = static_cast<int>(blockIdx.x) * kClPositions + static_cast<int>(threadIdx.y);
       pos < positions; pos += step) {
    const int t = int(g.by_w.div(pos)), iw = pos - t * g.w;
    const int img = int(g.by_h.div(t)), ih = t - img * g.h;
    const T* gi = dy + static_cast<int64_t>(img) * g.p * g.q * g.k;
    Acc s = 0;
    for (int r = 0; r < g.kh; ++r) {
      const int u1 = ih + g.ph - r * g.dh;  // = oh * sh where a tap reaches
      if (u1 < 0) break;                    // more negative with r
      const int oh = int(g.by_sh.div(u1));
      if (oh * g.sh != u1 || oh >= g.p) continue;
      for (int u = 0; u < g.kw; ++u) {
        const int u2 = iw + g.pw - u * g.dw;
        if (u2 < 0) break;
        const int ow = int(g.by_sw.div(u2));
        if (ow * g.sw != u2 || ow >= g.q) continue;
        const int tap = r * g.kw + u, wt = g.flip ? g.taps - 1 - tap : tap;
        const T* row = gi + (oh * g.q + ow) * g.k + c * g.m;
        for (int j = 0; j < g.m; ++j) {
          s = fma(to_acc(row[j]), to_acc(w[static_cast<int64_t>(c * g.m + j) * g.taps + wt]), s);
        }
      }
    }
    dx[static_cast<int64_t>(pos) * g.c + c] = from_acc<T>(s + b);
  }
}

// Slice blockIdx.x of `slices` of the positions (n, oh, ow), for 32 output channels: the
// partial sums dw[k, tap] over it, written to part[slice][k][tap] (or, unsplit, rounded into
// dw). Every thread of the block reaches the barriers.
template <typename T>
__global__ void __launch_bounds__(kClChannels* kClPositions)
    depthwise_cl_backward_weight_kernel(DwCl g, const T* __restrict__ x, const T* __restrict__ dy,
                                        T* __restrict__ dw, acc_t<T>* __restrict__ part) {
  using Acc = acc_t<T>;
  __shared__ Acc lanes[kClPositions][kClTapBlock][kClChannels];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int k = static_cast<int>(blockIdx.y) * kClChannels + tx;
  const bool live = k < g.k;
  const int c = live ? k / g.m : 0;
  const int positions = g.n * g.p * g.q;
  const int slices = static_cast<int>(gridDim.x), slice = static_cast<int>(blockIdx.x);
  const int per = (positions + slices - 1) / slices;
  const int begin = slice * per, end = min(positions, begin + per);
  for (int t0 = 0; t0 < g.taps; t0 += kClTapBlock) {
    const int block = min(kClTapBlock, g.taps - t0);
    Acc acc[kClTapBlock];
    int off_h[kClTapBlock], off_w[kClTapBlock];  // each tap's input offset from (oh, ow) * s
#pragma unroll
    for (int i = 0; i < kClTapBlock; ++i) {
      acc[i] = 0;
      const int r = (t0 + i) / g.kw, u = (t0 + i) - r * g.kw;
      off_h[i] = r * g.dh - g.ph;
      off_w[i] = u * g.dw - g.pw;
    }
    for (int pos = begin + ty; live && pos < end; pos += kClPositions) {
      const int t = int(g.by_q.div(pos)), ow = pos - t * g.q;
      const int img = int(g.by_p.div(t)), oh = t - img * g.p;
      const Acc d = to_acc(dy[static_cast<int64_t>(pos) * g.k + k]);
      const T* xi = x + static_cast<int64_t>(img) * g.h * g.w * g.c + c;
      const int h0 = oh * g.sh, w0 = ow * g.sw;
#pragma unroll
      for (int i = 0; i < kClTapBlock; ++i) {
        if (i >= block) break;
        const int ih = h0 + off_h[i], iw = w0 + off_w[i];
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
        acc[i] = fma(d, to_acc(xi[(ih * g.w + iw) * g.c]), acc[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < kClTapBlock; ++i) lanes[ty][i][tx] = acc[i];
    __syncthreads();
    // the 8 position lanes added in a fixed order: thread (tx, ty) takes taps ty, ty + 8
    for (int i = ty; i < kClTapBlock; i += kClPositions) {
      const int tap = t0 + i;
      Acc s = 0;
      for (int l = 0; l < kClPositions; ++l) s += lanes[l][i][tx];
      if (live && tap < g.taps) {
        const int wt = g.flip ? g.taps - 1 - tap : tap;
        const int64_t at = static_cast<int64_t>(k) * g.taps + wt;
        if (part) {
          part[static_cast<int64_t>(slice) * g.k * g.taps + at] = s;
        } else {
          dw[at] = from_acc<T>(s);
        }
      }
    }
    __syncthreads();  // lanes is refilled by the next block of taps
  }
}

}  // namespace fastconv::cuda
