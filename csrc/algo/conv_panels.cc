// Packing of implicit im2col panels. Each panel is kc rows x nr columns; rows and columns are
// decoded once per panel, and in-bounds unit-stride runs are copied without per-element checks.
#include "algo/conv_panels.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "fastconv/parallel.h"

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

inline bool inside(int64_t v, int64_t extent) { return static_cast<uint64_t>(v) < uint64_t(extent); }

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

// A stretch of consecutive positions along the innermost spatial dim: `len` positions from
// index j0 of the panel; z, y, x are the input coordinates (window corner for output
// positions) of its first position, img the element offset of its image (batch folding).
struct Run {
  int64_t j0, len, z, y, x, img;
};

// Splits output positions [o, o + count) into runs along rows of the output; positions past
// one image continue in the next, image_stride elements on.
int make_output_runs(const ConvGeometry& g, int64_t o, int64_t count, int64_t image_stride,
                     std::vector<Run>& runs) {
  runs.clear();
  const int64_t per_image = std::max<int64_t>(1, g.out_spatial());
  for (int64_t j = 0; j < count;) {
    const int64_t n = o / per_image, local = o - n * per_image;
    const int64_t ow = local % g.out[2], oh = (local / g.out[2]) % g.out[1];
    const int64_t od = local / (g.out[2] * g.out[1]);
    const int64_t len = std::min(count - j, g.out[2] - ow);
    runs.push_back({j, len, od * g.stride[0] - g.pad_lo[0], oh * g.stride[1] - g.pad_lo[1],
                    ow * g.stride[2] - g.pad_lo[2], n * image_stride});
    j += len;
    o += len;
  }
  return int(runs.size());
}

// Splits input positions [i, i + count) into runs along rows of the input (across images as
// make_output_runs).
int make_input_runs(const ConvGeometry& g, int64_t i, int64_t count, int64_t image_stride,
                    std::vector<Run>& runs) {
  runs.clear();
  const int64_t per_image = std::max<int64_t>(1, g.in_spatial());
  for (int64_t j = 0; j < count;) {
    const int64_t n = i / per_image, local = i - n * per_image;
    const int64_t ix = local % g.in[2], iy = (local / g.in[2]) % g.in[1];
    const int64_t iz = local / (g.in[2] * g.in[1]);
    const int64_t len = std::min(count - j, g.in[2] - ix);
    runs.push_back({j, len, iz, iy, ix, n * image_stride});
    j += len;
    i += len;
  }
  return int(runs.size());
}

// Per-thread run lists: packing is called per panel and must not allocate each time.
std::vector<Run>& run_buffer() {
  thread_local std::vector<Run> runs;
  return runs;
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
  thread_local std::vector<RunSource> t_sources;
  std::vector<RunSource>& sources = t_sources;  // one TLS lookup per call, not per row
  const int64_t H = extent[1], W = extent[2];
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    const int64_t nruns =
        input_runs ? make_input_runs(g, first_col + p0, cols, image_stride, runs)
                   : make_output_runs(g, first_col + p0, cols, image_stride, runs);
    for (Run& r : runs) r.z += shift[0], r.y += shift[1], r.x += shift[2];
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

template <typename T>
void ForwardColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                             T* dst) const {
  // Output runs carry window corners (o * stride - pad) in input coordinates.
  pack_shifted_rows(taps_, g_.kernel_spatial(), +1, g_.in, g_.stride[2], src_, g_.in_spatial(),
                    image_stride_, run_buffer(), k0, kc, nc, nr, n0, false, Dims{0, 0, 0}, g_, dst);
}

template <typename T>
void BackwardDataColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                                  T* dst) const {
  // o = i + pad - tap: every row is a shifted copy of a grad_y row (unit stride only; strided
  // backward data runs by phases through PhaseColumns).
  pack_shifted_rows(taps_, g_.kernel_spatial(), -1, g_.out, 1, src_, g_.out_spatial(),
                    image_stride_, run_buffer(), k0, kc, nc, nr, n0, true, g_.pad_lo, g_, dst);
}

template <typename T>
void WeightColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                            T* dst) const {
  const ConvGeometry& g = g_;
  const int64_t taps = g.kernel_spatial(), in_sp = g.in_spatial();
  // Rows are output positions: runs along output rows read consecutive input elements, so the
  // panel is filled column by column (each column is one (channel, tap)).
  std::vector<Run>& runs = run_buffer();
  make_output_runs(g, k0, kc, image_stride_, runs);
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t r = n0 + p0 + j, c = r / taps, t = r % taps;
      const T* xc = src_ + c * in_sp;  // + run.img per run
      const int64_t dz = taps_.dz[t], dy = taps_.dy[t], dx = taps_.dx[t];
      for (const Run& run : runs) {
        const int64_t z = run.z + dz, y = run.y + dy;
        T* col = dst + run.j0 * nr + j;
        if (inside(z, g.in[0]) && inside(y, g.in[1])) {
          gather_run(xc + run.img + (z * g.in[1] + y) * g.in[2], g.in[2], run.x + dx, g.stride[2],
                     run.len, col, nr);
        } else {
          zero_run(run.len, col, nr);
        }
      }
    }
    for (int64_t j = cols; j < nr; ++j) zero_run(kc, dst + j, nr);
  }
}

