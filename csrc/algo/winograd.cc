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
#include "algo/winograd_phases.h"
#include "algo/winograd_plan.h"
#include "algo/winograd_stride2.h"
#include "algo/winograd_schedule.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "gemm/gemm.h"
#include "isa/isa_dispatch.h"
#include "ukernels/winograd/winograd_ukernels.h"

namespace fastconv::algo {

namespace {

using winograd_schedule::for_each_run;
using winograd_schedule::Schedule;
using winograd_schedule::wrap_runs;

// The active ISA's tile transforms: its table function is chosen once per dtype, then each call
// looks the tile up in that table.
template <typename T>
const winograd::TileKernels<T>& tile_kernels(int m, int r, bool two_d) {
  if constexpr (sizeof(T) == 4) {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f32_winograd_tiles);
    return isa_tiles(m, r, two_d);
  } else {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f64_winograd_tiles);
    return isa_tiles(m, r, two_d);
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The three stages on one block; ranges of channels let the callers share a stage out.
template <typename T>
struct Stages {
  using Rows = typename winograd::TileKernels<T>::Rows;
  static Rows one_row(int64_t nt) { return Rows{nt, nt, 0}; }
  const Schedule& p;
  const ConvGeometry& f;
  const winograd::TileKernels<T>& tk;
  const T* x;
  const T* w;
  int64_t gs, ks, cs;  // weight element (grp, k, c) of f at w + grp * gs + k * ks + c * cs
  const T* bias;
  T* y;
  // Stride phases: w is the stored weight, each run of kernels gathered from it (gs, ks and cs
  // then step its kernels, winograd_phases::gather_kernels). A stacked copy written ahead
  // cost 5-9% of dcgan.g3's passes (a write and a read of the whole weight from memory).
  winograd_phases::PhasedWeight pw{};
  // Strided layers through windows (WinogradPlan::windows): backward data's output
  // (`windows_out`: y is grad_x), else the input (x is the stored input).
  const winograd_phases::Split* windows = nullptr;
  bool windows_out = false;

  // U[k - k_base][a][c] for k in [k0, k1) of group grp.
  void kernels(int64_t grp, int64_t k0, int64_t k1, int64_t k_base, T* u) const {
    const bool flip = f.mode == ConvMode::kConv;
    // A run of up to 16 lanes of up to 3x3 taps (phases: r <= 3), in a buffer three runs long:
    // the kernel transform prefetches the kernels two runs on from its argument.
    alignas(64) T run[3 * 16 * 9];
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t c = 0; c < p.cg; c += tk.lanes) {
        const int64_t n = std::min<int64_t>(tk.lanes, p.cg - c);
        T* dst = u + (k - k_base) * p.u_ks + c;
        if (!pw.tap) {
          tk.kernel(w + grp * gs + k * ks + c * cs, cs, n, flip, dst, p.cg);
          continue;
        }
        winograd_phases::gather_kernels(pw, w, gs, ks, cs, grp, k, c, n, run);
        tk.kernel(run, pw.taps, n, flip, dst, p.cg);
      }
  }

