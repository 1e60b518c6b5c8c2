// Shared body of the Winograd tile transforms; each winograd_transforms_<isa>.cc compiles it with
// its own flags. Work is vectorised across the tiles of a run (lanes innermost, contiguous), and
// the constant matrices are applied with compile-time loops so zero entries cost nothing.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ukernels/winograd/winograd_lanes.h"
#include "ukernels/winograd/winograd_matrices.h"
#include "ukernels/winograd/winograd_ukernels.h"

namespace fastconv {
// Internal linkage: each ISA's file compiles its own copy with its own flags (no ODR clash).
namespace {

// Not std::min: a std template instantiated under this file's ISA flags could be picked by the
// linker for other files.
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Bytes of the GCC vectors apply() works in: 64, AVX-512's width, also at the baseline level
// (SSE2), where each is lowered to four SSE operations late in compilation so the early passes
// see a quarter of the statements (that file at -O3: 90 -> 65 s of compile time on the 2-core
// Zen-1 VM, its run time the same within that VM's noise); AVX2's 32 at the avx2 level.
#if defined(__AVX__) && !defined(__AVX512F__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 64;
#endif

// A run of L lanes of T as kN GCC vectors of kW elements (kVectorBytes wide, or L).
template <typename T, int L>
struct LaneVectors {
  static constexpr int kW =
      int(kVectorBytes / sizeof(T)) < L ? int(kVectorBytes / sizeof(T)) : L;
  static constexpr int kN = L / kW;
  static_assert(kN * kW == L, "a run is a whole number of vectors");
  typedef T V __attribute__((vector_size(kW * sizeof(T))));
};

// dst[o][l] = sum_i mat[o][i] * src[i][l] for o < R, i < C, l < L (element o of dst at
// dst + o * ds, of src at src + i * ss); zero coefficients are skipped at compile time.
// The lanes are handled as GCC vectors kVectorBytes wide (a few per run): written as
// loops over l, the same arithmetic left the compiler thousands of 16-iteration loops to
// vectorise and cost the three ISA files ~110 s of compile time each.
template <typename T, int L, int R, int C, const double (*Mat)[C]>
FASTCONV_WINOGRAD_INLINE void apply(const T* src, int64_t ss, T* dst, int64_t ds) {
  using LV = LaneVectors<T, L>;
  using V = typename LV::V;
  static_for<R>([&](auto o) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    V acc[LV::kN] = {};
    static_for<C>([&](auto i) FASTCONV_WINOGRAD_INLINE_LAMBDA {
      constexpr double c = Mat[o][i];
      if constexpr (c != 0.0) {
        static_for<LV::kN>([&](auto v) FASTCONV_WINOGRAD_INLINE_LAMBDA {
          V s;
          __builtin_memcpy(&s, src + i * ss + v * LV::kW, sizeof s);
          if constexpr (c == 1.0) {
            acc[v] += s;
          } else if constexpr (c == -1.0) {
            acc[v] -= s;
          } else {
            acc[v] += s * T(c);
          }
        });
      }
    });
    static_for<LV::kN>([&](auto v) FASTCONV_WINOGRAD_INLINE_LAMBDA {
      __builtin_memcpy(dst + o * ds + v * LV::kW, &acc[v], sizeof acc[v]);
    });
  });
}

// Two-dimensional transform of L tiles: out = MH in MW^T with in[IH][IW][L], out[OH][OW][L].
template <typename T, int L, int OH, int IH, const double (*MH)[IH], int OW, int IW,
          const double (*MW)[IW]>
FASTCONV_WINOGRAD_INLINE void apply_2d(const T* in, T* out) {
  alignas(64) T mid[OH][IW][L];
  // Columns first (over rows of `in`), then rows.
  static_for<IW>([&](auto j) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    apply<T, L, OH, IH, MH>(in + j * L, IW * L, &mid[0][j][0], IW * L);
  });
  static_for<OH>([&](auto i) FASTCONV_WINOGRAD_INLINE_LAMBDA {
    apply<T, L, OW, IW, MW>(&mid[i][0][0], L, out + i * OW * L, L);
  });
}

