// Geometry construction and validation; output_extent() is the only output-size formula.
#include "fastconv/geometry.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <string>

#include "fastconv/status.h"

namespace fastconv {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw InvalidArgument(msg); }

// Checks a per-dimension argument: right length and each entry >= min_value.
void check_dims(const std::vector<int64_t>& v, size_t rank, const char* name, int64_t min_value) {
  if (v.size() != rank) {
    fail(std::string(name) + " must have " + std::to_string(rank) +
         " entries (one per spatial dim), got " + format_dims(v));
  }
  for (int64_t e : v) {
    if (e < min_value) {
      fail(std::string(name) + " must be >= " + std::to_string(min_value) +
           " in every dim, got " + format_dims(v));
    }
  }
}

// Large enough to catch nonsense before any arithmetic on it can overflow.
constexpr int64_t kMaxExtent = int64_t(1) << 40;

void check_extent_range(const std::vector<int64_t>& v, const char* name) {
  for (int64_t e : v) {
    if (e > kMaxExtent || e < -kMaxExtent) {
      fail(std::string(name) + " entries must be below 2^40, got " + format_dims(v));
    }
  }
}

void check_window(const WindowParams& p, size_t rank, bool allow_negative_padding) {
  check_dims(p.stride, rank, "stride", 1);
  check_dims(p.dilation, rank, "dilation", 1);
  const int64_t min_pad = allow_negative_padding ? -kMaxExtent : 0;
  check_dims(p.pad_lo, rank, "padding", min_pad);
  check_dims(p.pad_hi, rank, "padding", min_pad);
  check_extent_range(p.stride, "stride");
  check_extent_range(p.dilation, "dilation");
  check_extent_range(p.pad_lo, "padding");
  check_extent_range(p.pad_hi, "padding");
}

// Copies per-dim values into the right-aligned 3 slots.
void place(Dims& dst, const std::vector<int64_t>& src, int64_t fill) {
  const size_t off = kMaxRank - src.size();
  for (size_t i = 0; i < kMaxRank; ++i) dst[i] = i < off ? fill : src[i - off];
}

// Counts geometry constructions (tests prove one call builds its geometry once).
std::atomic<int64_t> constructions{0};

// Counts a pooling geometry and validates what pooling and max_unpool share: x's rank and
// extents (non-zero channels and spatial extents for pooling), kernel_size and the window.
// Returns the spatial rank.
size_t check_pool_arguments(const std::vector<int64_t>& x_shape,
                            const std::vector<int64_t>& kernel, const WindowParams& p,
                            bool nonzero) {
  constructions.fetch_add(1, std::memory_order_relaxed);
  if (x_shape.size() < 3 || x_shape.size() > 5) {
    fail("x must have 3, 4 or 5 dims (N, C, *spatial) for 1-3 spatial dims, got shape " +
         format_dims(x_shape));
  }
  const size_t rank = x_shape.size() - 2;
  check_extent_range(x_shape, "x shape");
  checked_product(x_shape, "x shape");
  for (size_t i = 0; i < x_shape.size(); ++i) {
    if (x_shape[i] < 0) fail("x shape must be non-negative, got " + format_dims(x_shape));
    if (nonzero && i >= 1 && x_shape[i] == 0) {
      fail("x must have non-zero channels and spatial extents, got shape " + format_dims(x_shape));
    }
  }
  check_dims(kernel, rank, "kernel_size", 1);
  check_extent_range(kernel, "kernel_size");
  check_window(p, rank, false);
  return rank;
}

std::vector<int64_t> tail(const Dims& d, int rank) {
  return std::vector<int64_t>(d.begin() + (kMaxRank - rank), d.end());
}

}  // namespace

// std::to_string, not iostreams, here and in every message: a build whose libstdc++ is linked
// statically (seen with the GPU machines' GCC 13) crashes on stream formatting in a process
// that has loaded another libstdc++ (PyTorch's): the two copies' locale facets differ.
std::string format_dims(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  if (v.size() == 1) s += ",";
  return s + ")";
}

int64_t checked_product(const std::vector<int64_t>& extents, const char* what) {
  int64_t p = 1;
  for (int64_t e : extents) {
    if (e < 0) fail(std::string(what) + " has a negative extent: " + format_dims(extents));
    if (__builtin_mul_overflow(p, e, &p)) {
      fail(std::string(what) + " " + format_dims(extents) +
           " has more elements than fit in int64");
    }
  }
  return p;
}

