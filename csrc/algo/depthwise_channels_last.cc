// Channels-last depthwise for small planes (see depthwise_channels_last.h): every pass runs one
// parallel loop over blocks of channels; each block transposes its own channels in, runs the
// kernels (csrc/ukernels/depthwise/dw_channels_last_impl.h) and transposes them out, so the
// threads share the buffers without waiting for each other.
#include "algo/depthwise_channels_last.h"

#include <algorithm>

#include "fastconv/geometry.h"
#include "fastconv/parallel.h"
#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/transpose/transpose_ukernels.h"

namespace fastconv::algo {
namespace {

// Planes of at most kMaxPositions output positions (7x7 and 10x10: EfficientNet's and SSD's
// late stages), and the weight gradient of kernels with kLongKernel+ taps on planes of up to
// kMaxWeightPositions. Elsewhere the transposes in and out cost more than the plane kernels'
// empty lanes (2 threads, AVX-512, channels-last vs plane kernels, forward / data / weight, ms:
// 1152 ch 7x7 5x5 0.12/0.11/0.14 vs 0.20/0.24/0.47; 960 ch 10x10 3x3 0.11/0.11/0.12 vs
// 0.12/0.15/0.11; 480 ch 14x14 5x5 0.16/0.16/0.18 vs 0.10/0.13/0.35; 384 ch 14x14 3x3
// 0.11/0.11/0.11 vs 0.06/0.08/0.06). Since the transposes run on register tiles (ukernels/
// transpose), backward data up to kMaxDataPositions pays too, and the forward of a batch there
// (2 threads, AVX-512, interleaved, median ms, channels-last vs planes: backward data 576 ch
// 19x19 0.127 vs 0.151, batch 8 0.909 vs 1.070, 480 ch 14x14 5x5 0.095 vs 0.125, 384 ch 14x14
// 0.052 vs 0.065; forward 576 ch 19x19 batch 8 0.896 vs 1.037, 576 ch 14x14 batch 8 0.487 vs
// 0.533, but batch 1 14x14 0.050 vs 0.046 and every weight gradient slower: 19x19 0.151 vs
// 0.106).
//
// Since the plane loops claim their planes in runs (algo/direct.cc: for_each_item; one shared
// counter per plane had bounced a cache line between the cores), kernels under kLongKernel taps
// stay channels-last only up to kMaxShortKernelPositions (2 threads, median ms, planes vs
// channels-last, 3x3, forward / data / weight, AVX-512: 960 ch 10x10 0.042/0.063/0.062 vs
// 0.067/0.068/0.088, batch 8 0.26/0.30/0.38 vs 0.39/0.40/0.50; 576 ch 14x14 x8 0.21/0.24 vs
// 0.46/0.48; 19x19 x8 0.67/0.64 vs 0.81/0.79, x1 data 0.097 vs 0.116; AVX2 alike, e.g. 19x19
// x8 0.56/0.66 vs 0.94/0.93; but 8x8 x8 0.27-0.32/0.31-0.35 vs 0.28-0.29/0.28-0.30 and 7x7 x8
// 0.31/0.35/0.30 vs 0.20/0.21/0.21). Kernels of 25+ taps keep the limits above (1152 ch 7x7
// 5x5 0.080/0.108/0.304 vs 0.068/0.070/0.103, 960 ch 10x10 0.102/0.137/0.361 vs 0.092/0.094/
// 0.157).
constexpr int64_t kMaxPositions = 100, kMaxWeightPositions = 256, kLongKernel = 25;
constexpr int64_t kMaxDataPositions = 400, kMaxShortKernelPositions = 64;
// Channels per block of the parallel loop (whole cache lines of every row).
constexpr int64_t kChannelBlock = 64;

bool two_d_multiplier_one(const ConvGeometry& g) {
  // rank <= 2: a 3-D geometry with one input and output slice may still pad along depth (its
  // one output then reads padding)
  return g.rank <= 2 && g.groups == g.c && g.k == g.c && g.in[0] == 1 && g.kernel[0] == 1 &&
         g.out[0] == 1;
}

// The padded channels-last view of one pass: the plane the kernels read (`in`: hp x wp), where
// the tensor's plane sits in it (top, left), and the plane they write (oh x ow).
struct Layout {
  DwChannelsLast p;
  int64_t hp, top, left;
  int64_t src_h, src_w;  // the plane copied in (x, or grad_y for backward data)
};

Layout layout(const ConvGeometry& g, ConvPass pass) {
  Layout l;
  const bool data = pass == ConvPass::kBackwardData;
  DwChannelsLast& p = l.p;
  p.c = g.c;
  p.kh = g.kernel[1], p.kw = g.kernel[2];
  p.dy = g.dilation[1], p.dx = g.dilation[2];
  if (data) {  // a stride-1 forward over grad_y padded by (kernel - 1) * dilation - pad
    p.sy = p.sx = 1;
    p.oh = g.in[1], p.ow = g.in[2];
    l.top = (p.kh - 1) * p.dy - g.pad_lo[1], l.left = (p.kw - 1) * p.dx - g.pad_lo[2];
    l.src_h = g.out[1], l.src_w = g.out[2];
  } else {
    p.sy = g.stride[1], p.sx = g.stride[2];
    p.oh = g.out[1], p.ow = g.out[2];
    l.top = g.pad_lo[1], l.left = g.pad_lo[2];
    l.src_h = g.in[1], l.src_w = g.in[2];
  }
  // rows and columns the kernels reach
  l.hp = (p.oh - 1) * p.sy + (p.kh - 1) * p.dy + 1;
  p.wp = (p.ow - 1) * p.sx + (p.kw - 1) * p.dx + 1;
  return l;
}

int64_t taps(const ConvGeometry& g) { return g.kernel[1] * g.kernel[2]; }

// buf[(top + r) * wp + left + q][c] = src[c][r][q] for the block's channels (zero elsewhere):
// the padding's rows and columns zeroed, each source row transposed in by the ISA's kernel.
template <typename T>
void pack(const Layout& l, const T* src, int64_t c0, int64_t c1, T* buf) {
  const int64_t C = l.p.c, wp = l.p.wp, plane = l.src_h * l.src_w;
  const TransposeKernels<T>& kern = transpose_kernels<T>();
  const int64_t q0 = std::max<int64_t>(0, -l.left), q1 = std::min(l.src_w, wp - l.left);
  auto zero = [&](int64_t pos0, int64_t pos1) {
    for (int64_t pos = pos0; pos < pos1; ++pos)
      std::fill(buf + pos * C + c0, buf + pos * C + c1, T(0));
  };
  for (int64_t y = 0; y < l.hp; ++y) {
    const int64_t r = y - l.top;
    if (r < 0 || r >= l.src_h || q0 >= q1) {
      zero(y * wp, (y + 1) * wp);
      continue;
    }
    zero(y * wp, y * wp + l.left + q0);
    kern.transpose(src + c0 * plane + r * l.src_w + q0, plane, c1 - c0, q1 - q0, nullptr,
                   buf + (y * wp + l.left + q0) * C + c0, C);
    zero(y * wp + l.left + q1, (y + 1) * wp);
  }
}

// dst[c][pos] = buf[pos][c] for the block's channels.
template <typename T>
void unpack(const T* buf, int64_t positions, int64_t C, int64_t c0, int64_t c1, T* dst) {
  transpose_kernels<T>().transpose(buf + c0, C, positions, c1 - c0, nullptr,
                                   dst + c0 * positions, positions);
}

// wt[t][c] = w[c][t], or w[c][taps - 1 - t] when flip (unflipped on the transpose kernel: element
// by element it took 8% of 1152 channels 7x7 5x5 at AVX2).
template <typename T>
void pack_weight(const T* w, int64_t ntaps, int64_t C, bool flip, int64_t c0, int64_t c1, T* wt) {
  if (!flip)
    return transpose_kernels<T>().transpose(w + c0 * ntaps, ntaps, c1 - c0, ntaps, nullptr,
                                            wt + c0, C);
  for (int64_t t = 0; t < ntaps; ++t) {
    const int64_t from = flip ? ntaps - 1 - t : t;
    for (int64_t c = c0; c < c1; ++c) wt[t * C + c] = w[c * ntaps + from];
  }
}

template <typename Fn>
void over_channel_blocks(int64_t C, Fn&& fn) {
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    fn(b0 * kChannelBlock, std::min(C, b1 * kChannelBlock));
  });
}

}  // namespace

