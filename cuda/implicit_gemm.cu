// Implicit-GEMM convolution on the GPU, all three passes, any rank 1-3, stride, padding,
// dilation, groups. Each pass is a GEMM C[M][N] = sum_r A[m][r] * B[r][n] whose operands are
// gathered straight from the tensors (no im2col buffer):
//   forward          M = K/G (out channel)  N = (n, out position)  r = (c, tap)   A = w, B = x
//   backward_data    M = C/G (in channel)   N = (n, in position)   r = (k, tap)   A = w, B = dy
//   backward_weight  M = K/G (out channel)  N = (c, tap)           r = (n, out position)
//                                                                  A = dy, B = x
// One 64x64 output tile per 256-thread block; 16-deep slices of A and B are staged in shared
// memory, double buffered: the next slice is in flight (cp.async, zero-filled where the gather
// falls into padding) while the current one is multiplied. The multiply is either SIMT (exact
// FP32 / FP64, 4x4 outputs per thread) or tensor cores through WMMA (float16, bfloat16, and
// TF32 for float32 when allowed), always accumulating in float32 (float64 for double).
// No pass uses atomics: a block owns its outputs; when the reduction is long and the output
// small (forward and backward_weight), it is split into slices written to a workspace and
// summed in a fixed order by a second kernel, so results are bitwise reproducible run to run.
// implicit_gemm_indexing.cuh holds each pass's index math, implicit_gemm_kernel.cuh the kernels;
// this file, the launchers: GEMM shapes, stride phases, split-K and dtype / math dispatch.
#include <algorithm>
#include <vector>

#include "conv_kernels.h"
#include "cuda_check.h"
#include "dtype.cuh"
#include "implicit_gemm_kernel.cuh"
#include "launch.cuh"
#include "split_reduce.cuh"
#include "tensor_op_conv.h"
#include "fastconv/status.h"

namespace fastconv::cuda {

ConvParams make_conv_params(const ConvGeometry& g) {
  ConvParams p{};
  p.n = g.n;
  p.c = g.c;
  p.k = g.k;
  p.groups = g.groups;
  p.cg = g.c_per_group();
  p.kg = g.k_per_group();
  for (int d = 0; d < kMaxRank; ++d) {
    p.in[d] = g.in[d];
    p.kernel[d] = g.kernel[d];
    p.out[d] = g.out[d];
    p.stride[d] = g.stride[d];
    p.pad[d] = g.pad_lo[d];
    p.dil[d] = g.dilation[d];
  }
  p.in_sp = g.in_spatial();
  p.out_sp = g.out_spatial();
  p.taps = g.kernel_spatial();
  p.flip = g.mode == ConvMode::kConv;
  return p;
}

namespace {

// ---- launchers

struct GemmShape {
  int64_t M, N, R, out_total;
};

GemmShape gemm_shape(ConvPass pass, const ConvParams& p) {
  switch (pass) {
    case ConvPass::kForward:
      return {p.kg, p.n * p.out_sp, p.cg * p.taps, p.n * p.k * p.out_sp};
    case ConvPass::kBackwardData:
      return {p.cg, p.n * p.in_sp, p.kg * p.taps, p.n * p.c * p.in_sp};
    default:
      return {p.kg, p.cg * p.taps, p.n * p.out_sp, p.k * p.cg * p.taps};
  }
}

unsigned grid_1d(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 1 << 20));
}

// The stride phases of backward_data that hold input positions (one when every stride is 1).
std::vector<Phase> data_phases(const ConvParams& p) {
  std::vector<Phase> phases;
  const int64_t count = p.stride[0] * p.stride[1] * p.stride[2];
  for (int64_t f = 0; f < count; ++f) {
    const int64_t phi[3] = {f / (p.stride[1] * p.stride[2]), (f / p.stride[2]) % p.stride[1],
                            f % p.stride[2]};
    Phase ph{};
    ph.columns = ph.taps = 1;
    for (int d = 0; d < 3; ++d) {
      const int64_t s = p.stride[d];
      ph.first[d] = ((phi[d] - p.pad[d]) % s + s) % s;  // (first + pad) % s == phi
      ph.count[d] = ph.first[d] < p.in[d] ? (p.in[d] - 1 - ph.first[d]) / s + 1 : 0;
      // taps with t * dil % s == phi: an arithmetic progression of step s / gcd(dil, s)
      int64_t found = 0, t0 = 0, t1 = -1;
      for (int64_t t = 0; t < p.kernel[d]; ++t) {
        if ((t * p.dil[d]) % s != phi[d]) continue;
        if (found == 0) t0 = t;
        if (found == 1) t1 = t;
        ++found;
      }
      ph.t0[d] = t0;
      ph.t_step[d] = t1 > t0 ? t1 - t0 : 1;
      ph.nt[d] = found;
      ph.columns *= ph.count[d];
      ph.taps *= ph.nt[d];
    }
    if (ph.columns > 0) phases.push_back(ph);  // taps == 0: its positions get zero (+ bias)
  }
  return phases;
}

