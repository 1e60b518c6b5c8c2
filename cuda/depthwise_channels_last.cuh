// Depthwise kernels for channels-last (NHWC) activations, 1-D and 2-D layers (cuda/depthwise.cu
// runs them when a call's activations are stored channels_last: depthwise_takes_order). The
// channel is the fastest index, so a warp's 32 threads take 32 neighbouring channels of one
// position and every load and store of x, grad_y and the result is one contiguous run. The
// filter stays (K, 1, R, S): the forward and backward data stage a chunk of the block's 32
// filter rows transposed in shared memory (read there as one tap of 32 channels, instead of 32
// rows' cache lines per load) and reuse each chunk over 32 positions. Positions and offsets are
// 32-bit (the launcher admits tensors below 2^31 elements), a position's row and column from
// two multiply-shift divisions (FastDiv) per round, not per tap. The weight gradient sums a
// block of taps per thread in registers over a slice of the positions (each activation loaded
// once per block of taps, not per tap) and adds the 8 position lanes in a fixed order; slices
// are summed in a fixed order by split_reduce_kernel (deterministic, no atomics).
#pragma once
#include <cstdint>

#include "conv_kernels.h"
#include "dtype.cuh"
#include "launch.cuh"

namespace fastconv::cuda {

// Threads: 32 channels x 8 positions; the forward and backward data take kClPer positions per
// thread per round (kClRound per block) and stage the filter kClStageTaps taps at a time.
constexpr int kClChannels = 32;
constexpr int kClPositions = 8;
constexpr int kClPer = 4;
constexpr int kClRound = kClPositions * kClPer;
constexpr int kClStageTaps = 64;
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

// Filter taps [t0, t0 + chunk) of the block's 32 filter rows, as the accumulation type,
// into wsm[tap - t0][row] (mode="conv"'s flip applied): row(rr) is the filter row of the
// block's rr-th channel, or -1 past the channels (zeros). The lanes read consecutive taps of a
// row (one contiguous run; a warp reading one tap of 32 rows would touch 32 cache lines); the
// padded row keeps both this transposed store and the kernels' reads of wsm[tap][lane] free of
// bank conflicts. Every thread of the block calls it.
template <typename T, typename Row>
__device__ __forceinline__ void stage_taps(const T* __restrict__ w, const DwCl& g, int t0,
                                           int chunk, Row row, acc_t<T> (*wsm)[kClChannels + 1]) {
  for (int rr = static_cast<int>(threadIdx.y); rr < kClChannels; rr += kClPositions) {
    const int64_t k = row(rr);
    for (int t = static_cast<int>(threadIdx.x); t < chunk; t += kClChannels) {
      const int tap = t0 + t;
      wsm[t][rr] = k < 0 ? acc_t<T>(0) : to_acc(w[k * g.taps + (g.flip ? g.taps - 1 - tap : tap)]);
    }
  }
}

// y[n, oh, ow, k] = sum over taps of x[n, ih, iw, k / m] * w[k, tap] (+ bias[k]). A block
// round takes kClPer positions per thread (32 per block), the taps a staged chunk at a time.
template <typename T>
__global__ void __launch_bounds__(kClChannels* kClPositions)
    depthwise_cl_forward_kernel(DwCl g, const T* __restrict__ x, const T* __restrict__ w,
                                const T* __restrict__ bias, T* __restrict__ y) {
  using Acc = acc_t<T>;
  __shared__ Acc wsm[kClStageTaps][kClChannels + 1];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int k0 = static_cast<int>(blockIdx.y) * kClChannels, k = k0 + tx;
  const bool live = k < g.k;
  const int c = live ? k / g.m : 0;
  const Acc b = live && bias ? to_acc(bias[k]) : Acc(0);
  auto row = [&](int rr) { return k0 + rr < g.k ? int64_t(k0 + rr) : int64_t(-1); };
  const int positions = g.n * g.p * g.q;
  const int step = static_cast<int>(gridDim.x) * kClRound;
  // all taps in one chunk: staged once for every round
  const bool staged_once = g.taps <= kClStageTaps;
  if (staged_once) {
    stage_taps(w, g, 0, g.taps, row, wsm);
    __syncthreads();
  }
  // every thread takes every round (the barriers): positions past the end are computed on
  // the last one and not stored
  for (int base = static_cast<int>(blockIdx.x) * kClRound; base < positions; base += step) {
    Acc acc[kClPer];
    int h0[kClPer], w0[kClPer];  // the window's first input row and column
    const T* xi[kClPer];
#pragma unroll
    for (int i = 0; i < kClPer; ++i) {
      acc[i] = 0;
      const int pos = min(base + ty + i * kClPositions, positions - 1);
      const int t = int(g.by_q.div(pos)), ow = pos - t * g.q;
      const int img = int(g.by_p.div(t)), oh = t - img * g.p;
      h0[i] = oh * g.sh - g.ph;
      w0[i] = ow * g.sw - g.pw;
      xi[i] = x + static_cast<int64_t>(img) * g.h * g.w * g.c + c;
    }
    for (int t0 = 0; t0 < g.taps; t0 += kClStageTaps) {
      const int chunk = min(kClStageTaps, g.taps - t0);
      if (!staged_once) {  // (uniform over the block: the barriers)
        __syncthreads();   // the previous chunk's reads are done
        stage_taps(w, g, t0, chunk, row, wsm);
        __syncthreads();
      }
      int r = t0 / g.kw, u = t0 - r * g.kw;  // tap t0's kernel row and column
      for (int t = 0; t < chunk; ++t) {
        const Acc wv = wsm[t][tx];
        const int dr = r * g.dh, du = u * g.dw;
#pragma unroll
        for (int i = 0; i < kClPer; ++i) {
          const int ih = h0[i] + dr, iw = w0[i] + du;
          if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) {
            acc[i] = fma(to_acc(xi[i][(ih * g.w + iw) * g.c]), wv, acc[i]);
          }
        }
        if (++u == g.kw) u = 0, ++r;
      }
    }
#pragma unroll
    for (int i = 0; i < kClPer; ++i) {
      const int pos = base + ty + i * kClPositions;
      if (live && pos < positions) y[static_cast<int64_t>(pos) * g.k + k] = from_acc<T>(acc[i] + b);
    }
  }
}

