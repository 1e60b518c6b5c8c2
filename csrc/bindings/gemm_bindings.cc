// pybind11 bindings of the packed GEMM engine: _C.gemm / _C.gemm_batched on NumPy arrays with any
// strides (C updated in place), and the kernel names, blocking and peak probe for benchmarks.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/status.h"
#include "gemm/gemm.h"
#include "gemm/kernel_table.h"
#include "without_gil.h"

namespace py = pybind11;

namespace fastconv::bindings {
namespace {

using gemm::MatrixRef;

bool is_f32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }
bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

// The dtype all three operands share; a TypeError naming the odd one out otherwise.
bool common_is_f64(const py::array& a, const py::array& b, const py::array& c) {
  for (const auto& [arr, name] : {std::pair{&a, "a"}, std::pair{&b, "b"}, std::pair{&c, "c"}}) {
    if (!is_f32(*arr) && !is_f64(*arr)) {
      throw InvalidType(std::string("gemm: ") + name + " must be float32 or float64, got " +
                        std::string(py::str(arr->dtype())));
    }
  }
  if (!a.dtype().is(b.dtype()) || !a.dtype().is(c.dtype())) {
    throw InvalidType("gemm: a, b and c must share one dtype, got " +
                      std::string(py::str(a.dtype())) + ", " + std::string(py::str(b.dtype())) +
                      ", " + std::string(py::str(c.dtype())));
  }
  return is_f64(a);
}

// Stride of `axis` in elements (NumPy strides are bytes and may be any multiple of the itemsize).
int64_t elem_stride(const py::array& a, int axis, const char* name) {
  const int64_t bytes = a.strides(axis), item = a.itemsize();
  if (bytes % item != 0) {
    throw InvalidArgument(std::string("gemm: ") + name + " has a stride of " +
                          std::to_string(bytes) + " bytes, not a multiple of its itemsize");
  }
  return bytes / item;
}

// [lowest, highest] byte address an array touches (any signs of strides).
std::pair<uintptr_t, uintptr_t> byte_extent(const py::array& a) {
  uintptr_t lo = reinterpret_cast<uintptr_t>(a.data()), hi = lo;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return {1, 0};  // empty: touches nothing
    const intptr_t span = intptr_t(a.shape(d) - 1) * intptr_t(a.strides(d));
    (span < 0 ? lo : hi) += span;
  }
  return {lo, hi + uintptr_t(a.itemsize()) - 1};
}

void check_no_overlap(const py::array& c, const py::array& x, const char* name) {
  const auto [c_lo, c_hi] = byte_extent(c);
  const auto [x_lo, x_hi] = byte_extent(x);
  if (c_lo <= c_hi && x_lo <= x_hi && c_lo <= x_hi && x_lo <= c_hi) {
    throw InvalidArgument(std::string("gemm: c must not share memory with ") + name);
  }
}

// Checks shapes ([batch,] m, k) x ([batch,] k, n) -> ([batch,] m, n), C's layout and aliasing.
void check_operands(const py::array& a, const py::array& b, const py::array& c, int ndim) {
  for (const auto& [arr, name] : {std::pair{&a, "a"}, std::pair{&b, "b"}, std::pair{&c, "c"}}) {
    if (arr->ndim() != ndim) {
      throw InvalidArgument(std::string("gemm: ") + name + " must be " + std::to_string(ndim) +
                            "-D, got " + std::to_string(arr->ndim()) + "-D");
    }
  }
  const int r = ndim - 2;  // the matrix axes
  const auto dims = [&](const py::array& x) {
    std::string s = "(";
    for (int d = 0; d < ndim; ++d) s += (d ? ", " : "") + std::to_string(x.shape(d));
    return s + ")";
  };
  const bool batch_ok = ndim == 2 || (a.shape(0) == b.shape(0) && a.shape(0) == c.shape(0));
  if (!batch_ok || a.shape(r + 1) != b.shape(r) || c.shape(r) != a.shape(r) ||
      c.shape(r + 1) != b.shape(r + 1)) {
    throw InvalidArgument("gemm: shapes do not match: a " + dims(a) + ", b " + dims(b) + ", c " +
                          dims(c) + " (need a (m, k), b (k, n), c (m, n)" +
                          (ndim == 3 ? " after one shared batch axis)" : ")"));
  }
  if (!c.writeable()) throw InvalidArgument("gemm: c must be writeable");
  if (c.shape(r + 1) > 1 && c.strides(r + 1) != c.itemsize()) {
    throw InvalidArgument("gemm: c must have unit column stride (c.strides[-1] == itemsize)");
  }
  if (c.shape(r) > 1 && c.strides(r) < c.shape(r + 1) * c.itemsize()) {
    throw InvalidArgument("gemm: c rows must not overlap (c.strides[-2] >= n * itemsize)");
  }
  check_no_overlap(c, a, "a");
  check_no_overlap(c, b, "b");
}

template <typename T>
MatrixRef<T> matrix_of(const py::array& x, int r, const char* name) {
  return {static_cast<const T*>(x.data()), elem_stride(x, r, name), elem_stride(x, r + 1, name)};
}

template <typename T>
void run_gemm(const py::array& a, const py::array& b, py::array& c, double alpha, double beta) {
  const int64_t m = c.shape(0), n = c.shape(1), k = a.shape(1);
  const MatrixRef<T> ar = matrix_of<T>(a, 0, "a"), br = matrix_of<T>(b, 0, "b");
  const int64_t ldc = c.shape(0) > 1 ? elem_stride(c, 0, "c") : n;
  T* cp = static_cast<T*>(c.mutable_data());
  without_gil([&] { gemm::gemm<T>(m, n, k, T(alpha), ar, br, T(beta), cp, ldc); });
}

