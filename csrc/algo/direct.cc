// Direct (and depthwise) driver: builds the padded, phase-split planes each kernel reads
// (dw_ukernels.h), spreads (image, group) or group items over the thread pool, and maps each
// pass onto the plane kernels. A group's source planes are stacked (up to kMaxStack), so one
// call sums all of them for a few output planes in registers:
//   forward         -> forward kernel over the stacked padded input planes;
//   backward data   -> forward kernel over the stacked padded grad_y planes, once per input
//                      phase (stride 1: one phase, the flipped kernel); a phase's sub-kernel
//                      is every tap that reaches it, so no tap multiplies a zero; the phases
//                      are interleaved into the input plane (see DataPhases);
//   backward weight -> weight kernel: a few grad_y planes x every stacked (input plane, tap),
//                      reduced over the batch in a fixed order.
#include "algo/direct.h"
#include "algo/depthwise_channels_last.h"
#include "algo/direct_rows.h"
#include "algo/direct_taps.h"
#include "algo/batch_taps.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <numeric>
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

// Backward data, per dim d: input i = m * stride + ph (phase ph < stride) receives tap t from
// grad_y at o = m + (ph + pad_lo - t * dilation) / stride when that division is exact. Those
// taps are every step-th (step = stride / gcd(stride, dilation)) from the first one, at grad_y
// offsets dilation / gcd apart: a stride-1 correlation of grad_y, zero-padded by `pad` to
// `padded`, with the phase's sub-kernel (its taps in increasing offset order, i.e. from the
// last original tap down). Each phase produces `count` = ceil(in / stride) positions per dim
// (a phase with fewer inputs computes a few it drops). Only phases some tap reaches are listed
// (at most kernel[d] per dim, whatever the stride); the others are zero.
struct PhaseDim {
  int64_t index = 0;     // the phase ph
  int64_t taps = 1;      // sub-kernel taps
  int64_t last = 0;      // the original tap of the sub-kernel's first tap
  int64_t step = 1;      // original taps between sub-kernel taps
  int64_t dilation = 1;  // grad_y positions between sub-kernel taps
  int64_t offset = 0;    // padded grad_y position of output 0's first tap
};

struct DataPhases {
  Dims padded{}, pad{}, count{};
  std::vector<std::array<PhaseDim, kMaxRank>> phases;  // the phases some tap reaches
  bool strided = false;
  bool empty_phases = false;  // some phase no tap reaches
  int64_t plane_elems() const { return padded[0] * padded[1] * padded[2]; }
  int64_t out_elems() const { return count[0] * count[1] * count[2]; }
};

DataPhases data_phases(const ConvGeometry& g) {
  DataPhases dp;
  std::array<std::vector<PhaseDim>, kMaxRank> per_dim;
  for (int d = 0; d < kMaxRank; ++d) {
    const int64_t s = g.stride[d], dil = g.dilation[d], k = g.kernel[d], pl = g.pad_lo[d];
    const int64_t gcd = std::gcd(s, dil), step = s / gcd;
    dp.count[d] = (g.in[d] + s - 1) / s;
    dp.strided = dp.strided || s > 1;
    int64_t lo = 0, hi = g.out[d];  // padded grad_y range [lo, hi)
    // Taps t < step reach distinct phases; every later tap shares the phase of t % step.
    for (int64_t t = 0; t < std::min(k, step); ++t) {
      PhaseDim pd;
      pd.index = ((t * dil - pl) % s + s) % s;
      pd.taps = (k - 1 - t) / step + 1;
      pd.last = t + (pd.taps - 1) * step;
      pd.step = step;
      pd.dilation = dil / gcd;
      pd.offset = (pd.index + pl - pd.last * dil) / s;
      lo = std::min(lo, pd.offset);
      hi = std::max(hi, dp.count[d] + pd.offset + (pd.taps - 1) * pd.dilation);
      per_dim[d].push_back(pd);
    }
    dp.empty_phases = dp.empty_phases || int64_t(per_dim[d].size()) < s;
    dp.pad[d] = -lo;
    dp.padded[d] = hi - lo;
    for (PhaseDim& pd : per_dim[d]) pd.offset -= lo;
  }
  for (const PhaseDim& z : per_dim[0])
    for (const PhaseDim& y : per_dim[1])
      for (const PhaseDim& x : per_dim[2]) dp.phases.push_back({z, y, x});
  return dp;
}

// Where a phase's outputs go among all stride[0] * stride[1] * stride[2] phases.
int64_t phase_index(const ConvGeometry& g, const std::array<PhaseDim, kMaxRank>& ph) {
  return (ph[0].index * g.stride[1] + ph[1].index) * g.stride[2] + ph[2].index;
}

