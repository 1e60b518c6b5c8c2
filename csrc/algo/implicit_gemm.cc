// Implicit-GEMM convolution: the GEMM's B panels are packed straight from the input (or the
// output gradient) with padding, stride and dilation applied on the fly, so no column buffer
// exists; 1x1 / stride-1 / unpadded convolutions run the GEMM on the tensors themselves.
#include <algorithm>
#include <vector>

#include "algo/batch_fold.h"
#include "algo/box_weight.h"
#include "algo/channels_last_weight.h"
#include "algo/conv_panels.h"
#include "algo/gemm_conv.h"
#include "algo/phase_backward_data.h"
#include "algo/phase_bands.h"
#include "algo/plane_transpose.h"
#include "algo/split_gemm.h"
#include "algo/wide_phases.h"
#include "fastconv/algorithm.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

bool unit_stride(const ConvGeometry& g) {
  return g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
}

// The weight gradient's columns read stride phases where output rows are long: its packing
// transposes runs of a row four columns at a time, and short rows (DCGAN's 8x8 and 16x16
// grids, folded) leave too little to transpose for the split's extra pass to pay (1 thread,
// AVX-512, ms with / without: resnet50.res3.3x3s2 2.46 / 2.57, dcgan.g4 14.3 / 13.7).
constexpr int64_t kWeightPhasesMinRow = 24;

bool weight_phases(const ConvGeometry& g) {
  return forward_phases_apply(g) && g.out[2] >= kWeightPhasesMinRow;
}

// Pointwise convs on small images: the positions fill few NR-wide panels (49 of 64 columns on a
// 7x7 image) but nearly every tile row of the transposed product, positions x channels =
// (positions x reduction) * (reduction x channels), whose operands pack as plain copies or
// line transposes; the result is transposed into the NCHW tensor (a pass over the output, small
// next to the GEMM). res5.1x1 (2048 -> 512 over 7x7): forward 0.70 -> 0.63 ms, backward data
// 0.78 -> 0.64 ms (2 threads, AVX-512). Backward data asks a larger gain: its usual
// orientation already packs plain copies, and at 196 positions (87.5% -> 100% of the tiles)
// the transposed one measured slower (res4.1x1: 0.54 -> 0.57 ms; its forward 0.59 -> 0.53);
// 49 positions on AVX2 (77% -> 91%) still gain (res5.1x1 backward data 0.91 -> 0.75 ms).
// The forward gains only where the usual orientation would pack the weight too (rows a
// multiple of 4 KiB: res5.1x1's 2048 and res4.1x1's 1024 channels); elsewhere it reads the
// weight in place, while the transposed product packs all of it as B and transposes the output.
// Xeon, AVX-512, 2 threads, us, usual vs transposed GEMM alone: 512 x 25 x 256 (SSDLite's
// extra 1x1 on 5x5) 30.6 vs 38.3, and the whole conv 58 before; 1280 x 49 x 320 (EfficientNet-B0's
// head) 163 vs 187 (conv 223 before); 512 x 49 x 1536 329 vs 343; 960 x 49 x 160 65 vs 67;
// with aliased rows 512 x 49 x 2048 510 vs 464, 256 x 49 x 1024 131 vs 119.
constexpr double kTransposeMargin = 0.1, kTransposeMarginData = 0.13;

template <typename T>
bool transposed_pointwise(const ConvGeometry& g, Pass pass) {
  const double margin = pass == Pass::kBackwardData ? kTransposeMarginData : kTransposeMargin;
  if (pass == Pass::kForward && gemm::reads_a_in_place<T>(g.c_per_group(), g.out_spatial()))
    return false;
  return is_pointwise(g) && fold_images(g, pass) == 1 &&
         gemm::transpose_fills_better<T>(g.out_spatial(), margin);
}

// The forward of other small-image convs the same way: the columns (rows x positions) are
// gathered once into ws, the transposed product reads them as A; the weight's rows are packed
// as B panels (line transposes; ~20% of the time on res5.3x3, its 9.4 MB weight read once).
// res5.3x3 (512 -> 512, 3x3 over 7x7): 1.55 -> 1.49 ms at AVX-512, 1.64 -> 1.51 ms at AVX2
// (2 threads, interleaved). 196 positions (res4, 14x14) take it at AVX-512 float too (87.5% of
// seven panels, 100% of the rows), measured no different there (1.12 ms either way), and not at
// AVX2 (94% vs 99%).
template <typename T>
bool transposed_forward(const ConvGeometry& g) {
  return !is_pointwise(g) && fold_images(g, Pass::kForward) == 1 &&
         gemm::transpose_fills_better<T>(g.out_spatial(), kTransposeMargin);
}

