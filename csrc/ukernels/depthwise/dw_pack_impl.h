// Row kernels of the depthwise driver's padded, phase-split planes (see dw_ukernels.h): source
// rows into their phase rows with the padding zeroed (pack_rows), and back (unpack_rows: the
// crop of a padded plane, the interleave of per-phase outputs). They run a column of vectors at
// a time down all rows, so the clipping masks of a column's loads are made once; stride 2 runs
// through vector (de)interleaves; the last whole vector of a row is moved back to end at the
// row's end (it rewrites what its neighbour stored), so stores stay unmasked.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/depthwise/dw_vector.h"

namespace fastconv::FASTCONV_DW_NS {
namespace {

// chunk(q, m) for vectors of L elements covering [0, width): m = L each, the last one moved
// back to end at width; a row narrower than L is one chunk of m = width.
template <int64_t L, typename Chunk>
inline void for_chunks(int64_t width, Chunk&& chunk) {
  if (width < L) {
    if (width > 0) chunk(int64_t(0), width);
    return;
  }
  int64_t q = 0;
  for (; q + L <= width; q += L) chunk(q, L);
  if (q < width) chunk(width - L, L);
}

template <typename T>
inline void store_part(T* p, typename V<T>::type v, int64_t m) {
  if (m == V<T>::lanes) {
    V<T>::store(p, v);
  } else {
    V<T>::store_n(p, v, m);
  }
}

// For r < rows: fn(r, a(src + r * src_pitch), b(src + r * src_pitch)) with the two clipped
// loads a and b, as plain loads where neither needs clipping.
template <typename T, typename Fn>
inline void for_rows(const T* src, int64_t src_pitch, int64_t rows, const ClippedLoad<T>& a,
                     const ClippedLoad<T>& b, Fn&& fn) {
  if (a.full && b.full) {
    for (int64_t r = 0; r < rows; ++r, src += src_pitch)
      fn(r, V<T>::load(src + a.b), V<T>::load(src + b.b));
  } else {
    for (int64_t r = 0; r < rows; ++r, src += src_pitch) fn(r, a(src), b(src));
  }
}

// Rows r < rows of a padded plane: row r of plane e < planes at dst + r * pitch + e *
// phase_pitch, position q = src[r * src_pitch + q * sx + e - pad] where that index lies in
// [0, n), else 0 (planes == sx: the stride phases; more: column planes, plane e + sx the plane e
// a column on). One band of rows, a column of vectors at a time.
template <typename T>
void pack_band(const T* src, int64_t src_pitch, int64_t rows, int64_t n, int64_t pad, int64_t sx,
               int64_t width, T* dst, int64_t pitch, int64_t phase_pitch, int64_t planes) {
  using Vec = V<T>;
  using VT = typename Vec::type;
  constexpr int64_t L = Vec::lanes;
  if (sx == 1 && planes == 1) {
    for_chunks<L>(width, [&](int64_t q, int64_t m) {
      const ClippedLoad<T> a(q - pad, n);
      for_rows(src, src_pitch, rows, a, a, [&](int64_t r, VT v, VT) {
        store_part(dst + r * pitch + q, v, m);
      });
    });
  } else if (sx == 2 && planes == 2) {  // 2L source elements per vector of each phase
    for_chunks<L>(width, [&](int64_t q, int64_t m) {
      const ClippedLoad<T> a(2 * q - pad, n), b(2 * q - pad + L, n);
      for_rows(src, src_pitch, rows, a, b, [&](int64_t r, VT lo, VT hi) {
        VT even, odd;
        Vec::deinterleave(lo, hi, even, odd);
        store_part(dst + r * pitch + q, even, m);
        store_part(dst + r * pitch + phase_pitch + q, odd, m);
      });
    });
  } else if (sx == 2) {
    // Column planes of a stride-2 row (planes != 2), up to 4 in one sweep: the pair of planes
    // (e0, e0 + 1) from the 2L elements at 2q + e0 - pad (the second pair's loads hit the lines
    // the first brought); planes 4 on in further sweeps.
    if (planes > 4)
      pack_band(src, src_pitch, rows, n, pad - 4, 2, width, dst + 4 * phase_pitch, pitch,
                phase_pitch, planes - 4);
    for_chunks<L>(width, [&](int64_t q, int64_t m) {
      const ClippedLoad<T> a0(2 * q - pad, n), b0(2 * q - pad + L, n);
      const ClippedLoad<T> a1(2 * q - pad + 2, n), b1(2 * q - pad + 2 + L, n);
      const bool full = a0.full && b0.full && a1.full && b1.full;
      const T* row = src;
      for (int64_t r = 0; r < rows; ++r, row += src_pitch) {
        VT even, odd;
        T* d = dst + r * pitch + q;
        Vec::deinterleave(full ? Vec::load(row + a0.b) : a0(row),
                          full ? Vec::load(row + b0.b) : b0(row), even, odd);
        store_part(d, even, m);
        if (planes < 2) continue;
        store_part(d + phase_pitch, odd, m);
        if (planes < 3) continue;
        Vec::deinterleave(full ? Vec::load(row + a1.b) : a1(row),
                          full ? Vec::load(row + b1.b) : b1(row), even, odd);
        store_part(d + 2 * phase_pitch, even, m);
        if (planes >= 4) store_part(d + 3 * phase_pitch, odd, m);
      }
    });
  } else if (sx == 1) {
    for (int64_t e = 0; e < planes; ++e)
      pack_band(src, src_pitch, rows, n, pad - e, 1, width, dst + e * phase_pitch, pitch,
                phase_pitch, 1);
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t ph = 0; ph < planes; ++ph)
        for (int64_t q = 0; q < width; ++q) {
          const int64_t i = q * sx + ph - pad;
          dst[r * pitch + ph * phase_pitch + q] = i >= 0 && i < n ? src[r * src_pitch + i] : T(0);
        }
  }
}

// Rows r < rows: dst[r * dst_pitch + j] (j < n) = the phase row (j + pad) % sx of source row r
// at q = (j + pad) / sx, 0 where q >= width; phase row ph of row r starts at
// src + r * src_pitch + ph * phase_pitch. One band of rows, a column of vectors at a time.
template <typename T>
void unpack_band(const T* src, int64_t src_pitch, int64_t phase_pitch, int64_t rows,
                 int64_t width, int64_t sx, int64_t pad, int64_t n, T* dst, int64_t dst_pitch) {
  using Vec = V<T>;
  using VT = typename Vec::type;
  constexpr int64_t L = Vec::lanes;
  if (sx == 1) {
    for_chunks<L>(n, [&](int64_t j, int64_t m) {
      const ClippedLoad<T> a(j + pad, width);
      for_rows(src, src_pitch, rows, a, a, [&](int64_t r, VT v, VT) {
        store_part(dst + r * dst_pitch + j, v, m);
      });
    });
  } else if (sx == 2) {
    // 2L outputs per step: even lanes from phase p0 = (j + pad) % 2 at q, odd from the other
    // phase at q + p0.
    for_chunks<2 * L>(n, [&](int64_t j, int64_t m) {
      const int64_t p0 = (j + pad) & 1, q = (j + pad) >> 1;
      const ClippedLoad<T> a(p0 * phase_pitch + q, p0 * phase_pitch + width);
      const ClippedLoad<T> b((1 - p0) * phase_pitch + q + p0, (1 - p0) * phase_pitch + width);
      for_rows(src, src_pitch, rows, a, b, [&](int64_t r, VT first, VT second) {
        VT lo, hi;
        Vec::interleave(first, second, lo, hi);
        T* d = dst + r * dst_pitch + j;
        store_part(d, lo, std::min(m, L));
        if (m > L) store_part(d + L, hi, m - L);
      });
    });
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) {
        const int64_t q = (j + pad) / sx;
        dst[r * dst_pitch + j] =
            q < width ? src[r * src_pitch + ((j + pad) % sx) * phase_pitch + q] : T(0);
      }
  }
}