// The stride-1 plane a backward-data phase reads: the padded grad_y plane, the phase's
// sub-kernel.
DwPlane phase_plane(const DataPhases& dp, const std::array<PhaseDim, kMaxRank>& ph) {
  DwPlane p{};
  p.out = dp.count;
  p.stride = Dims{1, 1, 1};
  for (int d = 0; d < kMaxRank; ++d) p.kernel[d] = ph[d].taps, p.dilation[d] = ph[d].dilation;
  p.rows = dp.padded[1];
  p.width = dp.padded[2];
  return p;
}

// Where a phase's sub-kernel starts in the padded grad_y plane.
int64_t phase_base(const DataPhases& dp, const std::array<PhaseDim, kMaxRank>& ph) {
  return (ph[0].offset * dp.padded[1] + ph[1].offset) * dp.padded[2] + ph[2].offset;
}

DwPlane pass_plane(const ConvGeometry& g, ConvPass pass) {
  if (pass == ConvPass::kBackwardData) return phase_plane(data_phases(g), {});
  return make_plane(g.out, g, false);
}

// Source planes one kernel call stacks (sums in registers): a group's input channels for the
// forward and backward weight, its grad_y planes for backward data (capped, so the scratch
// stays cache-sized).
constexpr int64_t kMaxStack = 16;

int64_t stack_count(const ConvGeometry& g, ConvPass pass) {
  return std::min(pass == ConvPass::kBackwardData ? g.k_per_group() : g.c_per_group(), kMaxStack);
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

// Elements of every phase's outputs (strided backward data), per input channel.
int64_t phase_out_elems(const ConvGeometry& g, const DataPhases& dp) {
  if (!dp.strided) return 0;
  return checked_product({g.stride[0], g.stride[1], g.stride[2], dp.out_elems()},
                         "direct workspace");
}

// Per thread: the stacked padded planes (+ slack), then the flat forward's output runs; strided
// backward data then holds every phase of each input channel of a group.
int64_t slot_elems(const ConvGeometry& g, ConvPass pass) {
  DwPlane p = pass_plane(g, pass);
  int64_t plane = p.buffer_elems(), phases = 0;
  if (pass == ConvPass::kBackwardData) {
    const DataPhases dp = data_phases(g);
    plane = dp.plane_elems();
    phases = checked_product({g.c_per_group(), phase_out_elems(g, dp)}, "direct workspace");
  }
  return checked_product({stack_count(g, pass), plane}, "direct workspace") + kSlack +
         (p.flat() ? kDwMaxOutputs * (p.flat_elems() + 16) : 0) + phases;
}

// The forward kernel's scratch inside a slot that starts at buf; zeroes the slack before it
// (reads past the last stacked plane see zeros, not stale workspace).
template <typename T>
T* scratch_of(const DwPlane& p, T* buf) {
  T* slack = buf + p.channels * p.channel_stride;
  std::fill(slack, slack + kSlack, T(0));
  return slack + kSlack;
}

// buf = src (extent `ext`) placed at offset `pad` inside a zero-padded plane of `padded` =
// (depth, rows, width) extents whose rows each hold sx phase rows of `width`: the rows of each
// depth slice that hold source rows are split into phases by the ISA's row kernel.
template <typename T>
void fill_plane(const T* src, const Dims& ext, const Dims& pad, const Dims& padded, int64_t sx,
                T* buf) {
  const int64_t rows = padded[1], row = sx * padded[2];
  const int64_t y0 = std::clamp<int64_t>(pad[1], 0, rows);
  const int64_t y1 = std::clamp<int64_t>(pad[1] + ext[1], y0, rows);
  for (int64_t z = 0; z < padded[0]; ++z) {
    const int64_t iz = z - pad[0];
    T* dst = buf + z * rows * row;
    if (!inside(iz, ext[0])) {
      std::fill(dst, dst + rows * row, T(0));
      continue;
    }
    std::fill(dst, dst + y0 * row, T(0));
    dw_kernels<T>().pack_rows(src + (iz * ext[1] + y0 - pad[1]) * ext[2], ext[2], y1 - y0, ext[2],
                              pad[2], sx, padded[2], dst + y0 * row, sx * padded[2], padded[2],
                              sx);
    std::fill(dst + y1 * row, dst + rows * row, T(0));
  }
}

// An input plane (make_plane(g.out, ...)) from a channel of x.
template <typename T>
void fill_input(const DwPlane& p, const ConvGeometry& g, const T* src, T* buf) {
  fill_plane(src, g.in, g.pad_lo, Dims{p.padded_extent(0), p.rows, p.width}, p.stride[2], buf);
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

// Runs fn(slot, item) for every item in [0, items), each slot on one thread at a time. Slots
// take the next run of items as they finish one, so a thread the OS delays (or one with
// heavier items) leaves its share to the others; an item's result does not depend on its slot.
template <typename Fn>
void for_each_item(int64_t items, int64_t slots, Fn&& fn) {
  // Never more workers than items: a one-plane call runs inline instead of waking the pool
  // (a 1x1x8x8 depthwise forward: 3.5 us with a wake-up, 1.2 us inline).
  // Items are claimed a run at a time: one shared counter bumped per plane bounced its cache
  // line between the cores for every plane (576 planes of 19x19: 0.122 ms on 2 threads, 0.102
  // on 1). About 16 runs per worker still balance unequal items.
  const int64_t workers = std::min(slots, items);
  const int64_t run = std::max<int64_t>(1, items / (16 * std::max<int64_t>(1, workers)));
  std::atomic<int64_t> next{0};
  parallel_for(workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s)
      for (int64_t i0; (i0 = next.fetch_add(run, std::memory_order_relaxed)) < items;)
        for (int64_t i = i0; i < std::min(items, i0 + run); ++i) fn(s, i);
  });
}

}  // namespace