  // Calls fn(c, plane, h, w, iy0, ix0, t, len) for channels [c0, c1) of group grp and runs of
  // tiles [t0, t1) in one tile row, at most `lanes` long: the run's patches are read from plane
  // (h x w) at rows iy0 + i, columns ix0 + l * mw + j. Channel outer: each plane's rows are read
  // in order (prefetch-friendly) and V is written sequentially. Through windows (strided
  // forward and weight gradient, `windows`: x is the stored input, channels [c0, c1) whole
  // stored channels of P phases), each stored channel's P phases of a longer run of tiles are
  // stacked into a window on the stack first and the runs read from there.
  template <typename F>
  void for_each_input_run(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1,
                          F&& fn) const {
    if (!windows || windows_out) {
      const int64_t in_sp = f.in_spatial();
      const bool wrap = wrap_runs(p, tk.lanes);
      for (int64_t c = c0; c < c1; ++c)
        for_each_run(
            p, t0, t1, tk.lanes,
            [&](int64_t n, int64_t ty, int64_t tx, int64_t t, int64_t len) {
              const T* plane = x + ((n * f.c + grp * p.cg) + c) * in_sp;
              fn(c, plane, f.in[1], f.in[2], ty * p.mh - f.pad_lo[1], tx * p.mw - f.pad_lo[2], t,
                 len, Rows{p.tiles_w - tx, p.tiles_w, -f.pad_lo[2]});
            },
            wrap);
      return;
    }
    // The stacked correlation has no padding: tile (ty, tx) reads from row ty * mh, column
    // tx * mw.
    const winograd_phases::Split& sp = *windows;
    const int64_t P = sp.phases;
    const int64_t rows = f.rank == 2 ? p.mh + p.r - 1 : 1;
    const int64_t span =
        winograd_phases::window_tiles(sp, p.mh, p.mw, p.r, tk.lanes, sizeof(T), false);
    alignas(64) T win[winograd_phases::kWindowBytes / sizeof(T)];
    for (int64_t c = c0; c < c1; c += P) {
      const int64_t stored = (grp * p.cg + c) / P;
      for_each_run(p, t0, t1, span, [&](int64_t n, int64_t ty, int64_t tx, int64_t t,
                                        int64_t len) {
        const int64_t cols = len * p.mw + p.r - 1;
        winograd_phases::stack_window(sp, x, n, stored, ty * p.mh, rows, tx * p.mw, cols, win);
        for (int64_t phase = 0; phase < P; ++phase)
          for (int64_t l = 0; l < len; l += tk.lanes) {
            const int64_t nl = std::min<int64_t>(tk.lanes, len - l);
            fn(c + phase, win + phase * rows * cols, rows, cols, int64_t(0), l * p.mw, t + l, nl,
               one_row(nl));
          }
      });
    }
  }

  // Channels per unit of the input and output stages' splits: whole stored channels through
  // windows.
  int64_t input_step() const { return windows && !windows_out ? windows->phases : 1; }
  int64_t output_step() const { return windows && windows_out ? windows->phases : 1; }

  // V[c][a][t - t0] for channels [c0, c1) and tiles [t0, t1) of group grp.
  void input(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1, T* v) const {
    for_each_input_run(grp, t0, t1, c0, c1,
                       [&](int64_t c, const T* plane, int64_t h, int64_t w, int64_t iy0,
                           int64_t ix0, int64_t t, int64_t len, Rows rows) {
                         tk.input(plane, h, w, iy0, ix0, len, rows, v + c * p.v_cs + (t - t0),
                                  p.block);
                       });
  }

  // V for the forward / backward-data GEMMs as p.v_as-apart packed B matrices
  // (p.v_layout: channels x the block's tiles, element (c, j) at offset(c, j)), which the GEMMs
  // read in place. A run's lanes are one contiguous store only within a panel of the layout, so
  // runs are cut at its panel edges; the last panel's columns past the block's tiles are zeroed
  // (the micro-kernel reads them; their products are never stored).
  void input_packed(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1, T* v) const {
    const int64_t nt = t1 - t0;
    const gemm::PackedBLayout& lb = p.v_layout;
    for_each_input_run(grp, t0, t1, c0, c1,
                       [&](int64_t c, const T* plane, int64_t h, int64_t w, int64_t iy0,
                           int64_t ix0, int64_t t, int64_t len, Rows rows) {
      for (int64_t s = 0; s < len;) {
        const int64_t j = t - t0 + s, piece = std::min(len - s, lb.nr - j % lb.nr);
        // The piece's first tile: s tiles on in the run's rows.
        const int64_t row = s < rows.first ? 0 : 1 + (s - rows.first) / rows.row_tiles;
        const int64_t col = row == 0 ? s : (s - rows.first) % rows.row_tiles;
        const Rows piece_rows{row == 0 ? rows.first - s : rows.row_tiles - col, rows.row_tiles,
                              rows.x_first};
        tk.input(plane, h, w, iy0 + row * p.mh,
                 (row == 0 ? ix0 : rows.x_first) + col * p.mw, piece, piece_rows,
                 v + lb.offset(c, j), p.v_as);
        s += piece;
      }
    });
    if (nt % lb.nr == 0) return;
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t a = 0; a < p.coords; ++a) {
        T* tail = v + a * p.v_as + lb.offset(c, nt);
        std::fill(tail, tail + (lb.nr - nt % lb.nr), T(0));
      }
  }

