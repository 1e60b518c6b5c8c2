// Turns the run-time DType into a compile-time element type for templated CPU kernels.
#pragma once
#include <string>

#include "fastconv/status.h"
#include "fastconv/types.h"

namespace fastconv {

// Calls fn(T{}) with T = float or double; the CPU kernels have no other element types.
template <typename Fn>
void dispatch_dtype(DType t, Fn&& fn) {
  if (t == DType::kFloat32) return fn(float{});
  if (t == DType::kFloat64) return fn(double{});
  throw InvalidType(std::string("the CPU kernels take float32 or float64, got ") + dtype_name(t));
}

}  // namespace fastconv
