// Direct depthwise convolution (groups == C, weight (K, 1, *kernel), channel multiplier K / C)
// for all three passes, any kernel size (31x31 included), stride, padding, dilation; plus the
// bias gradient. 1-D and 2-D layers whose tile fits run the shared-memory tiled kernels of
// depthwise_tiled.cuh; the rest (3-D, tiny images, huge windows) one thread per output element
// for forward and backward_data (a gather, so no atomics) and one block per weight element for
// backward_weight, reduced in a fixed order. Channels-last activations (1-D / 2-D) run the
// kernels of depthwise_channels_last.cuh instead, in every pass.
#include <algorithm>
#include <climits>
#include <cstdlib>

#include "conv_kernels.h"
#include "cuda_check.h"
#include "depthwise_channels_last.cuh"
#include "depthwise_tiled.cuh"
#include "dtype.cuh"
#include "launch.cuh"
#include "split_reduce.cuh"
#include "fastconv/status.h"

namespace fastconv::cuda {
namespace {

constexpr int kThreads = 256;

// Deterministic block sum (fixed tree); every thread of the block must call it.
template <typename Acc>
__device__ Acc block_sum(Acc v) {
  __shared__ Acc partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const Acc total = partial[0];
  __syncthreads();  // partial[] is reused by the next call
  return total;
}

// ---- kernels

template <typename T>
__global__ void __launch_bounds__(kThreads)
    depthwise_forward_kernel(ConvParams p, const T* __restrict__ x, const T* __restrict__ w,
                             const T* __restrict__ bias, T* __restrict__ y, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t mult = p.kg;  // output channels per input channel
  for (int64_t idx = first_index(); idx < total; idx += grid_step()) {
    const int64_t o = idx % p.out_sp, t = idx / p.out_sp;
    const int64_t k = t % p.k, b = t / p.k;
    const int64_t c = k / mult;
    const int64_t od = o / (p.out[1] * p.out[2]), oh = (o / p.out[2]) % p.out[1],
                  ow = o % p.out[2];
    const T* xp = x + (b * p.c + c) * p.in_sp;
    const T* wp = w + k * p.taps;
    Acc s = 0;
    for (int64_t kd = 0; kd < p.kernel[0]; ++kd) {
      const int64_t id = od * p.stride[0] - p.pad[0] + kd * p.dil[0];
      if (!inside(id, p.in[0])) continue;
      for (int64_t kh = 0; kh < p.kernel[1]; ++kh) {
        const int64_t ih = oh * p.stride[1] - p.pad[1] + kh * p.dil[1];
        if (!inside(ih, p.in[1])) continue;
        const T* row = xp + (id * p.in[1] + ih) * p.in[2];
        const int64_t tap_row = (kd * p.kernel[1] + kh) * p.kernel[2];
        for (int64_t kw = 0; kw < p.kernel[2]; ++kw) {
          const int64_t iw = ow * p.stride[2] - p.pad[2] + kw * p.dil[2];
          if (!inside(iw, p.in[2])) continue;
          const int64_t tap = tap_row + kw;
          s = fma(to_acc(row[iw]), to_acc(wp[p.flip ? p.taps - 1 - tap : tap]), s);
        }
      }
    }
    if (bias) s += to_acc(bias[k]);
    y[idx] = from_acc<T>(s);
  }
}

// dx[b][c][i] = sum over j < mult and taps reaching i of dy[b][c*mult+j][o] * w[c*mult+j][tap].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    depthwise_backward_data_kernel(ConvParams p, const T* __restrict__ dy,
                                   const T* __restrict__ w, const T* __restrict__ bias,
                                   T* __restrict__ dx, int64_t total) {
  using Acc = acc_t<T>;
  const int64_t mult = p.kg;
  for (int64_t idx = first_index(); idx < total; idx += grid_step()) {
    const int64_t i = idx % p.in_sp, t = idx / p.in_sp;
    const int64_t c = t % p.c, b = t / p.c;
    const int64_t q0 = i / (p.in[1] * p.in[2]) + p.pad[0], q1 = (i / p.in[2]) % p.in[1] + p.pad[1],
                  q2 = i % p.in[2] + p.pad[2];
    Acc s = 0;
    for (int64_t j = 0; j < mult; ++j) {
      const int64_t k = c * mult + j;
      const T* gp = dy + (b * p.k + k) * p.out_sp;
      const T* wp = w + k * p.taps;
      for (int64_t kd = 0; kd < p.kernel[0]; ++kd) {
        const int64_t u0 = q0 - kd * p.dil[0];
        if (u0 < 0) break;  // grows more negative with kd
        const int64_t od = u0 / p.stride[0];
        if (od * p.stride[0] != u0 || od >= p.out[0]) continue;
        for (int64_t kh = 0; kh < p.kernel[1]; ++kh) {
          const int64_t u1 = q1 - kh * p.dil[1];
          if (u1 < 0) break;
          const int64_t oh = u1 / p.stride[1];
          if (oh * p.stride[1] != u1 || oh >= p.out[1]) continue;
          const int64_t tap_row = (kd * p.kernel[1] + kh) * p.kernel[2];
          for (int64_t kw = 0; kw < p.kernel[2]; ++kw) {
            const int64_t u2 = q2 - kw * p.dil[2];
            if (u2 < 0) break;
            const int64_t ow = u2 / p.stride[2];
            if (ow * p.stride[2] != u2 || ow >= p.out[2]) continue;
            const int64_t tap = tap_row + kw;
            s = fma(to_acc(gp[(od * p.out[1] + oh) * p.out[2] + ow]),
                    to_acc(wp[p.flip ? p.taps - 1 - tap : tap]), s);
          }
        }
      }
    }
    if (bias) s += to_acc(bias[c]);
    dx[idx] = from_acc<T>(s);
  }
}

// dw[k][tap] = sum over b and out positions of dy[b][k][o] * x[b][k / mult][o*s - pad + tap*d].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    depthwise_backward_weight_kernel(ConvParams p, const T* __restrict__ x,
                                     const T* __restrict__ dy, T* __restrict__ dw,
                                     int64_t total) {
  using Acc = acc_t<T>;
  const int64_t reduction = p.n * p.out_sp;
  for (int64_t e = blockIdx.x; e < total; e += gridDim.x) {  // e = (k, tap): whole block
    const int64_t k = e / p.taps, tap = e % p.taps;
    const int64_t c = k / p.kg;
    const int64_t kd = tap / (p.kernel[1] * p.kernel[2]), kh = (tap / p.kernel[2]) % p.kernel[1],
                  kw = tap % p.kernel[2];
    const int64_t a0 = kd * p.dil[0] - p.pad[0], a1 = kh * p.dil[1] - p.pad[1],
                  a2 = kw * p.dil[2] - p.pad[2];
    Acc s = 0;
    for (int64_t r = threadIdx.x; r < reduction; r += blockDim.x) {
      const int64_t b = r / p.out_sp, o = r % p.out_sp;
      const int64_t od = o / (p.out[1] * p.out[2]), oh = (o / p.out[2]) % p.out[1],
                    ow = o % p.out[2];
      const int64_t id = od * p.stride[0] + a0, ih = oh * p.stride[1] + a1,
                    iw = ow * p.stride[2] + a2;
      if (!inside(id, p.in[0]) || !inside(ih, p.in[1]) || !inside(iw, p.in[2])) continue;
      s = fma(to_acc(dy[(b * p.k + k) * p.out_sp + o]),
              to_acc(x[(b * p.c + c) * p.in_sp + (id * p.in[1] + ih) * p.in[2] + iw]), s);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) dw[k * p.taps + (p.flip ? p.taps - 1 - tap : tap)] = from_acc<T>(s);
  }
}