// The extents are computed in 128 bits: callers pass values up to int64's range (explain()'s
// shapes, tiled problems, max_unpool's default size), whose products overflow int64. The
// result saturates to int64's range; callers reject what is out of their range.
namespace {

using Wide = __int128;

int64_t saturate(Wide v) {
  const Wide hi = std::numeric_limits<int64_t>::max(), lo = std::numeric_limits<int64_t>::min();
  return int64_t(v > hi ? hi : v < lo ? lo : v);
}

Wide wide_floor_div(Wide a, Wide b) {  // b > 0
  Wide q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace

int64_t output_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo, int64_t pad_hi,
                      int64_t dilation, bool ceil_mode) {
  if (stride < 1) return 0;  // rejected by the callers' argument checks
  const Wide span = Wide(in) + pad_lo + pad_hi - Wide(dilation) * (Wide(kernel) - 1) - 1;
  if (!ceil_mode) return span < 0 ? 0 : saturate(span / stride + 1);
  // Ceil mode keeps a last, partial window (even one longer than the input) as PyTorch does.
  Wide out = wide_floor_div(span + stride - 1, stride) + 1;
  // The last window must start inside the input or the low padding (PyTorch's rule).
  if ((out - 1) * stride >= Wide(in) + pad_lo) --out;
  return saturate(out);
}

int64_t transposed_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo,
                          int64_t pad_hi, int64_t dilation, int64_t output_padding) {
  return saturate((Wide(in) - 1) * stride - pad_lo - pad_hi + Wide(dilation) * (Wide(kernel) - 1) +
                  1 + output_padding);
}

std::vector<int64_t> ConvGeometry::input_shape() const {
  std::vector<int64_t> s{n, c};
  for (int64_t e : tail(in, rank)) s.push_back(e);
  return s;
}

std::vector<int64_t> ConvGeometry::weight_shape() const {
  std::vector<int64_t> s{k, c_per_group()};
  for (int64_t e : tail(kernel, rank)) s.push_back(e);
  return s;
}

std::vector<int64_t> ConvGeometry::output_shape() const {
  std::vector<int64_t> s{n, k};
  for (int64_t e : tail(out, rank)) s.push_back(e);
  return s;
}

double ConvGeometry::flops() const {
  return 2.0 * double(n) * double(k) * double(c_per_group()) * double(kernel_spatial()) *
         double(out_spatial());
}

bool ConvGeometry::operator==(const ConvGeometry& o) const {
  return rank == o.rank && n == o.n && c == o.c && k == o.k && groups == o.groups &&
         in == o.in && kernel == o.kernel && out == o.out && stride == o.stride &&
         pad_lo == o.pad_lo && pad_hi == o.pad_hi && dilation == o.dilation && mode == o.mode;
}

std::string bad_index_message(int64_t index, int64_t bound, const char* what) {
  return "indices must lie in [0, " + std::to_string(bound) + ") (" + what +
         ") or be -1 (a window of padding only), got " + std::to_string(index);
}

std::vector<int64_t> PoolGeometry::output_shape() const {
  std::vector<int64_t> s{n, c};
  for (int64_t e : tail(out, rank)) s.push_back(e);
  return s;
}

