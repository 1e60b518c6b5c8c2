// Direct (and depthwise) driver: builds the padded, phase-split planes each kernel reads
// (dw_ukernels.h), spreads (image, group) or group items over the thread pool, and maps each
// pass onto the three plane kernels. A group's source planes are stacked (up to kMaxStack), so
// one call sums all of them for a few output planes in registers:
//   forward                -> forward kernel over the stacked padded input planes;
//   backward data, stride 1 -> forward kernel over the stacked padded grad_y planes with the
//                             flipped kernel (a stride-1 correlation's adjoint is a
//                             correlation), per input channel;
//   backward data, strided -> scatter kernel into a padded plane per (output, input channel)
//                             pair, then crop (the adjoint of the padding copy);
//   backward weight        -> weight kernel: a few grad_y planes x every stacked (input plane,
//                             tap), reduced over the batch in a fixed order.
#include "algo/direct.h"
#include "algo/direct_rows.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "ukernels/depthwise/dw_ukernels.h"

namespace fastconv::algo {
namespace {

// Kernels read up to one 16-element chunk past the end of a phase row (stores are exact).
constexpr int64_t kSlack = 16;

inline bool inside(int64_t v, int64_t extent) { return static_cast<uint64_t>(v) < uint64_t(extent); }

DwPlane make_plane(const Dims& out, const ConvGeometry& g, bool unit_stride) {
  DwPlane p{};
  p.out = out;
  p.kernel = g.kernel;
  p.stride = unit_stride ? Dims{1, 1, 1} : g.stride;
  p.dilation = g.dilation;
  p.rows = p.padded_extent(1);
  const int64_t wp = p.padded_extent(2);
  p.width = (wp + p.stride[2] - 1) / p.stride[2];
  return p;
}

// Forward and strided backward data read/write the padded input plane; stride-1 backward data
// reads a padded grad_y plane whose output is the input plane.
bool backward_data_as_forward(const ConvGeometry& g) {
  return g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
}

DwPlane pass_plane(const ConvGeometry& g, ConvPass pass) {
  if (pass == ConvPass::kBackwardData && backward_data_as_forward(g))
    return make_plane(g.in, g, true);
  return make_plane(g.out, g, false);
}

// Source planes one kernel call stacks (sums in registers): a group's input channels for the
// forward and backward weight, its grad_y planes for stride-1 backward data (capped, so the
// scratch stays cache-sized); one for the strided backward data's scatter.
constexpr int64_t kMaxStack = 16;

int64_t stack_count(const ConvGeometry& g, ConvPass pass) {
  if (pass == ConvPass::kBackwardData)
    return backward_data_as_forward(g) ? std::min(g.k_per_group(), kMaxStack) : 1;
  return std::min(g.c_per_group(), kMaxStack);
}

// The stacked plane of `pass`, its tap offsets stored in `offsets`.
DwPlane stacked_plane(const ConvGeometry& g, ConvPass pass, std::vector<int64_t>& offsets) {
  DwPlane p = pass_plane(g, pass);
  p.channels = stack_count(g, pass);
  p.channel_stride = p.buffer_elems();
  offsets.resize(size_t(p.taps()));
  p.set_taps(offsets.data());
  return p;
}

// Scratch slots: one per thread the plan was made for (the workspace holds that many).
int64_t slot_count(const ConvPlan& plan) { return std::max(1, plan.threads); }

// Per thread: the stacked padded planes (+ slack), then the flat forward's output runs.
int64_t slot_elems(const ConvGeometry& g, ConvPass pass) {
  const DwPlane p = pass_plane(g, pass);
  return stack_count(g, pass) * p.buffer_elems() + kSlack +
         (p.flat() ? kDwMaxOutputs * (p.flat_elems() + 16) : 0);
}

// The forward kernel's scratch inside a slot that starts at buf; zeroes the slack before it
// (reads past the last stacked plane see zeros, not stale workspace).
template <typename T>
T* scratch_of(const DwPlane& p, T* buf) {
  T* slack = buf + p.channels * p.channel_stride;
  std::fill(slack, slack + kSlack, T(0));
  return slack + kSlack;
}

// buf = src (extent `ext`) placed at offset `pad` inside the padded plane, zeros elsewhere; the
// rows of each depth slice that hold source rows are split into their stride[2] phase rows by
// the ISA's row kernel.
template <typename T>
void fill_plane(const DwPlane& p, const T* src, const Dims& ext, const Dims& pad, T* buf) {
  const int64_t depth = p.padded_extent(0), row = p.stride[2] * p.width;
  const int64_t y0 = std::clamp<int64_t>(pad[1], 0, p.rows);
  const int64_t y1 = std::clamp<int64_t>(pad[1] + ext[1], y0, p.rows);
  for (int64_t z = 0; z < depth; ++z) {
    const int64_t iz = z - pad[0];
    T* dst = buf + z * p.rows * row;
    if (!inside(iz, ext[0])) {
      std::fill(dst, dst + p.rows * row, T(0));
      continue;
    }
    std::fill(dst, dst + y0 * row, T(0));
    dw_kernels<T>().pack_rows(src + (iz * ext[1] + y0 - pad[1]) * ext[2], ext[2], y1 - y0, ext[2],
                              pad[2], p.stride[2], p.width, dst + y0 * row);
    std::fill(dst + y1 * row, dst + p.rows * row, T(0));
  }
}

// dst (extent `ext`) = the padded plane at offset `pad` (0 where the plane does not reach):
// the adjoint of fill_plane.
template <typename T>
void crop_plane(const DwPlane& p, const T* buf, const Dims& ext, const Dims& pad, T* dst) {
  const int64_t depth = p.padded_extent(0), row = p.stride[2] * p.width;
  // Source rows [y0, y1) of each slice lie inside the plane (rows y + pad[1]).
  const int64_t y0 = std::clamp<int64_t>(-pad[1], 0, ext[1]);
  const int64_t y1 = std::clamp<int64_t>(p.rows - pad[1], y0, ext[1]);
  for (int64_t iz = 0; iz < ext[0]; ++iz) {
    T* d = dst + iz * ext[1] * ext[2];
    const int64_t z = iz + pad[0];
    if (!inside(z, depth)) {
      std::fill(d, d + ext[1] * ext[2], T(0));
      continue;
    }
    std::fill(d, d + y0 * ext[2], T(0));
    dw_kernels<T>().unpack_rows(buf + (z * p.rows + y0 + pad[1]) * row, row, p.width, y1 - y0,
                                p.width, p.stride[2], pad[2], ext[2], d + y0 * ext[2], ext[2]);
    std::fill(d + y1 * ext[2], d + ext[1] * ext[2], T(0));
  }
}

// Effective taps per (output channel, input channel) filter: flipped for true convolution (and
// flipped again, i.e. as stored, for the adjoint of a stride-1 correlation).
template <typename T>
void effective_weights(const ConvGeometry& g, const T* w, bool flip, T* out) {
  const int64_t taps = g.kernel_spatial();
  for (int64_t k = 0; k < g.k * g.c_per_group(); ++k)
    for (int64_t t = 0; t < taps; ++t)
      out[k * taps + t] = w[k * taps + (flip ? taps - 1 - t : t)];
}

// wt[((gr * cg + cl) * kg + j) * taps + t] = w[((gr * kg + j) * cg + cl) * taps + t]: per input
// channel, the taps of every output channel of its group (the stride-1 backward data's filters).
template <typename T>
void transpose_group_weights(const ConvGeometry& g, const T* w, T* wt) {
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  for (int64_t gr = 0; gr < g.groups; ++gr)
    for (int64_t cl = 0; cl < cg; ++cl)
      for (int64_t j = 0; j < kg; ++j)
        std::copy_n(w + ((gr * kg + j) * cg + cl) * taps, taps,
                    wt + ((gr * cg + cl) * kg + j) * taps);
}

// Runs fn(slot, item) for every item in [0, items), each slot on one thread at a time.
template <typename Fn>
void for_each_item(int64_t items, int64_t slots, Fn&& fn) {
  // Never more workers than items: a one-plane call runs inline instead of waking the pool
  // (a 1x1x8x8 depthwise forward: 3.5 us with a wake-up, 1.2 us inline).
  parallel_for(std::min(slots, items), 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s)
      for (int64_t i = s; i < items; i += slots) fn(s, i);
  });
}

}  // namespace

