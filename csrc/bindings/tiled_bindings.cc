// pybind11 bindings of tiled / locally connected convolution: _C.tiled_conv_problem builds a
// pass's problem once (the Python layer caches it), _C.tiled_conv runs it with the GIL
// released. Operands as in problem_bindings.cc: NumPy arrays or checked buffer addresses.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "algo/depthwise_rows.h"
#include "fastconv/status.h"
#include "fastconv/tiled_conv.h"

namespace py = pybind11;

namespace fastconv::bindings {

void* bound_operand(py::handle h, const char* name, DType t, const Shape& shape, bool output);

namespace {

TiledConvProblem tiled_conv_problem(const std::string& pass, Shape shape, Shape w_shape,
                                    Shape stride, Shape pad_lo, Shape pad_hi, Shape dilation,
                                    bool local, const std::string& dtype) {
  TiledConvArguments a;
  a.pass = parse_conv_pass(pass);
  a.shape = std::move(shape);
  a.w_shape = std::move(w_shape);
  a.stride = std::move(stride);
  a.pad_lo = std::move(pad_lo);
  a.pad_hi = std::move(pad_hi);
  a.dilation = std::move(dilation);
  a.local = local;
  a.dtype = parse_dtype(dtype);
  return make_tiled_conv_problem(a);
}

void tiled_conv(const TiledConvProblem& p, py::handle a, py::handle b, py::handle bias,
                bool bias_per_phase, py::handle out, bool reference) {
  static const char* kNames[3][2] = {{"x", "w"}, {"grad_y", "w"}, {"x", "grad_y"}};
  const char* const* names = kNames[int(p.pass)];
  const void* pa = bound_operand(a, names[0], p.dtype, p.operand_shapes[0], false);
  const void* pb = bound_operand(b, names[1], p.dtype, p.operand_shapes[1], false);
  const void* pbias = nullptr;
  if (!bias.is_none()) {
    if (p.pass != ConvPass::kForward) throw InvalidArgument("only a forward pass takes a bias");
    pbias = bound_operand(bias, "bias", p.dtype,
                          bias_per_phase ? p.bias_per_phase_shape : Shape{p.g.k}, false);
  }
  void* pout = bound_operand(out, "out", p.dtype, p.result_shape, true);
  if (a.is_none() || b.is_none() || out.is_none())
    throw InvalidArgument("tiled_conv operands must not be None");
  py::gil_scoped_release nogil;
  run_tiled_conv(p, pa, pb, pbias, bias_per_phase, pout, reference);
}

// separable_conv's last chain pass (fastconv/separable.py): y = 1-D depthwise filter of x along
// its last dim, f (C * mult, k), checked here (NumPy arrays only).
void depthwise_rows(py::array x, py::array f, py::array y, int64_t mult, int64_t stride,
                    int64_t pad_lo, int64_t pad_hi, int64_t dilation) {
  const int nd = int(x.ndim());
  if (nd < 3 || nd > 5 || y.ndim() != nd || f.ndim() != 2)
    throw InvalidArgument("depthwise_rows: x and y must have 3-5 dims, f 2");
  if (!x.dtype().is(y.dtype()) || !x.dtype().is(f.dtype()))
    throw InvalidType("depthwise_rows: x, f and y must have one dtype");
  for (const py::array* a : {&x, &f, &y})
    if (!(a->flags() & py::array::c_style)) throw InvalidArgument("depthwise_rows: C-contiguous");
  if (!y.writeable()) throw InvalidArgument("depthwise_rows: y must be writeable");
  const int64_t n = x.shape(0), c = x.shape(1), w_in = x.shape(nd - 1), k = f.shape(1);
  int64_t lines = 1;
  for (int d = 2; d < nd - 1; ++d) {
    if (y.shape(d) != x.shape(d)) throw InvalidArgument("depthwise_rows: y's lines differ");
    lines *= x.shape(d);
  }
  const int64_t w_out = output_extent(w_in, k, stride, pad_lo, pad_hi, dilation);
  if (mult < 1 || stride < 1 || dilation < 1 || pad_lo < 0 || pad_hi < 0 || w_out < 1 ||
      f.shape(0) != c * mult || y.shape(0) != n || y.shape(1) != c * mult ||
      y.shape(nd - 1) != w_out)
    throw InvalidArgument("depthwise_rows: inconsistent shapes or window");
  const bool f64 = x.dtype().kind() == 'f' && x.itemsize() == 8;
  if (x.dtype().kind() != 'f' || (x.itemsize() != 4 && !f64))
    throw InvalidType("depthwise_rows: float32 or float64");
  const void* px = x.data();
  const void* pf = f.data();
  void* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  if (f64)
    algo::depthwise_rows<double>(n, c, mult, lines, w_in, w_out, k, stride, pad_lo, dilation,
                                 static_cast<const double*>(px), static_cast<const double*>(pf),
                                 static_cast<double*>(py_));
  else
    algo::depthwise_rows<float>(n, c, mult, lines, w_in, w_out, k, stride, pad_lo, dilation,
                                static_cast<const float*>(px), static_cast<const float*>(pf),
                                static_cast<float*>(py_));
}

py::tuple as_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

}  // namespace

void bind_tiled(py::module_& m) {
  py::class_<TiledConvProblem>(m, "TiledConvProblem",
                               "One tiled / locally connected conv pass; see tiled_conv.h.")
      .def_property_readonly("pass_", [](const TiledConvProblem& p) { return pass_name(p.pass); })
      .def_property_readonly("dtype", [](const TiledConvProblem& p) { return dtype_name(p.dtype); })
      .def_readonly("local", &TiledConvProblem::local)
      .def_property_readonly("x_shape", [](const TiledConvProblem& p) { return as_tuple(p.x_shape); })
      .def_property_readonly("w_shape", [](const TiledConvProblem& p) { return as_tuple(p.w_shape); })
      .def_property_readonly("y_shape", [](const TiledConvProblem& p) { return as_tuple(p.y_shape); })
      .def_property_readonly("operand_shapes",
                             [](const TiledConvProblem& p) {
                               return py::make_tuple(as_tuple(p.operand_shapes[0]),
                                                     as_tuple(p.operand_shapes[1]));
                             })
      .def_property_readonly("result_shape",
                             [](const TiledConvProblem& p) { return as_tuple(p.result_shape); })
      .def_property_readonly(
          "bias_per_phase_shape",
          [](const TiledConvProblem& p) { return as_tuple(p.bias_per_phase_shape); })
      .def_property_readonly("workspace_bytes", &tiled_conv_workspace_bytes)
      .def_property_readonly("flops", [](const TiledConvProblem& p) { return p.g.flops(); });
  m.def("tiled_conv_problem", &tiled_conv_problem, py::arg("pass_"), py::arg("shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), py::arg("local"), py::arg("dtype"));
  m.def("tiled_conv", &tiled_conv, py::arg("problem"), py::arg("a"), py::arg("b"),
        py::arg("bias"), py::arg("bias_per_phase"), py::arg("out"), py::arg("reference") = false,
        "One tiled / locally connected conv pass; reference=True runs csrc/ref's loops.");
  m.def("depthwise_rows", &depthwise_rows, py::arg("x"), py::arg("f"), py::arg("y"),
        py::arg("mult"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), "1-D depthwise filter along the last dim (separable_conv).");
}

}  // namespace fastconv::bindings
