// Multi-dimensional transforms of tiles held as [position][lane] (row-column: real W transforms,
// then complex H and D), parallel over (line, lane chunk), and the padded lane strides they use.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

#include "fastconv/geometry.h"
#include "fastconv/parallel.h"
#include "fft/fft.h"

namespace fastconv::fft {

// Strides between transform positions: an odd number of 16-element blocks, so a column of
// positions spreads over all cache sets instead of a power-of-two stride's few.
inline int64_t pad_stride(int64_t v) {
  int64_t p = (v + 15) / 16 * 16;
  if (p > 64 && (p / 16) % 2 == 0) p += 16;  // up to 64 every access spans the whole stride
  return p;
}
inline int64_t rstride(int64_t lanes) { return pad_stride(lanes); }      // real tiles [pos][lanes]
inline int64_t fstride(int64_t lanes) { return pad_stride(2 * lanes); }  // spectra [f][re | im]

// Calls fn(line, b0, b1) for every line and a split of [0, lanes) into chunks (multiples of 16).
inline void for_lines(int64_t lines, int64_t lanes,
                      const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  if (lines <= 0 || lanes <= 0) return;
  const int64_t threads = get_num_threads();
  const int64_t want = std::max<int64_t>(1, (4 * threads + lines - 1) / lines);
  const int64_t nchunks = std::min<int64_t>(want, (lanes + 15) / 16);
  const int64_t chunk = ((lanes + nchunks - 1) / nchunks + 15) / 16 * 16;
  const int64_t per_line = (lanes + chunk - 1) / chunk;
  parallel_for(lines * per_line, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b0 = (i % per_line) * chunk;
      fn(i / per_line, b0, std::min(lanes, b0 + chunk));
    }
  });
}

// Calls fn(r0, r1) on the real lanes of complex pairs [p0, p1) of a two-for-one layout with
// `lanes` lanes: [p0, p1) and [half + p0, half + p1), merged when they cover everything.
template <typename Fn>
void pair_lanes(int64_t lanes, int64_t p0, int64_t p1, Fn&& fn) {
  const int64_t half = lanes / 2;
  if (p0 == 0 && p1 == half) {
    fn(int64_t(0), lanes);
  } else {
    fn(p0, p1);
    fn(half + p0, half + p1);
  }
}

// Plans of the three dims (D, H, W; unused dims have length 1) of one tile shape.
template <typename T>
struct PlanNd {
  Plan<T> p[3];
  Dims n{1, 1, 1};
  int64_t fw = 1;  // bins kept along W: n[2] / 2 + 1
};

// Forward transform of real tiles R ([pos][lanes], only rows pd < nz_d, ph < nz_h nonzero) into
// spectra S ([kd][kh][kw][re lanes | im lanes]); R is clobbered.
template <typename T>
void forward_nd(const PlanNd<T>& pl, T* R, int64_t lanes, T* S, int64_t nz_d, int64_t nz_h,
                int64_t p0 = 0, int64_t p1 = -1) {
  const int64_t n0 = pl.n[0], n1 = pl.n[1], n2 = pl.n[2], fw = pl.fw, half = lanes / 2;
  const int64_t fs = fstride(lanes), rs = rstride(lanes), srow = fw * fs;
  if (p1 < 0) p1 = half;
  for_lines(n0 * n1, p1 - p0, [&](int64_t row, int64_t c0, int64_t c1) {
    const int64_t pd = row / n1, ph = row % n1, b0 = p0 + c0, b1 = p0 + c1;
    T* s = S + row * srow;
    if (pd >= nz_d || ph >= nz_h) {
      for (int64_t k = 0; k < fw; ++k)
        for (int64_t b = b0; b < b1; ++b) {
          s[k * fs + b] = s[k * fs + half + b] = T(0);
          s[k * fs + lanes + b] = s[k * fs + lanes + half + b] = T(0);
        }
      return;
    }
    rfft(pl.p[2], R + row * n2 * rs, rs, half, b0, b1, s, fs, lanes);
  });
  pair_lanes(lanes, p0, p1, [&](int64_t r0, int64_t r1) {
    if (n1 > 1)
      for_lines(std::min(nz_d, n0) * fw, r1 - r0, [&](int64_t line, int64_t b0, int64_t b1) {
        const int64_t pd = line / fw, kw = line % fw;
        forward(pl.p[1], S + (pd * n1 * fw + kw) * fs + r0 + b0, srow, lanes, b1 - b0);
      });
    if (n0 > 1)
      for_lines(n1 * fw, r1 - r0, [&](int64_t line, int64_t b0, int64_t b1) {
        forward(pl.p[0], S + line * fs + r0 + b0, n1 * srow, lanes, b1 - b0);
      });
  });
}

// Inverse over the D and H dims in place on S (lane stride ls), H only for rows pd < need_d.
template <typename T>
void inverse_dh(const PlanNd<T>& pl, T* S, int64_t ls, int64_t need_d, int64_t p0 = 0,
                int64_t p1 = -1) {
  const int64_t n0 = pl.n[0], n1 = pl.n[1], fw = pl.fw, fs = fstride(ls), srow = fw * fs;
  if (p1 < 0) p1 = ls / 2;
  pair_lanes(ls, p0, p1, [&](int64_t r0, int64_t r1) {
    if (n0 > 1)
      for_lines(n1 * fw, r1 - r0, [&](int64_t line, int64_t b0, int64_t b1) {
        inverse(pl.p[0], S + line * fs + r0 + b0, n1 * srow, ls, b1 - b0);
      });
    if (n1 > 1)
      for_lines(std::min(need_d, n0) * fw, r1 - r0, [&](int64_t line, int64_t b0, int64_t b1) {
        const int64_t pd = line / fw, kw = line % fw;
        inverse(pl.p[1], S + (pd * n1 * fw + kw) * fs + r0 + b0, srow, ls, b1 - b0);
      });
  });
}

// Inverse real W transforms of lanes [l0, l0 + lanes) of S (lane stride ls) into R ([pos][lanes]),
// rows pd < need_d, ph < need_h only.
template <typename T>
void inverse_w(const PlanNd<T>& pl, const T* S, int64_t ls, int64_t l0, int64_t lanes, T* R,
               int64_t need_d, int64_t need_h, int64_t p0 = 0, int64_t p1 = -1) {
  const int64_t n1 = pl.n[1], n2 = pl.n[2], fw = pl.fw, half = lanes / 2;
  const int64_t fs = fstride(ls), rs = rstride(lanes);
  const int64_t nd = std::min(need_d, pl.n[0]), nh = std::min(need_h, n1);
  if (p1 < 0) p1 = half;
  for_lines(nd * nh, p1 - p0, [&](int64_t line, int64_t c0, int64_t c1) {
    const int64_t row = (line / nh) * n1 + line % nh;
    irfft(pl.p[2], S + row * fw * fs + l0, fs, ls, R + row * n2 * rs, rs, half, p0 + c0, p0 + c1);
  });
}

}  // namespace fastconv::fft
