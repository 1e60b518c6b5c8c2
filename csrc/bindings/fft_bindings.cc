// pybind11 bindings of fastconv's own FFT for tests: _C.fft_rfft / _C.fft_irfft / _C.fft_cfft on
// (batch, n) arrays, bins returned in natural order (the library keeps them digit-reversed).
#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <complex>
#include <cstdint>
#include <vector>

#include "fastconv/status.h"
#include "fft/fft.h"

namespace py = pybind11;

namespace fastconv::bindings {
namespace {

template <typename T>
fft::Plan<T> plan_for(int64_t n, std::vector<char>& mem) {
  if (!fft::is_smooth(n))
    throw InvalidArgument("fft: n must be 2^a 3^b 5^c, got " + std::to_string(n));
  mem.assign(size_t(fft::plan_bytes<T>(n)) + 64, 0);
  return fft::make_plan<T>(n, mem.data());
}

// x (batch, n) real -> (batch, n/2 + 1) complex, like numpy.fft.rfft.
template <typename T>
py::array_t<std::complex<T>> rfft_py(py::array_t<T, py::array::c_style | py::array::forcecast> x) {
  if (x.ndim() != 2) throw InvalidArgument("fft_rfft: x must be 2-D (batch, n)");
  const int64_t batch = x.shape(0), n = x.shape(1), half = (batch + 1) / 2, lanes = 2 * half;
  std::vector<char> mem;
  const auto plan = plan_for<T>(n, mem);
  std::vector<T> buf(size_t(n * lanes), T(0)), out(size_t((n / 2 + 1) * 2 * lanes));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < n; ++p) buf[p * lanes + b] = x.at(b, p);
  fft::rfft(plan, buf.data(), lanes, half, 0, half, out.data(), 2 * lanes, lanes);
  py::array_t<std::complex<T>> y({batch, n / 2 + 1});
  auto v = y.template mutable_unchecked<2>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k <= n / 2; ++k)
      v(b, k) = {out[k * 2 * lanes + b], out[k * 2 * lanes + lanes + b]};
  return y;
}

// X (batch, n/2 + 1) complex -> (batch, n) real, like numpy.fft.irfft(X, n) (normalised).
template <typename T>
py::array_t<T> irfft_py(py::array_t<std::complex<T>, py::array::c_style | py::array::forcecast> X,
                        int64_t n) {
  if (X.ndim() != 2 || X.shape(1) != n / 2 + 1)
    throw InvalidArgument("fft_irfft: X must be (batch, n/2 + 1)");
  const int64_t batch = X.shape(0), half = (batch + 1) / 2, lanes = 2 * half;
  std::vector<char> mem;
  const auto plan = plan_for<T>(n, mem);
  std::vector<T> in(size_t((n / 2 + 1) * 2 * lanes), T(0)), buf(size_t(n * lanes));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k <= n / 2; ++k) {
      in[k * 2 * lanes + b] = X.at(b, k).real();
      in[k * 2 * lanes + lanes + b] = X.at(b, k).imag();
    }
  fft::irfft(plan, in.data(), 2 * lanes, lanes, buf.data(), lanes, half, 0, half);
  py::array_t<T> y({batch, n});
  auto v = y.template mutable_unchecked<2>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < n; ++p) v(b, p) = buf[p * lanes + b] / T(n);
  return y;
}

// x (batch, n) complex -> its DFT (inverse: numpy.fft.ifft, normalised).
template <typename T>
py::array_t<std::complex<T>> cfft_py(
    py::array_t<std::complex<T>, py::array::c_style | py::array::forcecast> x, bool inverse) {
  if (x.ndim() != 2) throw InvalidArgument("fft_cfft: x must be 2-D (batch, n)");
  const int64_t batch = x.shape(0), n = x.shape(1);
  std::vector<char> mem;
  const auto plan = plan_for<T>(n, mem);
  std::vector<T> buf(size_t(n * 2 * batch));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < n; ++p) {
      const int64_t pos = inverse ? plan.perm[p] : p;  // inverse takes digit-reversed input
      buf[pos * 2 * batch + b] = x.at(b, p).real();
      buf[pos * 2 * batch + batch + b] = x.at(b, p).imag();
    }
  if (inverse)
    fft::inverse(plan, buf.data(), 2 * batch, batch, batch);
  else
    fft::forward(plan, buf.data(), 2 * batch, batch, batch);
  py::array_t<std::complex<T>> y({batch, n});
  auto v = y.template mutable_unchecked<2>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k < n; ++k) {
      const int64_t pos = inverse ? k : plan.perm[k];
      const T s = inverse ? T(1) / T(n) : T(1);
      v(b, k) = {buf[pos * 2 * batch + b] * s, buf[pos * 2 * batch + batch + b] * s};
    }
  return y;
}

}  // namespace

void bind_fft(py::module_& m) {
  m.def("fft_rfft", &rfft_py<double>, py::arg("x"));
  m.def("fft_rfft", &rfft_py<float>, py::arg("x"));
  m.def("fft_irfft", &irfft_py<double>, py::arg("X"), py::arg("n"));
  m.def("fft_irfft", &irfft_py<float>, py::arg("X"), py::arg("n"));
  m.def("fft_cfft", &cfft_py<double>, py::arg("x"), py::arg("inverse") = false);
  m.def("fft_cfft", &cfft_py<float>, py::arg("x"), py::arg("inverse") = false);
}

}  // namespace fastconv::bindings