// F(MH x MW, R x R) (MH = 1: 1-D F(MW, R)).
template <typename T, int MH, int MW, int R>
struct Tiles {
  static constexpr int kL = 64 / int(sizeof(T));  // one 512-bit vector of tiles per run
  static constexpr int kRH = MH == 1 ? 1 : R;
  using FH = winograd::Matrices<MH, kRH>;
  using FW = winograd::Matrices<MW, R>;
  // Weight gradient: F(R, m) per dim (F(1, 1) for the unused H dim of 1-D), same points.
  using WH = std::conditional_t<MH == 1, winograd::Matrices<1, 1>, winograd::Matrices<R, MH>>;
  using WW = winograd::Matrices<R, MW>;
  static constexpr int kAH = FH::kAlpha, kAW = FW::kAlpha;
  static constexpr int kSpan = kL * MW + kAW - MW;  // input columns a full run reads
  static constexpr int kSpanPadded = (kSpan + kL - 1) / kL * kL;

  // A run over several tile rows (TileKernels::Rows): its pieces, one per tile row.
  struct Piece {
    int64_t lane, n, y, x;  // first lane, tiles, row and column of its first tile
    int64_t base;           // its image's plane, elements from the run's
  };
  using Rows = typename winograd::TileKernels<T>::Rows;
  static int pieces(int64_t y0, int64_t x0, int64_t nt, Rows rows, Piece* out) {
    int count = 0;
    int64_t left = rows.rows_left, base = 0;
    for (int64_t l = 0, y = y0, x = x0, n = rows.first; l < nt; ++count) {
      n = min64(n, nt - l);
      out[count] = {l, n, y, x, base};
      l += n, x = rows.x_first, n = rows.row_tiles;
      if (rows.image_rows > 0 && left == 0) {  // on in the next image
        base += rows.image_stride, y = rows.y_first, left = rows.image_rows - 1;
      } else {
        y += MH, --left;
      }
    }
    return count;
  }

  static void input(const T* plane, int64_t h, int64_t w, int64_t iy0, int64_t ix0, int64_t nt,
                    Rows rows, T* v, int64_t as) {
    alignas(64) T d[kAH][kAW][kL];
    alignas(64) T out[kAH][kAW][kL];
    if (rows.first < nt) {
      gather_pieces(plane, h, w, iy0, ix0, nt, rows, d);
    } else {
      const bool inside = ix0 >= 0 && ix0 + kSpan <= w;
      // Columns [ix0, ix0 + span) of the tiles' window; past the run's last tile, zeros.
      const int64_t x_lo = ix0 < 0 ? -ix0 : 0;
      const int64_t x_hi = min64(w - ix0, (nt - 1) * MW + kAW);
      alignas(64) T buf[kSpanPadded];
      for (int i = 0; i < kAH; ++i) {
        const int64_t y = iy0 + i;
        if (y < 0 || y >= h) {
          for (int l = 0; l < kL; ++l)
            for (int j = 0; j < kAW; ++j) d[i][j][l] = T(0);
          continue;
        }
        const T* row = plane + y * w + ix0;
        if (inside && nt == kL) {
          gather_row(row, d[i]);
          continue;
        }
        load_range(row, x_lo, x_hi, kSpanPadded, buf);
        gather_row(buf, d[i]);
      }
    }
    apply_2d<T, kL, kAH, kAH, FH::BT, kAW, kAW, FW::BT>(&d[0][0][0], &out[0][0][0]);
    store(&out[0][0][0], kAH * kAW, nt, v, as);
  }

