// The tensor-op path's host side and layout moves (see tensor_op_conv.h): which layers take
// it, how its workspace is laid out, and the kernels that move NCHW / KCRS tensors into
// channels-last order and back. The core itself is cuda/tensor_op_cutlass.cu (the GPU build) or
// the emulation's reference core (cuda/emulation/nhwc_core_reference.cc); everything here runs
// in the host emulation too.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "conv_kernels.h"
#include "cuda_check.h"
#include "dtype.cuh"
#include "launch.cuh"
#include "split_reduce.cuh"
#include "tensor_op_conv.h"

namespace fastconv::cuda {
namespace {

constexpr int kTile = 32;      // transpose tile (kTile x kTile elements)
constexpr int kTileRows = 8;   // threads per tile column: block (kTile, kTileRows)

// Per plane b of `batches`, a rows x cols matrix transposed: dst[b][c'][r'] = src[b][r][c]
// (+ bias[c]), with r' = rows-1-r when reverse_rows and c' likewise (the filter's tap axis:
// reversing the flattened taps flips every spatial axis at once). One block per 32 x 32 tile,
// staged through shared memory so both the reads and the writes are row-contiguous; tiles of
// a plane flattened into blockIdx.x, planes in blockIdx.y.
// kTf32: float values rounded to TF32 on the way (the core's float32 operands).
template <typename Src, typename Dst, bool kTf32>
__global__ void transpose_kernel(const Src* __restrict__ src, Dst* __restrict__ dst, int rows,
                                 int cols, int col_tiles, bool reverse_rows, bool reverse_cols,
                                 const Dst* __restrict__ bias) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t plane = static_cast<int64_t>(rows) * cols;
  const Src* s = src + static_cast<int64_t>(blockIdx.y) * plane;
  Dst* d = dst + static_cast<int64_t>(blockIdx.y) * plane;
  const int r0 = static_cast<int>(blockIdx.x / col_tiles) * kTile;
  const int c0 = static_cast<int>(blockIdx.x % col_tiles) * kTile;
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int r = r0 + i, c = c0 + static_cast<int>(threadIdx.x);
    if (r < rows && c < cols) {
      float v = to_acc(s[static_cast<int64_t>(r) * cols + c]);
      if (bias) v += to_acc(bias[c]);
      tile[i][threadIdx.x] = v;
    }
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int c = c0 + i, r = r0 + static_cast<int>(threadIdx.x);
    if (r < rows && c < cols) {
      const int rd = reverse_rows ? rows - 1 - r : r;
      const int cd = reverse_cols ? cols - 1 - c : c;
      const float v = tile[threadIdx.x][i];
      d[static_cast<int64_t>(cd) * rows + rd] = from_acc<Dst>(kTf32 ? round_to_tf32(v) : v);
    }
  }
}

// A channels-last float32 result (rows x channels, channels innermost) rounded to the dtype
// in place of order, with the bias (per channel) added: the move back of a result the caller
// wants channels-last (a split or a bias made the core write float32). Threads across the
// channels, blocks striding over the rows: no index division.
template <typename Dst>
__global__ void finish_rows_kernel(const float* __restrict__ src, Dst* __restrict__ dst,
                                   int64_t rows, int channels, const Dst* __restrict__ bias) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* s = src + r * channels;
    Dst* d = dst + r * channels;
    for (int c = static_cast<int>(threadIdx.x); c < channels; c += static_cast<int>(blockDim.x)) {
      float v = s[c];
      if (bias) v += to_acc(bias[c]);
      d[c] = from_acc<Dst>(v);
    }
  }
}

template <typename Dst>
void finish_rows(const void* src, void* dst, int64_t rows, int channels, const void* bias,
                 cudaStream_t stream) {
  if (rows == 0 || channels == 0) return;
  const int threads = std::min(256, (channels + 31) / 32 * 32);
  const int64_t blocks = std::min<int64_t>(rows, int64_t(16) * multiprocessors());
  launch("finish_rows_kernel", &finish_rows_kernel<Dst>, dim3(static_cast<unsigned>(blocks)),
         dim3(threads), stream, static_cast<const float*>(src), static_cast<Dst*>(dst), rows,
         channels, static_cast<const Dst*>(bias));
}

template <typename Src, typename Dst, bool kTf32 = false>
void transpose(const void* src, void* dst, int64_t batches, int rows, int cols, bool reverse_rows,
               bool reverse_cols, const void* bias, cudaStream_t stream) {
  if (batches == 0 || rows == 0 || cols == 0) return;
  const int row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
  const int64_t plane = static_cast<int64_t>(rows) * cols;
  for (int64_t b0 = 0; b0 < batches; b0 += 65535) {  // grid.y <= 65535
    const int64_t count = std::min<int64_t>(65535, batches - b0);
    const dim3 grid(static_cast<unsigned>(int64_t(row_tiles) * col_tiles),
                    static_cast<unsigned>(count));
    launch("transpose_kernel", &transpose_kernel<Src, Dst, kTf32>, grid, dim3(kTile, kTileRows),
           stream,
           static_cast<const Src*>(src) + b0 * plane, static_cast<Dst*>(dst) + b0 * plane, rows,
           cols, col_tiles, reverse_rows, reverse_cols, static_cast<const Dst*>(bias));
  }
}