// Launches the output tiles of one GEMM (backward data: of the phases in `phases`, ga.N the
// widest one's), in chunks of groups so grid.z stays <= 65535.
template <typename T, ConvPass P, bool kTensorCores>
void launch_tiles(const ConvParams& p, GemmArgs ga, const PhaseTable& phases, const T* A,
                  const T* B, const T* bias, T* out, acc_t<T>* partial, cudaStream_t stream) {
  const int64_t n_tiles = (ga.N + kBN - 1) / kBN, m_tiles = (ga.M + kBM - 1) / kBM;
  if (n_tiles == 0 || m_tiles == 0) return;
  if (n_tiles > 0x7fffffff || m_tiles > 65535) {
    throw Unsupported("implicit_gemm (cuda): problem too large for one grid (" +
                      std::to_string(m_tiles) + " x " + std::to_string(n_tiles) + " tiles)");
  }
  const int64_t per_group = int64_t(ga.splits) * std::max(phases.count, 1);
  const int64_t groups_per_launch = std::max<int64_t>(1, 65535 / per_group);
  for (int64_t g0 = 0; g0 < p.groups; g0 += groups_per_launch) {
    ga.group0 = g0;
    const int64_t gcount = std::min(groups_per_launch, p.groups - g0);
    const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles),
                    static_cast<unsigned>(gcount * per_group));
    launch("implicit_gemm_kernel", &implicit_gemm_kernel<T, P, kTensorCores>, grid,
           dim3(kThreads), stream, p, ga, phases, A, B, bias, out, partial);
  }
}

int64_t round_up_to_slice(int64_t r) { return (r + kBK - 1) / kBK * kBK; }

// The slices forward and backward_weight split their reduction into on the current device: few
// output tiles over a long reduction (late layers: 7x7 maps of 512-2048 channels) -> enough
// slices that every SM has two blocks, each at least four 16-deep steps (1: no split).
int64_t wanted_splits(const GemmShape& s, const ConvParams& p) {
  const int64_t blocks = ((s.N + kBN - 1) / kBN) * ((s.M + kBM - 1) / kBM) * p.groups;
  const int64_t target = 2 * static_cast<int64_t>(multiprocessors());
  if (blocks >= target) return 1;
  const int64_t max_splits = std::max<int64_t>(1, s.R / (4 * kBK));  // >= 4 slices each
  return std::min<int64_t>({(target + blocks - 1) / blocks, max_splits, 128});
}

// Reduction slices of round_up_to_slice size, at most `splits` of them (ga.R > 0).
void set_split(GemmArgs& ga, int64_t splits) {
  splits = std::max<int64_t>(splits, 1);
  ga.r_chunk = round_up_to_slice((ga.R + splits - 1) / splits);
  ga.splits = static_cast<int>((ga.R + ga.r_chunk - 1) / ga.r_chunk);
}

template <typename T, ConvPass P, bool kTensorCores>
void launch_gemm(const ConvParams& p, const T* A, const T* B, const T* bias, T* out, Workspace ws,
                 cudaStream_t stream) {
  const GemmShape s = gemm_shape(P, p);
  if (s.out_total == 0) return;
  if constexpr (P == ConvPass::kBackwardData) {  // the phases kLaunchPhases per launch
    const std::vector<Phase> all = data_phases(p);
    for (size_t first = 0; first < all.size(); first += kLaunchPhases) {
      PhaseTable table{};
      int64_t widest = 0;
      for (size_t i = first; i < std::min(all.size(), first + kLaunchPhases); ++i) {
        table.ph[table.count++] = all[i];
        widest = std::max(widest, all[i].columns);
      }
      const GemmArgs ga{p.cg, p.n * widest, 0, 0, 1, 0, s.out_total, Phase{}};
      launch_tiles<T, P, kTensorCores>(p, ga, table, A, B, bias, out, nullptr, stream);
    }
    return;
  }
  if (s.R == 0) {  // empty batch: the weight gradient is zero
    check_cuda(cudaMemsetAsync(out, 0, s.out_total * sizeof(T), stream), "cudaMemsetAsync");
    return;
  }
  GemmArgs ga{s.M, s.N, s.R, round_up_to_slice(s.R), 1, 0, s.out_total, Phase{}};
  using Acc = acc_t<T>;
  // Forward and weight gradient: as many slices as the workspace holds, up to wanted.
  const int64_t room = static_cast<int64_t>(ws.ptr ? ws.bytes / (s.out_total * sizeof(Acc)) : 0);
  set_split(ga, std::min(wanted_splits(s, p), room));
  Acc* partial = ga.splits > 1 ? static_cast<Acc*>(ws.ptr) : nullptr;
  launch_tiles<T, P, kTensorCores>(p, ga, PhaseTable{}, A, B, bias, out, partial, stream);
  if (partial) {  // the forward's bias after the sum, per output channel of (N, K, spatial)
    const bool with_bias = P == ConvPass::kForward && bias != nullptr;
    launch("split_reduce_kernel", &split_reduce_kernel<T>, dim3(grid_1d(s.out_total, 256)),
           dim3(256), stream, partial, out, s.out_total, ga.splits, with_bias ? bias : nullptr,
           std::max<int64_t>(p.out_sp, 1), std::max<int64_t>(p.k, 1));
  }
}