  // input()'s patches of a run over several tile rows. Each piece's columns are copied to
  // where one row's would lie (column lane * m_w on), the even pieces into one buffer and the
  // odd into another: the r - 1 columns a piece's last tile reads past its tiles are then not
  // overwritten by the next piece (which has its own buffer) and the one after starts past
  // them (a full row of tiles, at least r - 1 columns). Each buffer is gathered as a row and
  // the lanes taken from the piece's.
  FASTCONV_WINOGRAD_NOINLINE static void gather_pieces(const T* plane, int64_t h, int64_t w,
                                                       int64_t iy0, int64_t ix0, int64_t nt,
                                                       Rows rows, T (*d)[kAW][kL]) {
    constexpr int kBuf = kSpanPadded + 2 * kL;
    alignas(64) T buf[2][kBuf];
    alignas(64) T odd_d[kAW][kL];
    Piece ps[kL];
    const int count = pieces(iy0, ix0, nt, rows, ps);
    // Lanes of odd pieces: an integer of T's width each, so that the select below vectorises.
    using Lane = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    Lane odd[kL];
    for (int l = 0; l < kL; ++l) odd[l] = 0;
    for (int q = 1; q < count; q += 2)
      for (int64_t l = ps[q].lane; l < ps[q].lane + ps[q].n; ++l) odd[l] = -1;
    // Columns no piece writes (lanes past nt) hold zeros: load_range with an empty range reads
    // nothing (vector zeroing where a plain loop became a memset call).
    for (int b = 0; b < 2; ++b) load_range(plane, 0, 0, kBuf, buf[b]);
    for (int i = 0; i < kAH; ++i) {
      for (int q = 0; q < count; ++q) {
        const Piece& pc = ps[q];
        const int64_t y = pc.y + i, cols = pc.n * MW + kAW - MW;
        const int64_t lo = y < 0 || y >= h ? 0 : min64(cols, pc.x < 0 ? -pc.x : 0);
        const int64_t hi = y < 0 || y >= h ? 0 : min64(cols, w - pc.x);
        const T* src = y < 0 || y >= h ? plane : plane + pc.base + y * w + pc.x;  // (or none)
        load_range(src, lo, hi, (cols + kL - 1) / kL * kL, buf[q & 1] + pc.lane * MW);
      }
      gather_row(buf[0], d[i]);
      if (count > 1) {
        gather_row(buf[1], odd_d);
        for (int j = 0; j < kAW; ++j)
          for (int l = 0; l < kL; ++l) d[i][j][l] = odd[l] != 0 ? odd_d[j][l] : d[i][j][l];
      }
    }
  }

  static void output(const T* mdom, int64_t as, int64_t nt, T bias, T* plane, int64_t h,
                     int64_t w, int64_t oy0, int64_t ox0, Rows rows) {
    alignas(64) T q[kAH][kAW][kL];
    alignas(64) T o[MH][MW][kL];
    T* qf = &q[0][0][0];
    for (int a = 0; a < kAH * kAW; ++a) {
      __builtin_prefetch(mdom + a * as + 2 * kL);
      load_range(mdom + a * as, 0, nt, kL, qf + a * kL);
    }
    apply_2d<T, kL, MH, kAH, FH::AT, MW, kAW, FW::AT>(qf, &o[0][0][0]);
    // A vector past the row: store_prefix loads whole vectors (masking only the store), and a
    // piece's columns start at any lane.
    alignas(64) T buf[kL * MW + kL];
    if (rows.first < nt) {  // each piece's columns of the interleaved row
      Piece ps[kL];
      const int count = pieces(oy0, ox0, nt, rows, ps);
      for (int i = 0; i < MH; ++i) {
        scatter_row(o[i], bias, buf);
        for (int c = 0; c < count; ++c) {
          const Piece& pc = ps[c];
          if (pc.y + i >= h) continue;
          T* row = plane + pc.base + (pc.y + i) * w + pc.x;
          store_prefix(buf + pc.lane * MW, min64(pc.n * MW, w - pc.x), row);
        }
      }
      return;
    }
    const int64_t cols = min64(nt * MW, w - ox0);  // ox0 >= 0
    for (int i = 0; i < MH && oy0 + i < h; ++i) {
      T* row = plane + (oy0 + i) * w + ox0;
      if (cols == kL * MW) {
        scatter_row(o[i], bias, row);
        continue;
      }
      scatter_row(o[i], bias, buf);
      store_prefix(buf, cols, row);
    }
  }