DwPlane input_plane(const ConvGeometry& g) { return make_plane(g.out, g, false); }

template <typename T>
void fill_input_plane(const DwPlane& p, const ConvGeometry& g, const T* src, T* buf) {
  fill_plane(p, src, g.in, g.pad_lo, buf);
}

std::string depthwise_unsupported_reason(const ConvGeometry& g, ConvPass) {
  if (g.c_per_group() != 1)
    return "depthwise needs one input channel per group (groups == C); got C/groups = " +
           std::to_string(g.c_per_group());
  return "";
}

static int64_t direct_workspace_bytes(const ConvPlan& plan) {
  const ConvGeometry& g = plan.g;
  const int64_t elem_size = dtype_size(plan.dtype);
  const int64_t per_slot =
      checked_product({slot_elems(g, plan.pass), elem_size}, "direct workspace");
  // Effective weights, and the backward data's per-input-channel copy of them.
  return checked_product({slot_count(plan), per_slot}, "direct workspace") +
         checked_product({2, g.k, g.c_per_group(), g.kernel_spatial(), elem_size},
                         "direct workspace");
}

// Filter (k, channel cl of its group) starts at w + filter(k, cl) * taps.
static inline int64_t filter(const ConvGeometry& g, int64_t k, int64_t cl) {
  return k * g.c_per_group() + cl;
}

