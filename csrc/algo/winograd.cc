// Winograd F(m,r) / F(mxm,rxr) convolution runners (r = 2, 3 or 5; the planner is
// winograd_plan.cc): kernel transforms once per call (packed for the GEMMs once, on tile blocks),
// then blocks of tiles (across images) go through input transform -> alpha^2 batched GEMMs ->
// output transform, each block's transform-domain data sized to stay in the outer caches.
// Strided layers run on their stride phases (algo/winograd_phases.h), dilated ones on their
// dilation phases (algo/dilation_phases.h).
#include "algo/winograd.h"

#include <algorithm>
#include <atomic>
#include <functional>

#include "algo/dilation_phases.h"
#include "algo/winograd_depth.h"
#include "algo/winograd_phases.h"
#include "algo/winograd_plan.h"
#include "algo/winograd_line.h"
#include "algo/winograd_stride2.h"
#include "algo/winograd_schedule.h"
#include "algo/winograd_stages.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

using winograd_schedule::for_each_run;
using winograd_schedule::Schedule;
using winograd_stages::ceil_div;
using winograd_stages::Stages;
using winograd_stages::tile_kernels;

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

// Every group's U, packed for the GEMMs at u: panels of MR output channels are transformed
// into a thread's scratch, then packed coordinate by coordinate.
template <typename T>
void pack_kernels(const Schedule& p, const Stages<T>& st, T* u, T* scratch) {
  const int64_t mr = gemm::packed_a_row_step<T>();
  const int64_t panels = ceil_div(p.kg, mr), units = st.f.groups * panels;
  std::atomic<int64_t> next{0};
  parallel_for(p.pack_slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* panel = scratch + s * p.pack_slot;
      for (int64_t unit = next++; unit < units; unit = next++) {
        const int64_t grp = unit / panels, k0 = unit % panels * mr;
        const int64_t rows = std::min(mr, p.kg - k0);
        st.kernels(grp, k0, k0 + rows, k0, panel);
        for (int64_t a = 0; a < p.coords; ++a)
          gemm::pack_a_rows<T>(p.kg, p.cg, k0, rows,
                               gemm::MatrixRef<T>{panel + a * p.cg, p.u_ks, 1},
                               u + (grp * p.coords + a) * p.u_packed);
      }
    }
  });
}

template <typename T>
void run_tile_blocks(const Schedule& p, const Stages<T>& st, T* ws) {
  const ConvGeometry& f = st.f;
  T* u = ws;
  T* scratch = ws + p.u_elems;
  pack_kernels(p, st, u, scratch);
  for_each_block(p, f.groups * p.blocks, [&](int64_t unit, int64_t s) {
      const int64_t grp = unit / p.blocks, b = unit % p.blocks;
      const T* ug = u + grp * p.coords * p.u_packed;
      T* v = scratch + s * (p.slot_v + p.slot_m);
      T* mdom = v + p.slot_v;
      const int64_t t0 = b * p.block, t1 = std::min(p.tiles, t0 + p.block);
      const int64_t step = st.input_step(), out_step = st.output_step();
      const auto output = [&](int64_t k0, int64_t k1) {
        if (st.windows_out)
          st.output_windows(grp, t0, t1, k0, k1, mdom);
        else
          st.output(grp, t0, t1, k0, k1, 0, mdom);
      };
      if (p.parallel_blocks) {
        st.input(grp, t0, t1, 0, p.cg, v);
        st.gemms_packed(t1 - t0, ug, v, mdom);
        output(0, p.kg);
        return;
      }
      parallel_for(p.cg / step, 1, [&](int64_t a0, int64_t a1) {
        st.input(grp, t0, t1, a0 * step, a1 * step, v);
      });
      st.gemms_packed(t1 - t0, ug, v, mdom);
      parallel_for(p.kg / out_step, 1,
                   [&](int64_t a0, int64_t a1) { output(a0 * out_step, a1 * out_step); });
  });
}

