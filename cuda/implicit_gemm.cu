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
// backward_weight never uses atomics: a block owns its outputs; when the reduction is long and
// the output small, it is split into slices written to a workspace and summed in a fixed order
// by a second kernel, so results are bitwise reproducible run to run.
#ifndef FASTCONV_HOST_EMULATION
#include <mma.h>
#endif

#include <algorithm>
#include <mutex>
#include <vector>

#include "conv_kernels.h"
#include "cuda_check.h"
#include "dtype.cuh"
#include "launch.cuh"
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

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;

// ---- cp.async (sm_80+): 4- or 8-byte copies global -> shared, zero-filled when !valid.

template <int kBytes>
__device__ __forceinline__ void cp_async_zfill(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? kBytes : 0;  // 0: nothing is read, the destination is zeroed
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(gmem),
               "n"(kBytes), "r"(src_bytes));
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");  // copies land here
#endif
}

// Stages one element; `off` < 0 means padding (zero). 2-byte types have no cp.async size, so
// they load through registers (the copy is visible after the next __syncthreads like cp.async).
template <typename T>
__device__ __forceinline__ void stage(T* dst, const T* base, int64_t off) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    cp_async_zfill<sizeof(T)>(dst, off >= 0 ? base + off : base, off >= 0);
    return;
  }
#endif
  *dst = off >= 0 ? base[off] : zero_of<T>();
}

// ---- index math of the three passes (all int64; -1 = outside the input / padding)

__device__ __forceinline__ bool inside(int64_t v, int64_t extent) {
  return static_cast<uint64_t>(v) < static_cast<uint64_t>(extent);
}

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

// backward_data runs one GEMM per stride phase: the input positions i with
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

// Tensor-core fragment types per element type (TF32 for float).
template <typename T> struct Wmma;
template <> struct Wmma<__half> {
  static constexpr int kK = 16;
  using Elem = __half;
};
template <> struct Wmma<__nv_bfloat16> {
  static constexpr int kK = 16;
  using Elem = __nv_bfloat16;
};
template <> struct Wmma<float> {
  static constexpr int kK = 8;
  using Elem = nvcuda::wmma::precision::tf32;
};

// Shared-memory row pitch (elements): keeps WMMA pointers 32-byte aligned, SIMT 4-wide reads
// aligned (68 floats / doubles, 72 halves: rows start on 16 / 32 / 8-byte multiples).
template <typename T>
constexpr int kPitch = kBM + (sizeof(T) == 2 ? 8 : 4);

// ---- kernels

