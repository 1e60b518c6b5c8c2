// Runs and stretches of implicit-im2col panels (see panel_runs.h).
#include "algo/panel_runs.h"

#include <algorithm>

namespace fastconv::algo {

namespace {

// Splits positions [first, first + count) of `grid` (images image_stride elements apart) into
// runs along its rows; a run's corner is its first position's coordinates * step + shift.
int split_runs(const Dims& grid, const Dims& step, const Dims& shift, int64_t first,
               int64_t count, int64_t image_stride, std::vector<Run>& runs) {
  runs.clear();
  const int64_t per_image = std::max<int64_t>(1, grid[0] * grid[1] * grid[2]);
  for (int64_t j = 0, p = first; j < count;) {
    const int64_t n = p / per_image, local = p - n * per_image;
    const int64_t x = local % grid[2], y = (local / grid[2]) % grid[1];
    const int64_t z = local / (grid[2] * grid[1]);
    const int64_t len = std::min(count - j, grid[2] - x);
    runs.push_back({j, len, z * step[0] + shift[0], y * step[1] + shift[1],
                    x * step[2] + shift[2], n * image_stride});
    j += len;
    p += len;
  }
  return int(runs.size());
}

}  // namespace

int make_output_runs(const ConvGeometry& g, int64_t o, int64_t count, int64_t image_stride,
                     std::vector<Run>& runs) {
  const Dims shift{-g.pad_lo[0], -g.pad_lo[1], -g.pad_lo[2]};
  return split_runs(g.out, g.stride, shift, o, count, image_stride, runs);
}

int make_input_runs(const ConvGeometry& g, int64_t i, int64_t count, int64_t image_stride,
                    std::vector<Run>& runs) {
  return split_runs(g.in, Dims{1, 1, 1}, Dims{0, 0, 0}, i, count, image_stride, runs);
}

std::vector<Run>& run_buffer() {
  thread_local std::vector<Run> runs;
  return runs;
}

void panel_stretches(const TapTable& taps_tab, int64_t taps, int sign, const Dims& extent,
                     int64_t step, const Run* runs, int64_t nruns, int64_t t0, int64_t used,
                     std::vector<PanelStretch>& stretches, std::vector<int32_t>& first) {
  // Raw pointers into tables sized once: push_back here cost a TLS lookup and a store-forwarding
  // stall per entry (perf: half of the packing time of a depthwise GEMM).
  stretches.resize(size_t(taps * nruns));
  first.resize(size_t(taps + 1));
  PanelStretch* out = stretches.data();
  int32_t count = 0;
  first[0] = 0;
  const int64_t H = extent[1], W = extent[2];
  for (int64_t t = 0; t < taps; ++t) {
    if (used == taps || (t - t0 + taps) % taps < used) {
      const int64_t dz = sign * taps_tab.dz[size_t(t)], dy = sign * taps_tab.dy[size_t(t)];
      const int64_t dx = sign * taps_tab.dx[size_t(t)];
      for (int64_t i = 0; i < nruns; ++i) {
        const Run& run = runs[i];
        const int64_t z = run.z + dz, y = run.y + dy, x0 = run.x + dx;
        if (!inside(z, extent[0]) || !inside(y, H)) continue;
        // Column j of the run reads x0 + step * j: those inside [0, W). Steps 1 and 2 divide
        // by shifting (integer division costs as much as a short run's copy).
        const int shift = step == 2 ? 1 : 0;
        const int64_t lo = x0 >= 0 ? 0 : (-x0 + step - 1) >> shift;
        const int64_t hi = std::min(run.len, x0 >= W ? 0 : ((W - 1 - x0) >> shift) + 1);
        if (hi <= lo) continue;
        const uint64_t bits = (hi - lo >= 64 ? ~uint64_t(0) : (uint64_t(1) << (hi - lo)) - 1)
                              << (run.j0 + lo);
        out[count].offset = run.img + (z * H + y) * W + x0 - step * run.j0;
        out[count].mask = bits;
        ++count;
      }
    }
    first[size_t(t + 1)] = count;
  }
}

}  // namespace fastconv::algo