// The bands of output rows a strided forward of single images splits its stride phases in
// (phase_bands), for the plan's thread count (the workspace holds a band's planes per thread):
// none where images are folded or the product is transposed (those never split by bands).
template <typename T>
PhaseBands forward_bands(const ConvGeometry& g, int threads) {
  if (fold_images(g, Pass::kForward) > 1 || transposed_pointwise<T>(g, Pass::kForward) ||
      transposed_forward<T>(g))
    return {};
  return phase_bands(g, sizeof(T), threads);
}

// Forward GEMMs that share the weight as A (one group; several images, or blocks of folded
// images, one GEMM each) read it packed once per call (at the front of ws): each GEMM packed it
// again otherwise, once per part of its columns (twice per image on 2 threads). Not where the
// GEMMs read A in place (few columns) or the weight is B (the transposed products). The
// elements the packed weight takes in ws, or 0: rounded up to 16, so that the buffers after it
// keep ws's 64-byte alignment.
template <typename T>
int64_t prepacked_weight_elems(const ConvGeometry& g, int threads) {
  if (g.groups != 1 || wide_phases_apply(g, sizeof(T))) return 0;
  const int64_t nb = fold_images(g, Pass::kForward), rows = g.c * g.kernel_spatial();
  // A GEMM per block of images, or per band of output rows (phase_bands).
  const PhaseBands bands = forward_bands<T>(g, threads);
  const int64_t gemms = nb > 1    ? (g.n + nb - 1) / nb
                        : bands.rows > 0 ? g.n * ((g.out[1] + bands.rows - 1) / bands.rows)
                                         : g.n;
  if (gemms < 2 || gemm::reads_a_in_place<T>(rows, nb * g.out_spatial())) return 0;
  if (nb == 1 && (transposed_pointwise<T>(g, Pass::kForward) || transposed_forward<T>(g)))
    return 0;
  return (gemm::packed_a_elems<T>(g.k, rows) + 15) / 16 * 16;
}

// Folded forwards of batches: the threads take whole blocks of images (their nested calls run
// inline), each block through the thread's own output block and stride phases of about a
// quarter of the L2. Blocks of up to 4096 positions had every GEMM split over the threads, with
// a phase split and an unfold in parallel between: the threads waited at each stage's end (13%
// of CIFAR ResNet's 32 -> 64 3x3/2 on 16x16 x128) and each stage's data spilled the L2. At
// least 512 positions a block, or its last panel of columns is mostly idle (98 positions, four
// 32-wide panels: 128 -> 256 3x3/2 on 14x14 x16 ran 0.83x as fast). Images per block, or 0
// (shared blocks: fewer than two per thread).
int64_t forward_block_elems(const ConvGeometry& g, int64_t elem_size) {  // per image
  const bool phased = forward_reads_phases(g, elem_size);
  return g.k_per_group() * g.out_spatial() +
         (phased ? g.c_per_group() * make_forward_phases(g).channel_size : 0);
}
// A thread's slot (`per` images), in whole 64-byte lines.
int64_t forward_slot_elems(const ConvGeometry& g, int64_t elem_size, int64_t per) {
  return (per * forward_block_elems(g, elem_size) + 15) / 16 * 16;
}
int64_t forward_thread_images(const ConvGeometry& g, int64_t elem_size, int threads) {
  if (wide_phases_apply(g, elem_size)) return 0;
  return thread_block_images(g.n, fold_images(g, Pass::kForward), g.out_spatial(),
                             forward_block_elems(g, elem_size) * elem_size, threads);
}

// transposed_pointwise for either dtype (workspace sizing, which knows only the element size).
bool transposed_pointwise_any(const ConvGeometry& g, Pass pass) {
  return transposed_pointwise<float>(g, pass) || transposed_pointwise<double>(g, pass);
}

// Unit-stride backward data on small images (res5.3x3: 7x7 positions, a 512 x 512 x 9 weight):
// the GEMM that reads the weight as A needs it transposed to (c, (k, tap)) first, a copy of the
// whole weight (9.4 MiB) written and read back per call (26% of the time at 1 thread). Here
// the weight is B in its stored layout instead: Q (positions x (c, tap)) = grad_y^T W, rows of
// W packed as they lie, the small grad_y^T as A; then grad_x[c][i] = sum over taps of
// Q[i + pad - tap][c, tap] (a col2im over a cache-resident Q). Chosen when one image has at
// most kTransposedMaxPositions positions and the weight outweighs Q (C/G >= output positions).
constexpr int64_t kTransposedMaxPositions = 256;