bool depthwise_channels_last(const ConvGeometry& g, ConvPass pass) {
  if (!two_d_multiplier_one(g) || g.c < 16) return false;
  const bool long_weight = pass == ConvPass::kBackwardWeight &&
                           g.kernel_spatial() >= kLongKernel &&
                           g.out_spatial() <= kMaxWeightPositions;
  const bool data_sized = pass == ConvPass::kBackwardData ||
                          (pass == ConvPass::kForward && g.n >= 2);
  const int64_t limit = g.kernel_spatial() < kLongKernel ? kMaxShortKernelPositions
                       : data_sized                      ? kMaxDataPositions
                                                         : kMaxPositions;
  if (g.out_spatial() > limit && !long_weight) return false;
  // The padded plane the kernels read: not for huge padding or dilation around a few outputs
  // (its zeros would be most of the work and of the workspace).
  const Layout l = layout(g, pass);
  if (l.hp * l.p.wp > 4 * (g.in_spatial() + g.out_spatial()) + 64) return false;
  if (pass != ConvPass::kBackwardData) return true;
  if (g.stride[1] != 1 || g.stride[2] != 1) return false;
  for (int d = 1; d < kMaxRank; ++d) {
    const int64_t reach = (g.kernel[d] - 1) * g.dilation[d];
    if (g.pad_lo[d] > reach || g.pad_hi[d] > reach) return false;
  }
  return true;
}

