// Packing of implicit im2col panels. Each panel is kc rows x nr columns; rows and columns are
// decoded once per panel. Panels of whole vectors at unit or double step go through the ISA's
// panel-row kernel (csrc/ukernels/panel: masked loads per stretch, two per vector at step 2);
// others copy in-bounds runs without per-element checks and gather the rest.
#include "algo/conv_panels.h"

#include "algo/panel_runs.h"
#include "ukernels/transpose/transpose_ukernels.h"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(FASTCONV_X86)
#include <emmintrin.h>
#endif

namespace fastconv::algo {

TapTable::TapTable(const ConvGeometry& g) {
  const int64_t taps = g.kernel_spatial();
  dz.resize(taps);
  dy.resize(taps);
  dx.resize(taps);
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t kd = t / (g.kernel[1] * g.kernel[2]);
    const int64_t kh = (t / g.kernel[2]) % g.kernel[1];
    const int64_t kw = t % g.kernel[2];
    dz[t] = tap_position(g, 0, kd) * g.dilation[0];
    dy[t] = tap_position(g, 1, kh) * g.dilation[1];
    dx[t] = tap_position(g, 2, kw) * g.dilation[2];
  }
}

namespace {

// Copies a short run (panel runs are often a handful of elements: a row of a small image):
// constant-size copies the compiler inlines as vector moves, where a memcpy call of a few
// bytes costs more than the copy.
template <typename T>
inline void copy_run(T* dst, const T* src, int64_t len) {
  int64_t bytes = len * int64_t(sizeof(T));
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  if (bytes > 256) {
    std::memcpy(d, s, size_t(bytes));
    return;
  }
  for (; bytes >= 64; bytes -= 64, d += 64, s += 64) std::memcpy(d, s, 64);
  if (bytes >= 32) std::memcpy(d, s, 32), bytes -= 32, d += 32, s += 32;
  if (bytes >= 16) std::memcpy(d, s, 16), bytes -= 16, d += 16, s += 16;
  if (bytes >= 8) std::memcpy(d, s, 8), bytes -= 8, d += 8, s += 8;
  if (bytes >= 4) std::memcpy(d, s, 4);
}

// dst[j * dst_stride] = src[x0 + j * step] where 0 <= x0 + j * step < extent, else 0, for
// j < len: one clipped, branch-free copy per run instead of a bounds check per element.
template <typename T>
inline void gather_run(const T* src, int64_t extent, int64_t x0, int64_t step, int64_t len, T* dst,
                       int64_t dst_stride) {
  // Integer division costs tens of cycles, as much as the copy of a short run: unit and
  // double steps (every stride-1 / stride-2 layer) divide by shifting.
  const auto div = [step](int64_t v) { return step == 1 ? v : step == 2 ? v >> 1 : v / step; };
  int64_t lo = x0 >= 0 ? 0 : div(-x0 + step - 1);
  int64_t hi = x0 >= extent ? 0 : div(extent - 1 - x0) + 1;
  lo = std::min(lo, len);
  hi = std::min(std::max(hi, lo), len);
  for (int64_t j = 0; j < lo; ++j) dst[j * dst_stride] = T(0);
  if (step == 1 && dst_stride == 1) {
    copy_run(dst + lo, src + x0 + lo, hi - lo);
  } else {
    for (int64_t j = lo; j < hi; ++j) dst[j * dst_stride] = src[x0 + j * step];
  }
  for (int64_t j = hi; j < len; ++j) dst[j * dst_stride] = T(0);
}

template <typename T>
inline void zero_run(int64_t len, T* dst, int64_t dst_stride) {
  for (int64_t j = 0; j < len; ++j) dst[j * dst_stride] = T(0);
}

}  // namespace

// How one run of a panel reads its source for one kernel tap (the same for every channel).
struct RunSource {
  enum Kind : int8_t { kZero, kCopy, kGather } kind;
  int64_t row;  // offset of the source row (kGather) or of the first element (kCopy)
  int64_t x0;   // first source column (kGather)
};