// out[k] = sum over b and spatial of dy[b][k][...]; one block per channel.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    bias_grad_kernel(int64_t n, int64_t k, int64_t spatial, const T* __restrict__ dy,
                     T* __restrict__ out) {
  using Acc = acc_t<T>;
  const int64_t reduction = n * spatial;
  for (int64_t ch = blockIdx.x; ch < k; ch += gridDim.x) {
    Acc s = 0;
    for (int64_t r = threadIdx.x; r < reduction; r += blockDim.x) {
      const int64_t b = r / spatial, o = r % spatial;
      s += to_acc(dy[(b * k + ch) * spatial + o]);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) out[ch] = from_acc<T>(s);
  }
}

// ---- launchers

constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // a grid-stride launch's blocks at most

unsigned blocks_for(int64_t work, int64_t per_block) {
  const int64_t b = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(b, 1), kMaxBlocks));
}

// The channels-last kernels' largest position step (kMaxBlocks blocks of kClRound positions).
constexpr int64_t kClMaxGridStep = kMaxBlocks * kClRound;

// The tiles of a pass's plane (forward and weight: output positions; backward data: input
// positions), or false where the generic kernels run instead: 3-D, more than kTileMaxTaps taps,
// planes of 2^31 elements or more, a staged region over kTileStageBytes, or tiles less than half
// full (a 7x7 map in a 512-position tile).
bool depthwise_tiles(ConvPass pass, const ConvParams& p, int64_t elem, DwTiles* t) {
  // 3-D layers, and depth-1 ones whose depth padding puts the window off the input (the tiles
  // index depth 0 only), run the per-element kernels.
  if (p.in[0] != 1 || p.kernel[0] != 1 || p.out[0] != 1 || p.pad[0] != 0) return false;
  if (p.taps > kTileMaxTaps || p.in_sp >= INT_MAX || p.out_sp >= INT_MAX) return false;
  for (int d = 1; d < 3; ++d) {  // every window coordinate the kernels form stays in int
    const int64_t reach = (p.out[d] + 1) * p.stride[d] + p.kernel[d] * p.dil[d];
    if (reach + std::abs(p.pad[d]) + p.in[d] >= INT_MAX / 2) return false;
  }
  const bool data = pass == ConvPass::kBackwardData;
  const int64_t rows = data ? p.in[1] : p.out[1], cols = data ? p.in[2] : p.out[2];
  if (rows <= 0 || cols <= 0) return false;
  int64_t tw = 8;
  while (tw < cols && tw < kTilePositions) tw *= 2;
  const int64_t th = kTilePositions / tw;
  const int64_t tiles_h = (rows + th - 1) / th, tiles_w = (cols + tw - 1) / tw;
  if (2 * rows * cols < tiles_h * tiles_w * kTilePositions) return false;
  int64_t ih, iw;
  if (data) {  // the grad_y rows / columns one tile can reach (dw_data_region's bound)
    ih = (th - 1 + (p.kernel[1] - 1) * p.dil[1]) / p.stride[1] + 1;
    iw = (tw - 1 + (p.kernel[2] - 1) * p.dil[2]) / p.stride[2] + 1;
  } else {
    ih = (th - 1) * p.stride[1] + (p.kernel[1] - 1) * p.dil[1] + 1;
    iw = (tw - 1) * p.stride[2] + (p.kernel[2] - 1) * p.dil[2] + 1;
  }
  if (ih * iw * elem > kTileStageBytes) return false;
  const int64_t planes = pass == ConvPass::kBackwardData ? p.n * p.c : p.n * p.k;
  *t = DwTiles{int(th),     int(tw), int(tiles_h), int(tiles_w), planes,
               planes * tiles_h * tiles_w, int(ih), int(iw)};
  t->kh = int(p.kernel[1]), t->kw = int(p.kernel[2]);
  t->sh = int(p.stride[1]), t->sw = int(p.stride[2]);
  t->dh = int(p.dil[1]), t->dw = int(p.dil[2]);
  t->ph = int(p.pad[1]), t->pw = int(p.pad[2]);
  t->h = int(p.in[1]), t->w = int(p.in[2]);
  t->oh = int(p.out[1]), t->ow = int(p.out[2]);
  return true;
}

