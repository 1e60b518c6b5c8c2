// Pooling on the GPU: max (with indices), average and power-average forward passes, their
// backward passes, and max_unpool. Window rules mirror csrc/ref/pool_ref.cc exactly (NaN wins a
// max window, PyTorch's average divisors, ceil_mode windows). Backward passes are gathers over
// the outputs whose windows cover an input element, so they need no atomics and sum in a fixed
// order; max and Lp backward first compute per-output argmax / norm into a scratch buffer.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "conv_kernels.h"
#include "cuda_check.h"
#include "dtype.cuh"
#include "launch.cuh"
#include "fastconv/status.h"

namespace fastconv::cuda {
namespace {

constexpr int kThreads = 256;

// PoolGeometry flattened for kernels. `small`: every index the kernels form (flat element,
// window coordinate) is below 2^31, and their divisions run as 32-bit FastDivs by the
// precomputed divisors below instead of 64-bit divide sequences (several per output).
struct PoolParams {
  int64_t planes;
  int64_t in[3], kernel[3], out[3], stride[3], pad[3], pad_hi[3], dil[3];
  int64_t in_sp, out_sp;
  bool small;
  FastDiv f_in[3], f_out[3], f_stride[3], f_dil[3], f_in_sp, f_out_sp;
};

PoolParams make_pool_params(const PoolGeometry& g) {
  PoolParams p{};
  p.planes = g.n * g.c;
  int64_t reach = 0;
  for (int d = 0; d < kMaxRank; ++d) {
    p.in[d] = g.in[d];
    p.kernel[d] = g.kernel[d];
    p.out[d] = g.out[d];
    p.stride[d] = g.stride[d];
    p.pad[d] = g.pad_lo[d];
    p.pad_hi[d] = g.pad_hi[d];
    p.dil[d] = g.dilation[d];
    reach = std::max({reach, g.in[d] + g.pad_lo[d] + g.kernel[d] * g.dilation[d],
                      (g.out[d] + 1) * g.stride[d] + g.kernel[d] * g.dilation[d]});
  }
  p.in_sp = g.in_spatial();
  p.out_sp = g.out_spatial();
  const int64_t elements = p.planes * std::max(p.in_sp, p.out_sp);
  p.small = elements < (int64_t(1) << 31) && reach < (int64_t(1) << 30);
#ifdef FASTCONV_HOST_EMULATION
  p.small = p.small && !emulation::g_wide_indices;  // tests run the 64-bit kernels too
#endif
  if (p.small) {
    for (int d = 0; d < kMaxRank; ++d) {
      p.f_in[d] = FastDiv(static_cast<uint32_t>(p.in[d]));
      p.f_out[d] = FastDiv(static_cast<uint32_t>(p.out[d]));
      p.f_stride[d] = FastDiv(static_cast<uint32_t>(p.stride[d]));
      p.f_dil[d] = FastDiv(static_cast<uint32_t>(p.dil[d]));
    }
    p.f_in_sp = FastDiv(static_cast<uint32_t>(p.in_sp));
    p.f_out_sp = FastDiv(static_cast<uint32_t>(p.out_sp));
  }
  return p;
}

// n / d and n % d for the kernels' non-negative dividends: a FastDiv in the kernels for small
// problems (kSmall, p.small), 64-bit division in the others.
template <bool kSmall>
__device__ __forceinline__ int64_t qdiv(int64_t n, const FastDiv& f, int64_t d) {
  if constexpr (kSmall) return static_cast<int64_t>(f.div(static_cast<uint32_t>(n)));
  return n / d;
}
template <bool kSmall>
__device__ __forceinline__ int64_t qmod(int64_t n, const FastDiv& f, int64_t d) {
  if constexpr (kSmall) return static_cast<int64_t>(f.mod(static_cast<uint32_t>(n)));
  return n % d;
}

// pos (a flat offset in a plane of extents ext, divisors f) -> coordinates q.
template <bool kSmall>
__device__ __forceinline__ void split3(const int64_t ext[3], const FastDiv f[3], int64_t pos,
                                       int64_t q[3]) {
  const int64_t rows = qdiv<kSmall>(pos, f[2], ext[2]);
  q[2] = pos - rows * ext[2];
  q[0] = qdiv<kSmall>(rows, f[1], ext[1]);
  q[1] = rows - q[0] * ext[1];
}

// Calls fn(offset in plane) for every in-bounds input position of output window o.
template <typename Fn>
__device__ __forceinline__ void for_each_tap(const PoolParams& p, const int64_t o[3], Fn&& fn) {
  for (int64_t kd = 0; kd < p.kernel[0]; ++kd) {
    const int64_t id = o[0] * p.stride[0] - p.pad[0] + kd * p.dil[0];
    if (!inside(id, p.in[0])) continue;
    for (int64_t kh = 0; kh < p.kernel[1]; ++kh) {
      const int64_t ih = o[1] * p.stride[1] - p.pad[1] + kh * p.dil[1];
      if (!inside(ih, p.in[1])) continue;
      for (int64_t kw = 0; kw < p.kernel[2]; ++kw) {
        const int64_t iw = o[2] * p.stride[2] - p.pad[2] + kw * p.dil[2];
        if (!inside(iw, p.in[2])) continue;
        fn((id * p.in[1] + ih) * p.in[2] + iw);
      }
    }
  }
}

// Calls fn(output offset in plane) for every output window covering input position i, in
// increasing output order (the gather of every backward pass).
template <bool kSmall, typename Fn>
__device__ __forceinline__ void for_each_window(const PoolParams& p, const int64_t i[3], Fn&& fn) {
  int64_t lo[3], hi[3];
  for (int d = 0; d < 3; ++d) {
    const int64_t first = i[d] + p.pad[d] - (p.kernel[d] - 1) * p.dil[d];  // o * stride >= this
    lo[d] = first <= 0 ? 0 : qdiv<kSmall>(first + p.stride[d] - 1, p.f_stride[d], p.stride[d]);
    hi[d] = min(p.out[d] - 1, qdiv<kSmall>(i[d] + p.pad[d], p.f_stride[d], p.stride[d]));
  }
  // Whether window o's taps step onto i along dim d (always at dilation 1: no division).
  auto on_tap = [&](int d, int64_t o) {
    return p.dil[d] == 1 ||
           qmod<kSmall>(i[d] + p.pad[d] - o * p.stride[d], p.f_dil[d], p.dil[d]) == 0;
  };
  for (int64_t od = lo[0]; od <= hi[0]; ++od) {
    if (!on_tap(0, od)) continue;
    for (int64_t oh = lo[1]; oh <= hi[1]; ++oh) {
      if (!on_tap(1, oh)) continue;
      for (int64_t ow = lo[2]; ow <= hi[2]; ++ow) {
        if (!on_tap(2, ow)) continue;
        fn((od * p.out[1] + oh) * p.out[2] + ow, od, oh, ow);
      }
    }
  }
}

// Divisor of an average window (PyTorch's rule, as in pool_ref.cc).
__device__ __forceinline__ int64_t avg_divisor(const PoolParams& p, bool count_include_pad,
                                               const int64_t o[3]) {
  int64_t padded = 1, inner = 1;
  for (int d = 0; d < 3; ++d) {
    const int64_t start = o[d] * p.stride[d] - p.pad[d];
    const int64_t end = min(start + p.kernel[d], p.in[d] + p.pad_hi[d]);
    padded *= end - start;
    inner *= min(end, p.in[d]) - max(start, int64_t(0));
  }
  return count_include_pad ? padded : inner;
}

template <typename T>
__device__ __forceinline__ int64_t window_argmax(const PoolParams& p, const T* xp,
                                                 const int64_t o[3]) {
  using Acc = acc_t<T>;
  int64_t best = -1;
  Acc best_v = -INFINITY;
  for_each_tap(p, o, [&](int64_t i) {
    const Acc v = to_acc(xp[i]);
    if (best < 0 || v > best_v || isnan(v)) {
      best = i;
      best_v = v;
    }
  });
  return best;
}

template <typename T>
__device__ __forceinline__ acc_t<T> window_lp(const PoolParams& p, acc_t<T> power, const T* xp,
                                              const int64_t o[3]) {
  using Acc = acc_t<T>;
  Acc s = 0;
  for_each_tap(p, o, [&](int64_t i) { s += pow(to_acc(xp[i]), power); });
  return pow(s, Acc(1) / power);
}

// ---- kernels

// y and/or indices per output window; `norm` (Lp scratch, may be null) gets the window norm.
template <typename T, bool kSmall>
__global__ void __launch_bounds__(kThreads)
    pool_forward_kernel(PoolParams p, PoolKind kind, bool count_include_pad, double power,
                        const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ indices,
                        acc_t<T>* __restrict__ norm, int64_t total) {
  using Acc = acc_t<T>;
  for (int64_t idx = first_index(); idx < total; idx += grid_step()) {
    const int64_t plane = qdiv<kSmall>(idx, p.f_out_sp, p.out_sp);
    int64_t o[3];
    split3<kSmall>(p.out, p.f_out, idx - plane * p.out_sp, o);
    const T* xp = x + plane * p.in_sp;
    if (kind == PoolKind::kMax) {
      const int64_t best = window_argmax(p, xp, o);
      if (y) y[idx] = best < 0 ? from_acc<T>(-INFINITY) : xp[best];
      if (indices) indices[idx] = best;
    } else if (kind == PoolKind::kAvg) {
      Acc s = 0;
      for_each_tap(p, o, [&](int64_t i) { s += to_acc(xp[i]); });
      const int64_t div = avg_divisor(p, count_include_pad, o);
      y[idx] = from_acc<T>(div > 0 ? s / Acc(div) : Acc(0));
    } else {
      const Acc v = window_lp(p, Acc(power), xp, o);
      if (y) y[idx] = from_acc<T>(v);
      if (norm) norm[idx] = v;
    }
  }
}

// grad_x[i] = sum over windows covering i of their share of grad_y (gather, fixed order).
template <typename T, bool kSmall>
__global__ void __launch_bounds__(kThreads)
    pool_backward_kernel(PoolParams p, PoolKind kind, bool count_include_pad, double power,
                         const T* __restrict__ dy, const T* __restrict__ x,
                         const int64_t* __restrict__ argmax, const acc_t<T>* __restrict__ norm,
                         T* __restrict__ dx, int64_t total) {
  using Acc = acc_t<T>;
  for (int64_t idx = first_index(); idx < total; idx += grid_step()) {
    const int64_t plane = qdiv<kSmall>(idx, p.f_in_sp, p.in_sp), pos = idx - plane * p.in_sp;
    int64_t i[3];
    split3<kSmall>(p.in, p.f_in, pos, i);
    const T* gp = dy + plane * p.out_sp;
    Acc s = 0;
    if (kind == PoolKind::kMax) {
      const int64_t* ap = argmax + plane * p.out_sp;
      for_each_window<kSmall>(p, i, [&](int64_t o, int64_t, int64_t, int64_t) {
        if (ap[o] == pos) s += to_acc(gp[o]);
      });
    } else if (kind == PoolKind::kAvg) {
      for_each_window<kSmall>(p, i, [&](int64_t o, int64_t od, int64_t oh, int64_t ow) {
        const int64_t oo[3] = {od, oh, ow};
        const int64_t div = avg_divisor(p, count_include_pad, oo);
        if (div > 0) s += to_acc(gp[o]) / Acc(div);
      });
    } else {
      // d/dx_i (sum x^p)^(1/p) = x_i^(p-1) * y^(1-p); windows with y == 0 contribute 0
      const Acc pw = Acc(power);
      const Acc xi = to_acc(x[idx]);
      const Acc* np = norm + plane * p.out_sp;
      for_each_window<kSmall>(p, i, [&](int64_t o, int64_t, int64_t, int64_t) {
        const Acc yv = np[o];
        if (yv != Acc(0)) s += to_acc(gp[o]) * pow(yv, Acc(1) - pw) * pow(xi, pw - Acc(1));
      });
    }
    dx[idx] = from_acc<T>(s);
  }
}

// out[e] = src at the index the max forward saved for output e (0 for an index outside the
// plane, kNoIndex among them): max pooling's second-order pass, the adjoint of its backward
// from indices.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_gather_kernel(const T* __restrict__ src, const int64_t* __restrict__ indices,
                      int64_t in_sp, int64_t out_sp, T* __restrict__ out, int64_t total) {
  for (int64_t e = first_index(); e < total; e += grid_step()) {
    const int64_t plane = e / out_sp, j = indices[e];
    out[e] = inside(j, in_sp) ? src[plane * in_sp + j] : zero_of<T>();
  }
}

// Records, per output element, the last (highest) input position scattering to it (kNoIndex,
// a window of padding only, scatters nothing).
__global__ void __launch_bounds__(kThreads)
    unpool_claim_kernel(const int64_t* __restrict__ indices, int64_t in_count, int64_t out_count,
                        unsigned long long* __restrict__ winner,
                        unsigned long long* __restrict__ first_bad, int64_t total) {
  for (int64_t e = first_index(); e < total; e += grid_step()) {
    const int64_t plane = e / in_count, j = indices[e];
    if (j == kNoIndex) continue;
    if (j < 0 || j >= out_count) {
      atomicMin(first_bad, static_cast<unsigned long long>(e));
      continue;
    }
    const auto position = static_cast<unsigned long long>(e - plane * in_count + 1);
    atomicMax(&winner[plane * out_count + j], position);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    unpool_write_kernel(const T* __restrict__ x, const unsigned long long* __restrict__ winner,
                        int64_t in_count, int64_t out_count, T* __restrict__ y, int64_t total) {
  for (int64_t e = first_index(); e < total; e += grid_step()) {
    const unsigned long long w = winner[e];
    const int64_t plane = e / out_count;
    y[e] = w ? x[plane * in_count + static_cast<int64_t>(w - 1)] : zero_of<T>();
  }
}

// ---- launchers

unsigned blocks_for(int64_t work) {
  const int64_t b = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(b, 1), 1 << 20));
}

// The forward / backward kernel for p: 32-bit index math when p.small.
template <typename T>
auto forward_kernel(const PoolParams& p) {
  return p.small ? &pool_forward_kernel<T, true> : &pool_forward_kernel<T, false>;
}
template <typename T>
auto backward_kernel(const PoolParams& p) {
  return p.small ? &pool_backward_kernel<T, true> : &pool_backward_kernel<T, false>;
}

template <typename T>
void forward_t(const PoolGeometry& g, const PoolArgs& a, const void* x, void* y, int64_t* indices,
               cudaStream_t stream) {
  const PoolParams p = make_pool_params(g);
  const int64_t total = p.planes * p.out_sp;
  if (total == 0) return;
  launch("pool_forward_kernel", forward_kernel<T>(p), dim3(blocks_for(total)), dim3(kThreads),
         stream, p, a.kind, a.count_include_pad, a.p, static_cast<const T*>(x),
         static_cast<T*>(y), indices, static_cast<acc_t<T>*>(nullptr), total);
}

// Max needs each window's argmax, Lp each window's norm: computed once, before the gather.
size_t backward_scratch(DType dtype, const PoolParams& p, PoolKind kind) {
  const auto outputs = static_cast<size_t>(p.planes * p.out_sp);
  const size_t acc = dtype == DType::kFloat64 ? sizeof(double) : sizeof(float);
  return kind == PoolKind::kMax ? outputs * sizeof(int64_t) : kind == PoolKind::kLp ? outputs * acc : 0;
}

template <typename T>
void backward_t(const PoolGeometry& g, const PoolArgs& a, const void* dy, const void* x, void* dx,
                Workspace ws, size_t scratch, cudaStream_t stream) {
  using Acc = acc_t<T>;
  const PoolParams p = make_pool_params(g);
  const int64_t total = p.planes * p.in_sp, outputs = p.planes * p.out_sp;
  if (total == 0) return;
  int64_t* argmax = a.kind == PoolKind::kMax ? static_cast<int64_t*>(ws.ptr) : nullptr;
  Acc* norm = a.kind == PoolKind::kLp ? static_cast<Acc*>(ws.ptr) : nullptr;
  if (scratch && outputs > 0) {
    launch("pool_forward_kernel (scratch)", forward_kernel<T>(p), dim3(blocks_for(outputs)),
           dim3(kThreads), stream, p, a.kind, a.count_include_pad, a.p,
           static_cast<const T*>(x), static_cast<T*>(nullptr), argmax, norm, outputs);
  }
  launch("pool_backward_kernel", backward_kernel<T>(p), dim3(blocks_for(total)),
         dim3(kThreads), stream, p, a.kind, a.count_include_pad, a.p,
         static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const int64_t*>(argmax),
         static_cast<const acc_t<T>*>(norm), static_cast<T*>(dx), total);
}

void require_workspace(const Workspace& ws, size_t need, const char* what) {
  if (need > 0 && (ws.ptr == nullptr || ws.bytes < need)) {
    throw InvalidArgument(std::string(what) + " needs a workspace of " + std::to_string(need) +
                          " bytes, got " + std::to_string(ws.ptr ? ws.bytes : 0));
  }
}

template <typename Fn>
void by_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32: return fn(float{});
    case DType::kFloat64: return fn(double{});
    case DType::kFloat16: return fn(__half{});
    case DType::kBFloat16: return fn(__nv_bfloat16{});
  }
}

}  // namespace

