// Direct pooling (pool.h): which problems it serves, global pools on the whole-plane kernels,
// and every windowed pass on the row kernels (pool_rows.cc).
#include "algo/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "algo/pool_rows.h"
#include "common/dtype_dispatch.h"
#include "fastconv/status.h"
#include "fastconv/parallel.h"
#include "ref/pool_ref.h"
#include "ukernels/pool/pool_ukernels.h"

namespace fastconv::algo {
namespace {

// One window covers the whole input, unpadded: the whole-plane kernels.
bool is_global(const PoolGeometry& g) {
  for (int d = 0; d < kMaxRank; ++d)
    if (g.out[d] != 1 || g.kernel[d] != g.in[d] || g.pad_lo[d] != 0 || g.dilation[d] != 1)
      return false;
  return true;
}

// Whether some window covers no input position along dim d (the reference's empty window).
bool has_empty_window(const PoolGeometry& g, int d) {
  for (int64_t o = 0; o < g.out[d]; ++o) {
    bool inside = false;
    for (int64_t k = 0; k < g.kernel[d] && !inside; ++k) {
      const int64_t i = o * g.stride[d] - g.pad_lo[d] + k * g.dilation[d];
      inside = i >= 0 && i < g.in[d];
    }
    if (!inside) return true;
  }
  return false;
}

PoolPower power_of(double p) {
  return p == 1.0 ? PoolPower::kOne : p == 2.0 ? PoolPower::kTwo : PoolPower::kOther;
}

// 1 / divisor for every output of a plane, + kPoolSlack readable.
template <typename T>
std::vector<T> avg_scale(const PoolGeometry& g, bool count_include_pad) {
  std::vector<T> scale(g.out_spatial() + kPoolSlack, T(0));
  for (int64_t od = 0, o = 0; od < g.out[0]; ++od)
    for (int64_t oh = 0; oh < g.out[1]; ++oh)
      for (int64_t ow = 0; ow < g.out[2]; ++ow, ++o)
        scale[o] = T(1.0 / double(ref::avg_pool_divisor(g, count_include_pad, od, oh, ow)));
  return scale;
}

template <typename T>
void run_global(const PoolProblem& pb, const T* a, int64_t* indices, T* out) {
  const PoolGeometry& g = pb.g;
  const PoolKernels<T>& k = pool_kernels<T>();
  const int64_t in_sp = g.in_spatial();
  const bool forward = pb.pass == PoolPass::kForward;
  const double div = double(ref::avg_pool_divisor(g, pb.count_include_pad, 0, 0, 0));
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = a + plane * in_sp;
      if (pb.kind == PoolKind::kMax && forward) {
        k.max_plane(xp, in_sp, out + plane, indices ? indices + plane : nullptr);
      } else if (forward) {
        out[plane] = T(double(k.sum_plane(xp, in_sp)) / div);
      } else {  // avg backward: a = grad_y
        std::fill(out + plane * in_sp, out + (plane + 1) * in_sp, T(double(a[plane]) / div));
      }
    }
  });
}

// Global max backward without indices: the argmax of each plane of x gets its gradient.
template <typename T>
void run_global_max_backward(const PoolGeometry& g, const T* grad_y, const T* x, T* grad_x) {
  const int64_t in_sp = g.in_spatial();
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      T y;
      int64_t at = 0;
      pool_kernels<T>().max_plane(x + plane * in_sp, in_sp, &y, &at);
      std::fill(grad_x + plane * in_sp, grad_x + (plane + 1) * in_sp, T(0));
      grad_x[plane * in_sp + at] = grad_y[plane];
    }
  });
}

// dst (planes x dst_count) = 0, then dst[plane][indices[j]] (+= when Add, else =) src[plane][j]
// for every j < src_count: max backward from saved indices (Add) and max_unpool (in order j, so
// the last of equal indices wins, as in PyTorch's CPU kernel).
// Each plane is zeroed lazily, 1 KB ahead of the largest index seen so far, so the zeroed lines
// are still in L1 when the scatter reaches them (saved max-pool indices grow with j); a zero
// pass over the plane first, then the scatter, cost twice the cache traffic (ResNet-50's
// maxpool backward 0.16 -> 0.08 ms with the order below). Streaming stores through a scratch
// plane (no read-for-ownership of dst) measured slower in back-to-back calls (vgg16.maxpool2,
// 1 thread, 0.76 vs 0.50 ms), where the output's lines stay in the last-level cache.
// An index out of range throws InvalidArgument (`what` names dst's plane) from inside the
// scatter, as PyTorch's kernels do: a separate checking pass cost ~13% here, and the caller's
// freshly allocated output is dropped with the exception. Index -1 (kNoIndex: the max forward's
// index of a window that covers only padding) scatters nothing.
// Zeroes d[zeroed, to) with `to` past index i and at least kZeroAhead on, checking i first:
// out of line, so the scatter loop keeps its pointers in registers.
template <typename T>
[[gnu::noinline]] uint64_t zero_ahead(T* d, uint64_t zeroed, uint64_t i, uint64_t dst_count,
                                      const char* what) {
  constexpr uint64_t kZeroAhead = 1024 / sizeof(T);
  if (i >= dst_count)
    throw InvalidArgument(bad_index_message(int64_t(i), int64_t(dst_count), what));
  const uint64_t to = std::min(dst_count, std::max(i + 1, zeroed + kZeroAhead));
  std::fill(d + zeroed, d + to, T(0));
  return to;
}