template <typename T, ConvPass P, bool kTensorCores>
__global__ void __launch_bounds__(kThreads)
    implicit_gemm_kernel(ConvParams p, GemmArgs ga, const T* __restrict__ A,
                         const T* __restrict__ B, const T* __restrict__ bias, T* __restrict__ out,
                         acc_t<T>* __restrict__ partial) {
  using Acc = acc_t<T>;
  constexpr int kLd = kPitch<T>;
  __shared__ __align__(128) T As[2][kBK][kLd];  // As[r][m]: column-major A tile
  __shared__ __align__(128) T Bs[2][kBK][kLd];  // Bs[r][n]: row-major B tile

  const int tid = threadIdx.x;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  const int split = static_cast<int>(blockIdx.z % ga.splits);
  const int64_t g = ga.group0 + blockIdx.z / ga.splits;
  const int64_t r_begin = split * ga.r_chunk;
  const int64_t r_end = min(ga.R, r_begin + ga.r_chunk);

  const int b_col = tid % kBN;  // this thread's B column, fixed for the whole reduction
  const BColumn col = b_column<P>(p, ga, g, n0 + b_col);
  const int64_t a_stride = a_row_stride<P>(p);

  // Slice s (rows r_begin + 16 s ..) uses row table rows[s & 1] and tiles As/Bs[s & 1].
  __shared__ RowInfo rows[2][kBK];
  auto fill_rows = [&](int64_t r0, int buf) {
    if (tid < kBK) rows[buf][tid] = row_info<P>(p, ga, g, r0 + tid, r_end);
  };
  auto load_slice = [&](int st) {
#pragma unroll
    for (int i = 0; i < kBM * kBK / kThreads; ++i) {
      const int r_l = tid % kBK, m_l = tid / kBK + i * (kThreads / kBK);
      const RowInfo& row = rows[st][r_l];
      const int64_t m = m0 + m_l;
      const int64_t off = (m < ga.M && row.a >= 0) ? row.a + m * a_stride : -1;
      stage(&As[st][r_l][m_l], A, off);
    }
#pragma unroll
    for (int i = 0; i < kBN * kBK / kThreads; ++i) {
      const int r_l = tid / kBN + i * (kThreads / kBN);
      const RowInfo& row = rows[st][r_l];
      const int64_t off = (col.valid && row.a >= 0) ? b_offset<P>(p, col, row) : -1;
      stage(&Bs[st][r_l][b_col], B, off);
    }
    cp_async_commit();
  };

  const int64_t slices = r_end > r_begin ? (r_end - r_begin + kBK - 1) / kBK : 0;

  // Double-buffered pipeline: slice s + 1 is in flight while slice s is multiplied; the row
  // table of slice s + 2 is computed meanwhile (its buffer was last read when slice s was
  // issued, before two barriers).
  auto pipeline = [&](auto&& multiply) {
    if (slices == 0) return;
    fill_rows(r_begin, 0);
    __syncthreads();
    load_slice(0);
    if (slices > 1) {
      fill_rows(r_begin + kBK, 1);
      __syncthreads();
    }
    for (int64_t s = 0; s < slices; ++s) {
      const int st = static_cast<int>(s & 1);
      if (s + 1 < slices) {
        load_slice(st ^ 1);  // tile buffer st^1 was freed by the last barrier
        if (s + 2 < slices) fill_rows(r_begin + (s + 2) * kBK, st);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      multiply(st);
      __syncthreads();  // everyone is done with buffer st before it is refilled
    }
  };

  if constexpr (!kTensorCores) {
    // Thread (ty, tx) owns outputs (4 ty + i, 4 tx + j): per k step one 4-wide shared-memory
    // read of A and one of B feed 16 FMAs (rows are 16-byte aligned for every dtype, see kPitch).
    const int ty = tid / 16, tx = tid % 16;
    struct alignas(4 * sizeof(T)) Quad {
      T v[4];
    };
    Acc acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = Acc(0);
    pipeline([&](int st) {
#pragma unroll
      for (int kk = 0; kk < kBK; ++kk) {
        const Quad qa = *reinterpret_cast<const Quad*>(&As[st][kk][4 * ty]);
        const Quad qb = *reinterpret_cast<const Quad*>(&Bs[st][kk][4 * tx]);
        Acc a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          a[i] = to_acc(qa.v[i]);
          b[i] = to_acc(qb.v[i]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
    });
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + 4 * tx + j;
      if (n >= ga.N) continue;
      const int64_t column = c_column<P>(p, ga, g, n);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t m = m0 + 4 * ty + i;
        if (m < ga.M) store_c<T, P>(p, ga, g, split, m, column, acc[i][j], bias, out, partial);
      }
    }
  } else {
    namespace wmma = nvcuda::wmma;
    using W = Wmma<T>;
    constexpr int kLdc = kBN + 4;
    __shared__ __align__(128) float Cs[kBM][kLdc];
    const int warp = tid / 32;
    const int wm = warp % 4, wn = warp / 4;  // warp tile: rows 16 wm.., cols 32 wn..
    wmma::fragment<wmma::accumulator, 16, 16, W::kK, float> acc[2];
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
    pipeline([&](int st) {
#pragma unroll
      for (int kk = 0; kk < kBK; kk += W::kK) {
        wmma::fragment<wmma::matrix_a, 16, 16, W::kK, typename W::Elem, wmma::col_major> fa;
        wmma::load_matrix_sync(fa, &As[st][kk][wm * 16], kLd);
        if constexpr (sizeof(T) == 4) {
#pragma unroll
          for (int e = 0; e < fa.num_elements; ++e) fa.x[e] = wmma::__float_to_tf32(fa.x[e]);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          wmma::fragment<wmma::matrix_b, 16, 16, W::kK, typename W::Elem, wmma::row_major> fb;
          wmma::load_matrix_sync(fb, &Bs[st][kk][wn * 32 + j * 16], kLd);
          if constexpr (sizeof(T) == 4) {
#pragma unroll
            for (int e = 0; e < fb.num_elements; ++e) fb.x[e] = wmma::__float_to_tf32(fb.x[e]);
          }
          wmma::mma_sync(acc[j], fa, fb, acc[j]);
        }
      }
    });
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&Cs[wm * 16][wn * 32 + j * 16], acc[j], kLdc, wmma::mem_row_major);
    __syncthreads();
    // Each thread stores one column (consecutive threads: consecutive n), every 4th row.
    static_assert(kThreads % kBN == 0, "a thread's epilogue column must stay fixed");
    const int n_l = tid % kBN;
    const int64_t n = n0 + n_l;
    if (n < ga.N) {
      const int64_t column = c_column<P>(p, ga, g, n);
      for (int m_l = tid / kBN; m_l < kBM; m_l += kThreads / kBN) {
        const int64_t m = m0 + m_l;
        if (m < ga.M) store_c<T, P>(p, ga, g, split, m, column, Cs[m_l][n_l], bias, out, partial);
      }
    }
  }
}