  static void grad(const T* plane, int64_t h, int64_t w, int64_t oy0, int64_t ox0, int64_t nt,
                   Rows rows, T* v, int64_t as) {
    alignas(64) T d[MH][MW][kL];
    alignas(64) T out[kAH][kAW][kL];
    alignas(64) T buf[kL * MW + kL];
    const int64_t cols = min64(nt * MW, w - ox0);  // ox0 >= 0
    if (rows.first < nt) {  // each piece's blocks into its lanes of one row, in lane order
      Piece ps[kL];
      const int count = pieces(oy0, ox0, nt, rows, ps);
      for (int i = 0; i < MH; ++i) {
        for (int c = 0; c < count; ++c) {
          const Piece& pc = ps[c];
          const int64_t span = (pc.n * MW + kL - 1) / kL * kL;  // zeros past its columns
          const bool in = pc.y + i < h;
          load_range(in ? plane + pc.base + (pc.y + i) * w + pc.x : plane, 0,
                     in ? min64(pc.n * MW, w - pc.x) : 0, span, buf + pc.lane * MW);
        }
        if (nt < kL) load_range(plane, 0, 0, kL * MW - nt * MW, buf + nt * MW);
        deinterleave(buf, d[i]);
      }
    } else {
      grad_rows(plane, h, w, oy0, ox0, cols, buf, d);
    }
    apply_2d<T, kL, kAH, MH, WH::G, kAW, MW, WW::G>(&d[0][0][0], &out[0][0][0]);
    store(&out[0][0][0], kAH * kAW, nt, v, as);
  }

  // grad()'s blocks of a run in one tile row (cols of its columns in the plane).
  static void grad_rows(const T* plane, int64_t h, int64_t w, int64_t oy0, int64_t ox0,
                        int64_t cols, T* buf, T (*d)[MW][kL]) {
    for (int i = 0; i < MH; ++i) {
      if (oy0 + i >= h) {
        for (int j = 0; j < MW; ++j)
          for (int l = 0; l < kL; ++l) d[i][j][l] = T(0);
        continue;
      }
      const T* row = plane + (oy0 + i) * w + ox0;
      if (cols == kL * MW) {
        deinterleave(row, d[i]);
        continue;
      }
      load_range(row, 0, cols, kL * MW, buf);
      deinterleave(buf, d[i]);
    }
  }

  static void weight(const T* mdom, int64_t as, int64_t np, bool flip, T* k, int64_t ps) {
    alignas(64) T q[kAH][kAW][kL];
    alignas(64) T o[kRH][R][kL];
    T* qf = &q[0][0][0];
    for (int a = 0; a < kAH * kAW; ++a) load_range(mdom + a * as, 0, np, kL, qf + a * kL);
    apply_2d<T, kL, kRH, kAH, WH::AT, R, kAW, WW::AT>(qf, &o[0][0][0]);
    for (int64_t l = 0; l < np; ++l)
      for (int i = 0; i < kRH; ++i)
        for (int j = 0; j < R; ++j) {
          const int tap = flip ? (kRH - 1 - i) * R + (R - 1 - j) : i * R + j;
          k[l * ps + tap] = o[i][j][l];
        }
  }

  // d[j][l] = row[l * MW + j], j < MW: one interleaved group (vectorised with permutes).
  static void deinterleave(const T* row, T (*d)[kL]) {
    if (deinterleave_lanes<T, MW>(row, d)) return;
    for (int l = 0; l < kL; ++l)
      static_for<MW>([&](auto j) { d[j][l] = row[l * MW + j]; });
  }

  // d[j][l] = row[l * MW + j] for a full run: columns j < MW deinterleaved, the last R - 1 are
  // the next tile's first R - 1.
  static void gather_row(const T* row, T (*d)[kL]) {
    deinterleave(row, d);
    static_for<kAW - MW>([&](auto j) {
      for (int l = 0; l + 1 < kL; ++l) d[MW + j][l] = d[j][l + 1];
      d[MW + j][kL - 1] = row[kL * MW + j];
    });
  }

  // row[l * MW + j] = o[j][l] + bias for a full run (one interleaved store group).
  static void scatter_row(const T (*o)[kL], T bias, T* row) {
    if (interleave_lanes<T, MW>(o, bias, row)) return;
    for (int l = 0; l < kL; ++l)
      static_for<MW>([&](auto j) { row[l * MW + j] = o[j][l] + bias; });
  }

