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

// A row is NV vectors held in registers: every stretch of the row's tap is one masked load per
// vector (a load whose mask is empty reads nothing), OR-ed in (stretches are disjoint and
// masked lanes load as zero), then NV whole stores.
template <typename T, int NV>
void fill_vectors(int64_t kc, int64_t taps, int64_t t, const T* src, int64_t channel_stride,
                  const int32_t* first, const PanelStretch* stretches, T* dst) {
  using W = GemmVec<T>;
  constexpr int L = W::kLanes;
  constexpr uint64_t kLaneBits = (uint64_t(1) << L) - 1;
  for (int64_t kk = 0; kk < kc; ++kk, dst += NV * L) {
    typename W::V row[NV];
    for (int v = 0; v < NV; ++v) row[v] = W::zero();
    for (int32_t s = first[t]; s < first[t + 1]; ++s) {
      const int64_t offset = stretches[s].offset;
      const uint64_t mask = stretches[s].mask;
      for (int v = 0; v < NV; ++v) {
        const auto lanes = W::mask_bits((mask >> (v * L)) & kLaneBits);
        row[v] = W::bit_or(row[v], W::load(lanes, at(src, offset + v * L)));
        // The same stretch kFetchAhead channels on: a panel's rows walk the channels a
        // channel's size apart (3 KiB on a 4x14x14 input), too far for the hardware prefetchers
        // (the loads waited on memory: 13% of R(2+1)D layer3's 3x1x1 at batch 8). Past the
        // input's end it fetches nothing useful, never faults (at(): integer arithmetic).
        __builtin_prefetch(at(src, offset + v * L + kFetchAhead * channel_stride));
      }
    }
    for (int v = 0; v < NV; ++v) W::store(dst + v * L, row[v]);
    if (++t == taps) t = 0, src += channel_stride;
  }
}

template <typename T>
void fill_rows(int64_t kc, int64_t nr, int64_t taps, int64_t t0, const T* src,
               int64_t channel_stride, const int32_t* first, const PanelStretch* stretches,
               T* dst) {
  switch (nr / GemmVec<T>::kLanes) {
    case 1:
      return fill_vectors<T, 1>(kc, taps, t0, src, channel_stride, first, stretches, dst);
    case 2:
      return fill_vectors<T, 2>(kc, taps, t0, src, channel_stride, first, stretches, dst);
    case 3:
      return fill_vectors<T, 3>(kc, taps, t0, src, channel_stride, first, stretches, dst);
    default:
      return fill_vectors<T, 4>(kc, taps, t0, src, channel_stride, first, stretches, dst);
  }
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
               T* dst) {
  for (int64_t kk = 0; kk < kc; ++kk, dst += nr) {
    std::fill(dst, dst + nr, T(0));
    for (int32_t s = first[t]; s < first[t + 1]; ++s) {
      const int64_t offset = stretches[s].offset;
      const uint64_t mask = stretches[s].mask;
      for (int64_t j = 0; j < nr; ++j) {
        if ((mask >> j) & 1) dst[j] = src[offset + j];
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
