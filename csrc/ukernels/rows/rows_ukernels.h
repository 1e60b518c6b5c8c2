// Row kernels of the direct algorithm's dense path (csrc/algo/direct_rows.cc): a register block
// of (output rows) x (a few SIMD vectors along the output row), accumulated over a list of
// reduction terms whose source elements are unit-stride runs of a zero-padded, phase-split
// buffer (the driver built it), so every load is a plain vector load and no kernel checks
// bounds. Compiled once per ISA level (rows_<isa>.cc) and picked at run time.
//
// One "term" r is (input channel, tap) for the forward pass, (output channel, tap) for the
// backward-data pass; its source run for output position x starts at src + off[r] + x.
#pragma once
#include <cstdint>

namespace fastconv {

template <typename T>
struct RowsKernels {
  // Output rows per register block for count rows of n positions: the driver packs the
  // forward weights in chunks of that many rows.
  int64_t (*forward_rows)(int64_t count, int64_t n);
  // For f < count, x < n: out[f * out_pitch + x] = (accumulate ? out[...] : bias ? bias[f] : 0)
  //   + sum over r < nred of W(f, r) * src[off[r] + x], the weights packed in chunks of kb rows
  //   (kb from forward_rows): chunk f0 = 0, kb, ... at w + f0 * nred, W(f0 + j, r) at
  //   [r * min(kb, count - f0) + j]. Reads src up to one vector past position n - 1 (the
  //   buffer's slack); writes exactly n per row.
  void (*forward)(const T* src, const int64_t* off, int64_t nred, const T* w, int64_t kb,
                  int64_t count, const T* bias, bool accumulate, T* out, int64_t out_pitch,
                  int64_t n);
  // A forward whose last kernel dim is 2 taps at stride 2 over an unpadded input (each output's
  // two source elements adjacent, no phase split): for f < count, x < n: out[f * out_pitch + x] =
  //   (bias ? bias[f] : 0) + sum over r < nred of W(f, r, 0) * src[off[r] + 2x]
  //                                              + W(f, r, 1) * src[off[r] + 2x + 1],
  // the weights packed in chunks of pair_rows rows: chunk f0 = 0, pair_rows, ... at
  // w + 2 * f0 * nred, W(f0 + j, r, t) at [2 * (r * min(pair_rows, count - f0) + j) + t]. Reads
  // src only inside [off[r], off[r] + 2n).
  void (*forward_pairs)(const T* src, const int64_t* off, int64_t nred, const T* w, int64_t count,
                        const T* bias, T* out, int64_t out_pitch, int64_t n);
  int64_t pair_rows;
  // The same forward vectorised over output channels instead, for rows that fill vectors
  // badly: for p < npos, f < round_up(count, lanes): out[p * out_pitch + f] = sum over r < nred
  // of w[r * w_pitch + f] * src[pos[p] + off[r]] (w zero-padded to whole vectors; w_pitch and
  // out_pitch multiples of lanes).
  void (*forward_channels)(const T* src, const int64_t* pos, int64_t npos, const int64_t* off,
                           int64_t nred, const T* w, int64_t w_pitch, int64_t count, T* out,
                           int64_t out_pitch);
  // For f < count, r < nred: gw[f * gw_stride + r] += sum over rows i < rows, x < n of
  //   gy[f * gy_channel + i * gy_row + x] * src[i * src_row + off[r] + x]  (exact: no over-read
  //   enters a sum).
  void (*weight)(const T* src, int64_t src_row, const int64_t* off, int64_t nred, const T* gy,
                 int64_t gy_channel, int64_t gy_row, int64_t count, int64_t rows, int64_t n,
                 T* gw, int64_t gw_stride);
  // Winograd F(m, r) along rows (algo/winograd_rows.cc) for r = 2..5 taps per phase (m = 4, 4,
  // 3, 2; alpha = m + r - 1 points). Input: the points of one row of tiles from its m interleaved
  // sub-rows (sub[k * sub_len + i] = position m i + k, readable a vector past tiles +
  // (alpha - 1) / m in each): v[t * point + j] = sum over u of BT[t][u] * position m j + u, for
  // t < alpha, j < tiles. Output, rows of tiles: out[q * width + m j + i] = bias + sum over t of
  // AT[i][t] acc[t * point + q * tiles + j] for q < rows, m j + i < width (acc readable a vector
  // past each row's tiles).
  void (*winograd_input)(int r, const T* sub, int64_t sub_len, int64_t tiles, T* v,
                         int64_t point);
  void (*winograd_output)(int r, const T* acc, int64_t point, int64_t tiles, int64_t rows, T bias,
                          T* out, int64_t width);
  int64_t lanes;  // elements per vector: the source slack a forward call needs
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const RowsKernels<T>& rows_kernels();

// The kernels for the forward and weight-gradient calls along rows of n outputs: rows_kernels(),
// except where AVX-512 runs on 256-bit units (avx512_on_256bit_units(), AMD's Zen 4) and AVX2's
// vectors cover the row in at least an eighth fewer 256-bit operations (a 512-bit one costs two):
// rows of up to 64 floats (32 doubles) whose last 512-bit vector is at most half full, e.g. 56
// outputs in 7 vectors of 8 instead of 4 of 16. 2 threads, ms, three interleaved runs each,
// AVX-512 kernels -> AVX2 kernels (PyTorch): r2plus1d_18.stem (1x7x7 / 2, 3 -> 45 channels,
// 56-wide rows) forward 3.84-4.04 -> 3.44-3.75 (3.71), weight gradient 4.07-4.12 -> 3.64-3.73
// (6.1). Not for backward data, whose blocks are the input channels (3 here): 4.7 -> 6.2.
// Wider rows saving less (inception_v3.conv1a, 149-wide: 19 vectors instead of 10 x 2) lost:
// forward 0.25-0.27 -> 0.26-0.28, weight 0.24-0.25 -> 0.26-0.29; 32 registers hold the
// larger blocks.
template <typename T>
const RowsKernels<T>& rows_kernels_for_row(int64_t n);

#define FASTCONV_DECLARE_ROWS(ns)                    \
  namespace ns {                                     \
  extern const RowsKernels<float> rows_f32_kernels;  \
  extern const RowsKernels<double> rows_f64_kernels; \
  }
FASTCONV_DECLARE_ROWS(scalar)
FASTCONV_DECLARE_ROWS(avx2)
FASTCONV_DECLARE_ROWS(avx512)
#undef FASTCONV_DECLARE_ROWS

}  // namespace fastconv