// Slices of the tiled weight gradient's reduction over (image, tile) pairs on the current
// device: enough that every multiprocessor has two blocks when there are few output channels,
// each slice at least four pairs, at most 64 (1: no split).
int64_t weight_splits(const ConvParams& p, const DwTiles& t) {
  const int64_t items = p.n * t.tiles_h * t.tiles_w;
  const int64_t target = 2 * static_cast<int64_t>(multiprocessors());
  const int64_t want = (target + p.k - 1) / std::max<int64_t>(p.k, 1);
  return std::max<int64_t>(1, std::min<int64_t>({want, items / 4, 64}));
}

// ---- channels-last activations (depthwise_channels_last.cuh)

// The layer in the channels-last kernels' terms, or false where they cannot take it: 3-D (and
// depth-padded), a tensor of 2^31 elements or more, an extent past int, more than 65535 blocks
// of 32 channels.
bool channels_last_window(const ConvParams& p, DwCl* g) {
  if (p.in[0] != 1 || p.kernel[0] != 1 || p.out[0] != 1 || p.pad[0] != 0) return false;
  if (p.n * p.in_sp * p.c >= INT_MAX || p.n * p.out_sp * p.k >= INT_MAX ||
      p.k * p.taps >= INT_MAX || p.c == 0 || p.k % p.c != 0) {
    return false;
  }
  // the kernels' 32-bit position loops step by up to kClMaxGridStep past the last position
  if (p.n * std::max(p.in_sp, p.out_sp) >= INT_MAX - kClMaxGridStep) return false;
  for (int d = 1; d < 3; ++d) {  // every window coordinate the kernels form stays in int
    const int64_t reach = (p.out[d] + 1) * p.stride[d] + p.kernel[d] * p.dil[d];
    if (reach + std::abs(p.pad[d]) + p.in[d] >= INT_MAX / 2) return false;
  }
  if ((std::max(p.k, p.c) + kClChannels - 1) / kClChannels > 65535) return false;
  g->n = int(p.n), g->h = int(p.in[1]), g->w = int(p.in[2]), g->c = int(p.c);
  g->p = int(p.out[1]), g->q = int(p.out[2]), g->k = int(p.k), g->m = int(p.k / p.c);
  g->kh = int(p.kernel[1]), g->kw = int(p.kernel[2]);
  g->sh = int(p.stride[1]), g->sw = int(p.stride[2]);
  g->dh = int(p.dil[1]), g->dw = int(p.dil[2]);
  g->ph = int(p.pad[1]), g->pw = int(p.pad[2]);
  g->taps = int(p.taps);
  g->flip = p.flip;
  g->by_p = FastDiv(uint32_t(g->p));
  g->by_q = FastDiv(uint32_t(g->q));
  g->by_h = FastDiv(uint32_t(g->h));
  g->by_w = FastDiv(uint32_t(g->w));
  g->by_sh = FastDiv(uint32_t(g->sh));
  g->by_sw = FastDiv(uint32_t(g->sw));
  return true;
}