// Packs panels whose row (channel, tap) reads, for every run of consecutive panel columns, a
// stretch of one source row: source coordinates are run corner + shift + sign * tap offset, stepping
// `step` along the innermost dim (out of range -> 0). Forward packing reads the input this
// way (sign +1, step = stride); unit-stride backward data reads grad_y (sign -1, step 1).
template <typename T>
void pack_shifted_rows(const TapTable& taps_tab, int64_t taps, int sign, const Dims& extent,
                       int64_t step, const T* src_base, int64_t channel_stride,
                       int64_t image_stride, std::vector<Run>& runs, int64_t k0, int64_t kc, int64_t nc, int64_t nr,
                       int64_t first_col, bool input_runs, const Dims& shift,
                       const ConvGeometry& g, T* dst) {
  struct Tables {
    std::vector<RunSource> sources;
    std::vector<PanelStretch> stretches;
    std::vector<int32_t> first;
  };
  thread_local Tables t_tables;
  Tables& tables = t_tables;  // one TLS lookup per call (calls come per panel), not per row
  std::vector<RunSource>& sources = tables.sources;
  std::vector<PanelStretch>& stretches = tables.stretches;
  std::vector<int32_t>& first = tables.first;
  const int64_t H = extent[1], W = extent[2];
  // Panels of whole vectors at unit or double step go through the ISA's panel-row kernel.
  const PanelKernels<T>& panel = panel_kernels<T>();
  const bool vector_rows =
      (step == 1 || step == 2) && nr % panel.lanes == 0 && nr <= panel.max_columns;
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    const int64_t nruns =
        input_runs ? make_input_runs(g, first_col + p0, cols, image_stride, runs)
                   : make_output_runs(g, first_col + p0, cols, image_stride, runs);
    for (Run& r : runs) r.z += shift[0], r.y += shift[1], r.x += shift[2];
    if (vector_rows) {
      // Each (tap, run) as a stretch of masked columns, for the taps the kc rows use (a k block
      // of a long kernel uses few of them): the panel-row kernel then fills every row with a few
      // masked vector loads.
      const int64_t t0 = k0 % taps;
      panel_stretches(taps_tab, taps, sign, extent, step, runs.data(), nruns, t0,
                      std::min(taps, kc), stretches, first);
      panel.fill_rows(kc, nr, taps, t0, src_base + (k0 / taps) * channel_stride, channel_stride,
                      first.data(), stretches.data(), step, dst);
      continue;
    }
    // Where each run reads for each tap does not depend on the channel: decide it once per
    // panel, so a row of the panel is a table lookup and a copy.
    sources.resize(size_t(taps * nruns));
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t i = 0; i < nruns; ++i) {
        const Run& run = runs[i];
        const int64_t z = run.z + sign * taps_tab.dz[t], y = run.y + sign * taps_tab.dy[t];
        const int64_t x0 = run.x + sign * taps_tab.dx[t];
        RunSource& rs = sources[t * nruns + i];
        if (!inside(z, extent[0]) || !inside(y, H)) {
          rs = {RunSource::kZero, 0, 0};
        } else if (step == 1 && x0 >= 0 && x0 + run.len <= W) {
          rs = {RunSource::kCopy, run.img + (z * H + y) * W + x0, 0};
        } else {
          rs = {RunSource::kGather, run.img + (z * H + y) * W, x0};
        }
      }
    }
    // Rows walk (channel, tap) in order: step the pair instead of dividing per row.
    int64_t c = k0 / taps, t = k0 % taps;
    const RunSource* table = sources.data();
    const Run* run_list = runs.data();
    for (int64_t kk = 0; kk < kc; ++kk) {
      const T* xc = src_base + c * channel_stride;
      T* row = dst + kk * nr;
      const RunSource* rs = table + t * nruns;
      for (int64_t i = 0; i < nruns; ++i) {
        const Run& run = run_list[i];
        T* out = row + run.j0;
        if (rs[i].kind == RunSource::kCopy) {
          copy_run(out, xc + rs[i].row, run.len);
        } else if (rs[i].kind == RunSource::kZero) {
          zero_run(run.len, out, 1);
        } else {
          gather_run(xc + rs[i].row, W, rs[i].x0, step, run.len, out, 1);
        }
      }
      zero_run(nr - cols, row + cols, 1);
      if (++t == taps) t = 0, ++c;
    }
  }
}