template <typename T, bool kTensorCores>
void dispatch_pass(ConvPass pass, const ConvParams& p, const void* a, const void* b,
                   const void* bias, void* out, Workspace ws, cudaStream_t stream) {
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  const T* tbias = static_cast<const T*>(bias);
  T* tout = static_cast<T*>(out);
  switch (pass) {  // operands (a, b) per pass -> GEMM (A, B); see conv_kernels.h
    case ConvPass::kForward:
      return launch_gemm<T, ConvPass::kForward, kTensorCores>(p, tb, ta, tbias, tout, ws, stream);
    case ConvPass::kBackwardData:
      return launch_gemm<T, ConvPass::kBackwardData, kTensorCores>(p, tb, ta, tbias, tout, ws,
                                                                    stream);
    case ConvPass::kBackwardWeight:
      return launch_gemm<T, ConvPass::kBackwardWeight, kTensorCores>(p, tb, ta, nullptr, tout, ws,
                                                                      stream);
  }
}

}  // namespace

bool implicit_gemm_tensor_op(ConvPass pass, DType dtype, const ConvParams& p, GemmMath math) {
  return math == GemmMath::kTensorCore && tensor_op_eligible(pass, dtype, p);
}

bool implicit_gemm_takes_order(ConvPass pass, DType dtype, const ConvParams& p, GemmMath math,
                               OperandOrder order) {
  if (!order.any()) return true;
  return implicit_gemm_tensor_op(pass, dtype, p, math) &&
         tensor_op_takes_order(pass, dtype, p, order);
}

size_t implicit_gemm_workspace(ConvPass pass, DType dtype, const ConvParams& p, GemmMath math) {
  if (implicit_gemm_tensor_op(pass, dtype, p, math)) return tensor_op_workspace(pass, dtype, p);
  if (pass == ConvPass::kBackwardData) return 0;  // its phases fill the grid side by side
  const GemmShape s = gemm_shape(pass, p);
  if (s.R == 0 || s.out_total == 0) return 0;
  GemmArgs ga{s.M, s.N, s.R, round_up_to_slice(s.R), 1, 0, s.out_total, Phase{}};
  set_split(ga, wanted_splits(s, p));
  if (ga.splits <= 1) return 0;
  const size_t acc = dtype == DType::kFloat64 ? sizeof(double) : sizeof(float);
  return static_cast<size_t>(ga.splits) * static_cast<size_t>(s.out_total) * acc;
}

void implicit_gemm_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a,
                        const void* b, const void* bias, void* out, GemmMath math, Workspace ws,
                        cudaStream_t stream, OperandOrder order) {
  const bool tc = math == GemmMath::kTensorCore;
  if (tc && tensor_op_conv(pass, dtype, p, a, b, bias, out, ws, stream, order)) return;
  if (order.any()) {  // nothing ran: the layer, the order or the workspace did not fit
    const size_t need = tc ? tensor_op_workspace(pass, dtype, p) : 0;
    throw InvalidArgument(
        "implicit_gemm (cuda): channels-last operands or results need the tensor-op path to "
        "take this layer in that order with a workspace of " + std::to_string(need) + " bytes (got " +
        std::to_string(ws.bytes) + "; 0 needed: the path does not take it)");
  }
  switch (dtype) {
    case DType::kFloat32:  // tensor cores for float32 means TF32 (opt-in)
      if (tc) return dispatch_pass<float, true>(pass, p, a, b, bias, out, ws, stream);
      return dispatch_pass<float, false>(pass, p, a, b, bias, out, ws, stream);
    case DType::kFloat64:
      return dispatch_pass<double, false>(pass, p, a, b, bias, out, ws, stream);
    case DType::kFloat16:
      if (tc) return dispatch_pass<__half, true>(pass, p, a, b, bias, out, ws, stream);
      return dispatch_pass<__half, false>(pass, p, a, b, bias, out, ws, stream);
    case DType::kBFloat16:
      if (tc) return dispatch_pass<__nv_bfloat16, true>(pass, p, a, b, bias, out, ws, stream);
      return dispatch_pass<__nv_bfloat16, false>(pass, p, a, b, bias, out, ws, stream);
  }
}

}  // namespace fastconv::cuda