// Slices of the channels-last weight gradient's positions: two blocks per multiprocessor over
// the blocks of 32 channels, each slice at least 64 positions, at most 64 (1: no split).
int64_t cl_weight_splits(const DwCl& g) {
  const int64_t chunks = (g.k + kClChannels - 1) / kClChannels;
  const int64_t target = 2 * static_cast<int64_t>(multiprocessors());
  const int64_t positions = int64_t(g.n) * g.p * g.q;
  const int64_t wanted = (target + chunks - 1) / chunks;
  return std::max<int64_t>(1, std::min<int64_t>({wanted, positions / 64, 64}));
}

template <typename T>
void launch_channels_last(ConvPass pass, const DwCl& g, const void* a, const void* b,
                          const void* bias, void* out, Workspace ws, cudaStream_t stream) {
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  const T* tbias = static_cast<const T*>(bias);
  T* tout = static_cast<T*>(out);
  const dim3 block(kClChannels, kClPositions);
  auto chunks = [](int channels) { return unsigned((channels + kClChannels - 1) / kClChannels); };
  switch (pass) {
    case ConvPass::kForward: {
      const int64_t positions = int64_t(g.n) * g.p * g.q;
      if (positions == 0 || g.k == 0) return;
      return launch("depthwise_cl_forward_kernel", &depthwise_cl_forward_kernel<T>,
                    dim3(blocks_for(positions, kClRound), chunks(g.k)), block, stream, g, ta, tb,
                    tbias, tout);
    }
    case ConvPass::kBackwardData: {
      const int64_t positions = int64_t(g.n) * g.h * g.w;
      if (positions == 0 || g.c == 0) return;
      return launch("depthwise_cl_backward_data_kernel", &depthwise_cl_backward_data_kernel<T>,
                    dim3(blocks_for(positions, kClRound), chunks(g.c)), block, stream, g, ta, tb,
                    tbias, tout);
    }
    case ConvPass::kBackwardWeight: {  // a = x, b = grad_y
      if (g.k == 0 || g.taps == 0) return;
      // as many slices as wanted and the workspace holds (fewer than two: no split)
      const int64_t total = int64_t(g.k) * g.taps;
      const int64_t slice_bytes = total * int64_t(sizeof(acc_t<T>));
      const int64_t room = ws.ptr ? int64_t(ws.bytes) / slice_bytes : 0;
      const int64_t splits = std::min(cl_weight_splits(g), room);
      acc_t<T>* partial = splits > 1 ? static_cast<acc_t<T>*>(ws.ptr) : nullptr;
      launch("depthwise_cl_backward_weight_kernel", &depthwise_cl_backward_weight_kernel<T>,
             dim3(partial ? unsigned(splits) : 1u, chunks(g.k)), block, stream, g, ta, tb, tout,
             partial);
      if (!partial) return;
      return launch("split_reduce_kernel", &split_reduce_kernel<T>,
                    dim3(blocks_for(total, kThreads)), dim3(kThreads), stream, partial, tout,
                    total, int(splits), static_cast<const T*>(nullptr), int64_t(1), int64_t(1));
    }
  }
}