ConvGeometry make_conv_geometry(const std::vector<int64_t>& x_shape,
                                const std::vector<int64_t>& w_shape, const WindowParams& p,
                                int64_t groups, ConvMode mode, bool allow_negative_padding) {
  constructions.fetch_add(1, std::memory_order_relaxed);
  if (w_shape.size() < 3 || w_shape.size() > 5) {
    fail("w must have 3, 4 or 5 dims (K, C/groups, *kernel) for 1-3 spatial dims, got shape " +
         format_dims(w_shape));
  }
  if (x_shape.size() != w_shape.size()) {
    fail("x must have the same number of dims as w (" + std::to_string(w_shape.size()) +
         "), got x shape " + format_dims(x_shape) + " and w shape " + format_dims(w_shape));
  }
  const size_t rank = w_shape.size() - 2;
  check_extent_range(x_shape, "x shape");
  check_extent_range(w_shape, "w shape");
  checked_product(x_shape, "x shape");
  checked_product(w_shape, "w shape");
  for (size_t i = 0; i < x_shape.size(); ++i) {
    if (x_shape[i] < 0) fail("x shape must be non-negative, got " + format_dims(x_shape));
    if (i >= 1 && x_shape[i] == 0) fail("x must have non-zero channels and spatial extents, got shape " + format_dims(x_shape));
  }
  for (int64_t e : w_shape) {
    if (e < 1) fail("w must have non-zero extents, got shape " + format_dims(w_shape));
  }
  check_window(p, rank, allow_negative_padding);
  if (groups < 1) fail("groups must be >= 1, got " + std::to_string(groups));

  ConvGeometry g;
  g.rank = int(rank);
  g.n = x_shape[0];
  g.c = x_shape[1];
  g.k = w_shape[0];
  g.groups = groups;
  g.mode = mode;
  if (g.k % groups != 0) {
    fail("groups (" + std::to_string(groups) + ") must divide the output channels K = w.shape[0] = " +
         std::to_string(g.k));
  }
  if (g.c % groups != 0 || g.c / groups != w_shape[1]) {
    fail("x has " + std::to_string(g.c) + " channels but w expects in_channels = w.shape[1] * groups = " +
         std::to_string(w_shape[1]) + " * " + std::to_string(groups) + " (check x, w and groups)");
  }
  place(g.in, std::vector<int64_t>(x_shape.begin() + 2, x_shape.end()), 1);
  place(g.kernel, std::vector<int64_t>(w_shape.begin() + 2, w_shape.end()), 1);
  place(g.stride, p.stride, 1);
  place(g.dilation, p.dilation, 1);
  place(g.pad_lo, p.pad_lo, 0);
  place(g.pad_hi, p.pad_hi, 0);
  for (int d = 0; d < kMaxRank; ++d) {
    g.out[d] = output_extent(g.in[d], g.kernel[d], g.stride[d], g.pad_lo[d], g.pad_hi[d],
                             g.dilation[d]);
    if (g.out[d] < 1) {
      const int64_t eff = g.dilation[d] * (g.kernel[d] - 1) + 1;
      const int64_t padded = g.in[d] + g.pad_lo[d] + g.pad_hi[d];
      fail("kernel of w (effective size " + std::to_string(eff) + " with dilation " +
           std::to_string(g.dilation[d]) + ") is larger than the padded input (" +
           std::to_string(padded) + ") in spatial dim " +
           std::to_string(d - (kMaxRank - int(rank))) + "; check w, padding and dilation");
    }
  }
  checked_product(g.output_shape(), "output shape");
  // Canonical form: a stride over a dim with one output, or a dilation over a kernel of one
  // tap, changes nothing the passes compute, but the algorithms' plans and workspaces grow
  // with them (phase tables, strided accumulators: a 3-element conv with stride 2^31 asked for
  // gigabytes). Keep the smallest value that gives the same output extent.
  for (int d = 0; d < kMaxRank; ++d) {
    if (g.out[d] == 1) {
      const int64_t span = g.in[d] + g.pad_lo[d] + g.pad_hi[d] -
                           g.dilation[d] * (g.kernel[d] - 1) - 1;  // in [0, stride)
      g.stride[d] = std::max<int64_t>(1, std::min(g.stride[d], span + 1));
    }
    if (g.kernel[d] == 1) g.dilation[d] = 1;
  }
  return g;
}

ConvGeometry data_correlation_geometry(const ConvGeometry& g) {
  ConvGeometry f = g;
  f.c = g.k;
  f.k = g.c;
  f.in = g.out;
  f.out = g.in;
  for (int d = 0; d < kMaxRank; ++d) {
    const int64_t reach = (g.kernel[d] - 1) * g.dilation[d];
    f.pad_lo[d] = reach - g.pad_lo[d];
    f.pad_hi[d] = reach - g.pad_hi[d];
  }
  f.mode = g.mode == ConvMode::kCross ? ConvMode::kConv : ConvMode::kCross;
  return f;
}