// A pointwise forward's block (1x1 taps, unit stride, no padding: B[c, col] is channel c of
// the column's image at the column's position): row by row, each row's stretch of an image one
// sequential read spread over the panels. Panel by panel, a block of kc rows read kc streams a
// channel apart at once, a few lines of each per panel: more streams than the prefetchers follow
// (a 1x1 layer's input block packed at a fraction of the memory's speed: SSDLite's 576->546
// head at batch 8 spent 15% of its time there).
template <typename T>
void pack_pointwise(const T* src, int64_t channel_stride, int64_t per_image,
                    int64_t image_stride, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
                    int64_t nr, T* dst) {
  const int64_t panels = (nc + nr - 1) / nr, panel = kc * nr;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const T* row = src + (k0 + kk) * channel_stride;
    T* out = dst + kk * nr;
    for (int64_t j = 0; j < nc;) {  // a stretch within one image and one panel
      const int64_t col = n0 + j, img = col / per_image, at = col - img * per_image;
      const int64_t len = std::min({nr - j % nr, nc - j, per_image - at});
      copy_run(out + (j / nr) * panel + j % nr, row + img * image_stride + at, len);
      j += len;
    }
    if (nc % nr != 0) zero_run(nr - nc % nr, out + (panels - 1) * panel + nc % nr, 1);
  }
}

template <typename T>
void ForwardColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                             T* dst) const {
  bool pointwise = g_.kernel_spatial() == 1;
  for (int d = 0; d < kMaxRank; ++d)
    pointwise = pointwise && g_.stride[d] == 1 && g_.pad_lo[d] == 0 && g_.out[d] == g_.in[d];
  if (pointwise && nc > nr) {
    return pack_pointwise(src_, g_.in_spatial(), g_.in_spatial(), image_stride_, k0, kc, n0, nc,
                          nr, dst);
  }
  // Output runs carry window corners (o * stride - pad) in input coordinates.
  pack_shifted_rows(taps_, g_.kernel_spatial(), +1, g_.in, g_.stride[2], src_, g_.in_spatial(),
                    image_stride_, run_buffer(), k0, kc, nc, nr, n0, false, Dims{0, 0, 0}, g_, dst);
}

// The row pointers of a full panel of nr positions [n0, n0 + nr) of `grid` (images
// image_stride apart) for rows (channel, tap) from k0 on, the panels pack_shifted_rows packs at
// unit step: position p's window corner is p * step + shift per dim, and row (c, t) reads the
// source at corner + sign * tap offset. False when the panel leaves its row of the grid or a
// row reads outside `extent` (that panel is packed).
// Kernels of up to this many taps take shifted_rows' per-tap offsets (on the stack).
constexpr int64_t kMaxRowTaps = 1024;

template <typename T>
bool shifted_rows(const TapTable& taps_tab, int64_t taps, int sign, const Dims& extent,
                  const T* src_base, int64_t channel_stride, int64_t image_stride, const Dims& grid,
                  const Dims& step, const Dims& shift, int64_t k0, int64_t kc, int64_t n0,
                  int64_t nr, const T** dst) {
  const int64_t per_image = grid[0] * grid[1] * grid[2];
  if (step[2] != 1 || per_image <= 0) return false;
  const int64_t img = n0 / per_image, local = n0 % per_image;
  const int64_t px = local % grid[2], py = local / grid[2] % grid[1];
  const int64_t pz = local / (grid[2] * grid[1]);
  if (px + nr > grid[2]) return false;  // the panel spans two rows
  const int64_t z0 = pz * step[0] + shift[0], y0 = py * step[1] + shift[1], x0 = px + shift[2];
  const int64_t H = extent[1], W = extent[2];
  const T* base = src_base + img * image_stride;
  int64_t c = k0 / taps, t = k0 % taps;
  // The row of (c, t) is the tap's offset past channel c: with every tap in the range (kc >=
  // taps), each tap is checked and placed once, then the rows are channel bases plus those
  // offsets (a per-row walk of the tap table, a few multiplies and four bounds checks a row,
  // cost wavenet.1d.k2d8's forward 12% of its time at 64 output channels).
  if (kc >= taps && taps <= kMaxRowTaps) {
    int64_t off[kMaxRowTaps];
    for (int64_t q = 0; q < taps; ++q) {
      const int64_t z = z0 + sign * taps_tab.dz[size_t(q)];
      const int64_t y = y0 + sign * taps_tab.dy[size_t(q)];
      const int64_t x = x0 + sign * taps_tab.dx[size_t(q)];
      if (!inside(z, extent[0]) || !inside(y, H) || x < 0 || x + nr > W) return false;
      off[q] = (z * H + y) * W + x;
    }
    const T* cb = base + c * channel_stride;
    int64_t kk = 0;
    for (; t < taps; ++t) dst[kk++] = cb + off[t];  // the rest of channel c
    for (cb += channel_stride; kk + taps <= kc; kk += taps, cb += channel_stride)
      for (int64_t q = 0; q < taps; ++q) dst[kk + q] = cb + off[q];
    for (int64_t q = 0; kk < kc; ++q) dst[kk++] = cb + off[q];
    return true;
  }
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t z = z0 + sign * taps_tab.dz[size_t(t)], y = y0 + sign * taps_tab.dy[size_t(t)];
    const int64_t x = x0 + sign * taps_tab.dx[size_t(t)];
    if (!inside(z, extent[0]) || !inside(y, H) || x < 0 || x + nr > W) return false;
    dst[kk] = base + c * channel_stride + (z * H + y) * W + x;
    if (++t == taps) t = 0, ++c;
  }
  return true;
}