// The element type of a dtype the path takes.
template <typename F>
void with_type(DType dtype, F&& f) {
  if (dtype == DType::kFloat16) {
    f(__half{});
  } else if (dtype == DType::kBFloat16) {
    f(__nv_bfloat16{});
  } else {
    f(float{});
  }
}

size_t element_size(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

bool fits_int(int64_t v) { return v >= 0 && v <= std::numeric_limits<int>::max(); }

NhwcConv to_nhwc(const ConvParams& p) {
  // ranks 1 and 2 only (slot 0 is the unused depth): a 1-D layer is 2-D with H = R = P = 1
  NhwcConv c{};
  c.n = static_cast<int>(p.n);
  c.c = static_cast<int>(p.c);
  c.k = static_cast<int>(p.k);
  c.h = static_cast<int>(p.in[1]);
  c.w = static_cast<int>(p.in[2]);
  c.r = static_cast<int>(p.kernel[1]);
  c.s = static_cast<int>(p.kernel[2]);
  c.p = static_cast<int>(p.out[1]);
  c.q = static_cast<int>(p.out[2]);
  c.pad_h = static_cast<int>(p.pad[1]);
  c.pad_w = static_cast<int>(p.pad[2]);
  c.stride_h = static_cast<int>(p.stride[1]);
  c.stride_w = static_cast<int>(p.stride[2]);
  c.dil_h = static_cast<int>(p.dil[1]);
  c.dil_w = static_cast<int>(p.dil[2]);
  return c;
}

// The reduction's slices on the current device: when the pass's output has fewer block tiles
// than the device runs at once (two per multiprocessor) - late layers (7x7 maps) at small
// batch, early layers' weight gradients (64 x 576 outputs over 100k positions at batch 32) -
// enough slices to fill it, each at least four reduction steps deep; at most 64 for the
// weight gradient (its slices only add up a few tiles) and 16 for the other passes (they pay
// a float32 output and its move). The core splits the forward's reduction over input-channel
// steps (all taps in every slice: at most one slice per step) and backward data's over
// output-channel steps likewise; a strided backward data runs its stride phases in one grid
// and cannot split.
int core_splits(ConvPass pass, DType dtype, const NhwcConv& c) {
  if (pass == ConvPass::kBackwardData && (c.stride_h > 1 || c.stride_w > 1)) return 1;
  const int64_t taps = int64_t(c.r) * c.s, step = core_tile_k(dtype);
  auto steps = [step](int64_t n) { return (n + step - 1) / step; };
  int64_t m, n, most;
  switch (pass) {
    case ConvPass::kForward:
      m = int64_t(c.n) * c.p * c.q, n = c.k;
      most = std::min(steps(c.c), steps(c.c) * taps / 4);
      break;
    case ConvPass::kBackwardData:
      m = int64_t(c.n) * c.h * c.w, n = c.c;
      most = std::min(steps(c.k), steps(c.k) * taps / 4);
      break;
    default:
      m = c.k, n = taps * c.c;
      most = steps(int64_t(c.n) * c.p * c.q) / 4;
      break;
  }
  const int64_t tiles = ((m + kCoreTileM - 1) / kCoreTileM) * ((n + c.tile_n - 1) / c.tile_n);
  const int64_t target = 2 * static_cast<int64_t>(multiprocessors());
  if (tiles >= target || most <= 1) return 1;
  const int64_t cap = pass == ConvPass::kBackwardWeight ? 64 : 16;
  const int64_t wanted = std::min<int64_t>({(target + tiles - 1) / tiles, most, cap});
  // The core deals the steps out round-robin, ceil(steps / splits) to every slice (a slice
  // past the end loads masked zeros at full cost): the fewest slices with that depth.
  const int64_t total = pass == ConvPass::kForward        ? steps(c.c)
                        : pass == ConvPass::kBackwardData ? steps(c.k)
                                                          : steps(int64_t(c.n) * c.p * c.q);
  const int64_t depth = (total + wanted - 1) / wanted;
  return static_cast<int>((total + depth - 1) / depth);
}

constexpr size_t kAlign = 256;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// The workspace's parts, in order: the two operands moved to channels-last, the result in
// channels-last, the core's own workspace.
struct Layout {
  size_t a, b, out, core;
  size_t total() const { return aligned(a) + aligned(b) + aligned(out) + core; }
};

Layout layout(ConvPass pass, const ConvParams& p, const NhwcConv& c, DType dtype) {
  const size_t e = element_size(dtype);
  const size_t x = static_cast<size_t>(p.n * p.in_sp * p.c);
  const size_t y = static_cast<size_t>(p.n * p.out_sp * p.k);
  const size_t w = static_cast<size_t>(p.k * p.taps * p.c);
  const size_t core = nhwc_core_workspace(pass, dtype, c);
  // float32 room for the result whether or not this call has a bias (the size is asked
  // without the operands); a result in the dtype uses half of it
  const size_t out_e = sizeof(float);
  switch (pass) {
    case ConvPass::kForward:
      return {x * e, w * e, y * out_e, core};
    case ConvPass::kBackwardData:
      return {y * e, w * e, x * out_e, core};
    default:
      return {y * e, x * e, w * out_e, core};
  }
}

}  // namespace

