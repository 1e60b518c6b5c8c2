// Pieces the row path's passes share (direct_rows.cc, direct_rows_weight.cc): the padded planes'
// layout, their fill, the bands, the term offsets. Internal to those files.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "algo/direct.h"
#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"
#include "fastconv/parallel.h"
#include "ukernels/depthwise/dw_ukernels.h"

namespace fastconv::algo::rows_parts {

// Elements after each buffer the kernels may read past its last needed one (>= one vector).
constexpr int64_t kSlack = 64;
// Output positions a weight-kernel call sums before its horizontal sums: long enough to hide
// them (24 of them per 4 x 6 block), short enough that a block's gradient rows stay in L1 while
// the kernel walks every term block over them. With the flat-loop kernel 1024 spent ~20% of
// resnet50.conv1's weight gradient in the sums and 4096 was faster (1.54 -> 1.31 ms); with the
// row-by-row kernel (rows_impl.h) 1024 is: 2 threads, median ms, 4096 / 2048 / 1024, AVX-512:
// resnet50.conv1 1.05-1.09 / 1.11-1.19 / 0.95-1.03, yolov5s.stem 4.02-4.27 / 3.98-4.30 /
// 3.84-3.98, alexnet.conv1 1.31-1.32 / 1.20-1.21 / 1.14-1.15; 3->32 3x3 s2 on 224x224
// 0.177-0.179 / 0.183-0.188 / 0.187-0.193 is the one that loses (5%).
constexpr int64_t kWeightChunk = 1024;

// Outputs a forward or weight-gradient kernel call covers along a row, which picks its kernels
// (rows_kernels_for_row).
inline int64_t kernel_row_width(const ConvGeometry& g) { return g.out[2]; }

inline int64_t plane_pitch(const DwPlane& p) { return p.buffer_elems() + kSlack; }

// Tap t of the correlation the kernels run: filter taps reversed for true convolution.
inline int64_t stored_tap(const ConvGeometry& g, int64_t t) {
  return g.mode == ConvMode::kConv ? g.kernel_spatial() - 1 - t : t;
}

// off[c * taps + t]: where term (channel c, tap t) starts relative to an output row's base.
inline std::vector<int64_t> input_terms(const ConvGeometry& g, DwPlane p) {
  const int64_t taps = g.kernel_spatial(), pitch = plane_pitch(p);
  std::vector<int64_t> tap_offset(static_cast<size_t>(taps)), off(static_cast<size_t>(g.c * taps));
  p.set_taps(tap_offset.data());
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t t = 0; t < taps; ++t) off[size_t(c * taps + t)] = c * pitch + tap_offset[t];
  return off;
}

// The padded planes of every channel of one image.
template <typename T>
void fill_planes(const ConvGeometry& g, const DwPlane& p, const T* x, T* planes) {
  const int64_t pitch = plane_pitch(p);
  parallel_for(g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      fill_input_plane(p, g, x + c * g.in_spatial(), planes + c * pitch);
  });
}

// dst = weights(f, r) for f < count, r < nred in the forward kernel's chunks of kb rows.
template <typename T, typename Get>
void pack_chunks(int64_t count, int64_t nred, int64_t kb, Get&& weight, T* dst) {
  for (int64_t f0 = 0; f0 < count; f0 += kb) {
    const int64_t kbc = std::min(kb, count - f0);
    T* chunk = dst + f0 * nred;
    for (int64_t r = 0; r < nred; ++r)
      for (int64_t j = 0; j < kbc; ++j) chunk[r * kbc + j] = weight(f0 + j, r);
  }
}

inline int64_t slots_of(int threads) { return std::max(1, threads); }

// The plane of one band of `rows` output rows of one output slice.
inline DwPlane band_plane(const DwPlane& p, int64_t rows) {
  DwPlane b = p;
  b.out[0] = 1;
  b.out[1] = rows;
  b.rows = b.padded_extent(1);
  return b;
}

// The weight gradient's bands of output rows (direct_rows_weight.cc).
struct WeightBands {
  int64_t rows = 0;       // output rows per band (the last of a slice may have fewer)
  int64_t per_image = 0;  // bands per image (0: not banded)
  int64_t kparts = 1, kpart = 0;  // output-channel parts, channels per part
  int64_t round = 0;              // bands per round
};
// Output rows per weight-kernel call: kWeightChunk positions.
int64_t weight_rows(const ConvGeometry& g);
// elem: bytes per element (the rounds' partials are bounded in bytes).
WeightBands weight_bands(const ConvGeometry& g, int threads, int64_t elem);

}  // namespace fastconv::algo::rows_parts
