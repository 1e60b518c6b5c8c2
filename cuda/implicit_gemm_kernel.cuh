// implicit_gemm.cu's kernel: the 64x64 output tile (double-buffered cp.async slices, SIMT or
// WMMA multiply, epilogue); the fixed-order sum of split reductions is in split_reduce.cuh.
// Included by implicit_gemm.cu alone.
#pragma once
#ifndef FASTCONV_HOST_EMULATION
#include <mma.h>
#endif

#include <cstdint>

#include "conv_kernels.h"
#include "dtype.cuh"
#include "implicit_gemm_indexing.cuh"

namespace fastconv::cuda {
namespace {  // unnamed: see implicit_gemm_indexing.cuh

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
    implicit_gemm_kernel(ConvParams p, GemmArgs launch_args, PhaseTable phases,
                         const T* __restrict__ A, const T* __restrict__ B,
                         const T* __restrict__ bias, T* __restrict__ out,
                         acc_t<T>* __restrict__ partial) {
  using Acc = acc_t<T>;
  constexpr int kLd = kPitch<T>;
  __shared__ __align__(128) T As[2][kBK][kLd];  // As[r][m]: column-major A tile
  __shared__ __align__(128) T Bs[2][kBK][kLd];  // Bs[r][n]: row-major B tile

  const int tid = threadIdx.x;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  GemmArgs ga = launch_args;
  int64_t z = blockIdx.z;
  if constexpr (P == ConvPass::kBackwardData) {  // this block's stride phase (see PhaseTable)
    const int phase = static_cast<int>(z % phases.count);
    z /= phases.count;
    ga.ph = phases.ph[phase];
    ga.N = p.n * ga.ph.columns;
    ga.R = p.kg * ga.ph.taps;
    ga.r_chunk = (ga.R + kBK - 1) / kBK * kBK;
    if (n0 >= ga.N) return;  // the whole block: a narrower phase than grid.x covers
  }
  const int split = static_cast<int>(z % ga.splits);
  const int64_t g = ga.group0 + z / ga.splits;
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

}  // namespace
}  // namespace fastconv::cuda
