// Backward data through the column matrix. One GEMM per tile writes
// col[(c, tap), position] = sum_k w[k, c, tap] * grad_y[k, position] for a block of channels (the
// rows) and of grad_y positions (the columns: the planes of several small images side by side, or
// a band of lines of a large one). The weight is read in place as a column-major A, with no
// per-phase regrouping, and grad_y as a plain B, so the GEMM has as many rows as channels x taps
// (dcgan.g4: 1024 rows, where a GEMM per stride phase had 64). grad_x then gathers, stride phase
// by stride phase, the columns of the taps that reach it: contiguous adds and one store per
// element, nothing scattered. A tile stays in L2 between the GEMM and the gather; tiles of other
// channels or images run in parallel.
#include "algo/column_backward_data.h"

#include <algorithm>
#include <limits>

#include "algo/conv_panels.h"
#include "algo/gemm_conv.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

// Short copy and zeroing loops stay loops (GCC would call memcpy / memset for a few elements).
#if defined(__GNUC__) && !defined(__clang__)
#define FASTCONV_KEEP_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FASTCONV_KEEP_LOOPS
#endif

namespace fastconv::algo {

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A column tile stays in L2 between the GEMM that writes it and the gather that reads it.
constexpr int64_t kTileBytes = int64_t(512) << 10;
// GEMM rows (channels x taps) a tile aims for, and the fewest worth splitting channels down to
// for parallel tiles (each tile packs its own B panels; fewer rows would not pay for them).
constexpr int64_t kTargetRows = 512, kMinRows = 128;

// The (tap, grad_y index) pairs that reach each grad_x index along dim d.
void reach_table(const ConvGeometry& g, int d, std::vector<int64_t>& start,
                 std::vector<int64_t>& tap, std::vector<int64_t>& out) {
  start.assign(1, 0);
  for (int64_t i = 0; i < g.in[d]; ++i) {
    for (int64_t t = 0; t < g.kernel[d]; ++t) {
      const int64_t v = i + g.pad_lo[d] - tap_position(g, d, t) * g.dilation[d];
      if (v % g.stride[d] != 0 || v < 0 || v / g.stride[d] >= g.out[d]) continue;
      tap.push_back(t);
      out.push_back(v / g.stride[d]);
    }
    start.push_back(int64_t(tap.size()));
  }
}

// The taps of stride phase q along dim d and the grad_y offset each reads: grad_x index
// q + stride * m takes tap t from grad_y index m + offset.
void phase_taps(const ConvGeometry& g, int d, int64_t q, std::vector<int64_t>& tap,
                std::vector<int64_t>& offset) {
  for (int64_t t = 0; t < g.kernel[d]; ++t) {
    const int64_t v = q + g.pad_lo[d] - tap_position(g, d, t) * g.dilation[d];
    if (v % g.stride[d] != 0) continue;
    tap.push_back(t);
    offset.push_back(v / g.stride[d]);
  }
}

// Chooses the tile for `cblocks` channel blocks: as many grad_y positions as fit the tile bytes,
// whole images when one fits, else bands of lines (at least one).
void size_tiles(const ConvGeometry& g, int64_t cblocks, int64_t elem_size, ColumnSchedule& s) {
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group();
  const int64_t per_image = std::max<int64_t>(1, g.out_spatial());
  const int64_t ox = std::max<int64_t>(1, g.out[2]), lines = std::max<int64_t>(1, s.lines);
  s.cb = std::max<int64_t>(1, ceil_div(cg, cblocks));
  s.cblocks = ceil_div(cg, s.cb);
  const int64_t cols = std::max(ox, kTileBytes / elem_size / std::max<int64_t>(1, s.cb * taps));
  if (per_image <= cols) {
    s.ib = std::clamp<int64_t>(cols / per_image, 1, std::max<int64_t>(1, g.n));
    s.rr = lines;
  } else {
    s.ib = 1;
    s.rr = std::max<int64_t>(1, cols / ox);
    s.rr = ceil_div(lines, ceil_div(lines, s.rr));  // equal bands
  }
  s.nblocks = ceil_div(g.n, s.ib);
  if (s.nblocks > 0) s.ib = ceil_div(g.n, s.nblocks);  // equal image blocks
  s.tasks = g.groups * s.cblocks * s.nblocks;
  s.tile_elems = s.cb * taps * s.ib * s.rr * ox;
}

// Plane by plane (ColumnSchedule::planes) when tiles hold whole images and grad_x = stride x
// grad_y along every dim: each phase's taps, their shifts and border masks.
void plan_planes(const ConvGeometry& g, int64_t elem_size, ColumnSchedule& s) {
  for (int d = 0; d < kMaxRank; ++d)
    if (g.in[d] != g.stride[d] * g.out[d]) return;
  if (s.rr < s.lines) {  // bands: only when every grad_x line takes a single grad_y line
    for (int d = 0; d < 2; ++d)
      if (g.kernel[d] != g.stride[d] || g.pad_lo[d] != 0 || g.dilation[d] != 1) return;
  }
  s.planes = true;
  const int64_t per_image = g.out_spatial(), span = s.ib * per_image;
  std::vector<int64_t> tap[3], off[3], keys;  // keys: the (z, y, x) offsets of each mask
  s.plane_start.assign(1, 0);
  for (int64_t qz = 0; qz < g.stride[0]; ++qz)
    for (int64_t qy = 0; qy < g.stride[1]; ++qy)
      for (int64_t qx = 0; qx < g.stride[2]; ++qx) {
        const int64_t q[3] = {qz, qy, qx};
        for (int d = 0; d < kMaxRank; ++d) {
          tap[d].clear(), off[d].clear();
          phase_taps(g, d, q[d], tap[d], off[d]);
        }
        for (size_t a = 0; a < tap[0].size(); ++a)
          for (size_t b = 0; b < tap[1].size(); ++b)
            for (size_t c = 0; c < tap[2].size(); ++c) {
              const int64_t t = (tap[0][a] * g.kernel[1] + tap[1][b]) * g.kernel[2] + tap[2][c];
              const int64_t shift = (off[0][a] * g.out[1] + off[1][b]) * g.out[2] + off[2][c];
              int64_t mask = -1;
              if (off[0][a] != 0 || off[1][b] != 0 || off[2][c] != 0) {
                const int64_t key[3] = {off[0][a], off[1][b], off[2][c]};
                mask = 0;
                while (mask < int64_t(keys.size()) / 3 &&
                       !std::equal(key, key + 3, keys.begin() + 3 * mask))
                  ++mask;
                if (mask == int64_t(keys.size()) / 3) keys.insert(keys.end(), key, key + 3);
              }
              s.plane_taps.push_back({t, shift, mask});
              s.margin = std::max(s.margin, shift < 0 ? -shift : shift);
            }
        s.plane_start.push_back(int64_t(s.plane_taps.size()));
      }
  // Mask rows: 1 where a position of the image grid shifted by the offsets stays inside it.
  const int64_t count = int64_t(keys.size()) / 3;
  std::vector<double> masks(size_t(count * span));
  for (int64_t m = 0; m < count; ++m)
    for (int64_t f = 0; f < span; ++f) {
      const int64_t local = f % per_image;
      const int64_t pos[3] = {local / (g.out[1] * g.out[2]), local / g.out[2] % g.out[1],
                              local % g.out[2]};
      bool inside = true;
      for (int d = 0; d < kMaxRank; ++d) {
        const int64_t v = pos[d] + keys[size_t(3 * m + d)];
        inside = inside && v >= 0 && v < g.out[d];
      }
      masks[size_t(m * span + f)] = inside ? 1.0 : 0.0;
    }
  if (elem_size == 4) {
    s.masks32.assign(masks.begin(), masks.end());
  } else {
    s.masks64 = std::move(masks);
  }
}

// ---- line by line

// acc[j] = 0 for j in [lo, hi): a loop, not a memset call (most runs are a few elements).
template <typename T>
FASTCONV_KEEP_LOOPS inline void zero_range(T* acc, int64_t lo, int64_t hi) {
  for (int64_t j = lo; j < hi; ++j) acc[j] = T(0);
}

// Sums, for phase positions m in [m0, m0 + len) of stride phase q, the columns of every tap of
// the phase over the tile lines `lines` (each pointing at its line's tap (tz, ty, 0) row). The
// first stretch is copied, positions no tap reaches are zero.
template <typename T>
FASTCONV_KEEP_LOOPS void phase_sum(const ColumnSchedule& s, int64_t q, const T* const* lines,
                                   int nl, int64_t ld, int64_t ox, int64_t m0, int64_t len,
                                   T* __restrict acc) {
  T* a = acc - m0;
  bool empty = true;
  for (int64_t i = s.phase_start[q]; i < s.phase_start[q + 1]; ++i) {
    const int64_t off = s.phase_offset[i];
    const int64_t lo = std::max(m0, -off), hi = std::min(m0 + len, ox - off);
    if (lo >= hi) continue;
    for (int l = 0; l < nl; ++l) {
      const T* __restrict src = lines[l] + s.phase_tap[i] * ld + off;
      if (empty) {
        zero_range(a, m0, lo);
        for (int64_t m = lo; m < hi; ++m) a[m] = src[m];
        zero_range(a, hi, m0 + len);
        empty = false;
      } else {
        for (int64_t m = lo; m < hi; ++m) a[m] += src[m];
      }
    }
  }
  if (empty) zero_range(acc, 0, len);
}

// Stores (assign) or adds n values to dst[0], dst[step], ...
template <typename T>
inline void put_strided(const T* v, int64_t n, int64_t step, bool assign, T* dst) {
  if (assign) {
    for (int64_t j = 0; j < n; ++j) dst[j * step] = v[j];
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j * step] += v[j];
  }
}

