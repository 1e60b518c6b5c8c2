// How the columns of an implicit-im2col panel split into runs along rows of a conv tensor, and
// those runs into the masked stretches the panel-row kernels read (csrc/ukernels/panel).
// Shared by the panel sources of csrc/algo/conv_panels.cc.
#pragma once
#include <cstdint>
#include <vector>

#include "algo/conv_panels.h"
#include "fastconv/geometry.h"
#include "ukernels/panel/panel_ukernels.h"

namespace fastconv::algo {

inline bool inside(int64_t v, int64_t extent) { return static_cast<uint64_t>(v) < uint64_t(extent); }

// A stretch of consecutive positions along the innermost spatial dim: `len` positions from
// index j0 of the panel; z, y, x are the input coordinates (window corner for output
// positions) of its first position, img the element offset of its image (batch folding).
struct Run {
  int64_t j0, len, z, y, x, img;
};

// Splits output positions [o, o + count) into runs along rows of the output; positions past
// one image continue in the next, image_stride elements on.
int make_output_runs(const ConvGeometry& g, int64_t o, int64_t count, int64_t image_stride,
                     std::vector<Run>& runs);

// Splits input positions [i, i + count) into runs along rows of the input (across images as
// make_output_runs).
int make_input_runs(const ConvGeometry& g, int64_t i, int64_t count, int64_t image_stride,
                    std::vector<Run>& runs);

// Per-thread run lists: packing is called per panel and must not allocate each time.
std::vector<Run>& run_buffer();

// The stretches of the panel rows (channel, tap) for taps t0, t0 + 1, ... (`used` of them, mod
// taps): tap t's run i reads the source row from run corner + sign * tap offset on, `step` (1 or
// 2) apart, and keeps the columns whose x falls inside the row (rows outside the source give no
// stretch).
// Tap t's stretches land at stretches[first[t] .. first[t + 1]); other taps' ranges are empty.
void panel_stretches(const TapTable& taps_tab, int64_t taps, int sign, const Dims& extent,
                     int64_t step, const Run* runs, int64_t nruns, int64_t t0, int64_t used,
                     std::vector<PanelStretch>& stretches, std::vector<int32_t>& first);

}  // namespace fastconv::algo