template <typename T>
bool ForwardColumns<T>::rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const {
  const Dims shift{-g_.pad_lo[0], -g_.pad_lo[1], -g_.pad_lo[2]};
  return shifted_rows(taps_, g_.kernel_spatial(), +1, g_.in, src_, g_.in_spatial(), image_stride_,
                      g_.out, g_.stride, shift, k0, kc, n0, nr, dst);
}

template <typename T>
bool BackwardDataColumns<T>::rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr,
                                  const T** dst) const {
  return shifted_rows(taps_, g_.kernel_spatial(), -1, g_.out, src_, g_.out_spatial(),
                      image_stride_, g_.in, Dims{1, 1, 1}, g_.pad_lo, k0, kc, n0, nr, dst);
}

template <typename T>
void BackwardDataColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                                  T* dst) const {
  // o = i + pad - tap: every row is a shifted copy of a grad_y row (unit stride only; strided
  // backward data runs by phases through PhaseColumns).
  pack_shifted_rows(taps_, g_.kernel_spatial(), -1, g_.out, 1, src_, g_.out_spatial(),
                    image_stride_, run_buffer(), k0, kc, nc, nr, n0, true, g_.pad_lo, g_, dst);
}

namespace {

// dst[i * ld + q] = src[q][i] for q < 4, i < len: four source runs into four columns of a panel.
template <typename T>
inline void transpose_runs4(const T* const* src, int64_t len, T* dst, int64_t ld) {
  int64_t i = 0;
#if defined(FASTCONV_X86)
  if constexpr (sizeof(T) == 4) {
    const float* s0 = reinterpret_cast<const float*>(src[0]);
    const float* s1 = reinterpret_cast<const float*>(src[1]);
    const float* s2 = reinterpret_cast<const float*>(src[2]);
    const float* s3 = reinterpret_cast<const float*>(src[3]);
    float* d = reinterpret_cast<float*>(dst);
    for (; i + 4 <= len; i += 4) {
      __m128 r0 = _mm_loadu_ps(s0 + i), r1 = _mm_loadu_ps(s1 + i);
      __m128 r2 = _mm_loadu_ps(s2 + i), r3 = _mm_loadu_ps(s3 + i);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(d + i * ld, r0);
      _mm_storeu_ps(d + (i + 1) * ld, r1);
      _mm_storeu_ps(d + (i + 2) * ld, r2);
      _mm_storeu_ps(d + (i + 3) * ld, r3);
    }
  }
#endif
  for (; i < len; ++i) {
    T* d = dst + i * ld;
    d[0] = src[0][i], d[1] = src[1][i], d[2] = src[2][i], d[3] = src[3][i];
  }
}

}  // namespace

// A pointwise layer's panel (1x1 window, unit stride, no padding): B[o, c] = x[c, o], each
// image's stretch of positions a transpose of the panel's channel rows by the ISA's register
// tiles. The general path below moves four columns at a time: 23% of a 1x1 weight gradient
// (512 -> 256 on 20x20 x 8).
// Only a plain geometry: its one tap at offset 0 (a stride-phase geometry's table moves taps
// between phase planes, and its positions per image are not in_spatial()).
template <typename T>
bool pack_pointwise(const ConvGeometry& g, const TapTable& taps, const T* src,
                    int64_t image_stride, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
                    int64_t nr, T* dst) {
  for (int d = 0; d < kMaxRank; ++d)
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad_lo[d] != 0 || g.pad_hi[d] != 0)
      return false;
  if (taps.dz.size() != 1 || taps.dz[0] != 0 || taps.dy[0] != 0 || taps.dx[0] != 0) return false;
  const int64_t in_sp = g.in_spatial();
  const TransposeKernels<T>& kern = transpose_kernels<T>();
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    for (int64_t k = 0; k < kc;) {
      const int64_t o = k0 + k, img = o / in_sp, q = o % in_sp;
      const int64_t len = std::min(kc - k, in_sp - q);
      kern.transpose(src + img * image_stride + (n0 + p0) * in_sp + q, in_sp, cols, len, nullptr,
                     dst + k * nr, nr);
      k += len;
    }
    for (int64_t j = cols; j < nr; ++j) zero_run(kc, dst + j, nr);
  }
  return true;
}