void pool_forward(DType dtype, const PoolGeometry& g, const PoolArgs& args, const void* x, void* y,
                  int64_t* indices, cudaStream_t stream) {
  by_dtype(dtype, [&](auto tag) { forward_t<decltype(tag)>(g, args, x, y, indices, stream); });
}

size_t pool_backward_workspace(DType dtype, const PoolGeometry& g, const PoolArgs& args) {
  return backward_scratch(dtype, make_pool_params(g), args.kind);
}

void pool_backward(DType dtype, const PoolGeometry& g, const PoolArgs& args, const void* grad_y,
                   const void* x, void* grad_x, Workspace ws, cudaStream_t stream) {
  const size_t need = pool_backward_workspace(dtype, g, args);
  require_workspace(ws, need, "pool backward");
  by_dtype(dtype, [&](auto tag) {
    backward_t<decltype(tag)>(g, args, grad_y, x, grad_x, ws, need, stream);
  });
}

void max_pool_backward_indices(DType dtype, const PoolGeometry& g, const void* grad_y,
                               const int64_t* indices, void* grad_x, cudaStream_t stream) {
  const PoolParams p = make_pool_params(g);
  const int64_t total = p.planes * p.in_sp;
  if (total == 0) return;
  by_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    launch("pool_backward_kernel (indices)", backward_kernel<T>(p), dim3(blocks_for(total)),
           dim3(kThreads), stream, p, PoolKind::kMax, false, 1.0,
           static_cast<const T*>(grad_y), static_cast<const T*>(nullptr), indices,
           static_cast<const acc_t<T>*>(nullptr), static_cast<T*>(grad_x), total);
  });
}

