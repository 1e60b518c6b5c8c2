// The FFT convolution's layout: transform lengths from a cost model, overlap-save tiles per
// dim, blocks of tiles and the workspace carve-up. Made once per plan (algo/fft_conv.cc).
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"
#include "fastconv/types.h"
#include "fft/fft.h"
#include "fft/fft_nd.h"

namespace fastconv::algo::fft_conv {

// How tiles read one dim of their source. Tile position m of tile t, polyphase component r,
// reads source index src(t, m, r), or nothing (-1): the virtual sequence is
// source[((t * tile_step + m) * phases + r + offset) / upsample] where that divides exactly and
// lies in [0, extent). phases > 1 splits a strided conv into stride-1 phases; upsample > 1 reads
// zero-inserted grad_y (backward data of a strided conv).
struct AxisLoad {
  int64_t tile_step = 1;  // source positions between tiles (before the phase split)
  int64_t window = 1;     // positions a tile reads; the rest of the transform is zero
  int64_t offset = 0;     // source position of tile 0's position 0 (minus the padding)
  int64_t upsample = 1;   // zero-insertion factor
  int64_t extent = 1;     // source length
  int64_t phases = 1;     // polyphase split (the stride)
  int64_t src(int64_t t, int64_t m, int64_t r = 0) const {
    if (m >= window) return -1;
    int64_t s = (t * tile_step + m) * phases + r + offset;
    if (upsample > 1) {
      if (s < 0 || s % upsample != 0) return -1;
      s /= upsample;
    }
    return s >= 0 && s < extent ? s : -1;
  }
};

// Everything a pass needs to know about tiles, transforms, blocks and the workspace carve-up,
// made once per plan by make_layout.
struct Layout {
  ConvPass pass = ConvPass::kForward;

  // Transforms and tiles, per dim (unused leading dims are 1).
  Dims fft_length{1, 1, 1};     // transform length: a tile's span, kernel_extent - 1 overlap
  Dims kernel_extent{1, 1, 1};  // extent of the (phase) kernel the stride-1 correlation sees
  Dims tile_outputs{1, 1, 1};   // outputs per tile
  Dims tile_count{1, 1, 1};     // tiles covering the output
  int64_t tiles_per_image = 1, total_tiles = 0;
  int64_t points = 1;                // real points per tile: the product of fft_length
  int64_t frequencies = 1;           // complex frequencies per tile (half spectrum on the last dim)
  int64_t last_dim_frequencies = 1;  // fft_length[2] / 2 + 1

  // Polyphase split (the stride, forward and backward weight) and how tiles read their sources.
  Dims phases{1, 1, 1};
  int64_t phase_count = 1;  // phases per input channel: in_channels = C * phase_count
  AxisLoad input_load[3];   // the transformed input: x, or grad_y for backward data
  AxisLoad grad_y_load[3];  // backward weight's grad_y

  // Sides of the frequency-domain products: transformed channels in, result channels out.
  int64_t in_channels = 0, out_channels = 0, groups = 1, in_per_group = 0, out_per_group = 0;

  // Blocks of tiles, lanes (channel x tile of a block) of each buffer.
  int64_t tiles_per_block = 1;
  int64_t in_lanes = 0, out_lanes = 0;
  int64_t tile_buffer_lanes = 0;  // the real-domain tile buffer (R), shared by both sides
  int64_t weight_grad_lanes = 0;  // backward weight: (k, c) pairs of the accumulated spectra

  // Lane-local layers (depthwise): each worker runs chunks of chunk_pairs two-for-one pairs from
  // start to end in its own tile buffer and spectra.
  bool lane_local = false;
  int64_t chunk_pairs = 0, workers = 1, worker_buffer_elems = 0;

  // Workspace regions, in bytes from the 64-byte aligned start.
  int64_t fft_plans_offset[3] = {0, 0, 0}, kernel_spectra_offset = 0;
  int64_t tile_buffer_offset = 0, in_spectra_offset = 0, out_spectra_offset = 0;
  int64_t worker_buffers_offset = 0;
  int64_t workspace_bytes = 0;  // every region plus 64 bytes of slack to align the start
};

// Most two-for-one pairs a worker of the lane-local path carries through a whole tile at once.
constexpr int64_t kMaxChunkPairs = 32;

inline int64_t round64(int64_t bytes) { return (bytes + 63) / 64 * 64; }
inline int64_t round_even(int64_t v) { return v + (v & 1); }

// Extent of the dilated kernel along dim d.
inline int64_t dilated(const ConvGeometry& g, int d) {
  return (g.kernel[d] - 1) * g.dilation[d] + 1;
}

// The workspace start rounded up to 64 bytes (the op layer's scratch has 64 bytes of slack).
template <typename T>
T* aligned_base(T* ws) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ws);
  return reinterpret_cast<T*>((p + 63) / 64 * 64);
}

// The workspace region `offset` bytes past base.
template <typename T>
T* carve(T* base, int64_t offset) {
  return reinterpret_cast<T*>(reinterpret_cast<char*>(base) + offset);
}

// The per-dim FFT plans, built into their workspace regions.
template <typename T>
fft::PlanNd<T> build_plans(const Layout& L, T* base) {
  fft::PlanNd<T> pl;
  for (int d = 0; d < 3; ++d)
    pl.p[d] = fft::make_plan<T>(L.fft_length[d], carve(base, L.fft_plans_offset[d]));
  pl.n = L.fft_length;
  pl.fw = L.last_dim_frequencies;
  return pl;
}

// The layout of `pass` of g for elements of `elem` bytes and `threads` workers (the plan's
// thread count: run_conv re-plans when it changes). Runs the length search: once per plan.
// Throws InvalidArgument when a size overflows int64.
Layout make_layout(const ConvGeometry& g, ConvPass pass, int64_t elem, int threads);

}  // namespace fastconv::algo::fft_conv