template <typename T>
void WeightColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                            T* dst) const {
  if (pack_pointwise(g_, taps_, src_, image_stride_, k0, kc, n0, nc, nr, dst)) return;
  const ConvGeometry& g = g_;
  const int64_t taps = g.kernel_spatial(), in_sp = g.in_spatial(), step = g.stride[2];
  const int64_t H = g.in[1], W = g.in[2];
  // Rows are output positions: runs along output rows read consecutive input elements, so the
  // panel is filled column by column (each column is one (channel, tap)), four at a time.
  std::vector<Run>& runs = run_buffer();
  make_output_runs(g, k0, kc, image_stride_, runs);
  struct Column {
    const T* channel;
    int64_t dz, dy, dx;
  };
  thread_local std::vector<Column> columns;
  columns.resize(size_t(nr));
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t r = n0 + p0 + j, c = r / taps, t = r % taps;
      columns[size_t(j)] = {src_ + c * in_sp, taps_.dz[t], taps_.dy[t], taps_.dx[t]};
    }
    for (const Run& run : runs) {
      for (int64_t j = 0; j < cols; j += 4) {
        const int64_t group = std::min<int64_t>(4, cols - j);
        const T* rows[4] = {};
        int64_t x0[4] = {};
        bool fast = group == 4 && step == 1;
        int64_t lo = 0, hi = run.len;  // positions every column of the group reads in bounds
        for (int64_t q = 0; q < group; ++q) {
          const Column& col = columns[size_t(j + q)];
          const int64_t z = run.z + col.dz, y = run.y + col.dy;
          x0[q] = run.x + col.dx;
          if (inside(z, g.in[0]) && inside(y, H)) {
            rows[q] = col.channel + run.img + (z * H + y) * W;
            lo = std::max(lo, -x0[q]);
            hi = std::min(hi, W - x0[q]);
          } else {
            rows[q] = nullptr;
            fast = false;
          }
        }
        T* out = dst + run.j0 * nr + j;
        if (fast && hi - lo >= 4) {
          // the shared in-bounds stretch as transposes, the few edge positions (padding) one by one
          const T* src[4] = {rows[0] + x0[0] + lo, rows[1] + x0[1] + lo, rows[2] + x0[2] + lo,
                             rows[3] + x0[3] + lo};
          transpose_runs4(src, hi - lo, out + lo * nr, nr);
          for (int64_t q = 0; q < 4; ++q) {
            gather_run(rows[q], W, x0[q], 1, lo, out + q, nr);
            gather_run(rows[q], W, x0[q] + hi, 1, run.len - hi, out + hi * nr + q, nr);
          }
          continue;
        }
        for (int64_t q = 0; q < group; ++q) {
          if (rows[q]) {
            gather_run(rows[q], W, x0[q], step, run.len, out + q, nr);
          } else {
            zero_run(run.len, out + q, nr);
          }
        }
      }
    }
    for (int64_t j = cols; j < nr; ++j) zero_run(kc, dst + j, nr);
  }
}

template <typename T>
void ChannelsLastWeightColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc,
                                        int64_t nr, T* dst) const {
  const ConvGeometry& g = g_;
  const int64_t ch = channels_, H = g.in[1], W = g.in[2], step = g.stride[2];
  std::vector<Run>& runs = run_buffer();
  make_output_runs(g, k0, kc, g.in_spatial() * ch, runs);
  struct Piece {
    int64_t j, tap, c, len;  // panel columns [j, j + len) = channels [c, c + len) of tap
  };
  thread_local std::vector<Piece> pieces;
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    pieces.clear();
    for (int64_t j = 0; j < cols;) {
      const int64_t r = n0 + p0 + j, t = r / ch, c = r % ch, len = std::min(cols - j, ch - c);
      pieces.push_back({j, t, c, len});
      j += len;
    }
    for (const Run& run : runs) {
      for (const Piece& pc : pieces) {
        T* out = dst + run.j0 * nr + pc.j;
        const int64_t z = run.z + taps_.dz[size_t(pc.tap)], y = run.y + taps_.dy[size_t(pc.tap)];
        const int64_t x0 = run.x + taps_.dx[size_t(pc.tap)];
        const T* row = inside(z, g.in[0]) && inside(y, H)
                           ? src_ + run.img + ((z * H + y) * W) * ch + pc.c
                           : nullptr;
        for (int64_t i = 0, x = x0; i < run.len; ++i, x += step) {
          if (row && inside(x, W)) {
            copy_channels(row + x * ch, pc.len, out + i * nr);
          } else {
            std::fill(out + i * nr, out + i * nr + pc.len, T(0));
          }
        }
      }
    }
    for (int64_t j = cols; j < nr; ++j) zero_run(kc, dst + j, nr);
  }
}