// d[at[j]] (+)= s[j] for j = first, first + step, ... below end while at[j] < zeroed; returns
// the first j that stops it (or end). Its own function, so that every pointer, the bound and
// the zeroed prefix stay in registers through the loop (with the slow path of scatter_plane
// inlined around it, GCC 12 reloaded three of them from the stack on every element: ResNet-50's
// max pool backward 0.229 ms against 0.163 with the tight loop, 2 threads, Zen 4).
template <bool Add, typename T>
[[gnu::noinline]] int64_t scatter_run(const T* __restrict s, const int64_t* __restrict at,
                                      T* __restrict d, int64_t j, int64_t end, uint64_t zeroed) {
  constexpr int64_t kStep = Add ? 2 : 1;
  for (; j < end; j += kStep) {
    const uint64_t i = uint64_t(at[j]);
    if (i >= zeroed) return j;
    d[i] = Add ? d[i] + s[j] : s[j];
  }
  return end;
}

template <bool Add, typename T>
void scatter_plane(int64_t src_count, int64_t dst_count, const T* s, const int64_t* at, T* d,
                   const char* what) {
  // Sums take the even j of a block of 64, then the odd: neighbouring overlapping windows (3x3
  // stride 2) often share their argmax, and a sum into it waits ~6 cycles for the previous
  // store; windows two apart rarely share one, so consecutive sums run independent.
  constexpr int64_t kBlock = 64, kStep = Add ? 2 : 1;
  const uint64_t count = uint64_t(dst_count);
  uint64_t zeroed = 0;  // d[0, zeroed) holds zeros or what the scatter put there
  for (int64_t block = 0; block < src_count; block += kBlock) {
    const int64_t block_end = std::min(src_count, block + kBlock);
    for (int64_t first = block; first < block + kStep; ++first) {
      for (int64_t j = first; (j = scatter_run<Add, T>(s, at, d, j, block_end, zeroed)) < block_end;
           j += kStep) {
        const uint64_t i = uint64_t(at[j]);  // past the zeroed prefix
        if (at[j] == kNoIndex) continue;     // (as unsigned, past every zeroed prefix)
        zeroed = zero_ahead(d, zeroed, i, count, what);
        d[i] = Add ? d[i] + s[j] : s[j];
      }
    }
  }
  std::fill(d + zeroed, d + dst_count, T(0));
}

template <bool Add, typename T>
void scatter_planes(int64_t planes, int64_t src_count, int64_t dst_count, const T* src,
                    const int64_t* indices, T* dst, const char* what) {
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane)
      scatter_plane<Add, T>(src_count, dst_count, src + plane * src_count,
                            indices + plane * src_count, dst + plane * dst_count, what);
  });
}

// Max backward of unpadded 2x2 / 2 windows (VGG, U-Net encoders) from saved indices: each pair
// of input rows written once by the row kernel, no zero pass and no scattered adds. A plane with
// an index outside its own window is redone by the scatter (PyTorch's semantics for any index).
// Zen 3 AVX2, 2 threads, min ms of three interleaved A/Bs: vgg16.maxpool2 (128 x 112 x 112)
// 0.33-0.44 -> 0.20-0.22, 64 x 56 x 56 at batch 8 0.36-0.46 -> 0.21-0.25, 64 x 28 x 28 0.021
// -> 0.017 (the scatter's zero pass and dependent adds were half of its time or more).
bool unpool2x2_applies(const PoolGeometry& g) {
  return g.in[0] == 1 && g.kernel[0] == 1 && g.kernel[1] == 2 && g.kernel[2] == 2 &&
         g.stride[1] == 2 && g.stride[2] == 2 && g.pad_lo[1] == 0 && g.pad_lo[2] == 0 &&
         g.dilation[1] == 1 && g.dilation[2] == 1 && 2 * g.out[1] <= g.in[1] &&
         2 * g.out[2] <= g.in[2] && g.in_spatial() < (int64_t(1) << 31);
}