  // V for the kernel blocks' GEMMs in the schedule's layout.
  void input_for_gemms(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1, T* v) const {
    if (p.packed_v) return input_packed(grp, t0, t1, c0, c1, v);
    input(grp, t0, t1, c0, c1, v);
  }

  // M[k][a][t] = sum_c U[k][a][c] V[c][a][t] for kn rows of U (V from input_for_gemms).
  // Channel-major V keeps each transform's alpha^2 outputs within a few KiB instead of alpha^2
  // streams a power of two apart (which cost a store miss per vector).
  void gemms(int64_t kn, int64_t nt, const T* u, const T* v, T* mdom) const {
    const gemm::MatrixRef<T> ur{u, p.u_ks, 1};
    if (p.packed_v) {
      return gemm::gemm_batched_packed_b<T>(p.coords, kn, nt, p.cg, T(1), ur, p.cg, v,
                                            p.v_layout, p.v_as, T(0), mdom, p.m_ks, p.block);
    }
    gemm::gemm_batched<T>(p.coords, kn, nt, p.cg, T(1), ur, p.cg,
                          gemm::MatrixRef<T>{v, p.v_cs, 1}, p.block, T(0), mdom, p.m_ks, p.block);
  }

  // The tile blocks' GEMMs: U packed ahead (one group's kg rows, u_packed apart per
  // coordinate), V[c][a][t] (input).
  void gemms_packed(int64_t nt, const T* u_packed, const T* v, T* mdom) const {
    gemm::gemm_batched_packed_a<T>(p.coords, p.kg, nt, p.cg, T(1), u_packed, p.u_packed,
                                   gemm::MatrixRef<T>{v, p.v_cs, 1}, p.block, T(0), mdom,
                                   p.m_ks, p.block);
  }

  // y for channels [k0, k1) of group grp, tiles [t0, t1), from M rows k - k_base.
  void output(int64_t grp, int64_t t0, int64_t t1, int64_t k0, int64_t k1, int64_t k_base,
              const T* mdom) const {
    const int64_t out_sp = f.out_spatial(), kstride = p.m_ks;
    const bool wrap = wrap_runs(p, tk.lanes);
    for (int64_t k = k0; k < k1; ++k) {
      const T b = bias ? bias[grp * p.kg + k] : T(0);
      for_each_run(
          p, t0, t1, tk.lanes,
          [&](int64_t n, int64_t ty, int64_t tx, int64_t t, int64_t len) {
            T* plane = y + ((n * f.k + grp * p.kg) + k) * out_sp;
            tk.output(mdom + (k - k_base) * kstride + (t - t0), p.block, len, b, plane,
                      f.out[1], f.out[2], ty * p.mh, tx * p.mw, Rows{p.tiles_w - tx, p.tiles_w, 0});
          },
          wrap);
    }
  }