// Writes (assign) or adds one grad_x line of `width` elements from its phase sums.
template <typename T>
void gather_line(const ConvGeometry& g, const ColumnSchedule& s, const T* const* lines, int nl,
                 int64_t ld, bool assign, T* out) {
  constexpr int64_t kChunk = 256;
  T acc[2][kChunk];
  const int64_t sx = g.stride[2], width = g.in[2], ox = g.out[2];
  if (sx == 2) {  // both phases, stored interleaved: one pass over the line
    const int64_t even = (width + 1) / 2, odd = width / 2;
    for (int64_t m0 = 0; m0 < even; m0 += kChunk) {
      const int64_t n0 = std::min(kChunk, even - m0);
      const int64_t n1 = std::max<int64_t>(0, std::min(kChunk, odd - m0));
      phase_sum(s, 0, lines, nl, ld, ox, m0, n0, acc[0]);
      phase_sum(s, 1, lines, nl, ld, ox, m0, n1, acc[1]);
      T* dst = out + 2 * m0;
      const T *a0 = acc[0], *a1 = acc[1];
      if (assign) {
        for (int64_t j = 0; j < n1; ++j) dst[2 * j] = a0[j], dst[2 * j + 1] = a1[j];
      } else {
        for (int64_t j = 0; j < n1; ++j) dst[2 * j] += a0[j], dst[2 * j + 1] += a1[j];
      }
      if (n0 > n1) put_strided(a0 + n1, 1, 1, assign, dst + 2 * n1);
    }
    return;
  }
  for (int64_t q = 0; q < std::min(sx, width); ++q) {
    const int64_t count = (width - q + sx - 1) / sx;
    for (int64_t m0 = 0; m0 < count; m0 += kChunk) {
      const int64_t n = std::min(kChunk, count - m0);
      phase_sum(s, q, lines, nl, ld, ox, m0, n, acc[0]);
      put_strided<T>(acc[0], n, sx, assign, out + q + sx * m0);
    }
  }
}