DwPlane input_plane(const ConvGeometry& g) { return make_plane(g.out, g, false); }

template <typename T>
void fill_input_plane(const DwPlane& p, const ConvGeometry& g, const T* src, T* buf) {
  fill_input(p, g, src, buf);
}

template <typename T>
void fill_input_rows(const ConvGeometry& g, int64_t slice, int64_t row, const DwPlane& band,
                     const T* src, T* buf) {
  // The band is a plane whose first slice and row lie `slice` and `row` further on: front
  // paddings that much smaller (negative inside the input).
  const Dims pad{g.pad_lo[0] - slice, g.pad_lo[1] - row, g.pad_lo[2]};
  fill_plane(src, g.in, pad, Dims{1, band.rows, band.width}, band.stride[2], buf);
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

// Marks a depthwise plan that runs channels-last (plan.detail; a dense direct plan's marker
// says which dense path runs it).
struct ChannelsLastMarker {};
enum class DensePath { kRows, kTaps, kBatch };

static bool channels_last(const ConvPlan& plan) {
  return plan.algo == Algorithm::kDepthwise && plan.detail != nullptr;
}

static bool dense_path(const ConvPlan& plan, DensePath path) {
  return plan.runner == Algorithm::kDirect && plan.detail != nullptr &&
         *static_cast<const DensePath*>(plan.detail.get()) == path;
}

template <typename T>
void direct_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  if (channels_last(plan)) return depthwise_cl_forward(plan.g, x, w, bias, y, ws);
  if (dense_path(plan, DensePath::kTaps)) return taps_forward(plan, x, w, bias, y, ws);
  if (dense_path(plan, DensePath::kBatch)) return batch_taps_forward(plan, x, w, bias, y, ws);
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
        fill_input(p, g, x + (n * g.c + gr * cg + c0 + cl) * g.in_spatial(),
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

// Per phase of dp, its sub-kernel's taps of every filter in the forward kernel's order: per
// input channel, the taps of every output channel of its group (filter (gr * kg + j, cl) at
// ((gr * cg + cl) * kg + j) * taps); phase ph's start at out + starts[ph].
template <typename T>
void phase_weights(const ConvGeometry& g, const DataPhases& dp, const T* w, T* out,
                   std::vector<int64_t>& starts) {
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  int64_t at = 0;
  for (const auto& ph : dp.phases) {
    const int64_t n = ph[0].taps * ph[1].taps * ph[2].taps;
    starts.push_back(at);
    at += g.k * cg * n;
    for (int64_t gr = 0; gr < g.groups; ++gr)
      for (int64_t cl = 0; cl < cg; ++cl)
        for (int64_t j = 0; j < kg; ++j) {
          const T* f = w + ((gr * kg + j) * cg + cl) * taps;
          T* o = out + starts.back() + ((gr * cg + cl) * kg + j) * n;
          for (int64_t a = 0; a < ph[0].taps; ++a)
            for (int64_t b = 0; b < ph[1].taps; ++b)
              for (int64_t c = 0; c < ph[2].taps; ++c) {
                const int64_t tz = ph[0].last - a * ph[0].step, ty = ph[1].last - b * ph[1].step;
                *o++ = f[(tz * g.kernel[1] + ty) * g.kernel[2] + ph[2].last - c * ph[2].step];
              }
        }
  }
}

// dst = the input plane from its phases (phase (pz, py, px) at src + phase index * dp.out_elems(),
// dp.count extents), by the ISA's interleaving row kernel.
template <typename T>
void interleave_phases(const ConvGeometry& g, const DataPhases& dp, const T* src, T* dst) {
  const int64_t sy = g.stride[1], sx = g.stride[2], cx = dp.count[2], elems = dp.out_elems();
  for (int64_t iz = 0; iz < g.in[0]; ++iz)
    for (int64_t py = 0; py < std::min(sy, g.in[1]); ++py) {
      const int64_t phase = ((iz % g.stride[0]) * sy + py) * sx;
      dw_kernels<T>().unpack_rows(src + phase * elems + (iz / g.stride[0]) * dp.count[1] * cx, cx,
                                  elems, (g.in[1] - py + sy - 1) / sy, cx, sx, 0, g.in[2],
                                  dst + (iz * g.in[1] + py) * g.in[2], sy * g.in[2]);
    }
}

template <typename T>
void direct_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  if (channels_last(plan)) return depthwise_cl_backward_data(plan.g, grad_y, w, grad_x, ws);
  if (dense_path(plan, DensePath::kTaps)) return taps_backward_data(plan, grad_y, w, grad_x, ws);
  if (dense_path(plan, DensePath::kBatch))
    return batch_taps_backward_data(plan, grad_y, w, grad_x, ws);
  if (plan.detail) return rows_backward_data(plan, grad_y, w, grad_x, ws);
  const ConvGeometry& g = plan.g;
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  const DataPhases dp = data_phases(g);
  const int64_t phases = int64_t(dp.phases.size()), stack = stack_count(g, plan.pass);
  std::vector<DwPlane> planes;
  std::vector<std::vector<int64_t>> offsets(static_cast<size_t>(phases));
  for (int64_t ph = 0; ph < phases; ++ph) {
    DwPlane p = phase_plane(dp, dp.phases[size_t(ph)]);
    p.channel_stride = dp.plane_elems();
    p.channels = stack;
    offsets[size_t(ph)].resize(size_t(p.taps()));
    p.set_taps(offsets[size_t(ph)].data());
    planes.push_back(p);
  }
  const int64_t per_slot = slot_elems(g, plan.pass);
  T* weights = ws + slot_count(plan) * per_slot;
  T* wt = weights + g.k * cg * taps;
  effective_weights(g, w, g.mode == ConvMode::kConv, weights);
  std::vector<int64_t> starts;
  phase_weights(g, dp, weights, wt, starts);
  const DwKernels<T>& kern = dw_kernels<T>();
  for_each_item(g.n * g.groups, slot_count(plan), [&](int64_t slot, int64_t item) {
    const int64_t n = item / g.groups, gr = item % g.groups;
    T* buf = ws + slot * per_slot;
    T* scratch = scratch_of(planes[0], buf);
    // Strided: every phase of each input channel (zeros where no tap reaches), interleaved
    // into grad_x at the end.
    const int64_t all_phases = phase_out_elems(g, dp);
    T* phase_out = buf + per_slot - cg * all_phases;
    if (dp.empty_phases) std::fill(phase_out, phase_out + cg * all_phases, T(0));
    auto out = [&](int64_t cl, int64_t ph) {
      return dp.strided ? phase_out + cl * all_phases +
                              phase_index(g, dp.phases[size_t(ph)]) * dp.out_elems()
                        : grad_x + (n * g.c + gr * cg + cl) * g.in_spatial();
    };
    // Stack the padded grad_y planes, correlate them into each input channel's phases.
    for (int64_t j0 = 0; j0 < kg; j0 += stack) {
      const int64_t count_j = std::min(stack, kg - j0);
      for (int64_t j = 0; j < count_j; ++j)
        fill_plane(grad_y + (n * g.k + gr * kg + j0 + j) * g.out_spatial(), g.out, dp.pad,
                   dp.padded, 1, buf + j * dp.plane_elems());
      for (int64_t ph = 0; ph < phases; ++ph) {
        DwPlane sp = planes[size_t(ph)];
        const int64_t n_taps = sp.kernel_volume();
        sp.channels = count_j;
        for (int64_t cl = 0; cl < cg; cl += kDwMaxOutputs) {
          const int count = int(std::min<int64_t>(kDwMaxOutputs, cg - cl));
          T* outs[kDwMaxOutputs];
          for (int f = 0; f < count; ++f) outs[f] = out(cl + f, ph);
          kern.forward(sp, buf + phase_base(dp, dp.phases[size_t(ph)]),
                       wt + starts[size_t(ph)] + ((gr * cg + cl) * kg + j0) * n_taps, kg * n_taps,
                       count, nullptr, j0 > 0, outs, scratch);
        }
      }
    }
    if (dp.strided)
      for (int64_t cl = 0; cl < cg; ++cl)
        interleave_phases(g, dp, phase_out + cl * all_phases,
                          grad_x + (n * g.c + gr * cg + cl) * g.in_spatial());
  });
}

template <typename T>
void direct_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                            T* ws) {
  if (channels_last(plan)) return depthwise_cl_backward_weight(plan.g, x, grad_y, grad_w, ws);
  if (dense_path(plan, DensePath::kBatch))
    return batch_taps_backward_weight(plan, x, grad_y, grad_w, ws);
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
          fill_input(p, g, x + (n * g.c + gr * cg + c0 + cl) * g.in_spatial(),
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
  // Dense convolutions of small images with many channels run per-tap GEMM calls
  // (direct_taps.h), the others the row kernels (direct_rows.h); plan.detail says which.
  if (batch_taps_serve(plan.g, plan.pass)) {
    plan.workspace_bytes =
        batch_taps_workspace_bytes(plan.g, plan.pass, plan.dtype, plan.threads);
    plan.detail = std::make_shared<const DensePath>(DensePath::kBatch);
    plan.note = plan.pass == ConvPass::kForward
                    ? "images-innermost channels-last rows gathered from stride-phase planes by "
                      "GEMM tile calls per tap, padding skipped"
                : plan.pass == ConvPass::kBackwardData && plan.g.stride[1] * plan.g.stride[2] == 1
                    ? "as the forward's correlation with the flipped kernel: images-innermost "
                      "channels-last grad_y rows gathered from stride-phase planes by GEMM tile "
                      "calls per tap, padding skipped"
                : plan.pass == ConvPass::kBackwardData
                    ? "images-innermost channels-last grad_y scattered into stride-phase planes "
                      "by GEMM tile calls per tap, padding skipped"
                    : "per tap, grad_y's images-innermost rows against stride-phase planes by "
                      "GEMM tile calls, padding skipped";
    return "";
  }
  if (taps_serve(plan.g, plan.pass)) {
    plan.workspace_bytes = taps_workspace_bytes(plan.g, plan.pass, plan.dtype, plan.threads);
    plan.detail = std::make_shared<const DensePath>(DensePath::kTaps);
    plan.note = "channels-last segments of output rows, one GEMM call per tap, padding skipped";
    return "";
  }
  if (rows_serve(plan.g, plan.pass)) {
    plan.workspace_bytes = rows_workspace_bytes(plan.g, plan.pass, plan.dtype, plan.threads);
    plan.detail = std::make_shared<const DensePath>(DensePath::kRows);
    plan.note = rows_pairs(plan.g, plan.pass)
                    ? "row kernels over (channel, tap pair) terms, no phase split"
                    : "row kernels over (channel, tap) terms, vectorised along output rows";
    if (rows_bands(plan.g, plan.pass, plan.dtype, plan.threads))
      plan.note += ", input rows filled band by band per thread";
    if (const int bits = rows_narrow_bits(plan.g, plan.pass, plan.dtype))
      plan.note += ", " + std::to_string(bits) + "-bit vectors along rows of " +
                   std::to_string(plan.g.out[2]) +
                   " (fewer operations than 512-bit ones on this CPU's 256-bit units)";
    return "";
  }
  plan.workspace_bytes = direct_workspace_bytes(plan);
  return "";
}

std::string depthwise_plan(ConvPlan& plan) {
  const std::string why = depthwise_unsupported_reason(plan.g, plan.pass);
  if (!why.empty()) return why;
  if (depthwise_channels_last(plan.g, plan.pass)) {
    plan.workspace_bytes = checked_product(
        {depthwise_channels_last_elems(plan.g, plan.pass), dtype_size(plan.dtype)},
        "depthwise workspace");
    plan.detail = std::make_shared<const ChannelsLastMarker>();
    plan.note = "small planes channels-last: vectors across channels, every lane used";
    return "";
  }
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
template void fill_input_rows<float>(const ConvGeometry&, int64_t, int64_t, const DwPlane&,
                                     const float*, float*);
template void fill_input_rows<double>(const ConvGeometry&, int64_t, int64_t, const DwPlane&,
                                      const double*, double*);

}  // namespace fastconv::algo
