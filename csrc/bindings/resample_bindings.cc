// pybind11 bindings of the resampling ops (csrc/include/fastconv/resample.h):
// _C.resample_problem builds a call's problem once (the Python layer caches it), _C.resample
// runs one pass with the GIL released. Operands are NumPy arrays (checked here) or the address
// of a C-contiguous buffer of the problem's shape and dtype (torch tensors; checked in Python).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "fastconv/resample.h"
#include "fastconv/status.h"
#include "without_gil.h"

namespace py = pybind11;

namespace fastconv::bindings {
namespace {

void* buffer(py::handle h, const char* name, int kind_size, const Shape& shape, bool output) {
  if (h.is_none()) return nullptr;
  if (PyLong_Check(h.ptr())) {
    const unsigned long long v = PyLong_AsUnsignedLongLong(h.ptr());
    if (PyErr_Occurred()) throw py::error_already_set();
    return reinterpret_cast<void*>(uintptr_t(v));
  }
  if (!py::isinstance<py::array>(h))
    throw InvalidType(std::string(name) + " must be a NumPy array or a buffer address");
  py::array a = py::reinterpret_borrow<py::array>(h);
  // kind_size: 4 / 8 float bytes, or 0 for int64 indices
  const bool ok = kind_size == 0 ? a.dtype().kind() == 'i' && a.itemsize() == 8
                                 : a.dtype().kind() == 'f' && a.itemsize() == kind_size;
  if (!ok || a.dtype().byteorder() == '>')
    throw InvalidType(std::string(name) + " has the wrong dtype: " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw InvalidArgument(std::string(name) + " must be C-contiguous");
  const Shape got(a.shape(), a.shape() + a.ndim());
  if (got != shape) {
    throw InvalidArgument(std::string(name) + " must have shape " + format_dims(shape) +
                          ", got " + format_dims(got));
  }
  if (output && !a.writeable()) throw InvalidArgument(std::string(name) + " must be writeable");
  return output ? a.mutable_data() : const_cast<void*>(a.data());
}

std::shared_ptr<ResampleProblem> resample_problem(const std::string& kind,
                                                  const std::string& pass, Shape x_shape,
                                                  Shape scale, bool align_corners, Shape kernel,
                                                  Shape stride, Shape pad_lo, Shape pad_hi,
                                                  bool training, const std::string& dtype) {
  ResampleArguments a;
  a.kind = parse_resample_kind(kind);
  a.pass = parse_pool_pass(pass);
  a.x_shape = std::move(x_shape);
  a.scale = std::move(scale);
  a.align_corners = align_corners;
  a.kernel = std::move(kernel);
  a.stride = std::move(stride);
  a.pad_lo = std::move(pad_lo);
  a.pad_hi = std::move(pad_hi);
  a.training = training;
  a.dtype = parse_dtype(dtype);
  return std::make_shared<ResampleProblem>(make_resample_problem(a));
}

void resample(const ResampleProblem& p, py::handle a, py::handle b, py::handle indices,
              py::handle out, uint64_t seed, bool reference) {
  const bool forward = p.pass == PoolPass::kForward;
  const int size = int(dtype_size(p.dtype));
  const void* pa = buffer(a, forward ? "x" : "grad_y", size, forward ? p.x_shape : p.y_shape,
                          false);
  const void* pb = buffer(b, "x", size, p.x_shape, false);
  auto* pi = static_cast<int64_t*>(buffer(indices, "indices", 0, p.y_shape, forward));
  void* pout = buffer(out, "out", size, p.result_shape, true);
  if (a.is_none() || out.is_none()) throw InvalidArgument("resample operands must not be None");
  without_gil([&] { run_resample(p, pa, pb, pi, pout, seed, reference); });
}

py::tuple as_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

}  // namespace

void bind_resample(py::module_& m) {
  py::class_<ResampleProblem, std::shared_ptr<ResampleProblem>>(
      m, "ResampleProblem", "One resampling pass, normalised; see resample.h.")
      .def_property_readonly("kind", [](const ResampleProblem& p) { return resample_kind_name(p.kind); })
      .def_property_readonly("pass_", [](const ResampleProblem& p) {
        return p.pass == PoolPass::kForward ? "forward" : "backward";
      })
      .def_property_readonly("dtype", [](const ResampleProblem& p) { return dtype_name(p.dtype); })
      .def_property_readonly("x_shape", [](const ResampleProblem& p) { return as_tuple(p.x_shape); })
      .def_property_readonly("y_shape", [](const ResampleProblem& p) { return as_tuple(p.y_shape); })
      .def_property_readonly("result_shape",
                             [](const ResampleProblem& p) { return as_tuple(p.result_shape); })
      .def_readonly("training", &ResampleProblem::training);
  m.def("resample_problem", &resample_problem, py::arg("kind"), py::arg("pass_"),
        py::arg("x_shape"), py::arg("scale"), py::arg("align_corners"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"), py::arg("training"),
        py::arg("dtype"));
  m.def("resample", &resample, py::arg("problem"), py::arg("a"), py::arg("b"),
        py::arg("indices"), py::arg("out"), py::arg("seed") = 0, py::arg("reference") = false,
        "One resampling pass; reference=True runs csrc/ref's kernels (tests compare the two).");
}

}  // namespace fastconv::bindings
