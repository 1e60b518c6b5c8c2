// Implicit-GEMM convolution: the GEMM's B panels are packed straight from the input (or the
// output gradient) with padding, stride and dilation applied on the fly, so no column buffer
// exists; 1x1 / stride-1 / unpadded convolutions run the GEMM on the tensors themselves.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "algo/conv_panels.h"
#include "algo/gemm_conv.h"
#include "algo/phase_backward_data.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A 1x1 window with unit stride and no padding: the patch matrix is the input itself.
bool is_pointwise(const ConvGeometry& g) {
  for (int d = 0; d < kMaxRank; ++d) {
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad_lo[d] != 0 || g.pad_hi[d] != 0) return false;
  }
  return true;
}

bool unit_stride(const ConvGeometry& g) {
  return g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
}

// Batch folding: on small images one GEMM per image has too few positions to fill the
// micro-kernel's panels and to amortise packing the weight (dcgan.g2: 16 output positions,
// half of a 32-wide panel), so the GEMM's position dimension runs over several images, up to
// about kFoldPositions; its block is then copied into the NCHW tensor (a row copy per image
// and channel). Images larger than kFoldMaxImage fill the GEMM on their own.
constexpr int64_t kFoldMaxImage = 512, kFoldPositions = 4096;

// Positions per image along the GEMM dimension that folding extends, per pass.
int64_t fold_unit(const ConvGeometry& g, Pass pass) {
  if (pass != Pass::kBackwardData) return g.out_spatial();
  return unit_stride(g) ? g.in_spatial() : phase_backward_data_positions(g);
}

// Images per GEMM (1: no folding).
int64_t fold_images(const ConvGeometry& g, Pass pass) {
  const int64_t unit = fold_unit(g, pass);
  if (g.n < 2 || unit <= 0 || unit > kFoldMaxImage) return 1;
  return std::min(g.n, std::max<int64_t>(1, kFoldPositions / unit));
}

// Copies a folded GEMM block (rows x cnt * per_image, row r holding cnt images' planes one
// after the other) into the tensor: row r of image i goes to dst + i * image_stride +
// r * per_image, plus bias[r] when given.
template <typename T>
void unfold_block(const T* block, int64_t rows, int64_t cnt, int64_t per_image, T* dst,
                  int64_t image_stride, const T* bias) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, per_image));
  parallel_for(rows * cnt, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t r = idx / cnt, i = idx % cnt;
      const T* src = block + (r * cnt + i) * per_image;
      T* out = dst + i * image_stride + r * per_image;
      if (bias) {
        for (int64_t j = 0; j < per_image; ++j) out[j] = src[j] + bias[r];
      } else {
        std::copy_n(src, per_image, out);
      }
    }
  });
}

// The inverse for an operand: block row r holds the planes of cnt images, read from
// src + i * image_stride + r * per_image.
template <typename T>
void fold_block(const T* src, int64_t rows, int64_t cnt, int64_t per_image, int64_t image_stride,
                T* block) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, per_image));
  parallel_for(rows * cnt, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t r = idx / cnt, i = idx % cnt;
      std::copy_n(src + i * image_stride + r * per_image, per_image,
                  block + (r * cnt + i) * per_image);
    }
  });
}

// A forward strided along the innermost dim: its input split into stride-phase rows
// (PhaseRows) a task at a time, so the split rows are still in L2 when the GEMM packs them
// (splitting the whole input first, then packing, ran from memory twice: unet.up2x2's backward
// data spent 30% there). A task is ib folded small images, or a band of output lines of one
// image (2-D and 1-D) whose input rows fit kBandBytes.
struct StridedForward {
  PhaseRows layout;
  int64_t ib = 1, band = 1, bands = 1, tasks = 1, parts = 1;
  int64_t split_elems = 0, part_elems = 0;  // a task's split rows; its whole buffer
  // Row stride of the weight the GEMMs read: C/G * taps, or a padded copy when that is a
  // multiple of 4 KiB (the micro-kernel reads its rows in place for few columns, and rows 4 KiB
  // apart all fall into one cache set: dcgan.g4's ran at 62% of peak).
  int64_t weight_ld = 0;
  explicit StridedForward(const ConvGeometry& g) : layout(g) {}
};

