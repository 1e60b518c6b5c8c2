// make_resample_problem: validates a resampling call's arguments and derives every shape
// (csrc/include/fastconv/resample.h).
#include <string>

#include "fastconv/resample.h"
#include "fastconv/status.h"

namespace fastconv {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw InvalidArgument(msg); }

constexpr int64_t kMaxFactor = int64_t(1) << 20;

}  // namespace

ResampleKind parse_resample_kind(const std::string& name) {
  if (name == "upsample_nearest") return ResampleKind::kUpsampleNearest;
  if (name == "upsample_linear") return ResampleKind::kUpsampleLinear;
  if (name == "pixel_shuffle") return ResampleKind::kPixelShuffle;
  if (name == "pixel_unshuffle") return ResampleKind::kPixelUnshuffle;
  if (name == "stochastic_pool") return ResampleKind::kStochasticPool;
  fail("unknown resampling op '" + name + "'");
}

const char* resample_kind_name(ResampleKind k) {
  switch (k) {
    case ResampleKind::kUpsampleNearest: return "upsample_nearest";
    case ResampleKind::kUpsampleLinear: return "upsample_linear";
    case ResampleKind::kPixelShuffle: return "pixel_shuffle";
    case ResampleKind::kPixelUnshuffle: return "pixel_unshuffle";
    case ResampleKind::kStochasticPool: return "stochastic_pool";
  }
  return "?";
}

ResampleProblem make_resample_problem(const ResampleArguments& a) {
  const auto& xs = a.x_shape;
  if (xs.size() < 3 || xs.size() > 5) {
    fail("x must have 3, 4 or 5 dims (N, C, *spatial with 1-3 spatial dims), got shape " +
         format_dims(xs));
  }
  for (int64_t e : xs)
    if (e < 0) fail("x's shape must be non-negative, got " + format_dims(xs));
  checked_product(xs, "x");
  if (a.pass == PoolPass::kGather) fail("pass_ must be 'forward' or 'backward' for resampling");
  ResampleProblem p;
  p.kind = a.kind;
  p.pass = a.pass;
  p.dtype = a.dtype;
  p.rank = int(xs.size()) - 2;
  p.x_shape = xs;
  p.align_corners = a.align_corners;
  p.training = a.training;
  const size_t rank = size_t(p.rank);
  Shape y = xs;
  switch (a.kind) {
    case ResampleKind::kUpsampleNearest:
    case ResampleKind::kUpsampleLinear: {
      if (a.scale.size() != rank) {
        fail("scale must be an int or " + std::to_string(rank) + " ints (one per spatial dim), " +
             "got " + format_dims(a.scale));
      }
      for (int64_t s : a.scale) {
        if (s < 1 || s > kMaxFactor)
          fail("scale must be an integer in [1, 2^20] in every dim, got " + format_dims(a.scale));
      }
      p.scale = a.scale;
      for (size_t d = 0; d < rank; ++d) {
        // x may have a zero extent and a huge one (its element count is 0): check the product.
        if (__builtin_mul_overflow(xs[2 + d], a.scale[d], &y[2 + d]))
          fail("the output of x " + format_dims(xs) + " upsampled by scale " +
               format_dims(a.scale) + " has more elements than fit in int64");
      }
      break;
    }
    case ResampleKind::kPixelShuffle:
    case ResampleKind::kPixelUnshuffle: {
      const int64_t r = a.scale.size() == 1 ? a.scale[0] : 0;
      if (r < 1 || r > kMaxFactor) fail("r must be an integer in [1, 2^20], got " + format_dims(a.scale));
      p.scale.assign(rank, r);
      int64_t block = 1;
      for (size_t d = 0; d < rank; ++d) block *= r;  // r <= 2^20, rank <= 3: no overflow
      if (a.kind == ResampleKind::kPixelShuffle) {
        if (xs[1] % block != 0) {
          fail("pixel_shuffle: x's channels (" + std::to_string(xs[1]) + ") must be divisible " +
               "by r**" + std::to_string(rank) + " = " + std::to_string(block) + " (r=" +
               std::to_string(r) + ")");
        }
        y[1] = xs[1] / block;
        for (size_t d = 0; d < rank; ++d) {
          if (__builtin_mul_overflow(xs[2 + d], r, &y[2 + d]))
            fail("pixel_shuffle: the output of x " + format_dims(xs) + " with r=" +
                 std::to_string(r) + " has more elements than fit in int64");
        }
      } else {
        for (size_t d = 0; d < rank; ++d) {
          if (xs[2 + d] % r != 0) {
            fail("pixel_unshuffle: x's spatial dims " +
                 format_dims(Shape(xs.begin() + 2, xs.end())) + " must be divisible by r=" +
                 std::to_string(r));
          }
          y[2 + d] = xs[2 + d] / r;
        }
        if (xs[1] > (int64_t(1) << 62) / block) fail("pixel_unshuffle: too many channels");
        y[1] = xs[1] * block;
      }
      break;
    }
    case ResampleKind::kStochasticPool: {
      const Shape& stride = a.stride.empty() ? a.kernel : a.stride;
      WindowParams win{stride, a.pad_lo, a.pad_hi, Shape(rank, 1)};
      p.g = make_pool_geometry(xs, a.kernel, win, false);
      y = p.g.output_shape();
      break;
    }
  }
  checked_product(y, "the output");
  p.y_shape = y;
  p.result_shape = a.pass == PoolPass::kForward ? p.y_shape : p.x_shape;
  return p;
}

}  // namespace fastconv