void max_pool_gather(DType dtype, const PoolGeometry& g, const void* src, const int64_t* indices,
                     void* out, cudaStream_t stream) {
  const PoolParams p = make_pool_params(g);
  const int64_t total = p.planes * p.out_sp;
  if (total == 0) return;
  by_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    launch("max_gather_kernel", &max_gather_kernel<T>, dim3(blocks_for(total)), dim3(kThreads),
           stream, static_cast<const T*>(src), indices, p.in_sp, p.out_sp, static_cast<T*>(out),
           total);
  });
}

// ---- max_unpool's bad-index report: one per device in mapped, pinned host memory, written by
// a one-thread kernel at the end of a call that met a bad index and read by the host whenever
// it asks (no synchronisation; a call still running has simply not reported yet). Plain
// stores, not system-scope atomics (which host memory over PCIe may not support): calls on
// two streams of one device that both meet bad indices at the same moment may mix their two
// reports' fields, and a report written while the host clears the previous one may be lost -
// an error is still raised, once, for the first report seen.

namespace {

struct UnpoolReport {
  int64_t index, out_count;
  int state;  // 0: empty, 1: index and out_count hold a report
};

constexpr int kMaxDevices = 64;
struct ReportSlot {
  UnpoolReport* host = nullptr;    // never freed (a few bytes per device)
  UnpoolReport* device = nullptr;  // the same memory as the kernels address it
};
std::mutex report_mutex;
ReportSlot reports[kMaxDevices];

// The current device's report, made on first use (outside graph capture, where allocating
// pinned memory is not allowed: a warm-up call before capturing makes it).
const ReportSlot& device_report() {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  if (device < 0 || device >= kMaxDevices) throw Unsupported("max_unpool: device index too large");
  std::lock_guard<std::mutex> lock(report_mutex);
  ReportSlot& slot = reports[device];
  if (slot.host == nullptr) {
    void* host = nullptr;
    void* on_device = nullptr;
    check_cuda(cudaHostAlloc(&host, sizeof(UnpoolReport), cudaHostAllocMapped),
               "cudaHostAlloc (max_unpool's index report; under CUDA-graph capture, run one "
               "max_unpool on this device before capturing)");
    std::memset(host, 0, sizeof(UnpoolReport));
    check_cuda(cudaHostGetDevicePointer(&on_device, host, 0), "cudaHostGetDevicePointer");
    slot.device = static_cast<UnpoolReport*>(on_device);
    slot.host = static_cast<UnpoolReport*>(host);
  }
  return slot;
}

__global__ void unpool_report_kernel(const unsigned long long* __restrict__ first_bad,
                                     const int64_t* __restrict__ indices, int64_t out_count,
                                     UnpoolReport* report) {
  const unsigned long long bad = *first_bad;
  volatile UnpoolReport* r = report;
  if (bad == ~0ull || r->state != 0) return;  // nothing to report, or an unread report stands
  r->index = indices[bad];
  r->out_count = out_count;
  __threadfence_system();  // the fields reach the host before the flag does
  r->state = 1;
}

}  // namespace