template <typename T>
void direct_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  if (plan.detail) return rows_forward(plan, x, w, bias, y, ws);
  const ConvGeometry& g = plan.g;
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  std::vector<int64_t> offsets;
  const DwPlane p = stacked_plane(g, ConvPass::kForward, offsets);
  const int64_t per_slot = slot_elems(g, plan.pass);
  T* weights = ws + slot_count(plan) * per_slot;
  effective_weights(g, w, g.mode == ConvMode::kConv, weights);
  const DwKernels<T>& kern = dw_kernels<T>();
  for_each_item(g.n * g.groups, slot_count(plan), [&](int64_t slot, int64_t item) {
    const int64_t n = item / g.groups, gr = item % g.groups;
    T* buf = ws + slot * per_slot;
    // The group's input planes are padded once, stacked, and each kernel call sums all of them
    // (up to kMaxStack at a time) into a few output channels held in registers; a later stack
    // adds to what the first wrote with the bias.
    for (int64_t c0 = 0; c0 < cg; c0 += p.channels) {
      DwPlane sp = p;
      sp.channels = std::min(p.channels, cg - c0);
      for (int64_t cl = 0; cl < sp.channels; ++cl)
        fill_plane(p, x + (n * g.c + gr * cg + c0 + cl) * g.in_spatial(), g.in, g.pad_lo,
                   buf + cl * p.channel_stride);
      for (int64_t j = 0; j < kg; j += kDwMaxOutputs) {
        const int count = int(std::min<int64_t>(kDwMaxOutputs, kg - j));
        const int64_t k = gr * kg + j;
        T* outs[kDwMaxOutputs];
        for (int f = 0; f < count; ++f) outs[f] = y + (n * g.k + k + f) * g.out_spatial();
        kern.forward(sp, buf, weights + filter(g, k, c0) * taps, cg * taps, count,
                     bias ? bias + k : nullptr, c0 > 0, outs, scratch_of(p, buf));
      }
    }
  });
}

template <typename T>
void direct_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  if (plan.detail) return rows_backward_data(plan, grad_y, w, grad_x, ws);
  const ConvGeometry& g = plan.g;
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  const bool as_forward = backward_data_as_forward(g);
  std::vector<int64_t> offsets;
  const DwPlane p = stacked_plane(g, ConvPass::kBackwardData, offsets);
  const int64_t per_slot = slot_elems(g, plan.pass);
  T* weights = ws + slot_count(plan) * per_slot;
  // The adjoint of a stride-1 correlation with taps w is a correlation with the taps reversed.
  effective_weights(g, w, (g.mode == ConvMode::kConv) != as_forward, weights);
  Dims pad_adj{};
  for (int d = 0; d < kMaxRank; ++d) pad_adj[d] = (g.kernel[d] - 1) * g.dilation[d] - g.pad_lo[d];
  T* wt = weights + g.k * cg * taps;  // as_forward: per input channel, its (j, tap) taps
  if (as_forward) transpose_group_weights(g, weights, wt);
  const DwKernels<T>& kern = dw_kernels<T>();
  for_each_item(g.n * g.groups, slot_count(plan), [&](int64_t slot, int64_t item) {
    const int64_t n = item / g.groups, gr = item % g.groups;
    T* buf = ws + slot * per_slot;
    auto gx = [&](int64_t cl) { return grad_x + (n * g.c + gr * cg + cl) * g.in_spatial(); };
    auto gy = [&](int64_t j) { return grad_y + (n * g.k + gr * kg + j) * g.out_spatial(); };
    if (as_forward) {  // stack the padded grad_y planes, correlate them into each input channel
      for (int64_t j0 = 0; j0 < kg; j0 += p.channels) {
        DwPlane sp = p;
        sp.channels = std::min(p.channels, kg - j0);
        for (int64_t j = 0; j < sp.channels; ++j)
          fill_plane(p, gy(j0 + j), g.out, pad_adj, buf + j * p.channel_stride);
        for (int64_t cl = 0; cl < cg; cl += kDwMaxOutputs) {
          const int count = int(std::min<int64_t>(kDwMaxOutputs, cg - cl));
          T* outs[kDwMaxOutputs];
          for (int f = 0; f < count; ++f) outs[f] = gx(cl + f);
          kern.forward(sp, buf, wt + ((gr * cg + cl) * kg + j0) * taps, kg * taps, count,
                       nullptr, j0 > 0, outs, scratch_of(p, buf));
        }
      }
      return;
    }
    for (int64_t cl = 0; cl < cg; ++cl) {  // scatter every grad_y plane into one padded plane
      std::fill(buf, buf + p.buffer_elems(), T(0));
      for (int64_t j = 0; j < kg; ++j)
        kern.scatter(p, gy(j), weights + filter(g, gr * kg + j, cl) * taps, buf);
      crop_plane(p, buf, g.in, g.pad_lo, gx(cl));
    }
  });
}