template <typename T>
void PhaseColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                           T* dst) const {
  pack_shifted_rows(taps_, ntaps_, +1, g_.in, 1, gy_, g_.in_spatial(), image_stride_,
                    run_buffer(), k0, kc, nc, nr, n0, false, Dims{0, 0, 0}, g_, dst);
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

namespace {

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

bool PhaseRows::applies(const ConvGeometry& g) {
  return g.stride[2] > 1 && g.pad_lo[0] >= 0 && g.pad_lo[1] >= 0 && g.pad_lo[2] >= 0;
}

PhaseRows::PhaseRows(const ConvGeometry& g) {
  const int64_t s = g.stride[2];
  int64_t lo = 0, hi = 0;  // the phase-row shifts the taps read at
  for (int64_t t = 0; t < g.kernel[2]; ++t) {
    const int64_t shift = floor_div(tap_position(g, 2, t) * g.dilation[2] - g.pad_lo[2], s);
    lo = std::min(lo, shift), hi = std::max(hi, shift);
  }
  left = -lo;
  width = left + std::max(g.out[2] + hi, (g.in[2] + s - 1) / s);
  const auto padded = [&g](int d) {  // rows read along dim d, and the data rows
    return std::max(g.in[d] + g.pad_lo[d],
                    g.stride[d] * (g.out[d] - 1) + (g.kernel[d] - 1) * g.dilation[d] + 1);
  };
  rows_z = padded(0), rows_y = padded(1);
  pitch = s * g.c * width;
  image = rows_z * rows_y * pitch;
  for (int64_t tz = 0; tz < g.kernel[0]; ++tz)
    for (int64_t ty = 0; ty < g.kernel[1]; ++ty)
      for (int64_t tx = 0; tx < g.kernel[2]; ++tx) {
        const int64_t z = tap_position(g, 0, tz) * g.dilation[0];
        const int64_t y = tap_position(g, 1, ty) * g.dilation[1];
        const int64_t v = tap_position(g, 2, tx) * g.dilation[2] - g.pad_lo[2];
        const int64_t q = v - floor_div(v, s) * s;
        tap_offset.push_back((z * rows_y + y) * pitch + q * g.c * width + left + floor_div(v, s));
      }
}

template <typename T>
void split_phase_rows(const ConvGeometry& g, const PhaseRows& l, const T* x, int64_t images,
                      int64_t r0, int64_t r1, T* dst) {
  const int64_t s = g.stride[2], W = g.in[2], in_sp = g.in_spatial(), rows = r1 - r0;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, l.pitch));
  parallel_for(images * rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t img = r / rows, row = r0 + r % rows, z = row / l.rows_y, y = row % l.rows_y;
      T* out = dst + r * l.pitch;
      const int64_t iz = z - g.pad_lo[0], iy = y - g.pad_lo[1];
      if (iz < 0 || iz >= g.in[0] || iy < 0 || iy >= g.in[1]) {
        zero_run(l.pitch, out, 1);
        continue;
      }
      const T* src = x + img * g.c * in_sp + (iz * g.in[1] + iy) * W;
      for (int64_t c = 0; c < g.c; ++c) {  // each source row read once, into its s phase rows
        const T* row = src + c * in_sp;
        for (int64_t q = 0; q < s; ++q) {
          T* phase = out + (q * g.c + c) * l.width;
          const int64_t count = q < W ? (W - q + s - 1) / s : 0;
          zero_run(l.left, phase, 1);
          zero_run(l.width - l.left - count, phase + l.left + count, 1);
        }
        T* even = out + c * l.width + l.left;
        if (s == 2) {  // deinterleave
          T* odd = even + g.c * l.width;
          for (int64_t m = 0; m < W / 2; ++m) even[m] = row[2 * m], odd[m] = row[2 * m + 1];
          if (W % 2) even[W / 2] = row[W - 1];
          continue;
        }
        for (int64_t x = 0; x < W; ++x) even[(x % s) * g.c * l.width + x / s] = row[x];
      }
    }
  });
}

template <typename T>
void PhaseRowColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                              T* dst) const {
  struct Piece {
    int64_t j0, len, offset;  // panel column, length, where output (row start) reads for tap 0
  };
  thread_local std::vector<Piece> pieces;  // per panel; packing must not allocate each time
  const int64_t taps = g_.kernel_spatial(), ox = g_.out[2];
  const int64_t per_image = std::max<int64_t>(1, g_.out_spatial());
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    pieces.clear();
    for (int64_t j = 0; j < cols;) {  // runs along output rows
      const int64_t o = first_ + n0 + p0 + j, img = o / per_image, local = o - img * per_image;
      const int64_t x = local % ox, y = local / ox % g_.out[1], z = local / (ox * g_.out[1]);
      const int64_t len = std::min(cols - j, ox - x);
      const int64_t row = g_.stride[0] * z * layout_.rows_y + g_.stride[1] * y - row0_;
      pieces.push_back({j, len, img * layout_.image + row * layout_.pitch + x});
      j += len;
    }
    int64_t c = k0 / taps, t = k0 % taps;
    for (int64_t kk = 0; kk < kc; ++kk) {
      const T* src = src_ + c * layout_.width + layout_.tap_offset[size_t(t)];
      T* row = dst + kk * nr;
      for (const Piece& piece : pieces) copy_run(row + piece.j0, src + piece.offset, piece.len);
      zero_run(nr - cols, row + cols, 1);
      if (++t == taps) t = 0, ++c;
    }
  }
}

template void split_phase_rows<float>(const ConvGeometry&, const PhaseRows&, const float*, int64_t,
                                      int64_t, int64_t, float*);
template void split_phase_rows<double>(const ConvGeometry&, const PhaseRows&, const double*,
                                       int64_t, int64_t, int64_t, double*);
template class PhaseRowColumns<float>;
template class PhaseRowColumns<double>;

template class PhaseColumns<float>;
template class PhaseColumns<double>;
template class FoldedColumns<float>;
template class FoldedColumns<double>;
template class ForwardColumns<float>;
template class ForwardColumns<double>;
template class BackwardDataColumns<float>;
template class BackwardDataColumns<double>;
template class WeightColumns<float>;
template class WeightColumns<double>;

}  // namespace fastconv::algo
