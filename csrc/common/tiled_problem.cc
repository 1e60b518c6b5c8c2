// make_tiled_conv_problem: the geometry of a tiled / locally connected convolution pass and the
// shape of every operand, validated once (errors name the argument).
#include <string>
#include <utility>

#include "fastconv/status.h"
#include "fastconv/tiled_conv.h"

namespace fastconv {

namespace {

std::string dims(const Shape& s) { return format_dims(s); }

void check_per_dim(const Shape& v, size_t rank, const char* name, int64_t min) {
  if (v.size() != rank)
    throw InvalidArgument(std::string(name) + " must have " + std::to_string(rank) +
                          " entries (one per spatial dim), got " + dims(v));
  for (int64_t e : v)
    if (e < min)
      throw InvalidArgument(std::string(name) + " must be >= " + std::to_string(min) +
                            " in every dim, got " + dims(v));
}

}  // namespace

TiledConvProblem make_tiled_conv_problem(const TiledConvArguments& a) {
  const char* x_name = a.pass == ConvPass::kBackwardData ? "x_shape" : "x";
  const char* w_name = a.pass == ConvPass::kBackwardWeight ? "w_shape" : "w";
  const size_t ndim = a.shape.size();
  if (ndim < 3 || ndim > 5)
    throw InvalidArgument(std::string(x_name) +
                          " must have 3, 4 or 5 dims (N, C, *spatial), got " + dims(a.shape));
  const size_t rank = ndim - 2;
  if (a.w_shape.size() != 2 + 2 * rank)
    throw InvalidArgument(std::string(w_name) + " must have " + std::to_string(2 + 2 * rank) +
                          " dims (K, *" + (a.local ? "out_spatial" : "tiles") +
                          ", C, *kernel) for a " + std::to_string(rank) +
                          "-D input, got " + dims(a.w_shape));
  for (int64_t e : a.shape)
    if (e < 0) throw InvalidArgument(std::string(x_name) + " must be non-negative, got " +
                                     dims(a.shape));
  for (int64_t e : a.w_shape)
    if (e < 1) throw InvalidArgument(std::string(w_name) + " entries must be >= 1, got " +
                                     dims(a.w_shape));
  check_per_dim(a.stride, rank, "stride", 1);
  check_per_dim(a.dilation, rank, "dilation", 1);
  check_per_dim(a.pad_lo, rank, "padding", 0);
  check_per_dim(a.pad_hi, rank, "padding", 0);
  // Bounds as the conv geometry's (csrc/common/geometry.cc): the sizes derived from these stay
  // far from int64's range.
  constexpr int64_t kMaxExtent = int64_t(1) << 40;
  const std::pair<const Shape*, const char*> bounded[] = {
      {&a.stride, "stride"}, {&a.dilation, "dilation"}, {&a.pad_lo, "padding"},
      {&a.pad_hi, "padding"}, {&a.shape, x_name}, {&a.w_shape, w_name}};
  for (const auto& [v, name] : bounded)
    for (int64_t e : *v)
      if (e > kMaxExtent)
        throw InvalidArgument(std::string(name) + " entries must be below 2^40, got " + dims(*v));
  checked_product(a.shape, x_name);
  checked_product(a.w_shape, w_name);

  TiledConvProblem p;
  p.pass = a.pass;
  p.dtype = a.dtype;
  p.local = a.local;
  TiledGeometry& g = p.g;
  g.rank = int(rank);
  g.n = a.shape[0];
  g.c = a.shape[1];
  g.k = a.w_shape[0];
  const int64_t wc = a.w_shape[1 + rank];
  if (wc != g.c)
    throw InvalidArgument(std::string(w_name) + " has " + std::to_string(wc) +
                          " input channels (dim " + std::to_string(1 + rank) + " of " +
                          dims(a.w_shape) + ") but " + x_name + " has " + std::to_string(g.c));
  Shape out(rank), tiles(rank);
  for (size_t d = 0; d < rank; ++d) {
    const size_t s = kMaxRank - rank + d;
    g.in[s] = a.shape[2 + d];
    g.tiles[s] = a.w_shape[1 + d];
    g.kernel[s] = a.w_shape[2 + rank + d];
    g.stride[s] = a.stride[d];
    g.pad_lo[s] = a.pad_lo[d];
    g.dilation[s] = a.dilation[d];
    g.out[s] = output_extent(g.in[s], g.kernel[s], g.stride[s], a.pad_lo[d], a.pad_hi[d],
                             g.dilation[s]);
    if (g.out[s] <= 0)
      throw InvalidArgument("the kernel (" + std::to_string(g.kernel[s]) + ", dilation " +
                            std::to_string(g.dilation[s]) + ") does not fit the padded input " +
                            "along spatial dim " + std::to_string(d) + ": " + x_name + " " +
                            dims(a.shape) + ", padding (" + std::to_string(a.pad_lo[d]) + ", " +
                            std::to_string(a.pad_hi[d]) + ")");
    out[d] = g.out[s];
    tiles[d] = g.tiles[s];
  }
  if (a.local && tiles != out)
    throw InvalidArgument(std::string(w_name) + " must have the output size " + dims(out) +
                          " in dims 1.." + std::to_string(rank) + " (K, *out_spatial, C, " +
                          "*kernel), got " + dims(a.w_shape));
  p.x_shape = a.shape;
  p.w_shape = a.w_shape;
  p.y_shape = {g.n, g.k};
  p.y_shape.insert(p.y_shape.end(), out.begin(), out.end());
  checked_product(p.y_shape, "the output");
  p.bias_per_phase_shape = {g.k};
  p.bias_per_phase_shape.insert(p.bias_per_phase_shape.end(), tiles.begin(), tiles.end());
  switch (a.pass) {
    case ConvPass::kForward:
      p.operand_shapes[0] = p.x_shape, p.operand_shapes[1] = p.w_shape, p.result_shape = p.y_shape;
      break;
    case ConvPass::kBackwardData:
      p.operand_shapes[0] = p.y_shape, p.operand_shapes[1] = p.w_shape, p.result_shape = p.x_shape;
      break;
    case ConvPass::kBackwardWeight:
      p.operand_shapes[0] = p.x_shape, p.operand_shapes[1] = p.y_shape, p.result_shape = p.w_shape;
      break;
  }
  return p;
}

}  // namespace fastconv