// Run once a kernel block's outputs are written, on output channels [k0, k1) of group grp in
// whole units (strided backward data moves its stacked channels back while they are in cache:
// afterwards, from memory, that took 6% of dcgan.g3's transposed forward).
struct BlockDone {
  std::function<void(int64_t grp, int64_t k0, int64_t k1)> fn;
  int64_t unit = 1;
};

template <typename T>
void run_kernel_blocks(const Schedule& p, const Stages<T>& st, T* ws, const BlockDone* done) {
  T* v = ws;
  T* scratch = ws + p.v_elems;
  for (int64_t grp = 0; grp < st.f.groups; ++grp) {
    const int64_t step = st.input_step();
    parallel_for(p.cg / step, 1, [&](int64_t a0, int64_t a1) {
      st.input_for_gemms(grp, 0, p.tiles, a0 * step, a1 * step, v);
    });
    for_each_block(p, p.blocks, [&](int64_t b, int64_t s) {
      T* u = scratch + s * (p.slot_u + p.slot_m);
      T* mdom = u + p.slot_u;
      const int64_t k0 = b * p.kb, k1 = std::min(p.kg, k0 + p.kb);
      if (p.parallel_blocks) {
        st.kernels(grp, k0, k1, k0, u);
        st.gemms(k1 - k0, p.tiles, u, v, mdom);
        st.output(grp, 0, p.tiles, k0, k1, k0, mdom);
        if (done) done->fn(grp, k0, k1);
        return;
      }
      parallel_for(k1 - k0, 1, [&](int64_t a0, int64_t a1) {
        st.kernels(grp, k0 + a0, k0 + a1, k0, u);
      });
      st.gemms(k1 - k0, p.tiles, u, v, mdom);
      parallel_for(k1 - k0, 1, [&](int64_t a0, int64_t a1) {
        st.output(grp, 0, p.tiles, k0 + a0, k0 + a1, k0, mdom);
      });
      if (done) {
        parallel_for((k1 - k0) / done->unit, 1, [&](int64_t a0, int64_t a1) {
          done->fn(grp, k0 + a0 * done->unit, k0 + a1 * done->unit);
        });
      }
    });
  }
}

// The stride-1 correlation p.f of x with the weight at w (element (grp, k, c) at w + grp * gs +
// k * ks + c * cs) plus bias, into y (with fold_out, y is the stored (N, K, out) tensor and p.f's
// output the images' wide plane, moved into it window by window).
template <typename T>
void run_correlation(const Schedule& p, const T* x, const T* w, int64_t gs, int64_t ks, int64_t cs,
                     const T* bias, T* y, T* ws, winograd_phases::PhasedWeight pw = {},
                     const BlockDone* done = nullptr,
                     const winograd_phases::Split* windows = nullptr, bool windows_out = false,
                     const winograd_depth::DepthStack* depth = nullptr, const T* zero = nullptr,
                     const winograd_phases::Split* fold_out = nullptr) {
  if (p.tiles == 0) return;
  const Stages<T> st{p, p.f, tile_kernels<T>(p.mh, p.mw, p.r), x, w, gs, ks, cs, bias,
                     y, pw, windows, windows_out, depth, zero, fold_out};
  if (p.kernel_blocks)
    run_kernel_blocks(p, st, ws, done);
  else
    run_tile_blocks(p, st, ws);
}

