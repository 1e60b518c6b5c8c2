// The tensor-op path's NHWC core in the host emulation (tensor_op_conv.h): a plain kernel, one
// thread per output element, in place of CUTLASS's tensor-op kernels (which need a GPU), so the
// emulation tests check everything around the core: which layers take the path, the workspace
// layout, the moves to channels-last order and back (filter flip, bias, the float32 weight
// gradient) and the core's problem in NHWC terms, against fastconv's CPU reference. Built by
// build.sh with host_emulation.h; the GPU build compiles cuda/tensor_op_cutlass.cu instead.
#include <cstring>

#include "dtype.cuh"
#include "launch.cuh"
#include "tensor_op_conv.h"
#include "fastconv/status.h"

namespace fastconv::cuda {
namespace {

constexpr size_t kCoreScratch = 256;  // stands in for the split's semaphores

// Out: T, or float when the core writes float32 (c.float_out)
template <typename T, typename Out>
__global__ void fprop(NhwcConv c, const T* x, const T* w, Out* y) {
  const int64_t total = int64_t(c.n) * c.p * c.q * c.k;
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    const int k = static_cast<int>(i % c.k), q = static_cast<int>(i / c.k % c.q);
    const int p = static_cast<int>(i / c.k / c.q % c.p), n = static_cast<int>(i / c.k / c.q / c.p);
    float acc = 0;
    for (int r = 0; r < c.r; ++r)
      for (int s = 0; s < c.s; ++s) {
        const int h = p * c.stride_h - c.pad_h + r * c.dil_h;
        const int wi = q * c.stride_w - c.pad_w + s * c.dil_w;
        if (h < 0 || h >= c.h || wi < 0 || wi >= c.w) continue;
        for (int ch = 0; ch < c.c; ++ch) {
          acc += to_acc(x[((int64_t(n) * c.h + h) * c.w + wi) * c.c + ch]) *
                 to_acc(w[((int64_t(k) * c.r + r) * c.s + s) * c.c + ch]);
        }
      }
    y[i] = from_acc<Out>(acc);
  }
}

template <typename T, typename Out>
__global__ void dgrad(NhwcConv c, const T* dy, const T* w, Out* dx) {
  const int64_t total = int64_t(c.n) * c.h * c.w * c.c;
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    const int ch = static_cast<int>(i % c.c), wi = static_cast<int>(i / c.c % c.w);
    const int h = static_cast<int>(i / c.c / c.w % c.h), n = static_cast<int>(i / c.c / c.w / c.h);
    float acc = 0;
    for (int r = 0; r < c.r; ++r)
      for (int s = 0; s < c.s; ++s) {
        const int ph = h + c.pad_h - r * c.dil_h, qw = wi + c.pad_w - s * c.dil_w;
        if (ph < 0 || qw < 0 || ph % c.stride_h != 0 || qw % c.stride_w != 0) continue;
        const int p = ph / c.stride_h, q = qw / c.stride_w;
        if (p >= c.p || q >= c.q) continue;
        for (int k = 0; k < c.k; ++k) {
          acc += to_acc(dy[((int64_t(n) * c.p + p) * c.q + q) * c.k + k]) *
                 to_acc(w[((int64_t(k) * c.r + r) * c.s + s) * c.c + ch]);
        }
      }
    dx[i] = from_acc<Out>(acc);
  }
}

template <typename T>
__global__ void wgrad(NhwcConv c, const T* dy, const T* x, float* dw) {
  const int64_t total = int64_t(c.k) * c.r * c.s * c.c;
  for (int64_t i = first_index(); i < total; i += grid_step()) {
    const int ch = static_cast<int>(i % c.c), s = static_cast<int>(i / c.c % c.s);
    const int r = static_cast<int>(i / c.c / c.s % c.r), k = static_cast<int>(i / c.c / c.s / c.r);
    float acc = 0;
    for (int n = 0; n < c.n; ++n)
      for (int p = 0; p < c.p; ++p)
        for (int q = 0; q < c.q; ++q) {
          const int h = p * c.stride_h - c.pad_h + r * c.dil_h;
          const int wi = q * c.stride_w - c.pad_w + s * c.dil_w;
          if (h < 0 || h >= c.h || wi < 0 || wi >= c.w) continue;
          acc += to_acc(dy[((int64_t(n) * c.p + p) * c.q + q) * c.k + k]) *
                 to_acc(x[((int64_t(n) * c.h + h) * c.w + wi) * c.c + ch]);
        }
    dw[i] = acc;
  }
}

template <typename T>
void run_typed(ConvPass pass, const NhwcConv& c, const void* a, const void* b, void* out) {
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  const dim3 grid(64), block(64);
  const bool f32 = c.float_out(pass);
  switch (pass) {
    case ConvPass::kForward:
      if (f32) return launch("nhwc_fprop", &fprop<T, float>, grid, block, nullptr, c, ta, tb,
                             static_cast<float*>(out));
      return launch("nhwc_fprop", &fprop<T, T>, grid, block, nullptr, c, ta, tb,
                    static_cast<T*>(out));
    case ConvPass::kBackwardData:
      if (f32) return launch("nhwc_dgrad", &dgrad<T, float>, grid, block, nullptr, c, ta, tb,
                             static_cast<float*>(out));
      return launch("nhwc_dgrad", &dgrad<T, T>, grid, block, nullptr, c, ta, tb,
                    static_cast<T*>(out));
    case ConvPass::kBackwardWeight:
      return launch("nhwc_wgrad", &wgrad<T>, grid, block, nullptr, c, ta, tb,
                    static_cast<float*>(out));
  }
}

}  // namespace

const char* nhwc_core_name() { return "host-emulation reference core"; }
bool nhwc_core_picks_hopper(ConvPass, DType, const NhwcConv&) { return false; }
const char* nhwc_core_kernel(ConvPass, DType, const NhwcConv&) { return nhwc_core_name(); }
bool nhwc_core_can_run(ConvPass, DType, const NhwcConv&) { return true; }

size_t nhwc_core_workspace(ConvPass, DType, const NhwcConv& c) {
  return c.splits > 1 ? kCoreScratch : 0;  // CUTLASS's serial split-K wants its semaphores
}

void nhwc_core_run(ConvPass pass, DType dtype, const NhwcConv& c, const void* a, const void* b,
                   void* out, Workspace ws, cudaStream_t) {
  const size_t want = nhwc_core_workspace(pass, dtype, c);
  if (ws.bytes != want || (want > 0 && ws.ptr == nullptr)) {
    throw InvalidArgument("emulated NHWC core: got a " + std::to_string(ws.bytes) +
                          "-byte workspace, wants " + std::to_string(want));
  }
  if (want > 0) std::memset(ws.ptr, 0x5a, want);  // the layout must give it its own bytes
  if (dtype == DType::kFloat16) {
    run_typed<__half>(pass, c, a, b, out);
  } else if (dtype == DType::kBFloat16) {
    run_typed<__nv_bfloat16>(pass, c, a, b, out);
  } else {  // float32 (TF32 on the GPU; exact float32 sums here, well within its tolerance)
    run_typed<float>(pass, c, a, b, out);
  }
}

}  // namespace fastconv::cuda