template <typename T>
void launch_depthwise(ConvPass pass, const ConvParams& p, const void* a, const void* b,
                      const void* bias, void* out, Workspace ws, cudaStream_t stream) {
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  const T* tbias = static_cast<const T*>(bias);
  T* tout = static_cast<T*>(out);
  DwTiles t{};
  if (depthwise_tiles(pass, p, int64_t(sizeof(T)), &t)) {
    switch (pass) {
      case ConvPass::kForward:
        if (t.blocks == 0) return;
        return launch("depthwise_forward_tiled_kernel", &depthwise_forward_tiled_kernel<T>,
                      dim3(blocks_for(t.blocks, 1)), dim3(kTileThreads), stream, p, t, ta, tb,
                      tbias, tout);
      case ConvPass::kBackwardData:
        if (t.blocks == 0) return;
        return launch("depthwise_backward_data_tiled_kernel",
                      &depthwise_backward_data_tiled_kernel<T>, dim3(blocks_for(t.blocks, 1)),
                      dim3(kTileThreads), stream, p, t, ta, tb, tbias, tout);
      case ConvPass::kBackwardWeight: {
        if (p.k == 0) return;
        // As many slices as wanted and the workspace holds (fewer than two: no split).
        const int64_t slice_bytes = p.k * p.taps * int64_t(sizeof(acc_t<T>));
        const int64_t room = ws.ptr ? int64_t(ws.bytes) / slice_bytes : 0;
        const int64_t splits = std::min(weight_splits(p, t), room);
        acc_t<T>* partial = splits > 1 ? static_cast<acc_t<T>*>(ws.ptr) : nullptr;
        launch("depthwise_backward_weight_tiled_kernel",
               &depthwise_backward_weight_tiled_kernel<T>,
               dim3(blocks_for(p.k, 1), partial ? unsigned(splits) : 1u), dim3(kTileThreads),
               stream, p, t, ta, tb, tout, partial);
        if (!partial) return;
        const int64_t total = p.k * p.taps;
        return launch("split_reduce_kernel", &split_reduce_kernel<T>,
                      dim3(blocks_for(total, kThreads)), dim3(kThreads), stream, partial, tout,
                      total, int(splits), static_cast<const T*>(nullptr), int64_t(1),
                      int64_t(1));
      }
    }
  }
  switch (pass) {
    case ConvPass::kForward: {
      const int64_t total = p.n * p.k * p.out_sp;
      if (total == 0) return;
      return launch("depthwise_forward_kernel", &depthwise_forward_kernel<T>,
                    dim3(blocks_for(total, kThreads)), dim3(kThreads), stream, p, ta, tb, tbias,
                    tout, total);
    }
    case ConvPass::kBackwardData: {
      const int64_t total = p.n * p.c * p.in_sp;
      if (total == 0) return;
      return launch("depthwise_backward_data_kernel", &depthwise_backward_data_kernel<T>,
                    dim3(blocks_for(total, kThreads)), dim3(kThreads), stream, p, ta, tb, tbias,
                    tout, total);
    }
    case ConvPass::kBackwardWeight: {
      const int64_t total = p.k * p.taps;
      return launch("depthwise_backward_weight_kernel", &depthwise_backward_weight_kernel<T>,
                    dim3(blocks_for(total, 1)), dim3(kThreads), stream, p, ta, tb, tout, total);
    }
  }
}

}  // namespace