// The weight gradient's GEMMs of one block of tiles (all of them) and the fold, chunk by chunk
// of output channels (Schedule::fold_rows): V packed once per coordinate into ws, then each
// thread's chunks summed into its scratch (after the packed V) and folded from there by
// fold(sums, k0, k1).
template <typename T, typename Fold>
void fold_by_chunks(const Schedule& p, const T* gy_hat, const T* v, T* ws, const Fold& fold) {
  const gemm::PackedBLayout& lb = p.fold_layout;
  parallel_for(p.coords * ceil_div(lb.n_pad, lb.nr), 1, [&](int64_t u0, int64_t u1) {
    const int64_t panels = lb.n_pad / lb.nr;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t a = u / panels, j0 = u % panels * lb.nr;
      const gemm::DenseSource<T> src(gemm::MatrixRef<T>{v + a * p.block, 1, p.v_cs});
      gemm::pack_b_columns<T>(src, lb, j0, std::min(lb.nr, p.cg - j0), ws + a * p.fold_b);
    }
  });
  const T* packed = ws;
  T* scratch = ws + p.fold_scratch;
  const int64_t chunks = ceil_div(p.kg, p.fold_rows);
  std::atomic<int64_t> next{0};
  parallel_for(p.fold_slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* sums = scratch + s * p.fold_slot;
      for (int64_t c = next++; c < chunks; c = next++) {
        const int64_t k0 = c * p.fold_rows, k1 = std::min(p.kg, k0 + p.fold_rows);
        gemm::gemm_batched_packed_b<T>(p.coords, k1 - k0, p.cg, p.tiles, T(1),
                                       gemm::MatrixRef<T>{gy_hat + k0 * p.m_ks, p.m_ks, 1},
                                       p.block, packed, lb, p.fold_b, T(0), sums, p.u_ks, p.cg);
        fold(sums, k0, k1);
      }
    }
  });
}

// Weight gradient by F(rxr, mxm) per output tile: the x patch under each tile goes through the
// forward input transform, the grad_y tile through G', and for every transform coordinate
// dW^[k][c] += sum over tiles GY^[k][t] X^[c][t] (one GEMM per coordinate and block, reducing
// over tiles); dW = AT' dW^ A' once per group at the end.
template <typename T>
void run_weight_gradient(const Schedule& p, const T* x, const T* grad_y, T* grad_w, T* ws,
                         const winograd_phases::Split* windows = nullptr,
                         const winograd_depth::DepthStack* depth = nullptr,
                         const T* zero = nullptr) {
  const ConvGeometry& g = p.f;  // the weight gradient correlates x with grad_y of g itself
  const int64_t taps = g.kernel_spatial();
  if (p.tiles == 0) {
    std::fill(grad_w, grad_w + g.k * p.cg * taps, T(0));
    return;
  }
  const auto& tk = tile_kernels<T>(p.mh, p.mw, p.r);
  const Stages<T> st{p,  g,       tk, x,     nullptr, 0,    0, 0, nullptr,
                     nullptr, {}, windows, false, depth, zero};
  const int64_t step = st.input_step();
  T* dw = ws;                // [k][a][c] of one group
  T* v = ws + p.u_elems;     // [c][a][t]
  T* gy_hat = v + p.slot_v;  // [k][a][t]
  const int64_t out_sp = g.out_spatial(), kstride = p.m_ks;
  const bool flip = g.mode == ConvMode::kConv;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    for (int64_t b = 0; b < p.blocks; ++b) {
      const int64_t t0 = b * p.block, t1 = std::min(p.tiles, t0 + p.block);
      parallel_for(p.cg / step, 1, [&](int64_t a0, int64_t a1) {
        st.input(grp, t0, t1, a0 * step, a1 * step, v);
      });
      // grad_y's tiles in runs as the input's (over tile rows, and images where they cross).
      const bool wrap = winograd_schedule::wrap_runs(p, tk.lanes), cross = st.cross_images();
      parallel_for(p.kg, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k)
          for_each_run(
              p, t0, t1, tk.lanes,
              [&](int64_t n, int64_t ty, int64_t tx, int64_t t, int64_t len) {
                const T* plane = depth ? depth->dest(grad_y, n, grp * p.kg + k)
                                       : grad_y + ((n * g.k + grp * p.kg) + k) * out_sp;
                tk.grad(plane, g.out[1], g.out[2], ty * p.mh, tx * p.mw, len,
                        st.run_rows(ty, tx, 0, 0, g.k * out_sp, cross),
                        gy_hat + k * kstride + (t - t0), p.block);
              },
              wrap, cross);
      });
      if (p.fold_rows > 0) break;  // one block: its GEMMs run chunk by chunk below
      gemm::gemm_batched<T>(p.coords, p.kg, p.cg, t1 - t0, T(1),
                            gemm::MatrixRef<T>{gy_hat, kstride, 1}, p.block,
                            gemm::MatrixRef<T>{v, 1, p.v_cs}, p.block, b == 0 ? T(0) : T(1), dw,
                            p.u_ks, p.cg);
    }
    // Output channels [k0, k1): their sums at sums (row k at (k - k0) * u_ks) into taps.
    const auto fold = [&](const T* sums, int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t c = 0; c < p.cg; c += tk.lanes)
          tk.weight(sums + (k - k0) * p.u_ks + c, p.cg, std::min<int64_t>(tk.lanes, p.cg - c),
                    flip, grad_w + ((grp * p.kg + k) * p.cg + c) * taps, taps);
    };
    if (p.fold_rows > 0) {
      fold_by_chunks(p, gy_hat, v, dw, fold);
    } else {
      parallel_for(p.kg, 1, [&](int64_t k0, int64_t k1) { fold(dw + k0 * p.u_ks, k0, k1); });
    }
  }
}