// The grad_x lines [lo, hi) holding every line a tile of grad_y lines [r0, r0 + rn) reaches.
void reached_lines(const ColumnSchedule& s, int64_t r0, int64_t rn, int64_t& lo, int64_t& hi) {
  const int64_t count = int64_t(s.first.size());
  lo = count, hi = 0;
  for (int64_t l = 0; l < count; ++l) {
    if (s.first[l] < 0 || s.last[l] < r0 || s.first[l] >= r0 + rn) continue;
    lo = std::min(lo, l), hi = l + 1;
  }
}

// Every grad_x line in [lo, hi) of one plane that the tile's grad_y lines [r0, r0 + rn) reach. A
// line is written by the tile holding the first grad_y line that reaches it and added to by
// later ones (tiles of a plane run in order); lines nothing reaches are zeroed by the first tile.
template <typename T>
void gather_lines(const ConvGeometry& g, const ColumnSchedule& s, const T* col, int64_t ld,
                  int64_t r0, int64_t rn, int64_t lo, int64_t hi, T* plane) {
  constexpr int kMaxLines = 32;
  const T* lines[kMaxLines];
  const int64_t k1 = g.kernel[1], k2 = g.kernel[2], out1 = g.out[1], ox = g.out[2];
  const int64_t in1 = g.in[1], width = g.in[2];
  if (r0 == 0 && s.unreached) {
    for (int64_t l = 0; l < int64_t(s.first.size()); ++l)
      if (s.first[l] < 0) std::fill(plane + l * width, plane + (l + 1) * width, T(0));
  }
  for (int64_t l = lo; l < hi; ++l) {
    if (s.first[l] < 0 || s.last[l] < r0 || s.first[l] >= r0 + rn) continue;
    const int64_t z = l / in1, y = l % in1;
    T* out = plane + l * width;
    bool assign = s.first[l] >= r0;
    int nl = 0;
    for (int64_t a = s.start[0][z]; a < s.start[0][z + 1]; ++a) {
      for (int64_t b = s.start[1][y]; b < s.start[1][y + 1]; ++b) {
        const int64_t r = s.out[0][a] * out1 + s.out[1][b];
        if (r < r0 || r >= r0 + rn) continue;
        lines[nl++] = col + (s.tap[0][a] * k1 + s.tap[1][b]) * k2 * ld + (r - r0) * ox;
        if (nl == kMaxLines) gather_line(g, s, lines, nl, ld, assign, out), assign = false, nl = 0;
      }
    }
    if (nl > 0) gather_line(g, s, lines, nl, ld, assign, out);
  }
}

