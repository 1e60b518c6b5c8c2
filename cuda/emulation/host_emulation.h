// Host emulation of the CUDA features fastconv's kernels use, for tests on machines without a
// GPU: included before a kernel file compiled as C++ (-DFASTCONV_HOST_EMULATION). A grid runs
// one block at a time with one std::thread per CUDA thread (__syncthreads is a barrier;
// __shared__ becomes a static shared by the block's threads); WMMA fragments hold whole tiles
// per thread and check the documented pointer alignment and ldm rules; the runtime calls the
// launchers make (memset, copies, mapped host memory, attributes, the pending error) act on host memory.
// cp.async is not emulated: the kernels' non-sm_80 path (plain loads) runs instead.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fastconv::cuda::emulation {

inline thread_local uint3 tl_thread{0, 0, 0};
inline thread_local uint3 tl_block{0, 0, 0};
inline thread_local std::barrier<>* tl_barrier = nullptr;
inline dim3 g_grid{1, 1, 1};
inline dim3 g_block{1, 1, 1};
inline std::mutex g_atomic_mutex;
inline int g_multiprocessors = 8;  // small, so backward-weight splits its reduction in tests
inline bool g_wide_indices = false;  // tests: pooling's 64-bit index kernels for small problems

// Runs body() once per thread of every block, block after block: the block's threads are
// created once per launch and meet at a barrier between blocks (so statics stay block-private).
inline void run_grid(dim3 grid, dim3 block, const std::function<void()>& body) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0) {
    throw std::runtime_error("emulated launch: empty grid or block");
  }
  g_grid = grid;
  g_block = block;
  const unsigned threads = block.x * block.y * block.z;
  std::barrier<> bar(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      tl_thread = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
      tl_barrier = &bar;
      for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
          for (unsigned bx = 0; bx < grid.x; ++bx) {
            tl_block = {bx, by, bz};
            body();
            bar.arrive_and_wait();
          }
    });
  }
  for (auto& th : pool) th.join();
}

inline void syncthreads() { tl_barrier->arrive_and_wait(); }

template <typename T>
T atomic_min(T* p, T v) {
  std::lock_guard<std::mutex> lock(g_atomic_mutex);
  const T old = *p;
  if (v < old) *p = v;
  return old;
}
template <typename T>
T atomic_max(T* p, T v) {
  std::lock_guard<std::mutex> lock(g_atomic_mutex);
  const T old = *p;
  if (v > old) *p = v;
  return old;
}

