// Panel-row micro-kernels: compiled once per ISA level (panel_<isa>.cc) and picked at run time
// (panel_table.cc). Pure: pointers and counts in. They fill the rows of an implicit-im2col GEMM
// panel (csrc/algo/conv_panels.cc) whose columns read unit-stride stretches of source rows.
#pragma once
#include <cstdint>

namespace fastconv {

// One stretch of a panel row: the columns j whose bit is set in `mask` read element
// `offset + step * j` of their channel (offset: the source index of column 0, so it may lie
// before the channel's first element; only masked columns are read; step 1 or 2, one per
// call). The stretches of one tap do not overlap; columns no stretch covers are zero.
struct PanelStretch {
  int64_t offset;
  uint64_t mask;
};

template <typename T>
struct PanelKernels {
  // Fills kc rows of nr columns (nr a multiple of `lanes`, at most max_columns), row kk at
  // dst + kk * nr. Rows walk (channel, tap) from tap t0 of the channel at src: tap t's stretches
  // are stretches[first[t] .. first[t + 1]); after tap taps - 1 the next row is tap 0 of the
  // channel channel_stride elements on. At AVX2 / AVX-512 each row is a few masked vector loads
  // and whole-vector stores (no per-element bounds checks, no branches on the stretch kinds);
  // the scalar kernel copies the masked columns one by one. Step 2 (a stride-2 layer's columns)
  // loads twice the span and keeps its even lanes.
  void (*fill_rows)(int64_t kc, int64_t nr, int64_t taps, int64_t t0, const T* src,
                    int64_t channel_stride, const int32_t* first, const PanelStretch* stretches,
                    int64_t step, T* dst);
  int64_t lanes;        // vector width in elements (1 for the scalar kernel)
  int64_t max_columns;  // 4 vectors; 64 for the scalar kernel (the width of a stretch's mask)
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const PanelKernels<T>& panel_kernels();

#define FASTCONV_DECLARE_PANEL(ns)                     \
  namespace ns {                                       \
  extern const PanelKernels<float> panel_f32_kernels;  \
  extern const PanelKernels<double> panel_f64_kernels; \
  }
FASTCONV_DECLARE_PANEL(scalar)
FASTCONV_DECLARE_PANEL(avx2)
FASTCONV_DECLARE_PANEL(avx512)
#undef FASTCONV_DECLARE_PANEL

}  // namespace fastconv
