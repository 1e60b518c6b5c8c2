// The direct algorithm's dense path, backward weight (see direct_rows.h): the input planes
// against grad_y rows, by bands of output rows filled per thread, or over whole planes split by
// output channels.
#include <algorithm>
#include <atomic>
#include <vector>

#include "algo/direct.h"
#include "algo/direct_rows.h"
#include "algo/direct_rows_parts.h"
#include "fastconv/parallel.h"
#include "ukernels/rows/rows_ukernels.h"

namespace fastconv::algo {
using namespace rows_parts;

namespace rows_parts {

// The weight gradient's bands: a kernel call's rows of output (kWeightChunk positions), each
// band's sums a partial of its own, added to the result in (image, slice, band) order. The
// bands and that order follow from the geometry alone, and each band's sums are those the
// whole-plane path's call over the same rows makes: the result does not depend on the threads
// nor on the path. A slot fills its band's input rows while the kernels need them (in its L1 and
// L2), instead of one thread filling whole planes that the other then reads from L3: 2 threads,
// AVX-512, ms, whole planes -> bands: inception_v3.conv1a 0.32 -> 0.25-0.29, yolov8s.stem 1.80
// -> 1.20-1.39, r2plus1d_18.stem 5.4 -> 4.0-4.5, and in the VM's slow spells the whole planes
// doubled (conv1a 0.66) where the bands did not.
// The output channels go in `kparts` parts when a slice's bands split unevenly over the slots
// (13 bands over 2 slots: 26 items). Bands go in rounds, the partials of one round in the
// workspace: at least 4 items per slot, at most kPartialBytes of partials where that allows (a
// 1024-row image of 256 x 147 sums per band took 147 MiB as one round).
constexpr int64_t kPartialBytes = int64_t(8) << 20;

int64_t weight_rows(const ConvGeometry& g) {
  return std::max<int64_t>(1, kWeightChunk / std::max<int64_t>(1, g.out[2]));
}
WeightBands weight_bands(const ConvGeometry& g, int threads, int64_t elem) {
  WeightBands b;
  const int64_t slots = slots_of(threads);
  b.rows = std::min(weight_rows(g), std::max<int64_t>(g.out[1], 1));
  const int64_t per_image = g.out[0] * ((g.out[1] + b.rows - 1) / b.rows);
  if (g.kernel[0] != 1 || per_image == 0) return b;  // depth taps: several slices per band
  // Parts of at least 4 channels (a kernel block); the fewest whose items fill the rounds best.
  double best = 0;
  for (int64_t kp = 1; kp <= std::min<int64_t>(4, (g.k + 3) / 4); ++kp) {
    const int64_t items = per_image * kp, rounds = (items + slots - 1) / slots;
    const double filled = double(items) / double(rounds * slots);
    if (filled > best + 0.05) best = filled, b.kparts = kp;
  }
  b.kpart = (g.k + b.kparts - 1) / b.kparts;
  // Too few items leave slots idle (the whole-plane path splits the channels finer).
  if (g.n * per_image * b.kparts < 2 * slots) return b;
  b.per_image = per_image;
  const int64_t total = g.n * per_image, per_band = g.k * g.c * g.kernel_spatial() * elem;
  const int64_t least = (4 * slots + b.kparts - 1) / b.kparts;
  b.round = std::clamp<int64_t>(kPartialBytes / std::max<int64_t>(per_band, 1), least, total);
  return b;
}

}  // namespace rows_parts

namespace {

// Backward weight by bands (rows_bands): the band's partial sums of every output channel and
// term, added to acc in order after each round of bands.
template <typename T>
void weight_by_bands(const ConvPlan& plan, const T* x, const T* grad_y, T* acc, T* ws) {
  const ConvGeometry& g = plan.g;
  const WeightBands b = weight_bands(g, plan.threads, sizeof(T));
  const DwPlane bp = band_plane(input_plane(g), b.rows);
  const std::vector<int64_t> off = input_terms(g, bp);
  const int64_t nred = g.c * g.kernel_spatial(), os = g.out_spatial(), ow = g.out[2];
  const int64_t pitch = plane_pitch(bp), count = b.per_image / g.out[0], sums = g.k * nred;
  const int64_t slots = slots_of(plan.threads);
  T* partial = ws + slots * g.c * pitch;
  const RowsKernels<T>& kern = rows_kernels_for_row<T>(kernel_row_width(g));
  const int64_t total = g.n * b.per_image;
  for (int64_t b0 = 0; b0 < total; b0 += b.round) {
    const int64_t bands = std::min(b.round, total - b0), items = bands * b.kparts;
    std::atomic<int64_t> next{0};
    parallel_for(std::min(slots, items), 1, [&](int64_t sb, int64_t se) {
      for (int64_t slot = sb; slot < se; ++slot) {
        T* buf = ws + slot * g.c * pitch;
        for (int64_t item; (item = next.fetch_add(1)) < items;) {
          const int64_t band = item / b.kparts, k0 = item % b.kparts * b.kpart, at = b0 + band;
          const int64_t n = at / b.per_image, oz = at % b.per_image / count;
          const int64_t o0 = at % count * b.rows, rows = std::min(b.rows, g.out[1] - o0);
          const int64_t kc = std::min(b.kpart, g.k - k0);  // >= 1: kparts <= ceil(K / 4)
          const T* xn = x + n * g.c * g.in_spatial();
          const DwPlane filled = band_plane(bp, rows);
          for (int64_t c = 0; c < g.c; ++c)
            fill_input_rows(g, oz * g.stride[0], o0 * g.stride[1], filled,
                            xn + c * g.in_spatial(), buf + c * pitch);
          T* part = partial + band * sums + k0 * nred;
          std::fill(part, part + kc * nred, T(0));
          kern.weight(buf + bp.row_base(0, 0), bp.row_base(0, 1), off.data(), nred,
                      grad_y + (n * g.k + k0) * os + (oz * g.out[1] + o0) * ow, os, ow, kc, rows,
                      ow, part, nred);
        }
      }
    });
    for (int64_t band = 0; band < bands; ++band) {
      const T* part = partial + band * sums;
      for (int64_t i = 0; i < sums; ++i) acc[i] += part[i];
    }
  }
}

}  // namespace

template <typename T>
void rows_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t taps = g.kernel_spatial(), nred = g.c * taps, os = g.out_spatial();
  const int64_t ow = g.out[2], chunk = weight_rows(g);
  T* acc = grad_w;  // acc[k * nred + c * taps + t], in tap order when the stored order differs
  if (g.mode == ConvMode::kConv) acc = ws;
  std::fill(acc, acc + g.k * nred, T(0));
  if (rows_bands(g, plan.pass, plan.dtype, plan.threads)) {
    weight_by_bands(plan, x, grad_y, acc, g.mode == ConvMode::kConv ? ws + g.k * nred : ws);
  } else {
    const DwPlane p = input_plane(g);
    const std::vector<int64_t> off = input_terms(g, p);
    T* planes = acc == ws ? ws + g.k * nred : ws;
    const RowsKernels<T>& kern = rows_kernels_for_row<T>(kernel_row_width(g));
    // Each output channel's sums belong to one thread, in a fixed order (images, row chunks).
    for (int64_t n = 0; n < g.n; ++n) {
      fill_planes(g, p, x + n * g.c * g.in_spatial(), planes);
      parallel_for(g.k, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t oz = 0; oz < g.out[0]; ++oz)
          for (int64_t oy = 0; oy < g.out[1]; oy += chunk) {
            const int64_t rows = std::min(chunk, g.out[1] - oy);
            kern.weight(planes + p.row_base(oz, oy), p.row_base(0, 1), off.data(), nred,
                        grad_y + (n * g.k + k0) * os + (oz * g.out[1] + oy) * ow, os, ow,
                        k1 - k0, rows, ow, acc + k0 * nred, nred);
          }
      });
    }
  }
  if (acc == grad_w) return;
  for (int64_t k = 0; k < g.k; ++k)
    for (int64_t r = 0; r < nred; ++r)
      grad_w[k * nred + (r / taps) * taps + stored_tap(g, r % taps)] = acc[k * nred + r];
}

template void rows_backward_weight<float>(const ConvPlan&, const float*, const float*, float*,
                                         float*);
template void rows_backward_weight<double>(const ConvPlan&, const double*, const double*, double*,
                                          double*);

}  // namespace fastconv::algo