// ---- plane by plane

template <typename T>
const T* masks_of(const ColumnSchedule& s);
template <>
const float* masks_of<float>(const ColumnSchedule& s) {
  return s.masks32.data();
}
template <>
const double* masks_of<double>(const ColumnSchedule& s) {
  return s.masks64.data();
}

// acc[f] (=, or += unless first) src[f] where mask[f] != 0 (everywhere without a mask). The
// read happens either way (the tile's margins keep it in bounds), so the loop vectorises.
template <typename T>
FASTCONV_KEEP_LOOPS void add_shifted(const T* __restrict src, const T* __restrict mask, int64_t n,
                                     bool first, T* __restrict acc) {
  if (!mask) {
    if (first) {
      for (int64_t f = 0; f < n; ++f) acc[f] = src[f];
    } else {
      for (int64_t f = 0; f < n; ++f) acc[f] += src[f];
    }
  } else if (first) {
    for (int64_t f = 0; f < n; ++f) {
      const T v = src[f];
      acc[f] = mask[f] != T(0) ? v : T(0);
    }
  } else {
    for (int64_t f = 0; f < n; ++f) {
      const T v = src[f];
      acc[f] += mask[f] != T(0) ? v : T(0);
    }
  }
}

// The grad_x lines of one channel that the tile's grad_y lines [r0, r0 + rn) of ni images make
// (whole images, or a band when no tap shifts across lines), from its tap rows (tap t at
// rows + t * ld): per (qz, qy), the sums of the stride phases qx over the tile (acc: stride[2]
// rows of ni * rn * out_x), then stored interleaved into the grad_x lines they make up (planes
// image_stride apart from `plane`).
template <typename T>
void gather_planes(const ConvGeometry& g, const ColumnSchedule& s, const T* rows, int64_t ld,
                   int64_t ni, int64_t r0, int64_t rn, T* acc, T* plane, int64_t image_stride) {
  const int64_t sz = g.stride[0], sy = g.stride[1], sx = g.stride[2];
  const int64_t ox = g.out[2], per_tile = rn * ox, n = ni * per_tile;
  const int64_t span = s.ib * g.out_spatial();
  const T* masks = masks_of<T>(s);
  for (int64_t qz = 0; qz < sz; ++qz) {
    for (int64_t qy = 0; qy < sy; ++qy) {
      for (int64_t qx = 0; qx < sx; ++qx) {
        const int64_t p = (qz * sy + qy) * sx + qx;
        T* a = acc + qx * n;
        bool first = true;
        for (int64_t j = s.plane_start[p]; j < s.plane_start[p + 1]; ++j, first = false) {
          const ColumnSchedule::PlaneTap& pt = s.plane_taps[j];
          add_shifted(rows + pt.tap * ld + pt.shift, pt.mask < 0 ? nullptr : masks + pt.mask * span,
                      n, first, a);
        }
        if (first) zero_range(a, 0, n);
      }
      for (int64_t i = 0; i < ni; ++i) {
        for (int64_t r = r0; r < r0 + rn; ++r) {
          const int64_t mz = r / g.out[1], my = r % g.out[1];
          T* dst = plane + i * image_stride + ((qz + sz * mz) * g.in[1] + qy + sy * my) * g.in[2];
          const T* src = acc + i * per_tile + (r - r0) * ox;
          if (sx == 1) {
            std::copy_n(src, ox, dst);
          } else if (sx == 2) {
            const T* odd = src + n;
            for (int64_t m = 0; m < ox; ++m) dst[2 * m] = src[m], dst[2 * m + 1] = odd[m];
          } else {
            for (int64_t qx = 0; qx < sx; ++qx)
              for (int64_t m = 0; m < ox; ++m) dst[qx + sx * m] = src[qx * n + m];
          }
        }
      }
    }
  }
}

}  // namespace