// ---- runtime calls of the launchers, on host memory. Launchers never allocate device memory,
// copy or synchronise (cuda/conv_kernels.h): those calls are not emulated, so an emulated build
// that makes one fails to link.
// This thread's pending error, as the runtime keeps it: read and cleared by cudaGetLastError
// unless sticky; tests plant one (set_pending_error) to check how entry points treat it.
inline thread_local cudaError_t tl_pending = cudaSuccess;
inline thread_local bool tl_sticky = false;
inline void set_pending_error(cudaError_t e, bool sticky) {
  tl_pending = e;
  tl_sticky = sticky;
}
inline cudaError_t get_last_error() {
  const cudaError_t e = tl_pending;
  if (!tl_sticky) tl_pending = cudaSuccess;
  return e;
}
inline cudaError_t peek_at_last_error() { return tl_pending; }
inline const char* error_text(cudaError_t) { return "emulated CUDA error"; }
inline cudaError_t host_alloc(void** p, size_t n, unsigned) {
  *p = std::malloc(n ? n : 1);
  return cudaSuccess;
}
inline cudaError_t host_get_device_pointer(void** d, void* h, unsigned) {
  *d = h;  // one address space
  return cudaSuccess;
}
inline cudaError_t device_synchronize() { return cudaSuccess; }
inline cudaError_t get_device(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t set_device(int) { return cudaSuccess; }
inline cudaError_t memset_async(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t device_attribute(int* v, cudaDeviceAttr, int) {
  *v = g_multiprocessors;
  return cudaSuccess;
}

// Device queries of cuda/device_query.cu and cuda/module.cc: one emulated device.
inline cudaError_t get_device_count(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t get_device_properties(cudaDeviceProp* p, int) {
  *p = cudaDeviceProp{};
  std::strncpy(p->name, "fastconv host emulation", sizeof(p->name) - 1);
  p->major = 9;
  p->minor = 0;
  p->totalGlobalMem = size_t(1) << 34;
  p->multiProcessorCount = g_multiprocessors;
  return cudaSuccess;
}
inline cudaError_t runtime_version(int* v) { *v = CUDART_VERSION; return cudaSuccess; }
inline cudaError_t pointer_attributes(cudaPointerAttributes* a, const void*) {
  *a = cudaPointerAttributes{};
  a->type = cudaMemoryTypeDevice;
  a->device = 0;
  return cudaSuccess;
}

}  // namespace fastconv::cuda::emulation

// ---- CUDA keywords and built-ins
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define threadIdx (::fastconv::cuda::emulation::tl_thread)
#define blockIdx (::fastconv::cuda::emulation::tl_block)
#define blockDim (::fastconv::cuda::emulation::g_block)
#define gridDim (::fastconv::cuda::emulation::g_grid)
#define __syncthreads() ::fastconv::cuda::emulation::syncthreads()
#define atomicMin(p, v) ::fastconv::cuda::emulation::atomic_min(p, v)
#define atomicMax(p, v) ::fastconv::cuda::emulation::atomic_max(p, v)
#define cudaGetLastError ::fastconv::cuda::emulation::get_last_error
#define cudaPeekAtLastError ::fastconv::cuda::emulation::peek_at_last_error
#define cudaHostAlloc ::fastconv::cuda::emulation::host_alloc
#define cudaHostGetDevicePointer ::fastconv::cuda::emulation::host_get_device_pointer
#define cudaDeviceSynchronize ::fastconv::cuda::emulation::device_synchronize
#define __threadfence_system() std::atomic_thread_fence(std::memory_order_seq_cst)
#define cudaGetErrorName ::fastconv::cuda::emulation::error_text
#define cudaGetErrorString ::fastconv::cuda::emulation::error_text
#define cudaGetDevice ::fastconv::cuda::emulation::get_device
#define cudaSetDevice ::fastconv::cuda::emulation::set_device
#define cudaMemsetAsync ::fastconv::cuda::emulation::memset_async
#define cudaDeviceGetAttribute ::fastconv::cuda::emulation::device_attribute
#define cudaGetDeviceCount ::fastconv::cuda::emulation::get_device_count
#define cudaGetDeviceProperties ::fastconv::cuda::emulation::get_device_properties
#define cudaRuntimeGetVersion ::fastconv::cuda::emulation::runtime_version
#define cudaPointerGetAttributes ::fastconv::cuda::emulation::pointer_attributes

using std::fma;
using std::isnan;
using std::max;
using std::min;
using std::pow;

// ---- WMMA: whole tiles per thread; checks the API's alignment rules on every access
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  using storage = std::conditional_t<std::is_same_v<T, precision::tf32>, float, T>;
  storage x[num_elements];
  float at(int r, int c) const { return float(x[r * cols + c]); }
};

inline void check_access(const void* p, unsigned ldm, size_t elem) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) {
    throw std::runtime_error("wmma: pointer not 256-bit aligned");
  }
  if ((ldm * elem) % 16 != 0) throw std::runtime_error("wmma: ldm not a multiple of 16 bytes");
}

template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm) {
  check_access(p, ldm, sizeof(P));
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) {
      const P v = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[r + c * ldm];
      f.x[r * F::cols + c] = v;
    }
}

template <typename F, typename V>
void fill_fragment(F& f, V v) {
  for (int e = 0; e < F::num_elements; ++e) f.x[e] = v;
}

template <typename C, typename A, typename B>
void mma_sync(C& d, const A& a, const B& b, const C& c) {
  C out;
  for (int i = 0; i < C::rows; ++i)
    for (int j = 0; j < C::cols; ++j) {
      float s = c.at(i, j);
      for (int k = 0; k < A::cols; ++k) s += a.at(i, k) * b.at(k, j);
      out.x[i * C::cols + j] = s;
    }
  d = out;
}

template <typename F>
void store_matrix_sync(float* p, const F& f, unsigned ldm, layout_t layout) {
  check_access(p, ldm, sizeof(float));
  if (::fastconv::cuda::emulation::tl_thread.x % 32 != 0) return;  // one lane writes the tile
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      (layout == mem_row_major ? p[r * ldm + c] : p[r + c * ldm]) = f.x[r * F::cols + c];
}

inline float __float_to_tf32(float v) {  // round to 10 mantissa bits, ties away from zero
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}
}  // namespace nvcuda::wmma