ConvGeometry make_transposed_conv_geometry(const std::vector<int64_t>& x_shape,
                                           const std::vector<int64_t>& w_shape,
                                           const WindowParams& p,
                                           const std::vector<int64_t>& output_padding,
                                           int64_t groups) {
  if (w_shape.size() < 3 || w_shape.size() > 5) {
    fail("w must have 3, 4 or 5 dims (C_in, K/groups, *kernel), got shape " + format_dims(w_shape));
  }
  if (x_shape.size() != w_shape.size()) {
    fail("x must have the same number of dims as w (" + std::to_string(w_shape.size()) +
         "), got x shape " + format_dims(x_shape) + " and w shape " + format_dims(w_shape));
  }
  const size_t rank = w_shape.size() - 2;
  for (size_t i = 1; i < x_shape.size(); ++i) {
    if (x_shape[i] < 1) fail("x must have non-zero channels and spatial extents, got shape " + format_dims(x_shape));
  }
  if (x_shape[0] < 0) fail("x shape must be non-negative, got " + format_dims(x_shape));
  check_window(p, rank, false);
  check_dims(output_padding, rank, "output_padding", 0);
  check_extent_range(x_shape, "x shape");
  check_extent_range(w_shape, "w shape");
  if (groups < 1) fail("groups must be >= 1, got " + std::to_string(groups));
  if (w_shape[0] != x_shape[1]) {
    fail("x has " + std::to_string(x_shape[1]) + " channels but w.shape[0] (C_in) is " +
         std::to_string(w_shape[0]) + " (transposed-conv weight is (C_in, K/groups, *kernel))");
  }
  if (x_shape[1] % groups != 0) {
    fail("groups (" + std::to_string(groups) + ") must divide the input channels C_in = " +
         std::to_string(x_shape[1]));
  }
  int64_t k_out = 0;
  if (__builtin_mul_overflow(w_shape[1], groups, &k_out) || k_out > kMaxExtent) {
    fail("the transposed conv's output channels w.shape[1] * groups = " +
         std::to_string(w_shape[1]) + " * " + std::to_string(groups) +
         " must be below 2^40 (check w and groups)");
  }
  std::vector<int64_t> conv_in{x_shape[0], k_out};
  WindowParams conv_p = p;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t s = p.stride[d], dil = p.dilation[d], op = output_padding[d];
    if (op >= s && op >= dil) {
      fail("output_padding must be smaller than stride or dilation in every dim, got " +
           format_dims(output_padding) + " with stride " + format_dims(p.stride) +
           " and dilation " + format_dims(p.dilation));
    }
    const int64_t in = x_shape[2 + d], k = w_shape[2 + d];
    const int64_t out = transposed_extent(in, k, s, p.pad_lo[d], p.pad_hi[d], dil, op);
    if (in >= 1 && out < 1) {
      fail("padding " + format_dims(p.pad_lo) + "/" + format_dims(p.pad_hi) +
           " removes the whole transposed-conv output in spatial dim " + std::to_string(d));
    }
    if (out > kMaxExtent) {
      fail("the transposed-conv output extent " + std::to_string(out) + " in spatial dim " +
           std::to_string(d) + " must be below 2^40 (check x, stride " + format_dims(p.stride) +
           " and dilation " + format_dims(p.dilation) + ")");
    }
    conv_in.push_back(out);
    // The conv whose adjoint this is never reads the output_padding tail: negative high pad.
    conv_p.pad_hi[d] = p.pad_hi[d] - op;
  }
  std::vector<int64_t> conv_w{w_shape[0]};
  conv_w.insert(conv_w.end(), w_shape.begin() + 1, w_shape.end());
  ConvGeometry g = make_conv_geometry(conv_in, conv_w, conv_p, groups, ConvMode::kCross, true);
  for (size_t d = 0; d < rank; ++d) {
    if (g.out[kMaxRank - rank + d] != x_shape[2 + d]) {
      fail("x spatial shape " + format_dims(x_shape) +
           " is inconsistent with stride/padding/output_padding");
    }
  }
  return g;
}

std::vector<int64_t> transposed_conv_input_shape(const std::vector<int64_t>& grad_y_shape,
                                                 const std::vector<int64_t>& w_shape,
                                                 const WindowParams& p,
                                                 const std::vector<int64_t>& output_padding,
                                                 int64_t groups) {
  if (w_shape.size() < 3 || w_shape.size() > 5) {
    fail("w must have 3, 4 or 5 dims (C_in, K/groups, *kernel), got shape " + format_dims(w_shape));
  }
  const size_t rank = w_shape.size() - 2;
  check_window(p, rank, false);
  check_dims(output_padding, rank, "output_padding", 0);
  check_extent_range(w_shape, "w shape");
  if (groups < 1 || groups > kMaxExtent) {
    fail("groups must be in [1, 2^40], got " + std::to_string(groups));
  }
  for (size_t d = 0; d < rank; ++d) {
    if (output_padding[d] >= p.stride[d] && output_padding[d] >= p.dilation[d]) {
      fail("output_padding must be smaller than stride or dilation in every dim, got " +
           format_dims(output_padding) + " with stride " + format_dims(p.stride) +
           " and dilation " + format_dims(p.dilation));
    }
  }
  // grad_y is the input of the conv whose adjoint the transposed conv is.
  WindowParams q = p;
  for (size_t d = 0; d < rank; ++d) q.pad_hi[d] -= output_padding[d];
  std::vector<int64_t> conv_w{w_shape[0], w_shape[1]};
  conv_w.insert(conv_w.end(), w_shape.begin() + 2, w_shape.end());
  std::vector<int64_t> gy = grad_y_shape;
  if (gy.size() == w_shape.size() && gy[1] != w_shape[1] * groups) {
    fail("grad_y has " + std::to_string(gy[1]) + " channels but the transposed conv outputs " +
         "w.shape[1] * groups = " + std::to_string(w_shape[1] * groups));
  }
  return make_conv_geometry(gy, conv_w, q, groups, ConvMode::kCross, true).output_shape();
}