constexpr int64_t kBandBytes = int64_t(384) << 10;
// Split images up to this size run whole, the GEMM split over the threads (res3.3x3s2: 1.7 MiB).
constexpr int64_t kBandImageBytes = int64_t(2) << 20;

// Padded input rows holding `count` output lines (flattened (z, y) rows): all of them for whole
// images (folded images lie layout.image apart).
int64_t band_rows(const ConvGeometry& g, const PhaseRows& l, int64_t count) {
  if (g.out[0] > 1 || count >= g.out[1]) return l.rows_z * l.rows_y;
  return std::min(l.rows_y, g.stride[1] * (count - 1) + (g.kernel[1] - 1) * g.dilation[1] + 1);
}

std::shared_ptr<const StridedForward> strided_forward(const ConvGeometry& g, int threads,
                                                      int64_t elem_size) {
  auto s = std::make_shared<StridedForward>(g);
  const PhaseRows& l = s->layout;
  const int64_t lines = g.out[0] * g.out[1], out_sp = g.out_spatial();
  // Folded images: as many as fit kBandBytes, but enough for 256 GEMM columns (a weight-heavy
  // layer such as dcgan.g2's transposed backward data, 16 positions per image, needs them all).
  s->ib = std::clamp<int64_t>(kBandBytes / elem_size / std::max<int64_t>(1, l.image),
                              std::min<int64_t>(g.n, ceil_div(256, std::max<int64_t>(1, out_sp))),
                              std::max<int64_t>(1, fold_images(g, Pass::kForward)));
  s->band = lines;
  if (s->ib == 1 && g.out[0] == 1 && lines > 1 && l.image * elem_size > kBandImageBytes) {
    // Bands within kBandBytes, at least 256 output positions (8 panels: a band of 5 lines of
    // res3.3x3s2's 28 packed 4.4 panels' worth into 5), and enough of them (4 per thread) to
    // share out when the images alone are too few.
    const int64_t budget = kBandBytes / elem_size / std::max<int64_t>(1, l.pitch);
    int64_t band = std::max<int64_t>(1, (budget - (g.kernel[1] - 1) * g.dilation[1] - 1) /
                                            std::max<int64_t>(1, g.stride[1]) + 1);
    if (g.n < threads) band = std::min(band, ceil_div(lines * g.n, 4 * threads));
    band = std::max(band, ceil_div(256, std::max<int64_t>(1, g.out[2])));
    s->bands = ceil_div(lines, std::min(lines, band));
    s->band = ceil_div(lines, s->bands);
  }
  s->tasks = ceil_div(g.n, s->ib) * s->bands;
  if (threads > 1 && s->tasks >= threads &&
      (s->tasks % threads == 0 || s->tasks >= 4 * threads))
    s->parts = threads;
  const int64_t rows = g.c_per_group() * g.kernel_spatial();
  s->weight_ld = rows * elem_size % 4096 == 0 ? rows + 64 / elem_size : rows;
  s->split_elems = s->ib * band_rows(g, l, s->band) * l.pitch;
  s->part_elems = s->split_elems + (s->ib > 1 ? g.k_per_group() * s->ib * out_sp : 0);
  return s;
}

}  // namespace