NhwcConv tensor_op_problem(ConvPass pass, DType dtype, const ConvParams& p, bool bias) {
  NhwcConv c = to_nhwc(p);
  c.tile_n = core_tile_n(pass, dtype, c);
  c.splits = core_splits(pass, dtype, c);
  c.bias = bias && pass != ConvPass::kBackwardWeight;
  c.hopper = nhwc_core_picks_hopper(pass, dtype, c);
  return c;
}

bool tensor_op_eligible(ConvPass pass, DType dtype, const ConvParams& p) {
  if (dtype == DType::kFloat64) return false;
  const int64_t vector = 16 / static_cast<int64_t>(element_size(dtype));  // channels per 16 B
  if (p.groups != 1 || p.c % vector != 0 || p.k % vector != 0) return false;
  // rank 1 or 2: the depth slot unused (depth 1, window 1, no padding)
  if (p.in[0] != 1 || p.kernel[0] != 1 || p.out[0] != 1 || p.pad[0] != 0) return false;
  if (p.kernel[1] > 32 || p.kernel[2] > 32) return false;
  if (p.n == 0 || p.in_sp == 0 || p.out_sp == 0) return false;  // nothing to multiply
  // strided backward data runs per stride phase, which assumes undilated taps
  if (pass == ConvPass::kBackwardData && (p.stride[1] > 1 || p.stride[2] > 1) &&
      (p.dil[1] > 1 || p.dil[2] > 1)) {
    return false;
  }
  // every tensor below 2^29 elements (the core's limit is 2 GiB; the float32 result of a
  // float16 layer takes twice its bytes) and every extent an int (the core's indexing)
  const int64_t limit = (int64_t(1) << 31) / 4;
  if (p.n * p.in_sp * p.c >= limit || p.n * p.out_sp * p.k >= limit ||
      p.k * p.taps * p.c >= limit) {
    return false;
  }
  for (int d = 1; d < 3; ++d) {
    if (!fits_int(p.in[d]) || !fits_int(p.out[d]) || !fits_int(p.pad[d]) ||
        !fits_int(p.stride[d]) || !fits_int(p.dil[d])) {
      return false;
    }
  }
  NhwcConv c = to_nhwc(p);  // the kernel that will run: its tile (the split needs no device)
  c.tile_n = core_tile_n(pass, dtype, c);
  return nhwc_core_can_run(pass, dtype, c);
}

size_t tensor_op_workspace(ConvPass pass, DType dtype, const ConvParams& p) {
  if (!tensor_op_eligible(pass, dtype, p)) return 0;
  // with a bias the core writes float32 (another kernel, on a 9.0 device possibly another
  // core): room for the call either way, since the size is asked without the operands
  const size_t plain = layout(pass, p, tensor_op_problem(pass, dtype, p, false), dtype).total();
  const size_t biased = layout(pass, p, tensor_op_problem(pass, dtype, p, true), dtype).total();
  return std::max(plain, biased);
}

const char* tensor_op_kernel(ConvPass pass, DType dtype, const ConvParams& p) {
  if (!tensor_op_eligible(pass, dtype, p)) return "";
  return nhwc_core_kernel(pass, dtype, tensor_op_problem(pass, dtype, p));
}

namespace {

// The order rules for a layer already eligible (tensor_op_takes_order): a channels-last
// result for the forward and backward data (the core's own order: its move back becomes a
// rounding, or nothing); channels-last operands in float16 / bfloat16 (a float32 operand is
// rounded to TF32 by its move), a channels-last filter only without mode="conv"'s flip (which
// the filter's move does).
bool order_fits(ConvPass pass, DType dtype, const ConvParams& p, OperandOrder order) {
  if (order.out_channels_last && pass == ConvPass::kBackwardWeight) return false;
  if (!order.a_channels_last && !order.b_channels_last) return true;
  if (dtype == DType::kFloat32) return false;
  const bool filter_b = pass != ConvPass::kBackwardWeight;  // b is the filter
  return !(filter_b && order.b_channels_last && p.flip);
}

}  // namespace

