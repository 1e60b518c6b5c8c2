// fastconv's own persistent thread pool (or an OpenMP runtime already in the process):
// parallel_for over 1-D and 2-D ranges.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace fastconv {

// Number of threads parallel_for uses (the calling thread included). Default: the cores this
// process may run on, or FASTCONV_NUM_THREADS.
int get_num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) over disjoint chunks covering [0, n), each at least `grain` long, on the
// pool. Runs inline when n is small, when called from inside a pool task, or when another
// thread is already using the pool. Rethrows the first exception a chunk threw.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// True on a thread running a parallel_for chunk: a nested parallel_for runs inline there, so
// work split for the threads would only be split.
bool inside_parallel_for();

// Runs parallel_for's chunks on the OpenMP runtime `library` (a path; it must already be loaded,
// e.g. PyTorch's libgomp) instead of the own pool, get_num_threads() threads; "" goes back to
// the own pool. Returns "" or why the runtime cannot be used (then nothing changes).
std::string use_openmp_runtime(const std::string& library);
// The runtime in use ("" for the own pool).
std::string openmp_runtime();

// Calls fn(i, j) for every (i, j) in [0, n0) x [0, n1), spread over the pool.
void parallel_for_2d(int64_t n0, int64_t n1, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace fastconv
