// Band-by-band stride phases for the strided forward (phase_bands.h).
#include "algo/phase_bands.h"

#include <algorithm>
#include <cstring>

#include "fastconv/parallel.h"
#include "gemm/cache_sizes.h"

namespace fastconv::algo {

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whole-image phases below this stay split ahead: they stay in cache, and bands of small images
// with many channels hold a few short output rows, their GEMMs too narrow (2 threads, median ms,
// whole vs bands of half L2: resnet50.res3.3x3s2 1.57-1.93 vs 1.85-1.90, yolov5s's 256->512 on
// 40x40 5.85-6.16 vs 6.45-6.92). Above it, yolov5s's 32->64 3x3/2 on 320x320 (13 MiB of phases)
// 7.7-9.5 vs 7.1-8.3, its 64->128 on 160x160 (6.5 MiB) even.
constexpr int64_t kMinWholeBytes = int64_t(4) << 20;

}  // namespace

PhaseBands phase_bands(const ConvGeometry& g, int64_t elem_size, int threads) {
  PhaseBands pb;
  const int64_t nr = elem_size == 4 ? gemm::panel_width<float>() : gemm::panel_width<double>();
  if (nr > 16 || !forward_reads_phases(g, elem_size) || g.out[1] < 2) return pb;
  // The whole image's phases (make_forward_phases' channel_size), before building its tables:
  // most strided forwards stop here, on every call.
  const int64_t sy = g.stride[1], sx = g.stride[2];
  const int64_t channel = sy * sx * ceil_div(g.in[1], sy) * ceil_div(g.in[2], sx);
  if (g.c_per_group() * channel * elem_size < kMinWholeBytes) return pb;
  const ForwardPhases ph = make_forward_phases(g);
  const auto [lo, hi] = std::minmax_element(ph.offsets.dy.begin(), ph.offsets.dy.end());
  const int64_t span = *hi - *lo;
  const int64_t row_bytes = g.c_per_group() * ph.grid.in[0] * ph.grid.in[2] * elem_size;
  const int64_t rows = std::clamp<int64_t>(
      gemm::cache_sizes().l2 / 2 / std::max<int64_t>(1, row_bytes) - span, 1, g.out[1]);
  const int64_t bands = ceil_div(g.out[1], rows);
  if (bands < 2 * threads && threads > 1) return pb;
  pb.rows = rows;
  pb.height = rows + span;
  pb.qy0 = *lo;
  pb.slots = std::min<int64_t>(threads, bands);
  pb.slot = g.c_per_group() * ph.grid.in[0] * pb.height * ph.grid.in[2];
  return pb;
}

std::string phase_bands_note(const PhaseBands& pb) {
  if (pb.rows == 0) return "";
  return "stride phases split band by band (" + std::to_string(pb.rows) +
         " output rows per band), each thread's band in cache";
}

template <typename T>
void phase_bands_forward(const ConvGeometry& g, const ForwardPhases& ph, const PhaseBands& pb,
                         const T* x, T* y, T* ws, const BandProduct<T>& product) {
  const int64_t cg = g.c_per_group(), planes = ph.grid.in[0], wp = ph.grid.in[2];
  const int64_t plane = pb.height * wp, channel = planes * plane, span = pb.height - pb.rows;
  const int64_t in_sp = g.in_spatial(), ox = g.out[2], bands = ceil_div(g.out[1], pb.rows);
  // The band's taps: rows relative to the planes' first row (all inside them).
  TapTable taps = ph.offsets;
  for (int64_t& dy : taps.dy) dy -= pb.qy0;
  parallel_for(pb.slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* buf = ws + s * pb.slot;
      ConvGeometry band = ph.grid;
      band.in[1] = pb.height;
      for (int64_t b = s * bands / pb.slots; b < (s + 1) * bands / pb.slots; ++b) {
        const int64_t oy0 = b * pb.rows, rows = std::min(pb.rows, g.out[1] - oy0);
        // Rows the previous band of this thread already split: its last `span` plane rows.
        const int64_t have = b > s * bands / pb.slots ? span : 0;
        for (int64_t c = 0; c < cg; ++c) {
          T* planes_c = buf + c * channel;
          if (have > 0)
            for (int64_t p = 0; p < planes; ++p)
              std::memmove(planes_c + p * plane, planes_c + p * plane + pb.rows * wp,
                           size_t(have * wp) * sizeof(T));
          split_phase_rows(g, ph, x + c * in_sp, oy0 + pb.qy0 + have, rows + span - have, plane,
                           planes_c + have * wp);
        }
        band.out[1] = rows;
        product(PhaseColumns<T>(band, taps, g.kernel_spatial(), buf, 0), rows * ox,
                y + oy0 * ox);
      }
    }
  });
}

template void phase_bands_forward<float>(const ConvGeometry&, const ForwardPhases&,
                                         const PhaseBands&, const float*, float*, float*,
                                         const BandProduct<float>&);
template void phase_bands_forward<double>(const ConvGeometry&, const ForwardPhases&,
                                          const PhaseBands&, const double*, double*, double*,
                                          const BandProduct<double>&);

}  // namespace fastconv::algo