// Rows per column sweep: as many as keep a band of written rows within 16 KiB of L1 (whole
// 114x114 planes swept column by column went to L2: the AVX2 pack was 46% of dw112's forward).
template <typename T>
int64_t band_rows(int64_t row_elems) {
  return std::max<int64_t>(8, (16 << 10) / std::max<int64_t>(1, row_elems * int64_t(sizeof(T))));
}

template <typename T>
void pack_rows(const T* src, int64_t src_pitch, int64_t rows, int64_t n, int64_t pad, int64_t sx,
               int64_t width, T* dst, int64_t dst_pitch, int64_t phase_pitch, int64_t planes) {
  const int64_t band = band_rows<T>(planes * width);
  for (int64_t r = 0; r < rows; r += band)
    pack_band(src + r * src_pitch, src_pitch, std::min(band, rows - r), n, pad, sx, width,
              dst + r * dst_pitch, dst_pitch, phase_pitch, planes);
}

template <typename T>
void unpack_rows(const T* src, int64_t src_pitch, int64_t phase_pitch, int64_t rows,
                 int64_t width, int64_t sx, int64_t pad, int64_t n, T* dst, int64_t dst_pitch) {
  const int64_t band = band_rows<T>(n);
  for (int64_t r = 0; r < rows; r += band)
    unpack_band(src + r * src_pitch, src_pitch, phase_pitch, std::min(band, rows - r), width,
                sx, pad, n, dst + r * dst_pitch, dst_pitch);
}

}  // namespace
}  // namespace fastconv::FASTCONV_DW_NS
