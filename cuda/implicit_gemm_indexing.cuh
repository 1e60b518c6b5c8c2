// Index math of implicit_gemm.cu's three passes: where A[m][r], B[r][n] and C[m][n] lie in the
// tensors, with no division per gathered element. Included by implicit_gemm_kernel.cuh alone.
#pragma once
#include <cstdint>

#include "conv_kernels.h"
#include "dtype.cuh"
#include "launch.cuh"

namespace fastconv::cuda {
// Unnamed, as when this code was in implicit_gemm.cu, its only includer: internal linkage.
namespace {

// ---- index math of the three passes (all int64; -1 = outside the input / padding)

__device__ __forceinline__ void split_tap(const ConvParams& p, int64_t tap, int64_t t[3]) {
  const int64_t plane = p.kernel[1] * p.kernel[2];
  t[0] = tap / plane;
  const int64_t rem = tap - t[0] * plane;
  t[1] = rem / p.kernel[2];
  t[2] = rem - t[1] * p.kernel[2];
}

__device__ __forceinline__ void split_pos(const int64_t ext[3], int64_t pos, int64_t q[3]) {
  const int64_t plane = ext[1] * ext[2];
  q[0] = pos / plane;
  const int64_t rem = pos - q[0] * plane;
  q[1] = rem / ext[2];
  q[2] = rem - q[1] * ext[2];
}

__device__ __forceinline__ int64_t weight_tap(const ConvParams& p, int64_t tap) {
  return p.flip ? p.taps - 1 - tap : tap;
}

// backward_data runs one GEMM per stride phase (phases side by side in one launch, PhaseTable
// below): the input positions i with
// (i + pad) % stride == phase in every dim, i = first + stride * j, and the only taps that
// reach them, t = t0 + t_step * u (t * dilation % stride == phase), so no tap of the GEMM
// misses the stride and no gather divides. Stride 1 is one phase with every position and tap.
struct Phase {
  int64_t first[3], count[3];  // input positions first + stride * j, j < count
  int64_t t0[3], t_step[3], nt[3];  // taps t0 + t_step * u, u < nt
  int64_t columns, taps;       // count and nt products
};

// Everything a block needs besides the tensors.
struct GemmArgs {
  int64_t M, N, R;
  int64_t r_chunk;    // reduction length per split (multiple of kBK)
  int splits;         // blockIdx.z = group_in_launch * splits + split
  int64_t group0;     // first group of this launch
  int64_t out_total;  // output elements (stride between splits in the workspace)
  Phase ph;           // backward_data only
};

// backward_data's stride phases of one launch: blockIdx.z = group_in_launch * count + phase,
// each block takes its phase's N and R (grid.x covers the widest phase; blocks past a narrower
// phase's columns return at once). Up to kLaunchPhases per launch (a 4x4 stride: two), so the
// kernel's parameters stay within the 4 KiB every architecture takes.
constexpr int kLaunchPhases = 8;
struct PhaseTable {
  int count;  // 0 outside backward_data
  Phase ph[kLaunchPhases];
};

// What one thread knows about its fixed B column n across the whole reduction.
struct BColumn {
  bool valid;
  int64_t base;   // element offset of the column's (image, channel-group) or channel plane
  int64_t q[3];   // forward: window origin; backward_data: in position + pad;
                  // backward_weight: tap offset (tap * dilation - pad)
};

template <ConvPass P>
__device__ __forceinline__ BColumn b_column(const ConvParams& p, const GemmArgs& ga, int64_t g,
                                            int64_t n) {
  BColumn col{};
  col.valid = n < ga.N;
  if (!col.valid) return col;
  if constexpr (P == ConvPass::kForward) {
    const int64_t b = n / p.out_sp;
    int64_t o[3];
    split_pos(p.out, n - b * p.out_sp, o);
    for (int d = 0; d < 3; ++d) col.q[d] = o[d] * p.stride[d] - p.pad[d];
    col.base = (b * p.c + g * p.cg) * p.in_sp;
  } else if constexpr (P == ConvPass::kBackwardData) {  // n = (b, j): i = first + stride j
    const int64_t b = n / ga.ph.columns;
    split_pos(ga.ph.count, n - b * ga.ph.columns, col.q);
    col.base = (b * p.k + g * p.kg) * p.out_sp;
  } else {
    const int64_t c = n / p.taps;
    int64_t t[3];
    split_tap(p, n - c * p.taps, t);
    for (int d = 0; d < 3; ++d) col.q[d] = t[d] * p.dil[d] - p.pad[d];
    col.base = (g * p.cg + c) * p.in_sp;
  }
  return col;
}

// What the block knows about one reduction row r of the current slice. The block computes
// these once per slice into shared memory (16 rows), so the per-element gathers of all 256
// threads need no division: A[m][r] = a + m * a_row_stride, B[r][n] from b, d and the column.
struct RowInfo {
  int64_t a;     // A offset of (m = 0, r); -1 when r lies past this block's reduction range
  int64_t b;     // r's part of the B offset
  int64_t d[3];  // forward/backward_data: tap * dilation; backward_weight: out position * stride
};

template <ConvPass P>
__device__ __forceinline__ RowInfo row_info(const ConvParams& p, const GemmArgs& ga, int64_t g,
                                            int64_t r, int64_t r_end) {
  RowInfo row{};
  if (r >= r_end) {
    row.a = -1;
    return row;
  }
  if constexpr (P == ConvPass::kForward) {  // r = (c, tap): A = w[g kg + m][c][tap], B = x
    const int64_t c = r / p.taps, tap = r - c * p.taps;
    int64_t t[3];
    split_tap(p, tap, t);
    row.a = g * p.kg * p.cg * p.taps + c * p.taps + weight_tap(p, tap);
    row.b = c * p.in_sp;
    for (int d = 0; d < 3; ++d) row.d[d] = t[d] * p.dil[d];
  } else if constexpr (P == ConvPass::kBackwardData) {  // r = (k, u): A = w[g kg + k][m][t(u)]
    const Phase& ph = ga.ph;
    const int64_t k = r / ph.taps;
    int64_t u[3], t[3];
    split_pos(ph.nt, r - k * ph.taps, u);
    for (int d = 0; d < 3; ++d) {
      t[d] = ph.t0[d] + ph.t_step[d] * u[d];
      // o = (i + pad - t dil) / stride = j + d, exact by the choice of phase and taps
      row.d[d] = (ph.first[d] + p.pad[d] - t[d] * p.dil[d]) / p.stride[d];
    }
    row.a = (g * p.kg + k) * p.cg * p.taps +
            weight_tap(p, (t[0] * p.kernel[1] + t[1]) * p.kernel[2] + t[2]);
    row.b = k * p.out_sp;
  } else {  // r = (image b, out position o): A = dy[b][g kg + m][o], B = x[b][...]
    const int64_t b = r / p.out_sp, o = r - b * p.out_sp;
    int64_t q[3];
    split_pos(p.out, o, q);
    row.a = (b * p.k + g * p.kg) * p.out_sp + o;
    row.b = b * p.c * p.in_sp;
    for (int d = 0; d < 3; ++d) row.d[d] = q[d] * p.stride[d];
  }
  return row;
}

// Distance in A between rows m and m + 1.
template <ConvPass P>
__device__ __forceinline__ int64_t a_row_stride(const ConvParams& p) {
  if constexpr (P == ConvPass::kForward) return p.cg * p.taps;
  else if constexpr (P == ConvPass::kBackwardData) return p.taps;
  else return p.out_sp;
}

// Offset of B[r][column] in the B tensor, or -1 (padding, or a tap that misses the stride).
template <ConvPass P>
__device__ __forceinline__ int64_t b_offset(const ConvParams& p, const BColumn& col,
                                            const RowInfo& row) {
  if constexpr (P == ConvPass::kBackwardData) {  // dy[o], o = j + d (see Phase)
    int64_t o[3];
    for (int d = 0; d < 3; ++d) {
      o[d] = col.q[d] + row.d[d];
      if (!inside(o[d], p.out[d])) return -1;
    }
    return col.base + row.b + (o[0] * p.out[1] + o[1]) * p.out[2] + o[2];
  } else {  // x[i] with i = window origin + tap * dil (forward) or o * stride + tap offset
    int64_t i[3];
    for (int d = 0; d < 3; ++d) {
      i[d] = col.q[d] + row.d[d];
      if (!inside(i[d], p.in[d])) return -1;
    }
    return col.base + row.b + (i[0] * p.in[1] + i[1]) * p.in[2] + i[2];
  }
}

// Offset of C[m][n] in the output tensor is column(n) + m * c_row_stride: the column part is
// decoded once per thread and column, the row part is one multiply.
template <ConvPass P>
__device__ __forceinline__ int64_t c_column(const ConvParams& p, const GemmArgs& ga, int64_t g,
                                            int64_t n) {
  if constexpr (P == ConvPass::kForward) {  // y[b][g kg + m][o]
    const int64_t b = n / p.out_sp;
    return (b * p.k + g * p.kg) * p.out_sp + (n - b * p.out_sp);
  } else if constexpr (P == ConvPass::kBackwardData) {  // dx[b][g cg + m][first + stride j]
    const Phase& ph = ga.ph;
    const int64_t b = n / ph.columns;
    int64_t j[3], i[3];
    split_pos(ph.count, n - b * ph.columns, j);
    for (int d = 0; d < 3; ++d) i[d] = ph.first[d] + p.stride[d] * j[d];
    return (b * p.c + g * p.cg) * p.in_sp + (i[0] * p.in[1] + i[1]) * p.in[2] + i[2];
  } else {  // dw[g kg + m][c][tap]
    const int64_t c = n / p.taps;
    return (g * p.kg * p.cg + c) * p.taps + weight_tap(p, n - c * p.taps);
  }
}

template <ConvPass P>
__device__ __forceinline__ int64_t c_row_stride(const ConvParams& p) {
  if constexpr (P == ConvPass::kForward) return p.out_sp;
  else if constexpr (P == ConvPass::kBackwardData) return p.in_sp;
  else return p.cg * p.taps;
}

// Bias channel of output row m (-1: backward_weight has none).
template <ConvPass P>
__device__ __forceinline__ int64_t bias_channel(const ConvParams& p, int64_t g, int64_t m) {
  if constexpr (P == ConvPass::kForward) return g * p.kg + m;
  else if constexpr (P == ConvPass::kBackwardData) return g * p.cg + m;
  else return -1;
}

template <typename T, ConvPass P>
__device__ __forceinline__ void store_c(const ConvParams& p, const GemmArgs& ga, int64_t g,
                                        int split, int64_t m, int64_t column, acc_t<T> v,
                                        const T* bias, T* out, acc_t<T>* partial) {
  const int64_t off = column + m * c_row_stride<P>(p);
  if (partial) {
    partial[split * ga.out_total + off] = v;
    return;
  }
  const int64_t channel = bias_channel<P>(p, g, m);
  if (bias && channel >= 0) v += to_acc(bias[channel]);
  out[off] = from_acc<T>(v);
}

}  // namespace
}  // namespace fastconv::cuda