// Sums the split-reduction slices in a fixed order (deterministic).
template <typename T>
__global__ void split_reduce_kernel(const acc_t<T>* __restrict__ partial, T* __restrict__ out,
                                    int64_t total, int splits) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    acc_t<T> s = 0;
    for (int sp = 0; sp < splits; ++sp) s += partial[sp * total + i];
    out[i] = from_acc<T>(s);
  }
}

// ---- launchers

int multiprocessors() {
  static std::mutex mu;
  static std::vector<int> cache;
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(cache.size()) <= dev) cache.resize(dev + 1, 0);
  if (cache[dev] == 0) {
    check_cuda(cudaDeviceGetAttribute(&cache[dev], cudaDevAttrMultiProcessorCount, dev),
               "cudaDeviceGetAttribute");
  }
  return cache[dev];
}

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

// Launches the output tiles of one GEMM, in chunks of groups so grid.z stays <= 65535.
template <typename T, ConvPass P, bool kTensorCores>
void launch_tiles(const ConvParams& p, GemmArgs ga, const T* A, const T* B, const T* bias, T* out,
                  acc_t<T>* partial, cudaStream_t stream) {
  const int64_t n_tiles = (ga.N + kBN - 1) / kBN, m_tiles = (ga.M + kBM - 1) / kBM;
  if (n_tiles == 0 || m_tiles == 0) return;
  if (n_tiles > 0x7fffffff || m_tiles > 65535) {
    throw Unsupported("implicit_gemm (cuda): problem too large for one grid (" +
                      std::to_string(m_tiles) + " x " + std::to_string(n_tiles) + " tiles)");
  }
  const int64_t groups_per_launch = std::max<int64_t>(1, 65535 / ga.splits);
  for (int64_t g0 = 0; g0 < p.groups; g0 += groups_per_launch) {
    ga.group0 = g0;
    const int64_t gcount = std::min(groups_per_launch, p.groups - g0);
    const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles),
                    static_cast<unsigned>(gcount * ga.splits));
    launch("implicit_gemm_kernel", &implicit_gemm_kernel<T, P, kTensorCores>, grid,
           dim3(kThreads), stream, p, ga, A, B, bias, out, partial);
  }
}

int64_t round_up_to_slice(int64_t r) { return (r + kBK - 1) / kBK * kBK; }