bool depthwise_takes_order(ConvPass pass, DType dtype, const ConvParams& p, OperandOrder order) {
  (void)dtype;
  if (!order.any()) return true;
  DwCl g{};
  if (p.cg != 1 || p.groups != p.c || !channels_last_window(p, &g)) return false;
  if (pass == ConvPass::kBackwardWeight) {
    return order.a_channels_last && order.b_channels_last && !order.out_channels_last;
  }
  return order.a_channels_last && order.out_channels_last && !order.b_channels_last;
}

void depthwise_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a, const void* b,
                    const void* bias, void* out, Workspace ws, cudaStream_t stream,
                    OperandOrder order) {
  if (p.cg != 1 || p.groups != p.c) {
    throw Unsupported("depthwise (cuda) needs groups == C (one input channel per group), got C = " +
                      std::to_string(p.c) + ", groups = " + std::to_string(p.groups));
  }
  if (order.any()) {
    DwCl g{};
    if (!depthwise_takes_order(pass, dtype, p, order) || !channels_last_window(p, &g)) {
      throw InvalidArgument(
          "depthwise (cuda): channels-last tensors need a 1-D / 2-D layer below 2^31 elements "
          "per tensor, with the activations and the result (forward, backward data) or both "
          "activations (weight gradient) channels-last and the filter channel-first");
    }
    switch (dtype) {
      case DType::kFloat32:
        return launch_channels_last<float>(pass, g, a, b, bias, out, ws, stream);
      case DType::kFloat64:
        return launch_channels_last<double>(pass, g, a, b, bias, out, ws, stream);
      case DType::kFloat16:
        return launch_channels_last<__half>(pass, g, a, b, bias, out, ws, stream);
      case DType::kBFloat16:
        return launch_channels_last<__nv_bfloat16>(pass, g, a, b, bias, out, ws, stream);
    }
  }
  switch (dtype) {
    case DType::kFloat32: return launch_depthwise<float>(pass, p, a, b, bias, out, ws, stream);
    case DType::kFloat64: return launch_depthwise<double>(pass, p, a, b, bias, out, ws, stream);
    case DType::kFloat16: return launch_depthwise<__half>(pass, p, a, b, bias, out, ws, stream);
    case DType::kBFloat16: return launch_depthwise<__nv_bfloat16>(pass, p, a, b, bias, out, ws, stream);
  }
}

size_t depthwise_workspace(ConvPass pass, DType dtype, const ConvParams& p) {
  if (pass != ConvPass::kBackwardWeight || p.cg != 1 || p.groups != p.c) return 0;
  // the split of the channel-first tiles or of the channels-last kernel, whichever is larger
  // (the size is asked without the operands' order)
  int64_t splits = 1;
  DwTiles t{};
  if (depthwise_tiles(pass, p, int64_t(dtype_size(dtype)), &t)) splits = weight_splits(p, t);
  DwCl g{};
  if (channels_last_window(p, &g)) splits = std::max(splits, cl_weight_splits(g));
  if (splits <= 1) return 0;
  const int64_t acc = dtype == DType::kFloat64 ? 8 : 4;
  return static_cast<size_t>(splits * p.k * p.taps * acc);
}

bool depthwise_tiled(ConvPass pass, DType dtype, const ConvParams& p) {
  DwTiles t{};
  return depthwise_tiles(pass, p, int64_t(dtype_size(dtype)), &t);
}

void conv_bias_grad(DType dtype, int64_t n, int64_t k, int64_t spatial, const void* grad_y,
                    void* out, cudaStream_t stream) {
  if (k == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    launch("bias_grad_kernel", &bias_grad_kernel<T>, dim3(blocks_for(k, 1)), dim3(kThreads),
           stream, n, k, spatial, static_cast<const T*>(grad_y), static_cast<T*>(out));
  };
  switch (dtype) {
    case DType::kFloat32: return run(float{});
    case DType::kFloat64: return run(double{});
    case DType::kFloat16: return run(__half{});
    case DType::kBFloat16: return run(__nv_bfloat16{});
  }
}

}  // namespace fastconv::cuda