// The phased path's workspace, carved as WinogradPlan describes (a_elems, b_elems, c_elems,
// then the schedule's scratch).
template <typename T>
struct PhaseBuffers {
  T *weight, *input, *wide, *rest;
};
template <typename T>
PhaseBuffers<T> phase_buffers(const WinogradPlan& wp, T* ws) {
  return {ws, ws + wp.a_elems, ws + wp.a_elems + wp.b_elems, ws + wp.buffers()};
}

// grad_y as the stacked correlation reads it: folded into the wide layout (at wide), or as is.
template <typename T>
const T* run_grad_y(const winograd_phases::Split& sp, const T* grad_y, T* wide) {
  if (!sp.folded) return grad_y;
  winograd_phases::fold_output(sp, grad_y, wide);
  return wide;
}

const WinogradPlan& plan_of(const ConvPlan& plan) {
  return *static_cast<const WinogradPlan*>(plan.detail.get());
}

}  // namespace

template <typename T>
void winograd_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  if (wp.stride2) return stride2_winograd_forward(plan, x, w, bias, y, ws);
  if (wp.line) return line_winograd_forward(plan, x, w, bias, y, ws);
  if (wp.rows) return winograd_rows::forward(plan, wp.along_rows, x, w, bias, y, ws);
  const ConvGeometry& g = plan.g;
  if (wp.axis) {
    if (g.n * g.out_spatial() > 0) winograd_axis::forward(g, wp.along_axis, x, w, bias, y, ws);
    return;
  }
  if (wp.depth) {  // the 3-D weight as the 2-D one of C/G x KD channels
    if (wp.main.tiles == 0) return;
    const PhaseBuffers<T> buf = phase_buffers(wp, ws);
    const ConvGeometry& f = wp.main.f;
    const int64_t taps = f.kernel_spatial(), cg = f.c_per_group();
    std::fill(buf.input, buf.input + wp.depth_stack.src_plane, T(0));
    run_correlation<T>(wp.main, x, w, f.k_per_group() * cg * taps, cg * taps, taps, bias, y,
                       buf.rest, {}, nullptr, nullptr, false, &wp.depth_stack, buf.input);
    return;
  }
  const int64_t g_taps = g.kernel_spatial(), g_cg = g.c_per_group(), g_kg = g.k_per_group();
  if (wp.dilated) {
    if (wp.main.tiles == 0) return;
    const dilation_phases::Split& ds = wp.dilation;
    const PhaseBuffers<T> buf = phase_buffers(wp, ws);
    dilation_phases::split_input(ds, x, buf.input);
    run_correlation<T>(wp.main, buf.input, w, g_kg * g_cg * g_taps, g_cg * g_taps, g_taps, bias,
                       buf.wide, buf.rest);
    dilation_phases::merge_output(ds, buf.wide, y);
    return;
  }
  if (!wp.phased) {
    run_correlation<T>(wp.main, x, w, g_kg * g_cg * g_taps, g_cg * g_taps, g_taps, bias, y, ws);
    return;
  }
  if (wp.main.tiles == 0) return;
  const winograd_phases::Split& sp = wp.split;
  const PhaseBuffers<T> buf = phase_buffers(wp, ws);
  if (!wp.windows) winograd_phases::stack_input(sp, x, buf.input);
  // Stacked input channel c * P + phase of stored kernel (k, c).
  run_correlation<T>(wp.main, wp.windows ? x : buf.input, w, g_kg * g_cg * g_taps, g_cg * g_taps,
                     g_taps, bias, y, buf.rest, winograd_phases::phased_weight(sp, false), nullptr,
                     wp.windows ? &sp : nullptr, false, nullptr, nullptr,
                     sp.folded ? &sp : nullptr);
}

