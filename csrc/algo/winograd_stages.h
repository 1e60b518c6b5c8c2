// Winograd's three stages on one block of tiles (kernel transform, input transform, batched
// GEMMs, output transform) over ranges of channels, and where they read and write planes: the
// runners in winograd.cc drive them (tile blocks, kernel blocks, the weight gradient).
#pragma once
#include <algorithm>
#include <cstdint>

#include "algo/winograd_depth.h"
#include "algo/winograd_phases.h"
#include "algo/winograd_schedule.h"
#include "fastconv/geometry.h"
#include "gemm/gemm.h"
#include "isa/isa_dispatch.h"
#include "ukernels/winograd/winograd_ukernels.h"

namespace fastconv::algo::winograd_stages {

using winograd_schedule::for_each_run;
using winograd_schedule::Schedule;
using winograd_schedule::wrap_runs;

// The active ISA's tile transforms: its table function is chosen once per dtype, then each call
// looks the tile up in that table.
template <typename T>
const winograd::TileKernels<T>& tile_kernels(int mh, int mw, int r) {
  if constexpr (sizeof(T) == 4) {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f32_winograd_tiles);
    return isa_tiles(mh, mw, r);
  } else {
    static const auto isa_tiles = FASTCONV_KERNEL_BY_ISA(f64_winograd_tiles);
    return isa_tiles(mh, mw, r);
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
  // 3-D layers (winograd_depth.h): the 2-D images' planes in the 3-D tensors, `zero` a zeroed
  // plane for depth taps off the volume.
  const winograd_depth::DepthStack* depth = nullptr;
  const T* zero = nullptr;
  // Folded strided forwards (winograd_phases::Split::folded): y is the stored output and the
  // correlation's output the wide plane of the images side by side, moved into y window by
  // window (output_folded) instead of written whole and moved back afterwards.
  const winograd_phases::Split* fold_out = nullptr;

  // Whether runs of tiles go on over the batch's images (TileKernels::Rows::image_rows): where
  // they wrap over tile rows and an image's tiles are not a whole number of runs. Within one
  // image, 8x8 images under F(4x4) filled 4 of the 16 lanes of every run: the transforms
  // took 57% of the forward of 64 channels at batch 128 (gathering the pieces 26%). Not for
  // 3-D layers (their 2-D images' planes are not evenly apart).
  bool cross_images() const {
    return !depth && f.n > 1 && wrap_runs(p, tk.lanes) && (p.tiles_h * p.tiles_w) % tk.lanes != 0;
  }
  // The Rows of a run from tile (ty, tx) of an image: later tile rows from column x_first, and
  // crossing images, the next image's first tile row at row y_first, its plane image_stride
  // elements on.
  Rows run_rows(int64_t ty, int64_t tx, int64_t x_first, int64_t y_first, int64_t image_stride,
                bool cross) const {
    Rows r{p.tiles_w - tx, p.tiles_w, x_first};
    if (cross) {
      r.rows_left = p.tiles_h - 1 - ty, r.image_rows = p.tiles_h;
      r.y_first = y_first, r.image_stride = image_stride;
    }
    return r;
  }
  // Where a run from (iy0, ix0) with `rows` is s tiles on: its plane `offset` elements on, its
  // first tile's row and column, and its Rows from there.
  struct RunStart {
    int64_t offset, iy0, ix0;
    Rows rows;
  };
  RunStart skip_tiles(Rows rows, int64_t iy0, int64_t ix0, int64_t s) const {
    if (s < rows.first) {
      rows.first -= s;
      return {0, iy0, ix0 + s * p.mw, rows};
    }
    const int64_t row = 1 + (s - rows.first) / rows.row_tiles;
    const int64_t col = (s - rows.first) % rows.row_tiles, x = rows.x_first + col * p.mw;
    rows.first = rows.row_tiles - col;
    if (rows.image_rows == 0 || row <= rows.rows_left) {
      rows.rows_left -= row;
      return {0, iy0 + row * p.mh, x, rows};
    }
    const int64_t past = row - rows.rows_left - 1;  // tile rows into the later images
    const int64_t in_image = past % rows.image_rows;
    rows.rows_left = rows.image_rows - 1 - in_image;
    return {(1 + past / rows.image_rows) * rows.image_stride, rows.y_first + in_image * p.mh, x,
            rows};
  }

  // Input plane `ch` of image n, and output plane k (x and y as f's own NCHW tensors, or the
  // 3-D tensors' planes).
  const T* in_plane(int64_t n, int64_t ch) const {
    if (depth) return depth->source(x, n, ch, zero);
    return x + (n * f.c + ch) * f.in_spatial();
  }
  T* out_plane(int64_t n, int64_t k) const {
    if (depth) return depth->dest(y, n, k);
    return y + (n * f.k + k) * f.out_spatial();
  }

  // U[k - k_base][a][c] for k in [k0, k1) of group grp.
  void kernels(int64_t grp, int64_t k0, int64_t k1, int64_t k_base, T* u) const {
    const bool flip = f.mode == ConvMode::kConv;
    // A run of up to 16 lanes of up to 3x3 taps (phases: r <= 3), in a buffer three runs long:
    // the kernel transform prefetches the kernels two runs on from its argument.
    alignas(64) T run[3 * 16 * 9];
    // Kernel k's run of lanes from c.
    const auto one = [&](int64_t k, int64_t c) {
      const int64_t n = std::min<int64_t>(tk.lanes, p.cg - c);
      T* dst = u + (k - k_base) * p.u_ks + c;
      if (!pw.tap) {
        tk.kernel(w + grp * gs + k * ks + c * cs, cs, n, flip, dst, p.cg);
      } else {
        winograd_phases::gather_kernels(pw, w, gs, ks, cs, grp, k, c, n, run);
        tk.kernel(run, pw.taps, n, flip, dst, p.cg);
      }
    };
    // Phases in k: a run's lanes are stored kernels cs apart (dcgan.g3's transposed forward:
    // 8 KiB, so k outer read 16 lines in one L1 set and each again per phase). Runs outer,
    // each lane reads its kernels in order across the k range: dcgan.g3's transposed forward
    // 1.03-1.07x (A/B, 2 threads, AVX-512, 15 rounds), g4's 0.97-1.04x.
    if (pw.tap && pw.phase_in_k) {
      for (int64_t c = 0; c < p.cg; c += tk.lanes)
        for (int64_t k = k0; k < k1; ++k) one(k, c);
    } else {
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t c = 0; c < p.cg; c += tk.lanes) one(k, c);
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
      const bool wrap = wrap_runs(p, tk.lanes), cross = cross_images();
      for (int64_t c = c0; c < c1; ++c)
        for_each_run(
            p, t0, t1, tk.lanes,
            [&](int64_t n, int64_t ty, int64_t tx, int64_t t, int64_t len) {
              const T* plane = in_plane(n, grp * p.cg + c);
              fn(c, plane, f.in[1], f.in[2], ty * p.mh - f.pad_lo[1], tx * p.mw - f.pad_lo[2], t,
                 len,
                 run_rows(ty, tx, -f.pad_lo[2], -f.pad_lo[1], f.c * f.in_spatial(), cross));
            },
            wrap, cross);
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
  int64_t input_step() const {
    if (depth_reuse()) return depth->taps;
    return windows && !windows_out ? windows->phases : 1;
  }
  int64_t output_step() const { return windows && windows_out ? windows->phases : 1; }

  // V[c][a][t - t0] for channels [c0, c1) and tiles [t0, t1) of group grp.
  void input(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1, T* v) const {
    if (!depth_reuse()) return input_range(grp, t0, t1, c0, c1, t0, v);
    for (int64_t c = c0; c < c1; c += depth->taps) depth_input(grp, t0, t1, c, v);
  }

  // 3-D layers at depth stride and dilation 1 (winograd_depth.h): the depth taps of one stored
  // channel read the same input planes one image depth apart, so tap kd's V rows are the first
  // tap's a whole number of planes of tiles on. Threads then take whole stored channels
  // (input_step), and depth_input copies those rows where the shifted tiles lie in the block and
  // the same image, transforming only the rest (the block's depth edges).
  bool depth_reuse() const {
    return depth && depth->taps > 1 && depth->stride == 1 && depth->dilation == 1;
  }

  // V rows c, ..., c + KD - 1 (one stored channel's depth taps) for tiles [t0, t1).
  void depth_input(int64_t grp, int64_t t0, int64_t t1, int64_t c, T* v) const {
    const int64_t taps = depth->taps, plane_tiles = p.tiles_h * p.tiles_w;
    const int64_t image_tiles = depth->images_d * plane_tiles;
    // The source depth of 2-D image depth d2 and tap kd: d2 + sign * tap(kd) + const.
    const int64_t sign = depth->backward_data ? -1 : 1;
    const auto tap = [&](int64_t kd) { return depth->flip ? taps - 1 - kd : kd; };
    input_range(grp, t0, t1, c, c + 1, t0, v);
    for (int64_t kd = 1; kd < taps; ++kd) {
      const int64_t shift = sign * (tap(kd) - tap(0)) * plane_tiles;  // row kd at t: row 0 at
      T* dst = v + (c + kd) * p.v_cs;                                    // t + shift
      for (int64_t a0 = t0; a0 < t1;) {  // per image's stretch [a0, b0) of the block
        const int64_t b0 = std::min(t1, (a0 / image_tiles + 1) * image_tiles);
        const int64_t lo = std::max(a0, a0 - shift), hi = std::min(b0, b0 - shift);
        if (lo >= hi) {
          input_range(grp, a0, b0, c + kd, c + kd + 1, t0, v);
        } else {
          for (int64_t a = 0; a < p.coords; ++a)
            std::copy_n(v + c * p.v_cs + a * p.block + (lo + shift - t0), hi - lo,
                        dst + a * p.block + (lo - t0));
          if (a0 < lo) input_range(grp, a0, lo, c + kd, c + kd + 1, t0, v);
          if (hi < b0) input_range(grp, hi, b0, c + kd, c + kd + 1, t0, v);
        }
        a0 = b0;
      }
    }
  }

  // input()'s transforms for tiles [t0, t1), written at t - base.
  void input_range(int64_t grp, int64_t t0, int64_t t1, int64_t c0, int64_t c1, int64_t base,
                   T* v) const {
    for_each_input_run(grp, t0, t1, c0, c1,
                       [&](int64_t c, const T* plane, int64_t h, int64_t w, int64_t iy0,
                           int64_t ix0, int64_t t, int64_t len, Rows rows) {
                         tk.input(plane, h, w, iy0, ix0, len, rows, v + c * p.v_cs + (t - base),
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
        const RunStart at = skip_tiles(rows, iy0, ix0, s);  // the piece's first tile
        tk.input(plane + at.offset, h, w, at.iy0, at.ix0, piece, at.rows, v + lb.offset(c, j),
                 p.v_as);
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
    if (fold_out) return output_folded(grp, t0, t1, k0, k1, k_base, mdom);
    const int64_t kstride = p.m_ks;
    const bool wrap = wrap_runs(p, tk.lanes), cross = cross_images();
    for (int64_t k = k0; k < k1; ++k) {
      const T b = bias ? bias[grp * p.kg + k] : T(0);
      for_each_run(
          p, t0, t1, tk.lanes,
          [&](int64_t n, int64_t ty, int64_t tx, int64_t t, int64_t len) {
            T* plane = out_plane(n, grp * p.kg + k);
            tk.output(mdom + (k - k_base) * kstride + (t - t0), p.block, len, b, plane,
                      f.out[1], f.out[2], ty * p.mh, tx * p.mw,
                      run_rows(ty, tx, 0, 0, f.k * f.out_spatial(), cross));
          },
          wrap, cross);
    }
  }

  // output() of a folded forward: per channel and run of tiles in one tile row, the wide
  // plane's outputs into a window on the stack, then each image's columns into y (the
  // separate pass over the wide plane took 4-6% of dcgan.g3's and g4's strided forwards, when
  // g4's folded: winograd_tiles::folds_batch).
  void output_folded(int64_t grp, int64_t t0, int64_t t1, int64_t k0, int64_t k1,
                     int64_t k_base, const T* mdom) const {
    const int64_t span = winograd_phases::fold_window_tiles(p.mh, p.mw, tk.lanes, sizeof(T));
    alignas(64) T win[winograd_phases::kWindowBytes / sizeof(T)];
    for (int64_t k = k0; k < k1; ++k) {
      const T b = bias ? bias[grp * p.kg + k] : T(0);
      for_each_run(p, t0, t1, span, [&](int64_t, int64_t ty, int64_t tx, int64_t t,
                                        int64_t len) {
        const int64_t rows = std::min<int64_t>(p.mh, f.out[1] - ty * p.mh);
        const int64_t cols = std::min(len * p.mw, f.out[2] - tx * p.mw);
        for (int64_t l = 0; l < len; l += tk.lanes)
          tk.output(mdom + (k - k_base) * p.m_ks + (t + l - t0), p.block,
                    std::min<int64_t>(tk.lanes, len - l), b, win, rows, cols, 0, l * p.mw,
                    one_row(len - l));
        winograd_phases::unfold_window(*fold_out, win, grp * p.kg + k, ty * p.mh, rows,
                                       tx * p.mw, cols, y);
      });
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

}  // namespace fastconv::algo::winograd_stages