// dx[n, ih, iw, c] = sum over j < m and the taps reaching (ih, iw) of
// dy[n, oh, ow, c * m + j] * w[c * m + j, tap] (+ bias[c]: a transposed conv's). Rounds and
// chunks as the forward's, the filter rows of one j < m staged at a time.
template <typename T>
__global__ void __launch_bounds__(kClChannels* kClPositions)
    depthwise_cl_backward_data_kernel(DwCl g, const T* __restrict__ dy, const T* __restrict__ w,
                                      const T* __restrict__ bias, T* __restrict__ dx) {
  using Acc = acc_t<T>;
  __shared__ Acc wsm[kClStageTaps][kClChannels + 1];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int c0 = static_cast<int>(blockIdx.y) * kClChannels, c = c0 + tx;
  const bool live = c < g.c;
  const Acc b = live && bias ? to_acc(bias[c]) : Acc(0);
  const int positions = g.n * g.h * g.w;
  const int step = static_cast<int>(gridDim.x) * kClRound;
  // one multiplier index and all taps in one chunk: staged once for every round
  const bool staged_once = g.m == 1 && g.taps <= kClStageTaps;
  if (staged_once) {
    stage_taps(
        w, g, 0, g.taps, [&](int rr) { return c0 + rr < g.c ? int64_t(c0 + rr) : int64_t(-1); },
        wsm);
    __syncthreads();
  }
  for (int base = static_cast<int>(blockIdx.x) * kClRound; base < positions; base += step) {
    Acc acc[kClPer];
    int h0[kClPer], w0[kClPer];  // ih + ph, iw + pw: oh * sh + r * dh where a tap reaches
    const T* gi[kClPer];
#pragma unroll
    for (int i = 0; i < kClPer; ++i) {
      acc[i] = 0;
      const int pos = min(base + ty + i * kClPositions, positions - 1);
      const int t = int(g.by_w.div(pos)), iw = pos - t * g.w;
      const int img = int(g.by_h.div(t)), ih = t - img * g.h;
      h0[i] = ih + g.ph;
      w0[i] = iw + g.pw;
      gi[i] = dy + static_cast<int64_t>(img) * g.p * g.q * g.k + (live ? c * g.m : 0);
    }
    for (int j = 0; j < g.m; ++j) {
      auto row = [&](int rr) { return c0 + rr < g.c ? int64_t(c0 + rr) * g.m + j : int64_t(-1); };
      for (int t0 = 0; t0 < g.taps; t0 += kClStageTaps) {
        const int chunk = min(kClStageTaps, g.taps - t0);
        if (!staged_once) {  // (uniform over the block: the barriers)
          __syncthreads();
          stage_taps(w, g, t0, chunk, row, wsm);
          __syncthreads();
        }
        int r = t0 / g.kw, u = t0 - r * g.kw;
        for (int t = 0; t < chunk; ++t) {
          const Acc wv = wsm[t][tx];
          const int dr = r * g.dh, du = u * g.dw;
#pragma unroll
          for (int i = 0; i < kClPer; ++i) {
            const int u1 = h0[i] - dr, u2 = w0[i] - du;
            if (u1 < 0 || u2 < 0) continue;
            const int oh = int(g.by_sh.div(u1)), ow = int(g.by_sw.div(u2));
            if (oh * g.sh != u1 || oh >= g.p || ow * g.sw != u2 || ow >= g.q) continue;
            acc[i] = fma(to_acc(gi[i][(oh * g.q + ow) * g.k + j]), wv, acc[i]);
          }
          if (++u == g.kw) u = 0, ++r;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kClPer; ++i) {
      const int pos = base + ty + i * kClPositions;
      if (live && pos < positions)
        dx[static_cast<int64_t>(pos) * g.c + c] = from_acc<T>(acc[i] + b);
    }
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
