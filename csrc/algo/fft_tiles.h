// Overlap-save tiles of the FFT convolution (algo/fft_conv.cc): tensor tiles into the real tile
// buffer R ([position][lane], lane = channel x tile of a block, fft/fft_nd.h's layout), tile
// outputs back into a tensor, and the kernel spectra the forward and backward-data products use.
#pragma once
#include <cstdint>

#include "algo/fft_layout.h"
#include "fastconv/geometry.h"
#include "fft/fft_nd.h"

namespace fastconv::algo::fft_conv {

// Local lanes of a chunk buffer (stride rs): lanes [0, nh) are global lanes [ga, ga + nh), the
// rest [gb, ...) (the two halves of a two-for-one chunk). Null map: local == global.
struct LaneMap {
  int64_t rs, nh, ga, gb;
  int64_t global(int64_t l) const { return l < nh ? ga + l : gb + l - nh; }
};

// R[pos][ch * tiles_per_block + t] = tile t0 + t of src (N, channels / nph, *ext) read through
// the axis loads ax, nph being the product of *phase: with a polyphase split (phase != null)
// channel ch is source channel ch / nph, phase ch % nph (row-major over the per-dim phases).
// Lanes [r0, r1) only (r1 = -1: all); local lanes map to global ones through `map` if given.
template <typename T>
void load_tiles(const Layout& L, const AxisLoad* ax, const T* src, int64_t channels,
                const Dims& ext, int64_t t0, T* R, int64_t r0 = 0, int64_t r1 = -1,
                const LaneMap* map = nullptr, const Dims* phase = nullptr);

// dst (N, out_channels, *ext) from R[pos][o * tiles_per_block + t] (output i of a tile is
// position i), plus bias; lanes and map as for load_tiles.
template <typename T>
void store_tiles(const Layout& L, const T* R, const Dims& ext, const T* bias, int64_t t0, T* dst,
                 int64_t r0 = 0, int64_t r1 = -1, const LaneMap* map = nullptr);

// Kernel spectra for the forward / backward-data products, conj and 1/P folded in: elementwise
// layout [f][re | im][out_channels] when in_per_group == 1, else per (f, group) the real
// (2 out_per_group) x (2 in_per_group) matrix [Wr -Wi; Wi Wr] of W' = conj(W) / P. The
// (output, input) channel pairs go through R and S in chunks of at most buffer_lanes lanes.
template <typename T>
void kernel_spectra(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& plans, const T* w,
                    int64_t buffer_lanes, T* kspec, T* R, T* S);

}  // namespace fastconv::algo::fft_conv