bool take_unpool_error(int device, UnpoolError* error) {
  if (device < 0 || device >= kMaxDevices) return false;
  UnpoolReport* r = nullptr;
  {
    std::lock_guard<std::mutex> lock(report_mutex);
    r = reports[device].host;  // none yet: no max_unpool ran there, nothing to report
  }
  if (r == nullptr || __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == 0) return false;
  *error = {__atomic_load_n(&r->index, __ATOMIC_RELAXED),
            __atomic_load_n(&r->out_count, __ATOMIC_RELAXED)};
  __atomic_store_n(&r->state, 0, __ATOMIC_RELEASE);
  return true;
}

std::vector<int> unpool_report_devices() {
  std::lock_guard<std::mutex> lock(report_mutex);
  std::vector<int> out;
  for (int d = 0; d < kMaxDevices; ++d)
    if (reports[d].host) out.push_back(d);
  return out;
}

size_t max_unpool_workspace(int64_t planes, int64_t out_count) {
  return static_cast<size_t>(planes * out_count + 1) * sizeof(unsigned long long);
}

void max_unpool(DType dtype, int64_t planes, int64_t in_count, int64_t out_count, const void* x,
                const int64_t* indices, void* y, Workspace ws, cudaStream_t stream) {
  const int64_t inputs = planes * in_count, outputs = planes * out_count;
  if (outputs == 0) return;
  require_workspace(ws, max_unpool_workspace(planes, out_count), "max_unpool");
  UnpoolReport* report = device_report().device;
  auto* winner = static_cast<unsigned long long*>(ws.ptr);
  unsigned long long* bad = winner + outputs;
  check_cuda(cudaMemsetAsync(winner, 0, outputs * sizeof(unsigned long long), stream),
             "cudaMemsetAsync");
  check_cuda(cudaMemsetAsync(bad, 0xff, sizeof(unsigned long long), stream), "cudaMemsetAsync");
  if (inputs > 0) {
    launch("unpool_claim_kernel", &unpool_claim_kernel, dim3(blocks_for(inputs)), dim3(kThreads),
           stream, indices, in_count, out_count, winner, bad, inputs);
  }
  by_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    launch("unpool_write_kernel", &unpool_write_kernel<T>, dim3(blocks_for(outputs)),
           dim3(kThreads), stream, static_cast<const T*>(x),
           static_cast<const unsigned long long*>(winner), in_count, out_count,
           static_cast<T*>(y), outputs);
  });
  launch("unpool_report_kernel", &unpool_report_kernel, dim3(1), dim3(1), stream,
         static_cast<const unsigned long long*>(bad), indices, out_count, report);
}

}  // namespace fastconv::cuda