  // output() through windows: stacked channels [k0, k1) of group grp (whole stored channels of
  // P phases), tiles [t0, t1); per stored channel and run of tiles in one tile row, its P
  // phases' outputs into a window on the stack, then into grad_x (y).
  void output_windows(int64_t grp, int64_t t0, int64_t t1, int64_t k0, int64_t k1,
                      const T* mdom) const {
    const winograd_phases::Split& sp = *windows;
    const int64_t P = sp.phases;
    const int64_t span =
        winograd_phases::window_tiles(sp, p.mh, p.mw, p.r, tk.lanes, sizeof(T), true);
    alignas(64) T win[winograd_phases::kWindowBytes / sizeof(T)];
    for (int64_t k = k0; k < k1; k += P) {
      const int64_t c = (grp * p.kg + k) / P;
      for_each_run(p, t0, t1, span, [&](int64_t n, int64_t ty, int64_t tx, int64_t t,
                                        int64_t len) {
        const int64_t rows = std::min<int64_t>(p.mh, f.out[1] - ty * p.mh);
        const int64_t cols = std::min(len * p.mw, f.out[2] - tx * p.mw);
        for (int64_t phase = 0; phase < P; ++phase)
          for (int64_t l = 0; l < len; l += tk.lanes)
            tk.output(mdom + (k + phase) * p.m_ks + (t + l - t0), p.block,
                      std::min<int64_t>(tk.lanes, len - l), T(0), win + phase * rows * cols,
                      rows, cols, 0, l * p.mw, one_row(len - l));
        winograd_phases::unstack_window(sp, win, n, c, ty * p.mh, rows, tx * p.mw, cols, y);
      });
    }
  }
};

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
// k * ks + c * cs) plus bias, into y.
template <typename T>
void run_correlation(const Schedule& p, const T* x, const T* w, int64_t gs, int64_t ks, int64_t cs,
                     const T* bias, T* y, T* ws, winograd_phases::PhasedWeight pw = {},
                     const BlockDone* done = nullptr,
                     const winograd_phases::Split* windows = nullptr, bool windows_out = false) {
  if (p.tiles == 0) return;
  const Stages<T> st{p,  p.f, tile_kernels<T>(p.m, p.r, p.f.rank == 2), x, w, gs, ks, cs, bias,
                     y,  pw, windows, windows_out};
  if (p.kernel_blocks)
    run_kernel_blocks(p, st, ws, done);
  else
    run_tile_blocks(p, st, ws);
}

// Weight gradient by F(rxr, mxm) per output tile: the x patch under each tile goes through the
// forward input transform, the grad_y tile through G', and for every transform coordinate
// dW^[k][c] += sum over tiles GY^[k][t] X^[c][t] (one GEMM per coordinate and block, reducing
// over tiles); dW = AT' dW^ A' once per group at the end.
template <typename T>
void run_weight_gradient(const Schedule& p, const T* x, const T* grad_y, T* grad_w, T* ws,
                         const winograd_phases::Split* windows = nullptr) {
  const ConvGeometry& g = p.f;  // the weight gradient correlates x with grad_y of g itself
  const int64_t taps = g.kernel_spatial();
  if (p.tiles == 0) {
    std::fill(grad_w, grad_w + g.k * p.cg * taps, T(0));
    return;
  }
  const auto& tk = tile_kernels<T>(p.m, p.r, g.rank == 2);
  const Stages<T> st{p, g, tk, x, nullptr, 0, 0, 0, nullptr, nullptr, {}, windows};
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
      parallel_for(p.kg, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k)
          for_each_run(p, t0, t1, tk.lanes, [&](int64_t n, int64_t ty, int64_t tx, int64_t t,
                                                int64_t len) {
            const T* plane = grad_y + ((n * g.k + grp * p.kg) + k) * out_sp;
            tk.grad(plane, g.out[1], g.out[2], ty * p.mh, tx * p.mw, len,
                    gy_hat + k * kstride + (t - t0), p.block);
          });
      });
      gemm::gemm_batched<T>(p.coords, p.kg, p.cg, t1 - t0, T(1),
                            gemm::MatrixRef<T>{gy_hat, kstride, 1}, p.block,
                            gemm::MatrixRef<T>{v, 1, p.v_cs}, p.block, b == 0 ? T(0) : T(1), dw,
                            p.u_ks, p.cg);
    }
    parallel_for(p.kg, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t c = 0; c < p.cg; c += tk.lanes)
          tk.weight(dw + k * p.u_ks + c, p.cg, std::min<int64_t>(tk.lanes, p.cg - c),
                    flip, grad_w + ((grp * p.kg + k) * p.cg + c) * taps, taps);
    });
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
  const ConvGeometry& g = plan.g;
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
                     g_taps, bias, sp.folded ? buf.wide : y, buf.rest,
                     winograd_phases::phased_weight(sp, false), nullptr,
                     wp.windows ? &sp : nullptr);
  if (sp.folded) winograd_phases::unfold_output(sp, buf.wide, y);
}

template <typename T>
void winograd_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                            T* ws) {
  const WinogradPlan& wp = plan_of(plan);
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  // Correlation with k' = c, c' = k: element (grp, c, k) at w[grp][k][c].
  const int64_t g_taps = g.kernel_spatial();
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