bool tensor_op_takes_order(ConvPass pass, DType dtype, const ConvParams& p, OperandOrder order) {
  return !order.any() || (tensor_op_eligible(pass, dtype, p) && order_fits(pass, dtype, p, order));
}

bool tensor_op_conv(ConvPass pass, DType dtype, const ConvParams& p, const void* a,
                    const void* b, const void* bias, void* out, Workspace ws,
                    cudaStream_t stream, OperandOrder order) {
  if (!tensor_op_eligible(pass, dtype, p) || !order_fits(pass, dtype, p, order)) return false;
  const NhwcConv c = tensor_op_problem(pass, dtype, p, bias != nullptr);
  const Layout lay = layout(pass, p, c, dtype);
  if (ws.ptr == nullptr || ws.bytes < lay.total()) return false;
  char* base = static_cast<char*>(ws.ptr);
  void* a_cl = base;
  void* b_cl = base + aligned(lay.a);
  void* out_cl = base + aligned(lay.a) + aligned(lay.b);
  Workspace core{base + aligned(lay.a) + aligned(lay.b) + aligned(lay.out), lay.core};
  const int in_sp = static_cast<int>(p.in_sp), out_sp = static_cast<int>(p.out_sp);
  const int taps = static_cast<int>(p.taps), ci = c.c, ko = c.k;
  const bool flip = p.flip, float_out = c.float_out(pass);
  // a result wanted channels-last in the dtype the core writes: the core writes it in place
  const bool direct = order.out_channels_last && !float_out;
  void* core_out = direct ? out : out_cl;
  with_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    // the result (N, S, channels) back to (N, channels, S) with the bias, from T or float32;
    // or, wanted channels-last, rounded from float32 with the bias (nothing to do if direct)
    auto move_back = [&](int spatial, int channels) {
      if (order.out_channels_last) {
        if (!direct) finish_rows<T>(out_cl, out, p.n * spatial, channels, bias, stream);
        return;
      }
      if (float_out) {
        transpose<float, T>(out_cl, out, p.n, spatial, channels, false, false, bias, stream);
      } else {
        transpose<T, T>(out_cl, out, p.n, spatial, channels, false, false, bias, stream);
      }
    };
    // an operand (N, channels, S) -> (N, S, channels) in the workspace, float32 rounded to
    // TF32 for the core; one already channels-last is read where it lies
    constexpr bool kTf32 = std::is_same_v<T, float>;
    auto move_in = [&](const void* src, bool channels_last, void* dst, int64_t batches, int rows,
                       int cols, bool reverse_cols) -> const void* {
      if (channels_last) return src;
      transpose<T, T, kTf32>(src, dst, batches, rows, cols, false, reverse_cols, nullptr, stream);
      return dst;
    };
    const bool a_cl_in = order.a_channels_last, b_cl_in = order.b_channels_last;
    switch (pass) {
      case ConvPass::kForward: {  // x (N,C,S) -> (N,S,C); w (K,C,T) -> (K,T',C)
        const void* ca = move_in(a, a_cl_in, a_cl, p.n, ci, in_sp, false);
        const void* cb = move_in(b, b_cl_in, b_cl, p.k, ci, taps, flip);
        nhwc_core_run(pass, dtype, c, ca, cb, core_out, core, stream);
        move_back(out_sp, ko);
        break;
      }
      case ConvPass::kBackwardData: {  // dy (N,K,S') -> (N,S',K); w as forward; dx back
        // (input positions no tap reaches - a window narrower than its stride - are written
        // as zeros by the core: its strided kernel runs the epilogue of tap-less phases too)
        const void* ca = move_in(a, a_cl_in, a_cl, p.n, ko, out_sp, false);
        const void* cb = move_in(b, b_cl_in, b_cl, p.k, ci, taps, flip);
        nhwc_core_run(pass, dtype, c, ca, cb, core_out, core, stream);
        move_back(in_sp, ci);
        break;
      }
      case ConvPass::kBackwardWeight: {  // operands a = x, b = dy; the core takes (dy, x)
        const void* cdy = move_in(b, b_cl_in, a_cl, p.n, ko, out_sp, false);
        const void* cx = move_in(a, a_cl_in, b_cl, p.n, ci, in_sp, false);
        nhwc_core_run(pass, dtype, c, cdy, cx, out_cl, core, stream);
        // dw (K,T',C) float -> (K,C,T) in T, the taps flipped back
        transpose<float, T>(out_cl, out, p.k, taps, ci, flip, false, nullptr, stream);
        break;
      }
    }
  });
  return true;
}

}  // namespace fastconv::cuda