int64_t implicit_gemm_workspace_bytes(const ConvGeometry& g, Pass pass, int64_t elem_size) {
  const int64_t nb = fold_images(g, pass), cg = g.c_per_group(), kg = g.k_per_group();
  // Folded forward / backward weight: the output block, or the gathered grad_y.
  if (pass != Pass::kBackwardData) return nb > 1 ? kg * nb * g.out_spatial() * elem_size : 0;
  // Strided: the phase-ordered weight of one group and one phase block.
  if (!unit_stride(g)) return phase_backward_data_workspace(g, nb) * elem_size;
  // Unit stride reads the weight as (c, (k, tap)): one transposed copy when taps > 1; folded,
  // plus the output block.
  const int64_t weight = g.kernel_spatial() > 1 ? g.k * cg * g.kernel_spatial() : 0;
  return (weight + (nb > 1 ? cg * nb * g.in_spatial() : 0)) * elem_size;
}

template <typename T>
void implicit_gemm_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                           T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const bool pointwise = is_pointwise(g);
  const int64_t nb = fold_images(g, Pass::kForward);
  if (plan.detail) {  // strided along x: GEMMs over split input rows, a task at a time
    const StridedForward& sf = *static_cast<const StridedForward*>(plan.detail.get());
    const PhaseRows& layout = sf.layout;
    if (bias && sf.ib == 1) fill_bias(g, bias, y);
    const int64_t lines = g.out[0] * g.out[1];
    const T* wa = w;
    if (sf.weight_ld != rows) {
      T* copy = ws + sf.parts * sf.part_elems;
      parallel_for(g.k, 16, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) std::copy_n(w + k * rows, rows, copy + k * sf.weight_ld);
      });
      wa = copy;
    }
    const auto task = [&](int64_t t, T* buf, bool split_threads) {
      const int64_t n0 = t / sf.bands * sf.ib, r0 = t % sf.bands * sf.band;
      const int64_t cnt = std::min(sf.ib, g.n - n0), count = std::min(sf.band, lines - r0);
      const int64_t row0 = sf.bands > 1 ? g.stride[1] * r0 : 0;
      const int64_t rows_end = row0 + band_rows(g, layout, count);
      const T* xn = x + n0 * g.c * in_sp;
      if (split_threads) {
        split_phase_rows(g, layout, xn, cnt, row0, rows_end, buf);
      } else {  // already on a pool thread: run inline
        for (int64_t i = 0; i < cnt; ++i)
          split_phase_rows(g, layout, xn + i * g.c * in_sp, 1, row0, rows_end,
                           buf + i * (rows_end - row0) * layout.pitch);
      }
      const int64_t first = r0 * g.out[2], cols = cnt * (sf.ib > 1 ? out_sp : count * g.out[2]);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const PhaseRowColumns<T> b(g, layout, buf + grp * cg * layout.width, first, row0);
        const gemm::MatrixRef<T> a{wa + grp * kg * sf.weight_ld, sf.weight_ld, 1};
        T* yg = y + (n0 * g.k + grp * kg) * out_sp;
        if (sf.ib == 1) {
          gemm::gemm<T>(kg, cols, rows, T(1), a, b, bias ? T(1) : T(0), yg + first, out_sp);
          continue;
        }
        T* block = buf + sf.split_elems;
        gemm::gemm<T>(kg, cols, rows, T(1), a, b, T(0), block, cols);
        unfold_block(block, kg, cnt, out_sp, yg, g.k * out_sp, bias ? bias + grp * kg : nullptr);
      }
    };
    if (sf.parts > 1) {
      parallel_for(sf.parts, 1, [&](int64_t begin, int64_t end) {
        for (int64_t part = begin; part < end; ++part)
          for (int64_t t = sf.tasks * part / sf.parts; t < sf.tasks * (part + 1) / sf.parts; ++t)
            task(t, ws + part * sf.part_elems, false);
      });
    } else {
      for (int64_t t = 0; t < sf.tasks; ++t) task(t, ws, true);
    }
    return;
  }
  if (nb > 1) {
    for (int64_t n0 = 0; n0 < g.n; n0 += nb) {
      const int64_t cnt = std::min(nb, g.n - n0), cols = cnt * out_sp;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const ForwardColumns<T> b(g, x + (n0 * g.c + grp * cg) * in_sp, g.c * in_sp);
        gemm::gemm<T>(kg, cols, rows, T(1), {w + grp * kg * rows, rows, 1}, b, T(0), ws, cols);
        unfold_block(ws, kg, cnt, out_sp, y + (n0 * g.k + grp * kg) * out_sp, g.k * out_sp,
                     bias ? bias + grp * kg : nullptr);
      }
    }
    return;
  }
  // With a bias the GEMM accumulates onto it; without, it overwrites y (no extra pass).
  if (bias) fill_bias(g, bias, y);
  const T beta = bias ? T(1) : T(0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c + grp * cg) * in_sp;
      T* yg = y + (n * g.k + grp * kg) * out_sp;
      const gemm::MatrixRef<T> a{w + grp * kg * rows, rows, 1};
      if (pointwise) {
        gemm::gemm<T>(kg, out_sp, rows, T(1), a, gemm::MatrixRef<T>{xg, in_sp, 1}, beta, yg, out_sp);
      } else {
        gemm::gemm<T>(kg, out_sp, rows, T(1), a, ForwardColumns<T>(g, xg), beta, yg, out_sp);
      }
    }
}

