// Plans (factorisation, twiddles, digit reversal) and the driver loops over the per-ISA stages.
#include "fft/fft.h"

#include <cmath>

#include "isa/isa_dispatch.h"
#include "ukernels/fft/fft_ukernels.h"

namespace fastconv::fft {
namespace {

// Radices in the order stages run for the inverse (DIT: small sub-transforms first): 4s, then a 2,
// then 3s and 5s.
int factorize(int64_t n, int* radices) {
  int count = 0;
  while (n % 4 == 0) radices[count++] = 4, n /= 4;
  if (n % 2 == 0) radices[count++] = 2, n /= 2;
  while (n % 3 == 0) radices[count++] = 3, n /= 3;
  while (n % 5 == 0) radices[count++] = 5, n /= 5;
  return n == 1 ? count : -1;
}

int64_t twiddle_count(int64_t n) {  // (re, im) pairs over all stages
  int radices[kMaxStages];
  const int count = factorize(n, radices);
  int64_t lp = 1, total = 0;
  for (int s = 0; s < count; ++s) {
    total += lp * (radices[s] - 1);
    lp *= radices[s];
  }
  return total;
}

int64_t round64(int64_t b) { return (b + 63) / 64 * 64; }

template <typename T>
struct Kernels {
  FftStageFn<T> stage;
  FftRealPostFn<T> post;
  FftRealPreFn<T> pre;
};

#define FASTCONV_FFT_KERNELS(T, isa, p) \
  Kernels<T>{isa::p##_fft_stage, isa::p##_fft_real_post, isa::p##_fft_real_pre}

template <typename T>
Kernels<T> select_kernels();
template <>
Kernels<float> select_kernels<float>() {
  return FASTCONV_BY_ISA(FASTCONV_FFT_KERNELS(float, scalar, f32),
                         FASTCONV_FFT_KERNELS(float, avx2, f32),
                         FASTCONV_FFT_KERNELS(float, avx512, f32));
}
template <>
Kernels<double> select_kernels<double>() {
  return FASTCONV_BY_ISA(FASTCONV_FFT_KERNELS(double, scalar, f64),
                         FASTCONV_FFT_KERNELS(double, avx2, f64),
                         FASTCONV_FFT_KERNELS(double, avx512, f64));
}
#undef FASTCONV_FFT_KERNELS

template <typename T>
const Kernels<T>& kernels() {
  static const Kernels<T> k = select_kernels<T>();
  return k;
}

template <typename T>
int64_t twiddle_bytes(int64_t n) {
  return round64(twiddle_count(n) * 2 * int64_t(sizeof(T)));
}

}  // namespace

bool is_smooth(int64_t n) {
  if (n < 1) return false;
  for (int p : {2, 3, 5})
    while (n % p == 0) n /= p;
  return n == 1;
}

int64_t next_smooth(int64_t n) {
  if (n <= 1) return 1;
  while (!is_smooth(n)) ++n;
  return n;
}

template <typename T>
int64_t plan_bytes(int64_t n) {  // twiddles, perm, then a scratch table of n/2 + 1 roots
  return twiddle_bytes<T>(n) + round64(n * 4) + round64((n / 2 + 1) * 16);
}

template <typename T>
Plan<T> make_plan(int64_t n, void* mem) {
  Plan<T> plan;
  plan.n = n;
  int radices[kMaxStages];
  plan.nstages = factorize(n, radices);
  T* tw = static_cast<T*>(mem);
  int32_t* perm = reinterpret_cast<int32_t*>(static_cast<char*>(mem) + twiddle_bytes<T>(n));
  // cos / sin of 2 pi m / n for m <= n / 2 in the plan's scratch: calls on the first octant only
  // and the symmetries (cos/sin calls dominated plan time); every stage twiddle is one of them.
  const double two_pi = 6.283185307179586476925286766559;
  double* cs =
      reinterpret_cast<double*>(static_cast<char*>(mem) + twiddle_bytes<T>(n) + round64(n * 4));
  const int64_t h = n / 2;
  for (int64_t m = 0; m <= h; ++m) {
    double c, sn;
    if (n % 8 == 0 && m > n / 4) {
      c = -cs[2 * (h - m)], sn = cs[2 * (h - m) + 1];
    } else if (n % 8 == 0 && m > n / 8) {
      c = cs[2 * (n / 4 - m) + 1], sn = cs[2 * (n / 4 - m)];
    } else {
      c = std::cos(two_pi * double(m) / double(n)), sn = std::sin(two_pi * double(m) / double(n));
    }
    cs[2 * m] = c, cs[2 * m + 1] = sn;
  }
  auto root = [&](int64_t m, double* c, double* sn) {  // exp(-2 pi i m / n)
    m %= n;
    if (m <= h) {
      *c = cs[2 * m], *sn = -cs[2 * m + 1];
    } else {
      *c = cs[2 * (n - m)], *sn = cs[2 * (n - m) + 1];
    }
  };
  int64_t lp = 1, off = 0;
  for (int s = 0; s < plan.nstages; ++s) {
    const int r = radices[s];
    plan.stages[s] = Stage{r, lp, off};
    const int64_t step = n / (lp * r);  // w_{lp r}^{jq} = w_n^{jq step}
    for (int64_t j = 0; j < lp; ++j)
      for (int q = 1; q < r; ++q) {
        double c, sn;
        root(j * q * step, &c, &sn);
        tw[2 * (off + j * (r - 1) + q - 1)] = T(c);
        tw[2 * (off + j * (r - 1) + q - 1) + 1] = T(sn);
      }
    off += lp * (r - 1);
    lp *= r;
  }
  // Digit reversal: input index i of a DIT over radices r_1..r_k sits at
  // (i mod r_k) * (n / r_k) + pos(i / r_k) over r_1..r_{k-1}; built stage by stage in place
  // (descending, so every entry is read before it is overwritten), without divisions.
  perm[0] = 0;
  int64_t len = 1;
  for (int s = 0; s < plan.nstages; ++s) {
    const int r = radices[s];
    for (int64_t m = len - 1; m >= 0; --m) {
      const int32_t pm = perm[m];
      for (int q = r - 1; q >= 0; --q) perm[m * r + q] = int32_t(q * len + pm);
    }
    len *= r;
  }
  plan.tw = tw;
  plan.perm = perm;
  return plan;
}

template <typename T>
void forward(const Plan<T>& plan, T* data, int64_t ps, int64_t io, int64_t lanes) {
  const auto stage = kernels<T>().stage;
  for (int s = plan.nstages - 1; s >= 0; --s) {
    const Stage& st = plan.stages[s];
    stage(data, plan.n, st.lp, st.radix, plan.tw + 2 * st.tw_offset, ps, io, lanes, true);
  }
}

template <typename T>
void inverse(const Plan<T>& plan, T* data, int64_t ps, int64_t io, int64_t lanes) {
  const auto stage = kernels<T>().stage;
  for (int s = 0; s < plan.nstages; ++s) {
    const Stage& st = plan.stages[s];
    stage(data, plan.n, st.lp, st.radix, plan.tw + 2 * st.tw_offset, ps, io, lanes, false);
  }
}

template <typename T>
void rfft(const Plan<T>& plan, T* x, int64_t xps, int64_t half, int64_t b0, int64_t b1, T* out,
          int64_t ops, int64_t oio) {
  if (b1 <= b0) return;
  forward(plan, x + b0, xps, half, b1 - b0);
  kernels<T>().post(x + b0, xps, half, plan.perm, plan.n, out + b0, ops, oio, half, b1 - b0);
}

template <typename T>
void irfft(const Plan<T>& plan, const T* in, int64_t ips, int64_t iio, T* x, int64_t xps,
           int64_t half, int64_t b0, int64_t b1) {
  if (b1 <= b0) return;
  kernels<T>().pre(in + b0, ips, iio, half, plan.perm, plan.n, x + b0, xps, half, b1 - b0);
  inverse(plan, x + b0, xps, half, b1 - b0);
}

#define FASTCONV_INSTANTIATE(T)                                                              \
  template int64_t plan_bytes<T>(int64_t);                                                   \
  template Plan<T> make_plan<T>(int64_t, void*);                                             \
  template void forward<T>(const Plan<T>&, T*, int64_t, int64_t, int64_t);                   \
  template void inverse<T>(const Plan<T>&, T*, int64_t, int64_t, int64_t);                   \
  template void rfft<T>(const Plan<T>&, T*, int64_t, int64_t, int64_t, int64_t, T*, int64_t, \
                        int64_t);                                                            \
  template void irfft<T>(const Plan<T>&, const T*, int64_t, int64_t, T*, int64_t, int64_t,   \
                         int64_t, int64_t);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::fft
