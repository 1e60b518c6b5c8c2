// Bodies of the batched FFT micro-kernels, compiled once per ISA by fft_ukernels_<isa>.cc (each
// TU defines FASTCONV_FFT_ISA and is built with its own flags; the lane loops auto-vectorise).
#include <cstdint>

#include "ukernels/fft/fft_ukernels.h"

namespace fastconv::FASTCONV_FFT_ISA {
namespace {

// y = -i x (forward) or +i x (inverse), in place on (re, im).
template <bool kFwd, typename T>
inline void rot(T& re, T& im) {
  const T r = re;
  if (kFwd) {
    re = im;
    im = -r;
  } else {
    re = -im;
    im = r;
  }
}

template <int R, bool kFwd, typename T>
inline void dft(T* xr, T* xi) {
  if constexpr (R == 2) {
    const T ar = xr[0] + xr[1], ai = xi[0] + xi[1];
    xr[1] = xr[0] - xr[1];
    xi[1] = xi[0] - xi[1];
    xr[0] = ar;
    xi[0] = ai;
  } else if constexpr (R == 4) {
    const T ar = xr[0] + xr[2], ai = xi[0] + xi[2], br = xr[0] - xr[2], bi = xi[0] - xi[2];
    const T cr = xr[1] + xr[3], ci = xi[1] + xi[3];
    T dr = xr[1] - xr[3], di = xi[1] - xi[3];
    rot<kFwd>(dr, di);  // d = -i (x1 - x3) forward
    xr[0] = ar + cr;
    xi[0] = ai + ci;
    xr[2] = ar - cr;
    xi[2] = ai - ci;
    xr[1] = br + dr;
    xi[1] = bi + di;
    xr[3] = br - dr;
    xi[3] = bi - di;
  } else if constexpr (R == 3) {
    const T s3 = T(0.86602540378443864676372317075294);
    const T tr = xr[1] + xr[2], ti = xi[1] + xi[2];
    const T mr = xr[0] - T(0.5) * tr, mi = xi[0] - T(0.5) * ti;
    T dr = s3 * (xr[1] - xr[2]), di = s3 * (xi[1] - xi[2]);
    rot<kFwd>(dr, di);
    xr[0] += tr;
    xi[0] += ti;
    xr[1] = mr + dr;
    xi[1] = mi + di;
    xr[2] = mr - dr;
    xi[2] = mi - di;
  } else {  // R == 5
    const T c1 = T(0.30901699437494742410229341718282), c2 = T(-0.80901699437494742410229341718282);
    const T s1 = T(0.95105651629515357211643933337938), s2 = T(0.58778525229247312916870595463907);
    const T t1r = xr[1] + xr[4], t1i = xi[1] + xi[4], t2r = xr[2] + xr[3], t2i = xi[2] + xi[3];
    const T d1r = xr[1] - xr[4], d1i = xi[1] - xi[4], d2r = xr[2] - xr[3], d2i = xi[2] - xi[3];
    const T a1r = xr[0] + c1 * t1r + c2 * t2r, a1i = xi[0] + c1 * t1i + c2 * t2i;
    const T a2r = xr[0] + c2 * t1r + c1 * t2r, a2i = xi[0] + c2 * t1i + c1 * t2i;
    T b1r = s1 * d1r + s2 * d2r, b1i = s1 * d1i + s2 * d2i;
    T b2r = s2 * d1r - s1 * d2r, b2i = s2 * d1i - s1 * d2i;
    rot<kFwd>(b1r, b1i);
    rot<kFwd>(b2r, b2i);
    xr[0] += t1r + t2r;
    xi[0] += t1i + t2i;
    xr[1] = a1r + b1r;
    xi[1] = a1i + b1i;
    xr[4] = a1r - b1r;
    xi[4] = a1i - b1i;
    xr[2] = a2r + b2r;
    xi[2] = a2i + b2i;
    xr[3] = a2r - b2r;
    xi[3] = a2i - b2i;
  }
}

// One butterfly column: R positions p[q], each `lanes` wide. kTw: apply twiddles w (q >= 1).
template <int R, bool kDif, bool kTw, typename T>
void butterfly(T* const* pr, int64_t io, const T* wr, const T* wi, int64_t lanes) {
  // The R positions never overlap (distinct rows of one transform): no run-time alias checks.
#pragma GCC ivdep
  for (int64_t b = 0; b < lanes; ++b) {
    T xr[R], xi[R];
    for (int q = 0; q < R; ++q) {
      xr[q] = pr[q][b];
      xi[q] = pr[q][io + b];
    }
    if (kTw && !kDif) {
      for (int q = 1; q < R; ++q) {
        const T r = xr[q] * wr[q] - xi[q] * wi[q];
        xi[q] = xr[q] * wi[q] + xi[q] * wr[q];
        xr[q] = r;
      }
    }
    dft<R, kDif>(xr, xi);
    if (kTw && kDif) {
      for (int q = 1; q < R; ++q) {
        const T r = xr[q] * wr[q] - xi[q] * wi[q];
        xi[q] = xr[q] * wi[q] + xi[q] * wr[q];
        xr[q] = r;
      }
    }
    for (int q = 0; q < R; ++q) {
      pr[q][b] = xr[q];
      pr[q][io + b] = xi[q];
    }
  }
}

template <int R, bool kDif, typename T>
void stage(T* data, int64_t n, int64_t lp, const T* tw, int64_t ps, int64_t io, int64_t lanes) {
  for (int64_t g = 0; g < n; g += lp * R) {
    for (int64_t j = 0; j < lp; ++j) {
      T* p[R];
      T wr[R], wi[R];
      for (int q = 0; q < R; ++q) p[q] = data + (g + j + q * lp) * ps;
      for (int q = 1; q < R; ++q) {
        wr[q] = tw[2 * (j * (R - 1) + q - 1)];
        const T im = tw[2 * (j * (R - 1) + q - 1) + 1];
        wi[q] = kDif ? im : -im;  // the inverse uses conjugate twiddles
      }
      if (j == 0)
        butterfly<R, kDif, false>(p, io, wr, wi, lanes);
      else
        butterfly<R, kDif, true>(p, io, wr, wi, lanes);
    }
  }
}

template <typename T>
void fft_stage(T* data, int64_t n, int64_t lp, int radix, const T* tw, int64_t ps, int64_t io,
               int64_t lanes, bool dif) {
#define FASTCONV_FFT_RADIX(r)                          \
  case r:                                              \
    if (dif)                                           \
      stage<r, true>(data, n, lp, tw, ps, io, lanes);  \
    else                                               \
      stage<r, false>(data, n, lp, tw, ps, io, lanes); \
    return;
  switch (radix) {
    FASTCONV_FFT_RADIX(2)
    FASTCONV_FFT_RADIX(3)
    FASTCONV_FFT_RADIX(4)
    FASTCONV_FFT_RADIX(5)
    default:
      return;
  }
#undef FASTCONV_FFT_RADIX
}

template <typename T>
void fft_real_post(const T* z, int64_t zps, int64_t zio, const int32_t* perm, int64_t n, T* out,
                   int64_t ops, int64_t oio, int64_t half, int64_t lanes) {
  for (int64_t k = 0; k <= n / 2; ++k) {
    const T* zk = z + perm[k] * zps;
    const T* zn = z + perm[(n - k) % n] * zps;
    T* o = out + k * ops;
#pragma GCC ivdep
    for (int64_t b = 0; b < lanes; ++b) {
      const T a = zk[b], bb = zk[zio + b], c = zn[b], d = zn[zio + b];
      o[b] = T(0.5) * (a + c);
      o[oio + b] = T(0.5) * (bb - d);
      o[half + b] = T(0.5) * (bb + d);
      o[oio + half + b] = T(0.5) * (c - a);
    }
  }
}

template <typename T>
void fft_real_pre(const T* in, int64_t ips, int64_t iio, int64_t half, const int32_t* perm,
                  int64_t n, T* z, int64_t zps, int64_t zio, int64_t lanes) {
  for (int64_t k = 0; k < n; ++k) {
    T* zk = z + perm[k] * zps;
    if (k <= n / 2) {
      const T* s = in + k * ips;
#pragma GCC ivdep
      for (int64_t b = 0; b < lanes; ++b) {
        zk[b] = s[b] - s[iio + half + b];
        zk[zio + b] = s[iio + b] + s[half + b];
      }
    } else {
      const T* s = in + (n - k) * ips;
#pragma GCC ivdep
      for (int64_t b = 0; b < lanes; ++b) {
        zk[b] = s[b] + s[iio + half + b];
        zk[zio + b] = s[half + b] - s[iio + b];
      }
    }
  }
}

}  // namespace

void f32_fft_stage(float* d, int64_t n, int64_t lp, int r, const float* tw, int64_t ps, int64_t io,
                   int64_t lanes, bool dif) {
  fft_stage<float>(d, n, lp, r, tw, ps, io, lanes, dif);
}
void f64_fft_stage(double* d, int64_t n, int64_t lp, int r, const double* tw, int64_t ps,
                   int64_t io, int64_t lanes, bool dif) {
  fft_stage<double>(d, n, lp, r, tw, ps, io, lanes, dif);
}
void f32_fft_real_post(const float* z, int64_t zps, int64_t zio, const int32_t* perm, int64_t n,
                       float* out, int64_t ops, int64_t oio, int64_t half, int64_t lanes) {
  fft_real_post<float>(z, zps, zio, perm, n, out, ops, oio, half, lanes);
}
void f64_fft_real_post(const double* z, int64_t zps, int64_t zio, const int32_t* perm, int64_t n,
                       double* out, int64_t ops, int64_t oio, int64_t half, int64_t lanes) {
  fft_real_post<double>(z, zps, zio, perm, n, out, ops, oio, half, lanes);
}
void f32_fft_real_pre(const float* in, int64_t ips, int64_t iio, int64_t half, const int32_t* perm,
                      int64_t n, float* z, int64_t zps, int64_t zio, int64_t lanes) {
  fft_real_pre<float>(in, ips, iio, half, perm, n, z, zps, zio, lanes);
}
void f64_fft_real_pre(const double* in, int64_t ips, int64_t iio, int64_t half, const int32_t* perm,
                      int64_t n, double* z, int64_t zps, int64_t zio, int64_t lanes) {
  fft_real_pre<double>(in, ips, iio, half, perm, n, z, zps, zio, lanes);
}

}  // namespace fastconv::FASTCONV_FFT_ISA
