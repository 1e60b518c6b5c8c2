// A ConvProblem and the plans made for it, shared by the pybind11 bindings (ConvProblem objects)
// and the XLA FFI handlers (jax_ffi.cc), so both plan and run a problem the same way.
#pragma once
#include <map>
#include <mutex>
#include <utility>

#include "fastconv/algorithm.h"
#include "fastconv/parallel.h"
#include "fastconv/problem.h"

namespace fastconv::bindings {

// A problem and its plans, one per algorithm (made on first request, then reused by selection,
// explain and every run).
class ConvProblemHandle {
 public:
  explicit ConvProblemHandle(ConvProblem p) : problem(std::move(p)) {}

  // The plan of `a` for the current thread count (schedules and scratch depend on it).
  const ConvPlanResult& plan(Algorithm a) {
    const int threads = get_num_threads();
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find({a, threads});
    if (it == plans_.end()) {
      ConvPlanResult r = plan_conv(problem.g, problem.conv_pass, problem.dtype, a);
      it = plans_.emplace(std::make_pair(a, threads), std::move(r)).first;
    }
    return it->second;
  }

  const ConvProblem problem;

 private:
  std::mutex mutex_;
  std::map<std::pair<Algorithm, int>, ConvPlanResult> plans_;
};

}  // namespace fastconv::bindings