// wt[grp][c][k * taps + t] = w[grp * kg + k][c][t] for grp * Cg + c in [gc0, gc1), in blocks
// of 16 k: reading one channel's taps across all k jumped C * taps elements per copy, a cache
// miss each (res5.3x3, 512 x 512 x 9: 7 of its 14 ms); a block reads 16 rows and writes 16 runs
// of taps, both streamed. kTaps: the tap count when known at compile time (0: taps).
template <typename T, int kTaps>
void transpose_weight(const ConvGeometry& g, const T* w, int64_t gc0, int64_t gc1, T* ws) {
  constexpr int64_t kBlock = 16;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  const int64_t taps = kTaps > 0 ? kTaps : g.kernel_spatial(), depth = kg * taps;
  for (int64_t k0 = 0; k0 < kg; k0 += kBlock) {
    const int64_t k1 = std::min(kg, k0 + kBlock);
    for (int64_t gc = gc0; gc < gc1; ++gc) {
      const int64_t grp = gc / cg, c = gc % cg;
      for (int64_t k = k0; k < k1; ++k) {
        const T* src = w + ((grp * kg + k) * cg + c) * taps;
        T* dst = ws + gc * depth + k * taps;
        if constexpr (kTaps > 0) {
          for (int t = 0; t < kTaps; ++t) dst[t] = src[t];
        } else {
          copy_short(src, taps, dst);
        }
      }
    }
  }
}

template <typename T>
void implicit_gemm_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                                 T* ws) {
  const ConvGeometry& g = plan.g;
  if (!unit_stride(g))
    return phase_backward_data(g, grad_y, w, grad_x, ws, fold_images(g, Pass::kBackwardData));
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), depth = kg * taps;
  if (taps > 1) {
    parallel_for(g.groups * cg, 1, [&](int64_t begin, int64_t end) {
      switch (taps) {  // the common kernels with their tap count known: copies unrolled inline
        case 3: return transpose_weight<T, 3>(g, w, begin, end, ws);
        case 9: return transpose_weight<T, 9>(g, w, begin, end, ws);
        case 27: return transpose_weight<T, 27>(g, w, begin, end, ws);
        default: return transpose_weight<T, 0>(g, w, begin, end, ws);
      }
    });
  }
  if (g.n == 0) return;
  const auto a_of = [&](int64_t grp) {
    return taps > 1 ? gemm::MatrixRef<T>{ws + grp * cg * depth, depth, 1}
                    : gemm::MatrixRef<T>{w + grp * kg * cg, 1, cg};
  };
  const int64_t nb = fold_images(g, Pass::kBackwardData);
  if (nb > 1) {
    T* block = ws + (taps > 1 ? g.k * cg * taps : 0);
    for (int64_t n0 = 0; n0 < g.n; n0 += nb) {
      const int64_t cnt = std::min(nb, g.n - n0), cols = cnt * in_sp;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const BackwardDataColumns<T> b(g, grad_y + (n0 * g.k + grp * kg) * out_sp, g.k * out_sp);
        gemm::gemm<T>(cg, cols, depth, T(1), a_of(grp), b, T(0), block, cols);
        unfold_block(block, cg, cnt, in_sp, grad_x + (n0 * g.c + grp * cg) * in_sp, g.c * in_sp,
                     static_cast<const T*>(nullptr));
      }
    }
    return;
  }
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* gyg = grad_y + (n * g.k + grp * kg) * out_sp;
      T* gxg = grad_x + (n * g.c + grp * cg) * in_sp;
      const gemm::MatrixRef<T> a = a_of(grp);
      if (is_pointwise(g)) {
        gemm::gemm<T>(cg, in_sp, kg, T(1), a, gemm::MatrixRef<T>{gyg, out_sp, 1}, T(0), gxg, in_sp);
      } else {
        gemm::gemm<T>(cg, in_sp, depth, T(1), a, BackwardDataColumns<T>(g, gyg), T(0), gxg, in_sp);
      }
    }
}