int64_t depthwise_channels_last_elems(const ConvGeometry& g, ConvPass pass) {
  const Layout l = layout(g, pass);
  const int64_t per_channel = checked_product({l.hp, l.p.wp}, "depthwise workspace") +
                              l.p.oh * l.p.ow + 2 * taps(g);
  return checked_product({per_channel, g.c}, "depthwise workspace");
}

namespace {

// dst = the correlation of src with w (flipped when flip) over the layout of `pass`, + bias.
template <typename T>
void correlate(const ConvGeometry& g, ConvPass pass, const T* src, const T* w, bool flip,
               const T* bias, T* dst, T* ws) {
  const Layout l = layout(g, pass);
  const int64_t C = g.c, src_sp = l.src_h * l.src_w, dst_sp = l.p.oh * l.p.ow;
  T* in = ws;
  T* out = in + l.hp * l.p.wp * C;
  T* wt = out + dst_sp * C;
  const DwKernels<T>& kern = dw_kernels<T>();
  over_channel_blocks(C, [&](int64_t c0, int64_t c1) {
    pack_weight(w, taps(g), C, flip, c0, c1, wt);
    for (int64_t n = 0; n < g.n; ++n) {
      pack(l, src + n * C * src_sp, c0, c1, in);
      kern.cl_forward(l.p, in, wt, bias, out, c0, c1);
      unpack(out, dst_sp, C, c0, c1, dst + n * C * dst_sp);
    }
  });
}

}  // namespace

template <typename T>
void depthwise_cl_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                          T* ws) {
  correlate(g, ConvPass::kForward, x, w, g.mode == ConvMode::kConv, bias, y, ws);
}

template <typename T>
void depthwise_cl_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x,
                                T* ws) {
  // the adjoint of a cross-correlation correlates with the flipped kernel
  correlate(g, ConvPass::kBackwardData, grad_y, w, g.mode != ConvMode::kConv,
            static_cast<const T*>(nullptr), grad_x, ws);
}

template <typename T>
void depthwise_cl_backward_weight(const ConvGeometry& g, const T* x, const T* grad_y, T* grad_w,
                                  T* ws) {
  const Layout l = layout(g, ConvPass::kForward);
  const int64_t C = g.c, in_sp = g.in_spatial(), out_sp = g.out_spatial(), ntaps = taps(g);
  T* xt = ws;
  T* gt = xt + l.hp * l.p.wp * C;
  T* gw = gt + out_sp * C;
  const DwKernels<T>& kern = dw_kernels<T>();
  over_channel_blocks(C, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < ntaps; ++t) std::fill(gw + t * C + c0, gw + t * C + c1, T(0));
    for (int64_t n = 0; n < g.n; ++n) {
      pack(l, x + n * C * in_sp, c0, c1, xt);
      // grad_y as (positions, channels): the forward's output layout
      transpose_kernels<T>().transpose(grad_y + (n * C + c0) * out_sp, out_sp, c1 - c0, out_sp,
                                       nullptr, gt + c0, C);
      kern.cl_weight(l.p, xt, gt, gw, c0, c1);
    }
    const bool flip = g.mode == ConvMode::kConv;
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t t = 0; t < ntaps; ++t)
        grad_w[c * ntaps + (flip ? ntaps - 1 - t : t)] = gw[t * C + c];
  });
}

#define FASTCONV_INSTANTIATE(T)                                                              \
  template void depthwise_cl_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, \
                                        T*);                                                  \
  template void depthwise_cl_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, T*); \
  template void depthwise_cl_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