PoolGeometry make_pool_geometry(const std::vector<int64_t>& x_shape,
                                const std::vector<int64_t>& kernel, const WindowParams& p,
                                bool ceil_mode) {
  const size_t rank = check_pool_arguments(x_shape, kernel, p, true);
  for (size_t d = 0; d < rank; ++d) {
    if (p.pad_lo[d] > kernel[d] / 2 || p.pad_hi[d] > kernel[d] / 2) {
      fail("padding must be at most half of kernel_size in every dim, got padding " +
           format_dims(p.pad_lo) + "/" + format_dims(p.pad_hi) + " for kernel_size " +
           format_dims(kernel));
    }
  }
  PoolGeometry g;
  g.rank = int(rank);
  g.n = x_shape[0];
  g.c = x_shape[1];
  g.ceil_mode = ceil_mode;
  place(g.in, std::vector<int64_t>(x_shape.begin() + 2, x_shape.end()), 1);
  place(g.kernel, kernel, 1);
  place(g.stride, p.stride, 1);
  place(g.dilation, p.dilation, 1);
  place(g.pad_lo, p.pad_lo, 0);
  place(g.pad_hi, p.pad_hi, 0);
  for (int d = 0; d < kMaxRank; ++d) {
    g.out[d] = output_extent(g.in[d], g.kernel[d], g.stride[d], g.pad_lo[d], g.pad_hi[d],
                             g.dilation[d], ceil_mode);
    if (g.out[d] < 1) {
      fail("kernel_size " + format_dims(kernel) + " (with dilation " + format_dims(p.dilation) +
           ") is larger than the padded input " + format_dims(x_shape));
    }
  }
  return g;
}

PoolGeometry canonical_pool_geometry(const PoolGeometry& g) {
  PoolGeometry c = g;
  for (int d = 0; d < kMaxRank; ++d) {
    // Taps at or past (in + lo + hi) / dilation fall past the input's high padding for every
    // window (each starts at -lo or later): none reads the input, and each window's end is
    // past in + hi either way (avg_pool's divisor is the same).
    const int64_t reach = c.in[d] + c.pad_lo[d] + c.pad_hi[d];
    const int64_t taps = (reach + c.dilation[d] - 1) / c.dilation[d];
    c.kernel[d] = std::max<int64_t>(1, std::min(c.kernel[d], taps));
    if (c.out[d] == 1) c.stride[d] = 1;  // one window: the stride moves nothing
    if (c.kernel[d] == 1) c.dilation[d] = 1;
  }
  return c;
}

PoolGeometry make_unpool_geometry(const std::vector<int64_t>& x_shape,
                                  const std::vector<int64_t>& kernel, const WindowParams& p,
                                  const std::vector<int64_t>& output_size) {
  const size_t rank = check_pool_arguments(x_shape, kernel, p, false);
  if (!output_size.empty() && output_size.size() != rank) {
    fail("output_size must have " + std::to_string(rank) + " spatial entries, got " +
         format_dims(output_size));
  }
  std::vector<int64_t> out(rank);
  for (size_t d = 0; d < rank; ++d) {
    out[d] = output_size.empty() ? transposed_extent(x_shape[2 + d], kernel[d], p.stride[d],
                                                     p.pad_lo[d], p.pad_hi[d], 1, 0)
                                 : output_size[d];
  }
  const char* size_name = output_size.empty() ? "the default output size (from x, kernel_size, "
                                                "stride and padding)"
                                              : "output_size";
  for (int64_t e : out) {
    if (e < 1) fail(std::string(size_name) + " must be positive, got " + format_dims(out));
  }
  check_extent_range(out, size_name);
  std::vector<int64_t> y_shape{x_shape[0], x_shape[1]};
  y_shape.insert(y_shape.end(), out.begin(), out.end());
  checked_product(y_shape, "output_size");
  PoolGeometry g;
  g.rank = int(rank);
  g.n = x_shape[0];
  g.c = x_shape[1];
  place(g.in, out, 1);
  place(g.out, std::vector<int64_t>(x_shape.begin() + 2, x_shape.end()), 1);
  place(g.kernel, kernel, 1);
  place(g.stride, p.stride, 1);
  place(g.dilation, p.dilation, 1);
  place(g.pad_lo, p.pad_lo, 0);
  place(g.pad_hi, p.pad_hi, 0);
  return g;
}

int64_t geometry_constructions() { return constructions.load(std::memory_order_relaxed); }

}  // namespace fastconv