std::shared_ptr<const ColumnSchedule> column_schedule(const ConvGeometry& g, int threads,
                                                      int64_t elem_size) {
  auto s = std::make_shared<ColumnSchedule>();
  s->threads = threads;
  for (int d = 0; d < 2; ++d) reach_table(g, d, s->start[d], s->tap[d], s->out[d]);
  s->phase_start.assign(1, 0);
  for (int64_t q = 0; q < g.stride[2]; ++q) {
    phase_taps(g, 2, q, s->phase_tap, s->phase_offset);
    s->phase_start.push_back(int64_t(s->phase_tap.size()));
  }
  s->lines = g.out[0] * g.out[1];
  for (int64_t z = 0; z < g.in[0]; ++z) {
    for (int64_t y = 0; y < g.in[1]; ++y) {
      int64_t first = -1, last = -1;
      for (int64_t a = s->start[0][z]; a < s->start[0][z + 1]; ++a) {
        for (int64_t b = s->start[1][y]; b < s->start[1][y + 1]; ++b) {
          const int64_t r = s->out[0][a] * g.out[1] + s->out[1][b];
          first = first < 0 ? r : std::min(first, r), last = std::max(last, r);
        }
      }
      s->first.push_back(first);
      s->last.push_back(last);
      s->unreached = s->unreached || first < 0;
    }
  }
  const int64_t taps = g.kernel_spatial(), cg = std::max<int64_t>(1, g.c_per_group());
  // Channels per tile: kTargetRows rows, fewer when that keeps a whole image in the tile (its
  // gather then runs plane by plane) with at least kMinRows rows.
  int64_t cb = std::clamp<int64_t>(ceil_div(kTargetRows, taps), 1, cg);
  const int64_t image_cb = kTileBytes / elem_size / std::max<int64_t>(1, taps * g.out_spatial());
  if (image_cb < cb && image_cb * taps >= kMinRows) cb = image_cb;
  const int64_t cblocks = ceil_div(cg, cb);
  size_tiles(g, cblocks, elem_size, *s);
  // The grad_y lines of a tile (its band) set the order in which a grad_x element sums its taps
  // (a band's partial sum, then the next band's; whole images go plane by plane): they must not
  // depend on the thread count, so that results are bitwise the same for any thread count
  // (docs/api-contract.md, Determinism). Splitting the channels for more tasks below may grow a
  // tile's images (each image's sums are its own), never its band.
  const int64_t band = s->rr;
  const auto keep_band = [&] {
    if (s->rr == band) return;
    s->rr = band, s->ib = 1, s->nblocks = g.n;
    s->tasks = g.groups * s->cblocks * s->nblocks;
    s->tile_elems = s->cb * taps * s->ib * s->rr * g.out[2];
  };
  // Tiles in parallel, an equal share per thread, while a tile keeps kMinRows rows; otherwise
  // one tile at a time with its GEMM and gather split over the threads.
  for (int64_t blocks = cblocks; threads > 1 && blocks <= cg; ++blocks) {
    if (blocks > cblocks && ceil_div(cg, blocks) * taps < kMinRows) break;
    size_tiles(g, blocks, elem_size, *s);
    keep_band();
    if (s->tasks >= threads && (s->tasks % threads == 0 || s->tasks >= 4 * threads)) {
      s->parts = threads;
      break;
    }
  }
  if (s->parts == 1) size_tiles(g, cblocks, elem_size, *s);
  plan_planes(g, elem_size, *s);
  s->part_elems = s->tile_elems;
  if (s->parts > 1 && s->tasks == s->cblocks && s->ib > 1 && s->rr >= s->lines) {
    const int64_t k = g.k_per_group(), n = s->ib * s->lines * g.out[2];
    s->shared_b_elems = elem_size == 4 ? gemm::packed_b_layout<float>(k, n).elems()
                                       : gemm::packed_b_layout<double>(k, n).elems();
  }
  if (s->planes) {
    s->acc_elems = g.stride[2] * s->ib * s->rr * g.out[2];
    // One tile at a time: its channels' gathers shared out, each thread with its phase sums.
    s->part_elems += 2 * s->margin + s->acc_elems * (s->parts > 1 ? 1 : threads);
  }
  return s;
}

