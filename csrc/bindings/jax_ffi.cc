// XLA FFI handlers of fastconv.jax on the CPU (jax.ffi custom calls): every conv and
// transposed-conv pass, max/avg pooling forward, backward and max's gather. The calls are
// decoded by jax_ffi_calls.cc (shared with the CUDA handlers, cuda/jax_ffi.cc) into the same
// ConvArguments / PoolProblem as the pybind11 bindings; a conv is planned through the same
// ConvProblemHandle and run with run_conv_problem, pooling with run_pool, on fastconv's pool.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "conv_problem_handle.h"
#include "fastconv/algorithm.h"
#include "fastconv/problem.h"
#include "fastconv/status.h"
#include "jax_ffi_calls.h"

namespace py = pybind11;

namespace fastconv::bindings {
namespace {

namespace ffi = xla::ffi;
using jax_ffi::bind_conv;
using jax_ffi::bind_pool;
using jax_ffi::ConvAttributes;
using jax_ffi::ConvCall;
using jax_ffi::guarded;
using jax_ffi::Platform;
using jax_ffi::PoolAttributes;
using jax_ffi::PoolCall;

// ---- convolution

// Problems (with their plans) by their arguments, made once per distinct call.
std::shared_ptr<ConvProblemHandle> conv_problem_of(const ConvArguments& a) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<ConvProblemHandle>> cache;
  std::ostringstream key;
  key << int(a.op) << ' ' << int(a.pass) << ' ' << int(a.dtype) << ' ' << a.groups;
  for (const Shape* s : {&a.shape, &a.w_shape, &a.stride, &a.pad_lo, &a.pad_hi, &a.dilation,
                         &a.output_padding})
    key << '|' << format_dims(*s);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key.str());
  if (it != cache.end()) return it->second;
  if (cache.size() >= 4096) cache.clear();  // bounded, like the Python caches
  auto handle = std::make_shared<ConvProblemHandle>(make_conv_problem(a));
  cache.emplace(key.str(), handle);
  return handle;
}

void run_conv_call(const ConvCall& call, std::string_view algo) {
  if (call.items == 0) return;
  auto handle = conv_problem_of(call.args);
  const ConvProblem& p = handle->problem;
  jax_ffi::check_conv_operands(call, p);
  const ConvPlanResult& r = handle->plan(parse_algorithm(std::string(algo)));
  if (!r.invalid.empty()) throw InvalidArgument(r.invalid);
  if (!r.plan) {
    throw Unsupported("algo='" + std::string(algo) + "' cannot run this " +
                      (p.op == ConvOp::kConv ? "conv " : "conv_transpose ") +
                      pass_name(p.pass) + ": " + r.unsupported);
  }
  for (int64_t i = 0; i < call.items; ++i) {
    const ConvCall::Pointers at = call.item(i);
    run_conv_problem(p, *r.plan, at.a, at.b, at.bias, at.out);
  }
}

ffi::Error conv_handler(ffi::AnyBuffer a, ffi::AnyBuffer b, std::optional<ffi::AnyBuffer> bias,
                        ffi::Result<ffi::AnyBuffer> out, ConvAttributes at) {
  return guarded("fastconv " + std::string(at.op) + " " + std::string(at.pass), [&] {
    run_conv_call(jax_ffi::decode_conv(Platform::kCpu, a, b, bias, *out, at), at.algo);
  });
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_conv_ffi, conv_handler, bind_conv(ffi::Ffi::Bind()));

// ---- pooling

ffi::Error pool_handler(ffi::AnyBuffer a, std::optional<ffi::AnyBuffer> indices,
                        ffi::Result<ffi::AnyBuffer> out,
                        std::optional<ffi::Result<ffi::AnyBuffer>> indices_out,
                        PoolAttributes at) {
  return guarded("fastconv " + std::string(at.kind) + " " + std::string(at.pass), [&] {
    const PoolCall call = jax_ffi::decode_pool(Platform::kCpu, a, indices, *out, indices_out, at);
    for (int64_t i = 0; i < call.items; ++i) {
      const PoolCall::Pointers p = call.item(i);
      run_pool(call.problem, p.a, nullptr, p.indices, p.out);
    }
  });
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_pool_ffi, pool_handler, bind_pool(ffi::Ffi::Bind()));

}  // namespace

void bind_jax_ffi(py::module_& m) {
  py::dict targets;
  targets["fastconv_conv"] = py::capsule(reinterpret_cast<void*>(&fastconv_conv_ffi));
  targets["fastconv_pool"] = py::capsule(reinterpret_cast<void*>(&fastconv_pool_ffi));
  m.attr("jax_ffi_targets") = targets;
  m.attr("jax_ffi_built_for") =
      py::make_tuple(FASTCONV_JAXLIB_VERSION, py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR));
}

}  // namespace fastconv::bindings