template <typename T>
void run_gemm_batched(const py::array& a, const py::array& b, py::array& c, double alpha,
                      double beta, bool packed_a) {
  const int64_t batch = c.shape(0), m = c.shape(1), n = c.shape(2), k = a.shape(2);
  const MatrixRef<T> ar = matrix_of<T>(a, 1, "a"), br = matrix_of<T>(b, 1, "b");
  const int64_t sa = elem_stride(a, 0, "a"), sb = elem_stride(b, 0, "b");
  const int64_t sc = elem_stride(c, 0, "c");
  const int64_t ldc = c.shape(1) > 1 ? elem_stride(c, 1, "c") : n;
  // Items run in parallel, so they must not overlap: one of the batch and row axes has to nest
  // inside a step of the other.
  if (batch > 1 && m > 0 && n > 0) {
    const bool nested =
        sc > 0 && (sc <= ldc ? (batch - 1) * sc + n <= ldc || m == 1 : (m - 1) * ldc + n <= sc);
    if (!nested) throw InvalidArgument("gemm_batched: the items of c must not overlap");
  }
  T* cp = static_cast<T*>(c.mutable_data());
  if (!packed_a) {
    without_gil([&] {
      gemm::gemm_batched<T>(batch, m, n, k, T(alpha), ar, sa, br, sb, T(beta), cp, ldc, sc);
    });
    return;
  }
  // A packed ahead, as Winograd does: each item's rows in chunks of two row steps (so chunks
  // start inside the packed layout), then the GEMMs read it in place.
  const int64_t per_item = gemm::packed_a_elems<T>(m, k), step = 2 * gemm::packed_a_row_step<T>();
  std::vector<T> packed(size_t(std::max<int64_t>(batch * per_item, 1)));
  without_gil([&] {
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t r = 0; r < m; r += step)
        gemm::pack_a_rows<T>(m, k, r, std::min(step, m - r),
                             MatrixRef<T>{ar.data + i * sa + r * ar.rs, ar.rs, ar.cs},
                             packed.data() + i * per_item);
    gemm::gemm_batched_packed_a<T>(batch, m, n, k, T(alpha), packed.data(), per_item, br, sb,
                                   T(beta), cp, ldc, sc);
  });
}

void gemm_py(const py::array& a, const py::array& b, py::array c, double alpha, double beta) {
  const bool f64 = common_is_f64(a, b, c);
  check_operands(a, b, c, 2);
  if (f64)
    run_gemm<double>(a, b, c, alpha, beta);
  else
    run_gemm<float>(a, b, c, alpha, beta);
}

void gemm_batched_py(const py::array& a, const py::array& b, py::array c, double alpha,
                     double beta, bool packed_a) {
  const bool f64 = common_is_f64(a, b, c);
  check_operands(a, b, c, 3);
  if (f64)
    run_gemm_batched<double>(a, b, c, alpha, beta, packed_a);
  else
    run_gemm_batched<float>(a, b, c, alpha, beta, packed_a);
}

bool dtype_is_f64(const std::string& dtype) {
  if (dtype == "float32") return false;
  if (dtype == "float64") return true;
  throw InvalidType("dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

double peak_gflops_py(const std::string& dtype) {
  const bool f64 = dtype_is_f64(dtype);
  return without_gil([&] { return gemm::peak_gflops_per_core(f64); });
}

double core_clock_ghz_py() {
  return without_gil([] { return gemm::measured_clock_ghz(); });
}

template <typename T>
py::dict blocking_of() {
  const gemm::Blocking blk = gemm::blocking<T>();
  const auto& kern = gemm::gemm_kernel<T>();
  py::dict d;
  d["kernel"] = kern.name;
  d["mr"] = kern.mr;
  d["nr"] = kern.nr;
  d["mc"] = blk.mc;
  d["kc"] = blk.kc;
  d["nc"] = blk.nc;
  return d;
}

py::dict gemm_blocking_py(const std::string& dtype) {
  return dtype_is_f64(dtype) ? blocking_of<double>() : blocking_of<float>();
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0,
        "c = alpha * a @ b + beta * c in place (2-D float32/float64 arrays, any strides; c needs "
        "unit column stride; beta == 0 never reads c).");
  m.def("gemm_batched", &gemm_batched_py, py::arg("a"), py::arg("b"), py::arg("c"),
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("packed_a") = false,
        "c[i] = alpha * a[i] @ b[i] + beta * c[i] in place for 3-D arrays; packed_a=True packs "
        "each a[i] ahead (gemm::pack_a_rows) and runs gemm_batched_packed_a.");
  m.def("gemm_kernels", &gemm::kernel_names, "Names of the GEMM micro-kernels in use.");
  m.def("gemm_blocking", &gemm_blocking_py, py::arg("dtype") = "float32",
        "Micro-kernel tile (mr, nr) and cache blocking (mc, kc, nc) in use for dtype.");
  m.def("peak_gflops", &peak_gflops_py, py::arg("dtype") = "float32",
        "Measured single-core FMA peak (GFLOP/s) of the active ISA; ~50 ms on first call.");
  m.def("core_clock_ghz", &core_clock_ghz_py,
        "Core clock (GHz) measured with dependent adds; 0 where it cannot be measured.");
}

}  // namespace fastconv::bindings