template <typename T>
void direct_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                            T* ws) {
  if (plan.detail) return rows_backward_weight(plan, x, grad_y, grad_w, ws);
  const ConvGeometry& g = plan.g;
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  std::vector<int64_t> offsets;
  const DwPlane p = stacked_plane(g, ConvPass::kBackwardWeight, offsets);
  const int64_t per_slot = slot_elems(g, plan.pass);
  T* acc = ws + slot_count(plan) * per_slot;  // gradient in the kernels' tap order
  const DwKernels<T>& kern = dw_kernels<T>();
  // One item per group: it owns its filters and sums them over the batch in order, so the
  // result does not depend on the threads. Each call correlates a few grad_y planes with every
  // (stacked input plane, tap) pair, the products summed in registers.
  for_each_item(g.groups, slot_count(plan), [&](int64_t slot, int64_t gr) {
    T* buf = ws + slot * per_slot;
    scratch_of(p, buf);
    std::fill(acc + filter(g, gr * kg, 0) * taps, acc + filter(g, (gr + 1) * kg, 0) * taps, T(0));
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t c0 = 0; c0 < cg; c0 += p.channels) {
        DwPlane sp = p;
        sp.channels = std::min(p.channels, cg - c0);
        for (int64_t cl = 0; cl < sp.channels; ++cl)
          fill_plane(p, x + (n * g.c + gr * cg + c0 + cl) * g.in_spatial(), g.in, g.pad_lo,
                     buf + cl * p.channel_stride);
        for (int64_t j = 0; j < kg; j += kDwMaxOutputs) {
          const int count = int(std::min<int64_t>(kDwMaxOutputs, kg - j));
          const int64_t k = gr * kg + j;
          const T* gys[kDwMaxOutputs];
          for (int f = 0; f < count; ++f) gys[f] = grad_y + (n * g.k + k + f) * g.out_spatial();
          kern.weight(sp, buf, gys, count, acc + filter(g, k, c0) * taps, cg * taps);
        }
      }
    }
  });
  effective_weights(g, acc, g.mode == ConvMode::kConv, grad_w);
}

std::string direct_plan(ConvPlan& plan) {
  // Dense convolutions run the row kernels (direct_rows.h); plan.detail marks them.
  if (rows_serve(plan.g, plan.pass)) {
    plan.workspace_bytes = rows_workspace_bytes(plan.g, plan.pass, plan.dtype, plan.threads);
    plan.detail = std::make_shared<const bool>(true);
    plan.note = "row kernels over (channel, tap) terms, vectorised along output rows";
    return "";
  }
  plan.workspace_bytes = direct_workspace_bytes(plan);
  return "";
}

std::string depthwise_plan(ConvPlan& plan) {
  const std::string why = depthwise_unsupported_reason(plan.g, plan.pass);
  if (!why.empty()) return why;
  plan.workspace_bytes = direct_workspace_bytes(plan);
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                             \
  template void direct_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void direct_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void direct_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE
template void fill_input_plane<float>(const DwPlane&, const ConvGeometry&, const float*, float*);
template void fill_input_plane<double>(const DwPlane&, const ConvGeometry&, const double*, double*);

}  // namespace fastconv::algo
