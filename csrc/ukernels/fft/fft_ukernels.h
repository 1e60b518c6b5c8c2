// Batched FFT micro-kernels: one radix-2/3/4/5 stage and the real two-for-one pre/post passes,
// each vectorised across the lanes (independent transforms) stored contiguously per position.
#pragma once
#include <cstdint>

namespace fastconv {

// One in-place stage over split-complex lanes. Element (position p, lane b) has its real part at
// data[p * ps + b] and its imaginary part at data[p * ps + io + b], b < lanes. Positions form
// groups of lp * radix; inside a group, butterfly j < lp combines positions j + q * lp. tw holds
// (re, im) of exp(-2 pi i q j / (lp * radix)) at tw[2 * (j * (radix - 1) + q - 1)].
// dif: DFT then twiddle (forward, natural order in); else twiddle then DFT (inverse, conjugate
// twiddles).
template <typename T>
using FftStageFn = void (*)(T* data, int64_t n, int64_t lp, int radix, const T* tw, int64_t ps,
                            int64_t io, int64_t lanes, bool dif);

// Real two-for-one post-pass (forward): z holds the complex FFT (positions in the order given by
// perm) of lanes a + i b; writes X_a to out lanes [0, lanes) and X_b to lanes [half, half + lanes)
// for bins 0 .. n/2. Inverse pre-pass: reads those half spectra and writes z = x_a + i x_b in
// perm order, ready for an inverse transform.
template <typename T>
using FftRealPostFn = void (*)(const T* z, int64_t zps, int64_t zio, const int32_t* perm, int64_t n,
                               T* out, int64_t ops, int64_t oio, int64_t half, int64_t lanes);
template <typename T>
using FftRealPreFn = void (*)(const T* in, int64_t ips, int64_t iio, int64_t half,
                              const int32_t* perm, int64_t n, T* z, int64_t zps, int64_t zio,
                              int64_t lanes);

#define FASTCONV_FFT_DECLARE(isa)                                                                  \
  namespace isa {                                                                                  \
  void f32_fft_stage(float*, int64_t, int64_t, int, const float*, int64_t, int64_t, int64_t,       \
                     bool);                                                                        \
  void f64_fft_stage(double*, int64_t, int64_t, int, const double*, int64_t, int64_t, int64_t,     \
                     bool);                                                                        \
  void f32_fft_real_post(const float*, int64_t, int64_t, const int32_t*, int64_t, float*, int64_t, \
                         int64_t, int64_t, int64_t);                                               \
  void f64_fft_real_post(const double*, int64_t, int64_t, const int32_t*, int64_t, double*,        \
                         int64_t, int64_t, int64_t, int64_t);                                      \
  void f32_fft_real_pre(const float*, int64_t, int64_t, int64_t, const int32_t*, int64_t, float*,  \
                        int64_t, int64_t, int64_t);                                                \
  void f64_fft_real_pre(const double*, int64_t, int64_t, int64_t, const int32_t*, int64_t,         \
                        double*, int64_t, int64_t, int64_t);                                       \
  }
FASTCONV_FFT_DECLARE(scalar)
FASTCONV_FFT_DECLARE(avx2)
FASTCONV_FFT_DECLARE(avx512)
#undef FASTCONV_FFT_DECLARE

}  // namespace fastconv