template <typename T>
void winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                            T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  const ConvGeometry& g = plan.g;
  if (wp.axis) {
    if (g.n * g.out_spatial() > 0)
      winograd_axis::backward_data(g, wp.along_axis, grad_y, w, grad_x, ws);
    return;
  }
  if (wp.line) return line_winograd_backward_data(plan, grad_y, w, grad_x, ws);
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  // Correlation with k' = c, c' = k: element (grp, c, k) at w[grp][k][c].
  const int64_t g_taps = g.kernel_spatial();
  if (wp.depth) {  // the weight reordered to (K, KD, C/G, r, r): K x KD output channels of C/G
    if (wp.main.tiles == 0) return;
    const PhaseBuffers<T> buf = phase_buffers(wp, ws);
    const int64_t taps = wp.main.f.kernel_spatial(), kd = g.kernel[0];
    winograd_depth::swap_weight(g, w, buf.weight);
    std::fill(buf.input, buf.input + wp.depth_stack.src_plane, T(0));
    run_correlation<T>(wp.main, grad_y, buf.weight, kg * kd * cg * taps, taps, cg * taps, nullptr,
                       grad_x, buf.rest, {}, nullptr, nullptr, false, &wp.depth_stack, buf.input);
    return;
  }
  if (!wp.phased && !wp.dilated) {
    run_correlation<T>(wp.main, grad_y, w, kg * cg * g_taps, g_taps, cg * g_taps, nullptr,
                       grad_x, ws);
    return;
  }
  if (g.n * g.c * g.in_spatial() == 0) return;
  if (g.n * g.out_spatial() == 0 || wp.main.tiles == 0) {  // no output reaches the input
    std::fill(grad_x, grad_x + g.n * g.c * g.in_spatial(), T(0));
    return;
  }
  if (wp.dilated) {
    const dilation_phases::Split& ds = wp.dilation;
    const PhaseBuffers<T> buf = phase_buffers(wp, ws);
    dilation_phases::split_output(ds, grad_y, buf.wide);
    run_correlation<T>(wp.main, buf.wide, w, kg * cg * g_taps, g_taps, cg * g_taps, nullptr,
                       buf.input, buf.rest);
    dilation_phases::merge_input(ds, buf.input, grad_x);
    return;
  }
  // The stacked input's gradient: a full correlation of grad_y with the stacked weight read
  // transposed, output channel c * P + phase and input channel k of stored kernel (k, c).
  const winograd_phases::Split& sp = wp.split;
  const PhaseBuffers<T> buf = phase_buffers(wp, ws);
  // Kernel blocks of whole stored channels (all P phases) are moved back as they finish.
  const int64_t per_group = cg * sp.phases;  // stacked channels per group
  const BlockDone done{[&](int64_t grp, int64_t k0, int64_t k1) {
                         const int64_t c0 = (grp * per_group + k0) / sp.phases;
                         winograd_phases::unstack_input_channels(
                             sp, buf.input, c0, c0 + (k1 - k0) / sp.phases, grad_x);
                       },
                       sp.phases};
  const T* gy = run_grad_y(sp, grad_y, buf.wide);
  const winograd_phases::PhasedWeight pw = winograd_phases::phased_weight(sp, true);
  if (wp.windows) {
    if (winograd_phases::has_unread(sp)) winograd_phases::zero_unread(sp, grad_x);
    run_correlation<T>(wp.main, gy, w, kg * cg * g_taps, g_taps, cg * g_taps, nullptr, grad_x,
                       buf.rest, pw, nullptr, &sp, true);
    return;
  }
  const bool early = wp.main.kernel_blocks && wp.main.kb % sp.phases == 0;
  run_correlation<T>(wp.main, gy, w, kg * cg * g_taps, g_taps, cg * g_taps, nullptr, buf.input,
                     buf.rest, pw, early ? &done : nullptr);
  if (!early) winograd_phases::unstack_input_gradient(sp, buf.input, grad_x);
}