template <typename T>
void implicit_gemm_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                   T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  if (g.n == 0) std::fill(grad_w, grad_w + g.k * rows, T(0));
  const int64_t nb = fold_images(g, Pass::kBackwardWeight);
  if (nb > 1) {
    // The reduction runs over (image, output position): grad_y's planes of nb images side by
    // side in A, the weight columns continuing over the same images.
    for (int64_t n0 = 0; n0 < g.n; n0 += nb) {
      const int64_t cnt = std::min(nb, g.n - n0), depth = cnt * out_sp;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        fold_block(grad_y + (n0 * g.k + grp * kg) * out_sp, kg, cnt, out_sp, g.k * out_sp, ws);
        const WeightColumns<T> b(g, x + (n0 * g.c + grp * cg) * in_sp, g.c * in_sp);
        gemm::gemm<T>(kg, rows, depth, T(1), {ws, depth, 1}, b, n0 == 0 ? T(0) : T(1),
                      grad_w + grp * kg * rows, rows);
      }
    }
    return;
  }
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c + grp * cg) * in_sp;
      const gemm::MatrixRef<T> a{grad_y + (n * g.k + grp * kg) * out_sp, out_sp, 1};
      T* gw = grad_w + grp * kg * rows;
      const T beta = n == 0 ? T(0) : T(1);
      if (is_pointwise(g)) {
        gemm::gemm<T>(kg, rows, out_sp, T(1), a, gemm::MatrixRef<T>{xg, 1, in_sp}, beta, gw, rows);
      } else {
        gemm::gemm<T>(kg, rows, out_sp, T(1), a, WeightColumns<T>(g, xg), beta, gw, rows);
      }
    }
}

std::string implicit_gemm_plan(ConvPlan& plan) {
  plan.workspace_bytes = implicit_gemm_workspace_bytes(plan.g, plan.pass, dtype_size(plan.dtype));
  if (plan.pass == Pass::kForward && PhaseRows::applies(plan.g)) {
    auto sf = strided_forward(plan.g, plan.threads, dtype_size(plan.dtype));
    const int64_t rows = plan.g.c_per_group() * plan.g.kernel_spatial();
    const int64_t copy = sf->weight_ld != rows ? plan.g.k * sf->weight_ld : 0;
    plan.workspace_bytes = (sf->parts * sf->part_elems + copy) * dtype_size(plan.dtype);
    plan.note = "strided: panels copied from input rows split into stride phases, " +
                (sf->ib > 1 ? std::to_string(sf->ib) + " images"
                            : std::to_string(sf->band) + " output lines") +
                " at a time" + (sf->parts > 1 ? ", in parallel" : "");
    plan.detail = std::move(sf);
  }
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                                   \
  template void implicit_gemm_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*,  \
                                         T*);                                                     \
  template void implicit_gemm_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*); \
  template void implicit_gemm_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