template <typename T>
void unpool2x2_planes(const PoolGeometry& g, const T* grad_y, const int64_t* indices, T* grad_x) {
  const auto row_fn = pool_kernels<T>().unpool2x2_row;
  const int64_t oh = g.out[1], ow = g.out[2], h = g.in[1], w = g.in[2];
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  parallel_for(g.n * g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* gy = grad_y + plane * out_sp;
      const int64_t* at = indices + plane * out_sp;
      T* gx = grad_x + plane * in_sp;
      bool valid = true;
      for (int64_t r = 0; r < oh; ++r) {
        T* top = gx + 2 * r * w;
        valid &= row_fn(gy + r * ow, at + r * ow, ow, 2 * r * w, w, top, top + w);
        if (2 * ow < w) top[w - 1] = top[2 * w - 1] = T(0);  // the odd last column
      }
      std::fill(gx + 2 * oh * w, gx + h * w, T(0));  // an odd last row
      if (!valid)
        scatter_plane<true, T>(out_sp, in_sp, gy, at, gx, "the input plane size");
    }
  });
}

template <typename T>
void run(const PoolProblem& pb, const T* a, const T* b, int64_t* indices, T* out) {
  const PoolGeometry& g = pb.g;
  const bool forward = pb.pass == PoolPass::kForward;
  const int64_t planes = g.n * g.c;
  if (pb.kind == PoolKind::kMax && !forward && indices && pool_kernels<T>().unpool2x2_row &&
      unpool2x2_applies(g))
    return unpool2x2_planes<T>(g, a, indices, out);
  if (pb.kind == PoolKind::kMax && !forward && indices)
    return scatter_planes<true, T>(planes, g.out_spatial(), g.in_spatial(), a, indices, out,
                                   "the input plane size");
  if (pb.kind == PoolKind::kUnpool)  // g.in: the unpooled output, g.out: x
    return scatter_planes<false, T>(planes, g.out_spatial(), g.in_spatial(), a, indices, out,
                                    "the output plane size");
  if (is_global(g) && pb.kind != PoolKind::kLp) {
    if (pb.kind == PoolKind::kMax && !forward) return run_global_max_backward<T>(g, a, b, out);
    return run_global<T>(pb, a, indices, out);
  }
  const PoolRowPlan rp = make_row_plan(g);
  if (pb.kind == PoolKind::kMax) {
    if (forward) return max_pool_rows_forward<T>(g, rp, a, out, indices);
    return max_pool_rows_backward<T>(g, rp, a, b, out);
  }
  // avg's divisors: a forward over row segments makes its own per segment (pool_rows.h)
  const bool avg = pb.kind == PoolKind::kAvg;
  std::vector<T> scale;
  if (avg && !(forward && rp.seg_count > 1)) scale = avg_scale<T>(g, pb.count_include_pad);
  const PoolSum<T> s{scale.empty() ? nullptr : scale.data(), avg ? PoolPower::kOne : power_of(pb.p),
                     avg ? 1.0 : pb.p, avg, pb.count_include_pad};
  if (forward) return sum_pool_rows_forward<T>(g, rp, s, a, out);
  sum_pool_rows_backward<T>(g, rp, s, a, b, out);
}

}  // namespace

std::string pool_direct_unsupported(const PoolProblem& pb) {
  const PoolGeometry& g = pb.g;
  if (pb.dtype != DType::kFloat32 && pb.dtype != DType::kFloat64)
    return "the pooling kernels take float32 or float64";
  if (g.n * g.c == 0 || g.in_spatial() == 0 || g.out_spatial() == 0) return "no elements";
  if (pb.kind == PoolKind::kUnpool) return "";  // a scatter: no windows
  if (pb.pass == PoolPass::kGather) return "a gather by indices (the reference's plain loop)";
  if (pb.kind == PoolKind::kLp && !(std::isfinite(pb.p) && pb.p > 0))
    return "lp pooling with a norm that is not finite and positive";
  // Float argmax lanes hold int32 plane offsets.
  if (pb.dtype == DType::kFloat32 && g.in_spatial() >= (int64_t(1) << 31))
    return "a plane of 2^31 elements or more";
  for (int d = 0; d < kMaxRank; ++d)
    if (has_empty_window(g, d)) return "a window that misses the input (the reference's -inf)";
  return "";
}

void run_pool_direct(const PoolProblem& pb, const void* a, const void* b, int64_t* indices,
                     void* out) {
  dispatch_dtype(pb.dtype, [&](auto tag) {
    using T = decltype(tag);
    run<T>(pb, static_cast<const T*>(a), static_cast<const T*>(b), indices,
           static_cast<T*>(out));
  });
}

}  // namespace fastconv::algo