bool transposed_backward_data(const ConvGeometry& g) {
  const int64_t taps = g.kernel_spatial(), out_sp = g.out_spatial();
  if (!unit_stride(g) || taps <= 1 || fold_images(g, Pass::kBackwardData) > 1) return false;
  return g.in_spatial() <= kTransposedMaxPositions && g.c_per_group() >= out_sp;
}

// grad_x of one image and group (gy: its kg planes, w: its kg x cg x taps weight) through Q
// in ws (out positions x cg * taps).
template <typename T>
void transposed_backward_data_group(const ConvGeometry& g, const T* gy, const T* w, T* gx,
                                    T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), cols = cg * taps;
  gemm::gemm<T>(out_sp, cols, kg, T(1), {gy, 1, out_sp}, gemm::MatrixRef<T>{w, cols, 1}, T(0),
                ws, cols);
  const TapTable tt(g);
  // off[i * taps + t]: the output position tap t of input position i reads, or -1.
  std::vector<int64_t> off(static_cast<size_t>(in_sp * taps));
  for (int64_t i = 0; i < in_sp; ++i) {
    const int64_t z = i / (g.in[1] * g.in[2]), y = (i / g.in[2]) % g.in[1], x = i % g.in[2];
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t oz = z + g.pad_lo[0] - tt.dz[t], oy = y + g.pad_lo[1] - tt.dy[t];
      const int64_t ox = x + g.pad_lo[2] - tt.dx[t];
      const bool in =
          oz >= 0 && oz < g.out[0] && oy >= 0 && oy < g.out[1] && ox >= 0 && ox < g.out[2];
      off[size_t(i * taps + t)] = in ? (oz * g.out[1] + oy) * g.out[2] + ox : -1;
    }
  }
  parallel_for(cg, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t i = 0; i < in_sp; ++i) {
        T acc = T(0);
        for (int64_t t = 0; t < taps; ++t) {
          const int64_t o = off[size_t(i * taps + t)];
          if (o >= 0) acc += ws[o * cols + c * taps + t];
        }
        gx[c * in_sp + i] = acc;
      }
  });
}

}  // namespace

int64_t implicit_gemm_workspace_bytes(const ConvGeometry& g, Pass pass, int64_t elem_size,
                                      int threads) {
  const int64_t nb = fold_images(g, pass), cg = g.c_per_group(), kg = g.k_per_group();
  // Folded forward: the output block; strided: the input's stride phases of the block's images,
  // or each thread's planes of a band.
  if (pass == Pass::kForward) {
    if (wide_phases_apply(g, elem_size))
      return wide_phases_workspace(g, elem_size, threads) * elem_size;
    const PhaseBands bands =
        elem_size == 4 ? forward_bands<float>(g, threads) : forward_bands<double>(g, threads);
    const int64_t phases = bands.rows > 0 ? bands.slots * bands.slot
                           : forward_reads_phases(g, elem_size)
                               ? nb * cg * make_forward_phases(g).channel_size
                               : 0;
    const int64_t transposed =
        transposed_pointwise_any(g, pass) || transposed_forward<float>(g) ||
                transposed_forward<double>(g)
            ? (kg + cg * g.kernel_spatial()) * g.out_spatial()
            : 0;
    const int64_t packed_weight = elem_size == 4 ? prepacked_weight_elems<float>(g, threads)
                                                 : prepacked_weight_elems<double>(g, threads);
    if (const int64_t per = forward_thread_images(g, elem_size, threads))
      return (packed_weight + threads * forward_slot_elems(g, elem_size, per)) * elem_size;
    return ((nb > 1 ? kg * nb * g.out_spatial() : 0) + phases + transposed + packed_weight) *
           elem_size;
  }
  // Backward weight: the gathered grad_y when folded, and split_gemm's partial products;
  // channels-last, the input copies and the product before its reordering.
  if (pass == Pass::kBackwardWeight) {
    const int64_t depth = nb * g.out_spatial(), rows = cg * g.kernel_spatial();
    const int64_t splits = reduction_splits(kg, rows, depth);
    if (box_weight(g)) return box_weight_workspace(g, nb) * elem_size;
    if (channels_last_weight(g)) return channels_last_weight_workspace(g) * elem_size;
    const int64_t phases = weight_phases(g) ? nb * cg * make_forward_phases(g).channel_size : 0;
    return ((nb > 1 ? kg * depth : 0) + (splits > 1 ? splits * kg * rows : 0) + phases) *
           elem_size;
  }
  // Strided: the phase-ordered weight of one group and one phase block.
  if (!unit_stride(g)) return phase_backward_data_workspace(g, nb) * elem_size;
  // Small images: Q (transposed_backward_data).
  if (transposed_backward_data(g)) return g.out_spatial() * cg * g.kernel_spatial() * elem_size;
  // Unit stride reads the weight as (c, (k, tap)): one transposed copy when taps > 1; folded,
  // plus the output block.
  const int64_t weight = g.kernel_spatial() > 1 ? g.k * cg * g.kernel_spatial() : 0;
  const int64_t transposed = transposed_pointwise_any(g, pass) ? cg * g.in_spatial() : 0;
  return (weight + (nb > 1 ? cg * nb * g.in_spatial() : 0) + transposed) * elem_size;
}