int64_t column_backward_data_workspace(const ColumnSchedule& s) {
  return s.parts * s.part_elems + s.shared_b_elems;
}

template <typename T>
void column_backward_data(const ConvGeometry& g, const ColumnSchedule& s, const T* grad_y,
                          const T* w, T* grad_x, T* ws) {
  const int64_t taps = g.kernel_spatial(), cg = g.c_per_group(), kg = g.k_per_group();
  const int64_t per_image = g.out_spatial(), ox = g.out[2], in_sp = g.in_spatial();
  const int64_t rows = cg * taps;
  if (per_image == 0) {  // nothing reaches grad_x
    std::fill(grad_x, grad_x + g.n * g.c * in_sp, T(0));
    return;
  }
  // The GEMMs read the weight's columns (one per K channel) in place, rows apart: the GEMM packs
  // such an A a column across all its panels at a time (gemm.cc, pack_a_columns), so columns a
  // multiple of 4 KiB apart no longer evict each other (dcgan.g2, 16 KiB apart, read a padded
  // copy of the weight before: 8 MiB copied per call, 5% of its time).
  // One B for every task (ColumnSchedule::shared_b_elems): grad_y's images folded side by side,
  // packed by the threads a share of panels each, then read in place by each tile's GEMM.
  const bool shared_b = s.shared_b_elems > 0;
  const int64_t b_cols = s.ib * s.lines * ox;
  const gemm::PackedBLayout lb = gemm::packed_b_layout<T>(kg, shared_b ? b_cols : 1);
  T* b_packed = ws + s.parts * s.part_elems;
  const auto run_task = [&](int64_t task, T* part, bool split) {
    const int64_t grp = task / (s.cblocks * s.nblocks), rest = task % (s.cblocks * s.nblocks);
    const int64_t c0 = rest / s.nblocks * s.cb, n0 = rest % s.nblocks * s.ib;
    const int64_t cc = std::min(s.cb, cg - c0), ni = std::min(s.ib, g.n - n0);
    const gemm::MatrixRef<T> a{w + grp * kg * rows + c0 * taps, 1, rows};
    T* col = part + s.margin;
    T* acc = col + s.tile_elems + s.margin;
    T* gx = grad_x + (n0 * g.c + grp * cg + c0) * in_sp;
    for (int64_t r0 = 0; r0 < s.lines; r0 += s.rr) {
      const int64_t rn = std::min(s.rr, s.lines - r0), cols = ni * rn * ox;
      const T* gy = grad_y + (n0 * g.k + grp * kg) * per_image + r0 * ox;
      if (shared_b) {
        gemm::gemm_batched_packed_b<T>(1, cc * taps, cols, kg, T(1), a, 0, b_packed, lb, 0, T(0),
                                       col, cols, 0);
      } else if (ni == 1) {
        gemm::gemm<T>(cc * taps, cols, kg, T(1), a, gemm::MatrixRef<T>{gy, per_image, 1}, T(0),
                      col, cols);
      } else {
        gemm::gemm<T>(cc * taps, cols, kg, T(1), a,
                      FoldedColumns<T>(gy, per_image, per_image, g.k * per_image), T(0), col,
                      cols);
      }
      if (s.planes) {  // whole images or bands
        const int64_t shares = split ? std::min<int64_t>(cc, s.threads) : 1;
        const auto channels = [&](int64_t begin, int64_t end) {
          for (int64_t share = begin; share < end; ++share)
            for (int64_t c = cc * share / shares; c < cc * (share + 1) / shares; ++c)
              gather_planes(g, s, col + c * taps * cols, cols, ni, r0, rn,
                            acc + share * s.acc_elems, gx + c * in_sp, g.c * in_sp);
        };
        if (shares > 1) {
          parallel_for(shares, 1, channels);
        } else {
          channels(0, 1);
        }
        continue;
      }
      int64_t lo, hi;
      reached_lines(s, r0, rn, lo, hi);
      const auto planes = [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t c = j / ni, i = j % ni;
          gather_lines(g, s, col + c * taps * cols + i * rn * ox, cols, r0, rn, lo, hi,
                       gx + i * g.c * in_sp + c * in_sp);
        }
      };
      if (split) {
        parallel_for(cc * ni, 1, planes);
      } else {
        planes(0, cc * ni);
      }
    }
  };
  if (shared_b) {
    // Whole panels per share, in every k block of the layout.
    const FoldedColumns<T> src(grad_y, per_image, per_image, g.k * per_image);
    const int64_t panels = lb.n_pad / lb.nr;
    parallel_for(s.parts, 1, [&](int64_t begin, int64_t end) {
      const int64_t p0 = panels * begin / s.parts, p1 = panels * end / s.parts;
      if (p0 == p1) return;
      const int64_t n0 = p0 * lb.nr;
      gemm::pack_b_columns<T>(src, lb, n0, std::min(p1 * lb.nr, b_cols) - n0, b_packed);
    });
  }
  if (s.parts > 1) {
    parallel_for(s.parts, 1, [&](int64_t begin, int64_t end) {
      for (int64_t part = begin; part < end; ++part) {
        for (int64_t t = s.tasks * part / s.parts; t < s.tasks * (part + 1) / s.parts; ++t)
          run_task(t, ws + part * s.part_elems, false);
      }
    });
    return;
  }
  for (int64_t t = 0; t < s.tasks; ++t) run_task(t, ws, true);
}

template void column_backward_data<float>(const ConvGeometry&, const ColumnSchedule&,
                                          const float*, const float*, float*, float*);
template void column_backward_data<double>(const ConvGeometry&, const ColumnSchedule&,
                                           const double*, const double*, double*, double*);

}  // namespace fastconv::algo
