// pybind11 glue of fastconv._cuda: device queries for now.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "device_query.h"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastconv CUDA kernels (device queries only in this build)";
  m.def("runtime_version", &fastconv::cuda::runtime_version);
  m.def("devices", [] {
    std::string error;
    py::list out;
    for (const auto& d : fastconv::cuda::query_devices(&error)) {
      py::dict e;
      e["index"] = d.index;
      e["name"] = d.name;
      e["capability"] = py::make_tuple(d.major, d.minor);
      e["total_memory"] = d.total_memory;
      e["multiprocessors"] = d.multiprocessors;
      out.append(e);
    }
    return py::make_tuple(out, error);
  });
}