template <typename T>
void winograd_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                              T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  if (wp.stride2) return stride2_winograd_backward_weight(plan, x, grad_y, grad_w, ws);
  if (wp.line) return line_winograd_backward_weight(plan, x, grad_y, grad_w, ws);
  if (wp.axis) {
    const ConvGeometry& g = plan.g;
    if (g.n * g.out_spatial() > 0)
      winograd_axis::backward_weight(g, wp.along_axis, x, grad_y, grad_w, ws);
    else
      std::fill(grad_w, grad_w + g.k * g.c_per_group() * g.kernel_spatial(), T(0));
    return;
  }
  if (wp.depth) {  // grad_w (K, C/G, KD, r, r) is the 2-D weight gradient's (K, C/G x KD, r, r)
    const PhaseBuffers<T> buf = phase_buffers(wp, ws);
    if (wp.main.tiles > 0) std::fill(buf.input, buf.input + wp.depth_stack.src_plane, T(0));
    run_weight_gradient<T>(wp.main, x, grad_y, grad_w, buf.rest, nullptr, &wp.depth_stack,
                           buf.input);
    return;
  }
  if (!wp.phased && !wp.dilated) {
    run_weight_gradient<T>(wp.main, x, grad_y, grad_w, ws);
    return;
  }
  const ConvGeometry& g = plan.g;
  if (g.n * g.out_spatial() == 0 || wp.main.tiles == 0) {  // no workspace: nothing to sum
    std::fill(grad_w, grad_w + g.k * g.c_per_group() * g.kernel_spatial(), T(0));
    return;
  }
  if (wp.dilated) {  // the dense convolution's weight is the dilated one's
    const dilation_phases::Split& ds = wp.dilation;
    const PhaseBuffers<T> buf = phase_buffers(wp, ws);
    dilation_phases::split_input(ds, x, buf.input);
    dilation_phases::split_output(ds, grad_y, buf.wide);
    run_weight_gradient<T>(wp.main, buf.input, buf.wide, grad_w, buf.rest);
    return;
  }
  const winograd_phases::Split& sp = wp.split;
  const PhaseBuffers<T> buf = phase_buffers(wp, ws);
  if (!wp.windows) winograd_phases::stack_input(sp, x, buf.input);
  run_weight_gradient<T>(wp.main, wp.windows ? x : buf.input, run_grad_y(sp, grad_y, buf.wide),
                         buf.weight, buf.rest, wp.windows ? &sp : nullptr);
  winograd_phases::unstack_weight_gradient(sp, buf.weight, grad_w);
}

#define FASTCONV_INSTANTIATE(T)                                                          \
  template void winograd_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void winograd_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void winograd_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
