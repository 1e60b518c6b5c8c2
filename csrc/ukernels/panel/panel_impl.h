// The panel-row kernels of one ISA level: included once by panel_<isa>.cc, which names the
// level's namespace (FASTCONV_PANEL_NS) and kernel names (FASTCONV_PANEL_NAME), and, for the
// vector levels, sets FASTCONV_PANEL_VECTOR after including that level's GEMM tile header (its
// GemmVec traits: these panels are the B operand of those tiles).
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/panel/panel_ukernels.h"

namespace fastconv::FASTCONV_PANEL_NS {
namespace {

// Element `offset` of the channel at src as an address: integer arithmetic, because the offset
// of a stretch's column 0 may lie before the buffer (only its masked columns are read).
template <typename T>
inline const T* at(const T* src, int64_t offset) {
  return reinterpret_cast<const T*>(reinterpret_cast<uintptr_t>(src) +
                                    static_cast<uintptr_t>(offset) * sizeof(T));
}

#if FASTCONV_PANEL_VECTOR
constexpr int64_t kFetchAhead = 8;

// The low `half` bits of `bits` moved to the even bit positions (bit j -> bit 2j; half <= 8):
// the lanes a stride-2 column stretch loads from a vector pair.
inline uint64_t spread_even(uint64_t bits) {
  bits = (bits | (bits << 4)) & 0x0f0f;
  bits = (bits | (bits << 2)) & 0x3333;
  return (bits | (bits << 1)) & 0x5555;
}

// A row is NV vectors held in registers: every stretch of the row's tap is one masked load per
// vector (a load whose mask is empty reads nothing), OR-ed in (stretches are disjoint and
// masked lanes load as zero), then NV whole stores. At step 2 a vector's columns read 2L
// consecutive elements: two masked loads (even lanes only) and their even lanes kept.
template <typename T, int NV, int kStep>
void fill_vectors(int64_t kc, int64_t taps, int64_t t, const T* src, int64_t channel_stride,
                  const int32_t* first, const PanelStretch* stretches, T* dst) {
  using W = GemmVec<T>;
  constexpr int L = W::kLanes;
  constexpr uint64_t kLaneBits = (uint64_t(1) << L) - 1;
  constexpr uint64_t kHalfBits = (uint64_t(1) << (L / 2)) - 1;
  for (int64_t kk = 0; kk < kc; ++kk, dst += NV * L) {
    typename W::V row[NV];
    for (int v = 0; v < NV; ++v) row[v] = W::zero();
    for (int32_t s = first[t]; s < first[t + 1]; ++s) {
      const int64_t offset = stretches[s].offset;
      const uint64_t mask = stretches[s].mask;
      for (int v = 0; v < NV; ++v) {
        const uint64_t cols = (mask >> (v * L)) & kLaneBits;
        if constexpr (kStep == 1) {
          // The same stretch kFetchAhead channels on: a panel's rows walk the channels a
          // channel's size apart (3 KiB on a 4x14x14 input), too far for the hardware
          // prefetchers (the loads waited on memory: 13% of R(2+1)D layer3's 3x1x1 at batch 8).
          // Past the input's end it fetches nothing useful, never faults (at(): integer
          // arithmetic).
          row[v] = W::bit_or(row[v], W::load(W::mask_bits(cols), at(src, offset + v * L)));
          __builtin_prefetch(at(src, offset + v * L + kFetchAhead * channel_stride));
        } else {
          const int64_t o = offset + 2 * v * L;
          const auto lo = W::load(W::mask_bits(spread_even(cols & kHalfBits)), at(src, o));
          const auto hi = W::load(W::mask_bits(spread_even(cols >> (L / 2))), at(src, o + L));
          row[v] = W::bit_or(row[v], W::even(lo, hi));
          // Where the next panel's row reads when it goes on along the same input row: a
          // whole panel's GEMM ahead, time enough for memory (strided layers' inputs are
          // large); min ms of 3-4, 8 channels ahead vs this: yolov5s 32->64 3x3/2 320x320
          // 4.92-5.07 vs 4.58-4.75, 3x3x3/2 64 ch 16x56x56 7.90-8.19 vs 7.14-7.96.
          __builtin_prefetch(at(src, o + 2 * NV * L));
          __builtin_prefetch(at(src, o + 2 * NV * L + L));
        }
      }
    }
    for (int v = 0; v < NV; ++v) W::store(dst + v * L, row[v]);
    if (++t == taps) t = 0, src += channel_stride;
  }
}

template <typename T, int kStep>
void fill_rows_at(int64_t kc, int64_t nr, int64_t taps, int64_t t0, const T* src,
                  int64_t channel_stride, const int32_t* first, const PanelStretch* stretches,
                  T* dst) {
  switch (nr / GemmVec<T>::kLanes) {
    case 1:
      return fill_vectors<T, 1, kStep>(kc, taps, t0, src, channel_stride, first, stretches, dst);
    case 2:
      return fill_vectors<T, 2, kStep>(kc, taps, t0, src, channel_stride, first, stretches, dst);
    case 3:
      return fill_vectors<T, 3, kStep>(kc, taps, t0, src, channel_stride, first, stretches, dst);
    default:
      return fill_vectors<T, 4, kStep>(kc, taps, t0, src, channel_stride, first, stretches, dst);
  }
}

template <typename T>
void fill_rows(int64_t kc, int64_t nr, int64_t taps, int64_t t0, const T* src,
               int64_t channel_stride, const int32_t* first, const PanelStretch* stretches,
               int64_t step, T* dst) {
  if (step == 2)
    return fill_rows_at<T, 2>(kc, nr, taps, t0, src, channel_stride, first, stretches, dst);
  fill_rows_at<T, 1>(kc, nr, taps, t0, src, channel_stride, first, stretches, dst);
}
template <typename T>
constexpr int64_t kPanelLanes = GemmVec<T>::kLanes;
template <typename T>
constexpr int64_t kPanelColumns = 4 * GemmVec<T>::kLanes;
#else
// Element by element: each stretch's masked columns.
template <typename T>
void fill_rows(int64_t kc, int64_t nr, int64_t taps, int64_t t, const T* src,
               int64_t channel_stride, const int32_t* first, const PanelStretch* stretches,
               int64_t step, T* dst) {
  for (int64_t kk = 0; kk < kc; ++kk, dst += nr) {
    std::fill(dst, dst + nr, T(0));
    for (int32_t s = first[t]; s < first[t + 1]; ++s) {
      const int64_t offset = stretches[s].offset;
      const uint64_t mask = stretches[s].mask;
      for (int64_t j = 0; j < nr; ++j) {
        if ((mask >> j) & 1) dst[j] = src[offset + step * j];
      }
    }
    if (++t == taps) t = 0, src += channel_stride;
  }
}
template <typename T>
constexpr int64_t kPanelLanes = 1;
template <typename T>
constexpr int64_t kPanelColumns = 64;
#endif

}  // namespace

const PanelKernels<float> panel_f32_kernels{fill_rows<float>, kPanelLanes<float>,
                                            kPanelColumns<float>, FASTCONV_PANEL_NAME("f32")};
const PanelKernels<double> panel_f64_kernels{fill_rows<double>, kPanelLanes<double>,
                                             kPanelColumns<double>, FASTCONV_PANEL_NAME("f64")};

}  // namespace fastconv::FASTCONV_PANEL_NS