  static void kernel(const T* k, int64_t ps, int64_t np, bool flip, T* u, int64_t as) {
    constexpr int kTaps = kRH * R;
    alignas(64) T g[kTaps][kL];  // tap i * R + j of kernel l at g[i * R + j][l]
    alignas(64) T out[kAH][kAW][kL];
    // Callers step through runs of kL kernels (the next at k + kL * ps): fetch the one after
    // next now. The weights are read once per call, usually from memory, and each run's loads
    // otherwise wait for their lines one run at a time.
    for (int l = 0; l < kL; ++l) __builtin_prefetch(k + (2 * kL + l) * ps);
    // A full run of kernels (taps contiguous, ps apart): one transpose of kL x taps, instead of
    // a scalar load and insert per element; true convolution then reverses the taps.
    if (np == kL && gather_lanes<T, kTaps>(k, ps, g)) {
      if (flip) {
        for (int t = 0; t < kTaps / 2; ++t)
          for (int l = 0; l < kL; ++l) {
            const T first = g[t][l];
            g[t][l] = g[kTaps - 1 - t][l];
            g[kTaps - 1 - t][l] = first;
          }
      }
    } else {
      for (int t = 0; t < kTaps; ++t) {
        const int64_t tap = flip ? kTaps - 1 - t : t;
        for (int l = 0; l < kL; ++l) g[t][l] = l < np ? k[l * ps + tap] : T(0);
      }
    }
    apply_2d<T, kL, kAH, kRH, FH::G, kAW, R, FW::G>(&g[0][0], &out[0][0][0]);
    store(&out[0][0][0], kAH * kAW, np, u, as);
  }

  // dst[a * as + l] = src[a][l] for l < n.
  static void store(const T* src, int count, int64_t n, T* dst, int64_t as) {
    for (int a = 0; a < count; ++a) store_prefix(src + a * kL, n, dst + a * as);
  }

  static winograd::TileKernels<T> table(const char* name) {
    return {&input, &output, &kernel, &grad, &weight, kL, name};
  }
};

// r = 3: m = 2, 4, 6; r = 2: m = 2, 3, 4 and 2-D 4x3, 3x4; r = 5: m = 2
// (algo/winograd_tiles.cc: tile_exists).
template <typename T>
const winograd::TileKernels<T>& winograd_table(int mh, int mw, int r, const char* isa) {
  static const winograd::TileKernels<T> tables[16] = {
      Tiles<T, 1, 2, 3>::table(isa), Tiles<T, 1, 4, 3>::table(isa),
      Tiles<T, 1, 6, 3>::table(isa), Tiles<T, 2, 2, 3>::table(isa),
      Tiles<T, 4, 4, 3>::table(isa), Tiles<T, 6, 6, 3>::table(isa),
      Tiles<T, 1, 2, 2>::table(isa), Tiles<T, 1, 3, 2>::table(isa),
      Tiles<T, 1, 4, 2>::table(isa), Tiles<T, 2, 2, 2>::table(isa),
      Tiles<T, 3, 3, 2>::table(isa), Tiles<T, 4, 4, 2>::table(isa),
      Tiles<T, 1, 2, 5>::table(isa), Tiles<T, 2, 2, 5>::table(isa),
      Tiles<T, 4, 3, 2>::table(isa), Tiles<T, 3, 4, 2>::table(isa)};
  if (mh != mw && mh > 1 && r == 2) return tables[mh == 4 ? 14 : 15];
  const bool two_d = mh > 1;
  const int m = mw;
  if (r == 5) return tables[12 + (two_d ? 1 : 0)];
  const int slot = r == 3 ? (m == 2 ? 0 : m == 4 ? 1 : 2) : m - 2;
  return tables[(r == 3 ? 0 : 6) + (two_d ? 3 : 0) + slot];
}

}  // namespace
}  // namespace fastconv

#define FASTCONV_DEFINE_WINOGRAD_TABLE(isa)                                                  \
  namespace fastconv::isa {                                                                  \
  const winograd::TileKernels<float>& f32_winograd_tiles(int mh, int mw, int r) {            \
    return winograd_table<float>(mh, mw, r, "f32_winograd_tiles_" #isa);                     \
  }                                                                                          \
  const winograd::TileKernels<double>& f64_winograd_tiles(int mh, int mw, int r) {           \
    return winograd_table<double>(mh, mw, r, "f64_winograd_tiles_" #isa);                    \
  }                                                                                          \
  }
