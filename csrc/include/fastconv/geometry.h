// Convolution and pooling geometry: the one place shapes, padding and output extents live.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace fastconv {

constexpr int kMaxRank = 3;
using Dims = std::array<int64_t, kMaxRank>;

enum class ConvMode { kCross, kConv };

// Output extent of a sliding window along one dimension. Every output size in fastconv comes
// from here (conv, transposed conv through its conv geometry, pooling). Returns <= 0 when the
// window does not fit; callers turn that into an error naming their arguments.
int64_t output_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo, int64_t pad_hi,
                      int64_t dilation, bool ceil_mode = false);

// Extent of the transposed sliding window: the input size a window of these parameters maps
// back to (transposed convolution output, max_unpool default output).
int64_t transposed_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo,
                          int64_t pad_hi, int64_t dilation, int64_t output_padding);

// Per-dimension arguments as given by the caller (one entry per spatial dim).
struct WindowParams {
  std::vector<int64_t> stride, pad_lo, pad_hi, dilation;
};

// Spatial dims are stored right-aligned in 3 slots (D, H, W); unused leading slots hold
// extent 1, stride 1, padding 0, dilation 1, so every kernel can loop over three dims.
struct ConvGeometry {
  int rank = 0;
  int64_t n = 0, c = 0, k = 0, groups = 1;
  Dims in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};
  Dims stride{1, 1, 1}, pad_lo{0, 0, 0}, pad_hi{0, 0, 0}, dilation{1, 1, 1};
  ConvMode mode = ConvMode::kCross;

  int64_t c_per_group() const { return c / groups; }
  int64_t k_per_group() const { return k / groups; }
  int64_t in_spatial() const { return in[0] * in[1] * in[2]; }
  int64_t out_spatial() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_spatial() const { return kernel[0] * kernel[1] * kernel[2]; }
  std::vector<int64_t> input_shape() const;   // (N, C, *in)
  std::vector<int64_t> weight_shape() const;  // (K, C/G, *kernel)
  std::vector<int64_t> output_shape() const;  // (N, K, *out)
  double flops() const;                       // 2 * multiply-adds of one pass
  bool operator==(const ConvGeometry& o) const;
};

// Builds and validates a convolution geometry from the input shape (N, C, *in) and the weight
// shape (K, C/G, *kernel). Throws InvalidArgument naming x, w, stride, padding, dilation,
// groups. Padding may be negative only when allow_negative_padding (internal use: transposed
// convolution maps output_padding to a negative high padding of its conv geometry).
ConvGeometry make_conv_geometry(const std::vector<int64_t>& x_shape,
                                const std::vector<int64_t>& w_shape, const WindowParams& p,
                                int64_t groups, ConvMode mode, bool allow_negative_padding = false);

// Geometry of the convolution whose backward-data pass is the transposed convolution of
// x (N, C_in, *in) with w (C_in, K/G, *kernel). Its conv input is the transposed output.
ConvGeometry make_transposed_conv_geometry(const std::vector<int64_t>& x_shape,
                                           const std::vector<int64_t>& w_shape,
                                           const WindowParams& p,
                                           const std::vector<int64_t>& output_padding,
                                           int64_t groups);

// The stride-1 correlation whose output is unit-stride g's backward data (g's stride must be 1
// in every dim: the result keeps it, and no other stride maps to one correlation): grad_y (g.k
// channels of g.out) correlated with the flipped, channel-transposed kernel, padded by the
// kernel's reach (dilation included) less g's padding, so that its output is g.in (mode
// swapped: the stored taps read reversed where g's are not).
ConvGeometry data_correlation_geometry(const ConvGeometry& g);

// Input shape (N, C_in, *in) of the transposed convolution whose output has grad_y's shape.
std::vector<int64_t> transposed_conv_input_shape(const std::vector<int64_t>& grad_y_shape,
                                                 const std::vector<int64_t>& w_shape,
                                                 const WindowParams& p,
                                                 const std::vector<int64_t>& output_padding,
                                                 int64_t groups);

struct PoolGeometry {
  int rank = 0;
  int64_t n = 0, c = 0;
  Dims in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};
  Dims stride{1, 1, 1}, pad_lo{0, 0, 0}, pad_hi{0, 0, 0}, dilation{1, 1, 1};
  bool ceil_mode = false;

  int64_t in_spatial() const { return in[0] * in[1] * in[2]; }
  int64_t out_spatial() const { return out[0] * out[1] * out[2]; }
  std::vector<int64_t> output_shape() const;
};

// The max forward's index of a window that covers only padding (dilation or ceil_mode can
// leave one: its output is -inf). Scatters and gathers by saved indices (max backward from
// indices, max_unpool) skip it: such a window depends on no input.
constexpr int64_t kNoIndex = -1;

// The InvalidArgument message for a saved index outside [0, bound) that is not kNoIndex
// (`what` names the bound: "the input plane size", ...).
std::string bad_index_message(int64_t index, int64_t bound, const char* what);

// Validates pooling arguments (kernel_size, stride, padding <= kernel_size / 2, dilation).
PoolGeometry make_pool_geometry(const std::vector<int64_t>& x_shape,
                                const std::vector<int64_t>& kernel, const WindowParams& p,
                                bool ceil_mode);

// The same windows with no tap that cannot read the input: kernels cut at (in + padding) /
// dilation taps, stride 1 in a dim of one window, dilation 1 for one tap. What the kernels run
// (csrc/ops/pool.cc, cuda/module.cc): a ceil_mode window of 2^40 taps over 2 elements had the
// row plan size its phases by the stride and its taps by the kernel (64 TB) and the reference
// loop over every tap (fuzz seed 4949). Not what a problem reports (its pool_geometry is fed
// back into make_pool_geometry, which the cut kernel's padding check or the stride's output
// size would not pass). Windowed kinds only (not max_unpool's geometry).
PoolGeometry canonical_pool_geometry(const PoolGeometry& g);

// Geometry of max_unpool: the window of the max pool it inverts, over that pool's input (the
// unpooled output: g.in) with the pooled x as its output (g.out = x's spatial dims). An empty
// output_size takes the default transposed_extent() of each dim; throws InvalidArgument naming
// kernel_size, stride, padding or output_size.
PoolGeometry make_unpool_geometry(const std::vector<int64_t>& x_shape,
                                  const std::vector<int64_t>& kernel, const WindowParams& p,
                                  const std::vector<int64_t>& output_size);

// Calls of make_conv_geometry / make_pool_geometry / make_unpool_geometry since start-up.
int64_t geometry_constructions();

// Product of extents with an int64 overflow check; throws InvalidArgument naming `what`.
int64_t checked_product(const std::vector<int64_t>& extents, const char* what);

std::string format_dims(const std::vector<int64_t>& v);

}  // namespace fastconv