template <typename T>
void implicit_gemm_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                           T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const bool pointwise = is_pointwise(g);
  const int64_t nb = fold_images(g, Pass::kForward);
  if (wide_phases_apply(g, sizeof(T)))
    return wide_phases_forward(g, plan.threads, x, w, bias, y, ws);
  // The weight packed once for every GEMM (prepacked_weight_elems), the rest of ws after it.
  const int64_t packed_elems = prepacked_weight_elems<T>(g, plan.threads);
  T* const packed_w = packed_elems > 0 ? ws : nullptr;
  ws += packed_elems;
  if (packed_w) pack_forward_weight(g, w, 0, packed_w);  // one group
  // Strided: each GEMM reads its images' channels split into stride phases (after the output
  // block in ws); the split runs per group and block of images, right before its GEMM, or per
  // band of output rows into each thread's planes (forward_bands). Other strided forwards gather
  // their columns from x itself (double step: two vector loads a vector).
  const bool phased = forward_reads_phases(g, sizeof(T));
  const ForwardPhases ph = phased ? make_forward_phases(g) : ForwardPhases{};
  const PhaseBands bands = phased ? forward_bands<T>(g, plan.threads) : PhaseBands{};
  T* phase_buf = ws + (nb > 1 ? kg * nb * out_sp : 0);
  // C (kg x cols, row stride ldc) = A B: A the group's weight rows (or packed), B any source.
  auto product = [&](const gemm::MatrixRef<T>& a, const gemm::PanelSource<T>& b, int64_t cols,
                     T beta, T* c, int64_t ldc) {
    if (packed_w) return gemm::gemm_packed_a<T>(kg, cols, rows, T(1), packed_w, b, beta, c, ldc);
    gemm::gemm<T>(kg, cols, rows, T(1), a, b, beta, c, ldc);
  };
  auto gemm_images = [&](int64_t n0, int64_t cnt, int64_t grp, const gemm::MatrixRef<T>& a,
                         T beta, T* c, T* phase_buf) {
    const T* xg = x + (n0 * g.c + grp * cg) * in_sp;
    const int64_t cols = cnt * out_sp;
    if (bands.rows > 0)
      return phase_bands_forward<T>(g, ph, bands, xg, c, phase_buf,
                                    [&](const gemm::PanelSource<T>& b, int64_t n, T* band_c) {
                                      product(a, b, n, beta, band_c, out_sp);
                                    });
    if (phased) {
      split_forward_phases(g, ph, xg, cnt, g.c * in_sp, cg, phase_buf);
      const PhaseColumns<T> b(ph.grid, ph.offsets, g.kernel_spatial(), phase_buf,
                              cg * ph.channel_size);
      return product(a, b, cols, beta, c, cols);
    }
    product(a, ForwardColumns<T>(g, xg, g.c * in_sp), cols, beta, c, cols);
  };
  // A block of cnt images from n0, every group, through c (its output) and planes.
  auto block_images = [&](int64_t n0, int64_t cnt, T* c, T* planes) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      gemm_images(n0, cnt, grp, {w + grp * kg * rows, rows, 1}, T(0), c, planes);
      unfold_block(c, kg, cnt, out_sp, y + (n0 * g.k + grp * kg) * out_sp, g.k * out_sp,
                   bias ? bias + grp * kg : nullptr);
    }
  };
  if (const int64_t per = forward_thread_images(g, sizeof(T), plan.threads)) {
    const int64_t slot = forward_slot_elems(g, sizeof(T), per);
    for_each_thread_block(plan.threads, (g.n + per - 1) / per, [&](int64_t b, int64_t s) {
      block_images(b * per, std::min(per, g.n - b * per), ws + s * slot,
                   ws + s * slot + kg * per * out_sp);
    });
    return;
  }
  if (nb > 1) {
    for (int64_t n0 = 0; n0 < g.n; n0 += nb)
      block_images(n0, std::min(nb, g.n - n0), ws, phase_buf);
    return;
  }
  // With a bias the GEMM accumulates onto it; without, it overwrites y (no extra pass). The
  // transposed pointwise product adds the bias while transposing.
  const bool transposed = transposed_pointwise<T>(g, Pass::kForward);
  const bool transposed_cols = transposed_forward<T>(g);
  if (bias && !transposed && !transposed_cols) fill_bias(g, bias, y);
  const T beta = bias ? T(1) : T(0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c + grp * cg) * in_sp;
      T* yg = y + (n * g.k + grp * kg) * out_sp;
      const gemm::MatrixRef<T> a{w + grp * kg * rows, rows, 1};
      if (transposed) {
        gemm::gemm<T>(out_sp, kg, rows, T(1), {xg, 1, in_sp}, gemm::MatrixRef<T>{a.data, 1, rows},
                      T(0), ws, kg);
        transpose_into(ws, out_sp, kg, bias ? bias + grp * kg : nullptr, yg);
      } else if (transposed_cols) {
        T* cols = ws + kg * out_sp;  // rows x out_sp, gathered in parallel chunks of rows
        const ForwardColumns<T> src(g, xg);
        parallel_for((rows + 63) / 64, 1, [&](int64_t b0, int64_t b1) {
          const int64_t r0 = b0 * 64, r1 = std::min(rows, b1 * 64);
          src.pack(r0, r1 - r0, 0, out_sp, out_sp, cols + r0 * out_sp);
        });
        gemm::gemm<T>(out_sp, kg, rows, T(1), {cols, 1, out_sp},
                      gemm::MatrixRef<T>{a.data, 1, rows}, T(0), ws, kg);
        transpose_into(ws, out_sp, kg, bias ? bias + grp * kg : nullptr, yg);
      } else if (pointwise) {
        product(a, gemm::DenseSource<T>({xg, in_sp, 1}), out_sp, beta, yg, out_sp);
      } else {
        gemm_images(n, 1, grp, a, beta, yg, phase_buf);
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
  if (transposed_backward_data(g)) {
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t grp = 0; grp < g.groups; ++grp)
        transposed_backward_data_group(g, grad_y + (n * g.k + grp * kg) * out_sp,
                                       w + grp * kg * cg * taps,
                                       grad_x + (n * g.c + grp * cg) * in_sp, ws);
    return;
  }
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
      if (transposed_pointwise<T>(g, Pass::kBackwardData)) {
        gemm::gemm<T>(in_sp, cg, kg, T(1), {gyg, 1, out_sp},
                      gemm::MatrixRef<T>{w + grp * kg * cg, cg, 1}, T(0), ws, cg);
        transpose_into(ws, in_sp, cg, static_cast<const T*>(nullptr), gxg);
      } else if (is_pointwise(g)) {
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
  if (g.n == 0) return std::fill(grad_w, grad_w + g.k * rows, T(0));
  if (box_weight(g)) {
    for (int64_t grp = 0; grp < g.groups; ++grp)
      box_weight_gradient(g, grp, fold_images(g, Pass::kBackwardWeight), x, grad_y, grad_w, ws);
    return;
  }
  if (channels_last_weight(g)) {
    for (int64_t grp = 0; grp < g.groups; ++grp)
      channels_last_weight_gradient(g, grp, x, grad_y, grad_w, ws);
    return;
  }
  const int64_t nb = fold_images(g, Pass::kBackwardWeight);
  // Strided: the columns read the images' input split into stride phases (at the end of ws).
  const bool phased = weight_phases(g);
  const ForwardPhases ph = phased ? make_forward_phases(g) : ForwardPhases{};
  const int64_t splits = reduction_splits(kg, rows, nb * out_sp);
  T* phase_buf = ws + (nb > 1 ? kg * nb * out_sp : 0) + (splits > 1 ? splits * kg * rows : 0);
  const auto columns = [&](int64_t n0, int64_t cnt, int64_t grp) {
    const T* xg = x + (n0 * g.c + grp * cg) * in_sp;
    if (!phased) return WeightColumns<T>(g, xg, g.c * in_sp);
    split_forward_phases(g, ph, xg, cnt, g.c * in_sp, cg, phase_buf);
    return WeightColumns<T>(ph.grid, ph.offsets, phase_buf, cg * ph.channel_size);
  };
  if (nb > 1) {
    // The reduction runs over (image, output position): grad_y's planes of nb images side by
    // side in A, the weight columns continuing over the same images.
    for (int64_t n0 = 0; n0 < g.n; n0 += nb) {
      const int64_t cnt = std::min(nb, g.n - n0), depth = cnt * out_sp;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        fold_block(grad_y + (n0 * g.k + grp * kg) * out_sp, kg, cnt, out_sp, g.k * out_sp, ws);
        split_gemm<T>(kg, rows, depth, {ws, depth, 1}, columns(n0, cnt, grp), n0 == 0 ? T(0) : T(1),
                      grad_w + grp * kg * rows, rows, ws + kg * nb * out_sp);
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
        split_gemm<T>(kg, rows, out_sp, a, gemm::DenseSource<T>({xg, 1, in_sp}), beta, gw, rows,
                      ws);
      } else {
        split_gemm<T>(kg, rows, out_sp, a, columns(n, 1, grp), beta, gw, rows, ws);
      }
    }
}

