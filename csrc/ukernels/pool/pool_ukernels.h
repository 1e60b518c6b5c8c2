// Pooling micro-kernels: one output row (or one whole plane) per call, compiled once per ISA
// level (pool_<isa>.cc) and picked at run time (pool_table.cc). Pure: pointers and counts in.
//
// Row buffers. The driver (csrc/algo/pool.cc) copies each input row a window needs into a row
// buffer, padded and phase-split by the W stride s: padded column c (input column c - pad_lo,
// or the pad value outside the input) lives at buf[(c % s) * phase_width + c / s]. Tap kw of
// output o reads padded column o * s + kw * dilation, i.e. buf[tap_offset[kw] + o] with
// tap_offset[kw] = ((kw * dilation) % s) * phase_width + (kw * dilation) / s: consecutive in o
// for every stride, so each tap of a vector of outputs is one contiguous load and no kernel
// checks a bound along W. Bounds along D and H are the driver's: it passes only the rows that
// lie inside the input.
#pragma once
#include <cstdint>

namespace fastconv {

// Readable elements past the end of every per-output array and row buffer the kernels read, so
// a last partial vector loads whole vectors (the lanes past the end are computed, not stored).
constexpr int64_t kPoolSlack = 16;

struct PoolRowLayout {
  int64_t width;        // input row length
  int64_t pad_lo;       // padded columns before input column 0
  int64_t stride;       // s: the phases of a buffer
  int64_t phase_width;  // elements per phase; a multiple of 16 (so of every vector width)
};

// What split_row stores for x (lp pooling sums x**p) and what merge_row multiplies a gradient by
// (x**(p-1)); kOther computes std::pow in double, as the reference does.
enum class PoolPower { kOne, kTwo, kOther };

// The taps of one output row: row_count >= 1 row buffers (the window's rows that lie inside the
// input, in scan order), tap_count taps along W at tap_offset, n outputs.
template <typename T>
struct PoolWindow {
  const T* const* rows;
  int64_t row_count;
  const int64_t* tap_offset;
  int64_t tap_count;
  int64_t n;
};

// Where an argmax points: tap kw of row r for output o is input plane offset row_start[r] +
// tap_col[kw] + col_base[o]; first_col[o] is the tap_col of o's first tap inside the input (the
// reference's index when no tap beats -inf). col_base and first_col have n + kPoolSlack entries.
struct PoolArgmaxMap {
  const int64_t* row_start;
  const int32_t* tap_col;
  const int32_t* col_base;
  const int32_t* first_col;
};

// The W taps as the gradient kernels see them: tap k adds output o's gradient to phase
// tap_phase[k] at o + tap_shift[k].
struct PoolScatterTaps {
  const int64_t* tap_phase;
  const int64_t* tap_shift;
  int64_t tap_count;
};

template <typename T>
struct PoolKernels {
  // buf (stride * phase_width elements) = the padded, phase-split row x (layout l) with each
  // input value v stored as v**p (power) and `pad` elsewhere. Returns whether x holds a NaN.
  bool (*split_row)(const T* x, const PoolRowLayout& l, T pad, PoolPower power, double p,
                    T* buf);
  // gx[c] (= or, accumulate, +=) acc[padded column c + pad_lo] * x[c]**(p-1) for c < width
  // (x unread for kOne).
  void (*merge_row)(const T* acc, const PoolRowLayout& l, const T* x, PoolPower power, double p,
                    bool accumulate, T* gx);
  // y[o] = the window's maximum with the reference's rule (csrc/ref/pool_ref.cc): the first
  // maximum in scan order, a NaN beats everything and a later NaN beats an earlier one.
  // nan_free: no row holds a NaN, so plain compares suffice.
  void (*max_row)(const PoolWindow<T>& w, bool nan_free, T* y);
  // max_row and the maximum's plane offset (same rule) in idx.
  void (*argmax_row)(const PoolWindow<T>& w, const PoolArgmaxMap& m, bool nan_free, T* y,
                     int64_t* idx);
  // y[o] = (sum over the window) * scale[o], or the bare sum when scale is null.
  void (*sum_row)(const PoolWindow<T>& w, const T* scale, T* y);
  // For each of row_count accumulators (stride * phase_width elements, layout of split_row):
  // acc[tap_phase[k] * phase_width + o + tap_shift[k]] += g[o] over taps k and outputs o. g must
  // read as zero on [-max tap_shift, 0) and on [n, phase_width + kPoolSlack).
  void (*scatter_row)(const T* g, const PoolScatterTaps& taps, int64_t stride,
                      int64_t phase_width, T* const* acc, int64_t row_count);
  // Max backward from saved indices of a 2x2 / 2 unpadded window (float32, AVX2 and up; null
  // elsewhere): input rows `top` and `bottom` (columns [0, 2n)) of output row (g, idx: n
  // outputs; row_base: top's plane offset, w: the input row length) get g[o] at idx[o] and +0
  // at the window's other three positions, each written once. False when some idx[o] is not in
  // its own window (the rows then hold garbage: the caller redoes the plane by scatter).
  bool (*unpool2x2_row)(const T* g, const int64_t* idx, int64_t n, int64_t row_base, int64_t w,
                        T* top, T* bottom);
  // out[o] = g[o] * scale[o].
  void (*scale_row)(const T* g, const T* scale, int64_t n, T* out);
  // y[o] = y[o]**(1/p) in place (lp forward from the window sums).
  void (*lp_root_row)(T* y, int64_t n, PoolPower power, double p);
  // out[o] = y[o] == 0 ? 0 : g[o] * y[o]**(1-p): d y / d (sum of x**p), times g.
  void (*lp_grad_row)(const T* y, const T* g, int64_t n, PoolPower power, double p, T* out);
  // *y = max of x[0 : n) and *idx (when not null) its offset, with max_row's rule (n >= 1).
  void (*max_plane)(const T* x, int64_t n, T* y, int64_t* idx);
  T (*sum_plane)(const T* x, int64_t n);
  // dst[0 : n) = src[0 : n), bypassing the caches where the level has streaming stores (for
  // outputs larger than the last-level cache: no read-for-ownership of dst).
  void (*stream_copy)(const T* src, int64_t n, T* dst);
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const PoolKernels<T>& pool_kernels();

#define FASTCONV_DECLARE_POOL(ns)                    \
  namespace ns {                                     \
  extern const PoolKernels<float> pool_f32_kernels;  \
  extern const PoolKernels<double> pool_f64_kernels; \
  }
FASTCONV_DECLARE_POOL(scalar)
FASTCONV_DECLARE_POOL(avx2)
FASTCONV_DECLARE_POOL(avx512)
#undef FASTCONV_DECLARE_POOL

}  // namespace fastconv
