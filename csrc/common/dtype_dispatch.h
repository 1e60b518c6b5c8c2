// Turns the run-time DType into a compile-time element type for templated kernels.
#pragma once
#include "fastconv/algorithm.h"

namespace fastconv {

// Calls fn(T{}) with T = float or double.
template <typename Fn>
void dispatch_dtype(DType t, Fn&& fn) {
  if (t == DType::kFloat32) fn(float{});
  else fn(double{});
}

}  // namespace fastconv