template <typename T>
bool ChannelsLastWeightColumns<T>::rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr,
                                        const T** dst) const {
  // nr zeros for the rows a tap reads in the padding (the widest panel is 64 columns).
  alignas(64) static const T kZeroRow[64] = {};
  const ConvGeometry& g = g_;
  const int64_t ch = channels_, tap = n0 / ch, c = n0 % ch;
  if (!in_place_ || nr > 64 || nr * int64_t(sizeof(T)) < 128 || c + nr > ch) return false;
  const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2], per_image = OD * OH * OW;
  // Row k reads position k of the block's outputs (images in_spatial * ch apart); the
  // coordinates step along with k instead of being divided out per row.
  int64_t img = k0 / per_image, local = k0 % per_image;
  int64_t ox = local % OW, oy = local / OW % OH, oz = local / (OW * OH);
  const int64_t dz = taps_.dz[size_t(tap)] - g.pad_lo[0], dy = taps_.dy[size_t(tap)] - g.pad_lo[1];
  const int64_t dx = taps_.dx[size_t(tap)] - g.pad_lo[2];
  const T* base = src_ + img * g.in_spatial() * ch + c;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t z = oz * g.stride[0] + dz, y = oy * g.stride[1] + dy, x = ox * g.stride[2] + dx;
    dst[kk] = inside(z, D) && inside(y, H) && inside(x, W) ? base + ((z * H + y) * W + x) * ch
                                                           : kZeroRow;
    if (++ox == OW) {
      ox = 0;
      if (++oy == OH) {
        oy = 0;
        if (++oz == OD) oz = 0, base += g.in_spatial() * ch;
      }
    }
  }
  return true;
}

template <typename T>
void PhaseColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                           T* dst) const {
  pack_shifted_rows(taps_, ntaps_, +1, g_.in, 1, gy_, g_.in_spatial(), image_stride_,
                    run_buffer(), k0, kc, nc, nr, n0, false, Dims{0, 0, 0}, g_, dst);
}

template <typename T>
bool PhaseColumns<T>::rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const {
  return shifted_rows(taps_, ntaps_, +1, g_.in, gy_, g_.in_spatial(), image_stride_, g_.out,
                      Dims{1, 1, 1}, Dims{0, 0, 0}, k0, kc, n0, nr, dst);
}

template <typename T>
void FoldedColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                            T* dst) const {
  struct Piece {
    int64_t j0, len, offset;  // panel column, length, source offset of row 0
  };
  thread_local std::vector<Piece> pieces;  // packing runs per panel and must not allocate each time
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    pieces.clear();
    for (int64_t j = 0; j < cols;) {  // where each image's stretch of the panel reads
      const int64_t col = n0 + p0 + j, img = col / per_image_, at = col - img * per_image_;
      const int64_t len = std::min(cols - j, per_image_ - at);
      pieces.push_back({j, len, img * image_stride_ + at});
      j += len;
    }
    const T* src = src_ + k0 * row_stride_;
    for (int64_t kk = 0; kk < kc; ++kk, src += row_stride_) {
      T* row = dst + kk * nr;
      for (const Piece& piece : pieces) copy_run(row + piece.j0, src + piece.offset, piece.len);
      zero_run(nr - cols, row + cols, 1);
    }
  }
}

template class PhaseColumns<float>;
template class PhaseColumns<double>;
template class ChannelsLastWeightColumns<float>;
template class ChannelsLastWeightColumns<double>;
template class FoldedColumns<float>;
template class FoldedColumns<double>;
template class ForwardColumns<float>;
template class ForwardColumns<double>;
template class BackwardDataColumns<float>;
template class BackwardDataColumns<double>;
template class WeightColumns<float>;
template class WeightColumns<double>;

}  // namespace fastconv::algo