template <typename T>
void pack_forward_weight(const ConvGeometry& g, const T* w, int64_t group_elems, T* packed) {
  const int64_t kg = g.k_per_group(), rows = g.c_per_group() * g.kernel_spatial();
  const int64_t step = gemm::packed_a_row_step<T>(), steps = (kg + step - 1) / step;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 17) / (step * rows));
  parallel_for(g.groups * steps, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t grp = b / steps, r0 = (b % steps) * step, r1 = std::min(kg, r0 + step);
      gemm::pack_a_rows<T>(kg, rows, r0, r1 - r0, {w + (grp * kg + r0) * rows, rows, 1},
                           packed + grp * group_elems);
    }
  });
}

std::string implicit_gemm_plan(ConvPlan& plan) {
  plan.workspace_bytes =
      implicit_gemm_workspace_bytes(plan.g, plan.pass, dtype_size(plan.dtype), plan.threads);
  const int64_t elem = dtype_size(plan.dtype);
  const bool wide = plan.pass == Pass::kForward && wide_phases_apply(plan.g, elem);
  if (wide)
    plan.note = "column planes of the stride phases, panels read in place, output written in place";
  else if (plan.pass == Pass::kForward && forward_double_step(plan.g, elem))
    plan.note = "stride-2 columns gathered from the input, two vector loads per vector";
  else if (plan.pass == Pass::kForward && plan.g.n > 0)
    plan.note = phase_bands_note(plan.dtype == DType::kFloat32
                                     ? forward_bands<float>(plan.g, plan.threads)
                                     : forward_bands<double>(plan.g, plan.threads));
  // Folded forwards of batches by whole blocks per thread: explain()'s bracket says so.
  if (wide && wide_thread_images(plan.g, elem, plan.threads)) {
    plan.note += ", each thread one image at a time";
  } else if (const int64_t per = plan.pass == Pass::kForward && !wide
                                     ? forward_thread_images(plan.g, elem, plan.threads)
                                     : 0) {
    plan.note += std::string(plan.note.empty() ? "" : ", ") + "each thread " +
                 std::to_string(per) + " images at a time";
  }
  if (plan.pass == Pass::kBackwardWeight && plan.g.n > 0) {  // explain()'s bracket
    if (box_weight(plan.g)) {
      plan.note = "a GEMM per kernel tap over only the positions it reaches (padding skipped), "
                  "channels-last operands";
    } else if (channels_last_weight(plan.g)) {
      plan.note = "channels-last input, (tap, channel) columns";
    }
  }
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                                   \
  template void implicit_gemm_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*,  \
                                         T*);                                                     \
  template void implicit_gemm_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*); \
  template void implicit_gemm_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*); \
  template void pack_forward_weight<T>(const ConvGeometry&, const T*, int64_t, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo

bool fastconv::implicit_gemm_strided_panels(const ConvProblem& p) {
  const bool cpu_dtype = p.dtype == DType::kFloat32 || p.dtype == DType::kFloat64;
  const int64_t elem = dtype_size(p.dtype);
  return cpu_dtype && p.conv_pass == ConvPass::kForward &&
         (algo::wide_phases_apply(p.g, elem) || algo::forward_double_step(p.g, elem));
}