template <typename T, ConvPass P, bool kTensorCores>
void launch_gemm(const ConvParams& p, const T* A, const T* B, const T* bias, T* out,
                 cudaStream_t stream) {
  const GemmShape s = gemm_shape(P, p);
  if (s.out_total == 0) return;
  if constexpr (P == ConvPass::kBackwardData) {
    for (const Phase& ph : data_phases(p)) {
      const int64_t R = p.kg * ph.taps;
      const GemmArgs ga{p.cg, p.n * ph.columns, R, round_up_to_slice(R), 1, 0, s.out_total, ph};
      launch_tiles<T, P, kTensorCores>(p, ga, A, B, bias, out, nullptr, stream);
    }
    return;
  }
  if (s.R == 0) {  // empty batch: the weight gradient is zero
    check_cuda(cudaMemsetAsync(out, 0, s.out_total * sizeof(T), stream), "cudaMemsetAsync");
    return;
  }
  GemmArgs ga{s.M, s.N, s.R, round_up_to_slice(s.R), 1, 0, s.out_total, Phase{}};
  using Acc = acc_t<T>;
  // backward_weight: few output tiles over a long reduction -> split it so every SM has work.
  int64_t splits = 1;
  if (P == ConvPass::kBackwardWeight) {
    const int64_t blocks = ((s.N + kBN - 1) / kBN) * ((s.M + kBM - 1) / kBM) * p.groups;
    const int64_t target = 2 * static_cast<int64_t>(multiprocessors());
    if (blocks < target) {
      const int64_t max_splits = std::max<int64_t>(1, s.R / (4 * kBK));  // >= 4 slices each
      splits = std::min<int64_t>({(target + blocks - 1) / blocks, max_splits, 128});
    }
    if (splits > 1) {
      ga.r_chunk = round_up_to_slice((s.R + splits - 1) / splits);
      splits = (s.R + ga.r_chunk - 1) / ga.r_chunk;
    }
  }
  StreamBuffer workspace(splits > 1 ? splits * s.out_total * sizeof(Acc) : 0, stream);
  if (splits > 1 && !workspace.ok()) {  // no memory for slices: one block per output tile
    splits = 1;
    ga.r_chunk = round_up_to_slice(s.R);
  }
  ga.splits = static_cast<int>(splits);
  Acc* partial = splits > 1 ? static_cast<Acc*>(workspace.get()) : nullptr;
  launch_tiles<T, P, kTensorCores>(p, ga, A, B, bias, out, partial, stream);
  if (partial) {
    launch("split_reduce_kernel", &split_reduce_kernel<T>, dim3(grid_1d(s.out_total, 256)),
           dim3(256), stream, partial, out, s.out_total, ga.splits);
  }
}

template <typename T, bool kTensorCores>
void dispatch_pass(ConvPass pass, const ConvParams& p, const void* a, const void* b,
                   const void* bias, void* out, cudaStream_t stream) {
  const T* ta = static_cast<const T*>(a);
  const T* tb = static_cast<const T*>(b);
  const T* tbias = static_cast<const T*>(bias);
  T* tout = static_cast<T*>(out);
  switch (pass) {  // operands (a, b) per pass -> GEMM (A, B); see conv_kernels.h
    case ConvPass::kForward:
      return launch_gemm<T, ConvPass::kForward, kTensorCores>(p, tb, ta, tbias, tout, stream);
    case ConvPass::kBackwardData:
      return launch_gemm<T, ConvPass::kBackwardData, kTensorCores>(p, tb, ta, tbias, tout,
                                                                    stream);
    case ConvPass::kBackwardWeight:
      return launch_gemm<T, ConvPass::kBackwardWeight, kTensorCores>(p, tb, ta, nullptr, tout,
                                                                      stream);
  }
}

}  // namespace

void implicit_gemm_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a,
                        const void* b, const void* bias, void* out, GemmMath math,
                        cudaStream_t stream) {
  const bool tc = math == GemmMath::kTensorCore;
  switch (dtype) {
    case DType::kFloat32:  // tensor cores for float32 means TF32 (opt-in)
      if (tc) return dispatch_pass<float, true>(pass, p, a, b, bias, out, stream);
      return dispatch_pass<float, false>(pass, p, a, b, bias, out, stream);
    case DType::kFloat64:
      return dispatch_pass<double, false>(pass, p, a, b, bias, out, stream);
    case DType::kFloat16:
      if (tc) return dispatch_pass<__half, true>(pass, p, a, b, bias, out, stream);
      return dispatch_pass<__half, false>(pass, p, a, b, bias, out, stream);
    case DType::kBFloat16:
      if (tc) return dispatch_pass<__nv_bfloat16, true>(pass, p, a, b, bias, out, stream);
      return dispatch_pass<__nv_bfloat16, false>(pass, p, a, b, bias, out, stream);
  }
}

}  // namespace fastconv::cuda
