// pybind11 module fastconv._C: exception mapping, build and CPU facts, threads; the ops are
// bound in problem_bindings.cc (problems, plans, runs), the GEMM and FFT for tests in theirs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "fastconv/algorithm.h"
#include "fastconv/cpu_features.h"
#include "fastconv/geometry.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "gemm/cache_sizes.h"
#include "without_gil.h"

namespace py = pybind11;

namespace fastconv::bindings {
void bind_gemm(py::module_& m);  // gemm_bindings.cc: GEMM entry points for tests and benchmarks
void bind_fft(py::module_& m);   // fft_bindings.cc: the FFT itself, for tests
void bind_problems(py::module_& m);  // problem_bindings.cc: problems, plans, conv and pool runs
void bind_resample(py::module_& m);  // resample_bindings.cc: upsampling, pixel shuffle, ...
void bind_tiled(py::module_& m);  // tiled_bindings.cc: tiled / locally connected convolution
#ifdef FASTCONV_WITH_JAX_FFI
void bind_jax_ffi(py::module_& m);  // jax_ffi.cc: XLA FFI handlers as capsules (fastconv.jax)
#endif
}

namespace {

py::dict cpu_info() {
  const auto& f = fastconv::cpu_features();
  py::dict d;
  d["vendor"] = f.vendor;
  d["brand"] = f.brand;
  d["family"] = f.family;
  d["model"] = f.model;
  py::list feats;
  auto add = [&](bool on, const char* name) {
    if (on) feats.append(name);
  };
  add(f.avx2 && f.os_avx, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f && f.os_avx512, "avx512f");
  add(f.avx512dq && f.os_avx512, "avx512dq");
  add(f.avx512bw && f.os_avx512, "avx512bw");
  add(f.avx512vl && f.os_avx512, "avx512vl");
  d["features"] = feats;
  d["detected_isa"] = fastconv::isa_name(fastconv::detected_isa());
  d["built_isa"] = fastconv::isa_name(fastconv::built_isa());
  d["active_isa"] = fastconv::isa_name(fastconv::active_isa());
  // The width of the units that run AVX-512 (FASTCONV_AVX512_UNITS replaces the detection);
  // None without AVX-512.
  if (fastconv::detected_isa() == fastconv::IsaLevel::kAvx512)
    d["avx512_units"] = fastconv::avx512_on_256bit_units() ? 256 : 512;
  else
    d["avx512_units"] = py::none();
  // The cache sizes the GEMM blocking and auto's rule use (bytes; L3: this core's share).
  const auto& caches = fastconv::gemm::cache_sizes();
  d["l1d"] = caches.l1d;
  d["l2"] = caches.l2;
  d["l3_per_core"] = caches.l3_per_core;
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastconv compiled kernels (CPU). Use the fastconv package, not this module.";
  py::register_exception<fastconv::Unsupported>(m, "UnsupportedError", PyExc_NotImplementedError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastconv::InvalidType& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const fastconv::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  m.attr("__version__") = FASTCONV_VERSION;
  m.attr("compiler") = FASTCONV_COMPILER;

  m.def("algorithms", &fastconv::built_algorithms, py::arg("op"));
  // Without the GIL: it waits for a call that is using the pool to finish (g_pool_mu).
  m.def(
      "set_num_threads",
      [](int n) { fastconv::bindings::without_gil([&] { fastconv::set_num_threads(n); }); },
      py::arg("n"));
  m.def("get_num_threads", &fastconv::get_num_threads);
  m.def("use_openmp_runtime", &fastconv::use_openmp_runtime, py::arg("library"),
        "Run kernels on an already loaded OpenMP runtime ('' = fastconv's own pool); returns '' "
        "or why not");
  m.def("openmp_runtime", &fastconv::openmp_runtime);
  m.def("cpu_info", &cpu_info);
  fastconv::bindings::bind_problems(m);
  fastconv::bindings::bind_resample(m);
  fastconv::bindings::bind_tiled(m);
  fastconv::bindings::bind_gemm(m);
  fastconv::bindings::bind_fft(m);
#ifdef FASTCONV_WITH_JAX_FFI
  fastconv::bindings::bind_jax_ffi(m);
#endif
}
