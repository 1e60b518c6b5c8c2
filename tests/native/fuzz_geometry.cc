// Native fuzz target for the geometry, problem and plan code (csrc/common/geometry.cc,
// problem.cc, tiled_problem.cc, resample_problem.cc; plan_conv in csrc/ops/conv.cc).
//
// Each input is decoded into the arguments of one entry point (make_conv_problem,
// make_pool_problem, make_tiled_conv_problem, make_resample_problem, plan_conv), drawn from
// small values and edge values (0, -1, 2^31, 2^40, 2^62, INT64_MAX, INT64_MIN, ...). An entry
// point must either throw one of fastconv's documented errors (InvalidArgument, InvalidType,
// Unsupported) or return a problem whose derived sizes are consistent: every output extent
// >= 1 and equal to the output-size formula (recomputed here in 128 bits), every shape
// non-negative with an element count that fits int64, operand shapes as the pass says, plan
// workspaces >= 0. Anything else (another exception, a failed check, a crash, UB under
// -fsanitize=undefined) aborts.
//
// Built with -DFASTCONV_BUILD_FUZZERS=ON (target fastconv_fuzz_geometry):
//   - gcc / any compiler: a main() that runs N random inputs from a seed
//       fastconv_fuzz_geometry [iterations=100000] [seed=1]
//     and files given as arguments (a corpus or a crash reproducer) first;
//   - clang with -DFASTCONV_LIBFUZZER=ON: compiled with -fsanitize=fuzzer, libFuzzer's own main
//     drives LLVMFuzzerTestOneInput.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"
#include "fastconv/problem.h"
#include "fastconv/resample.h"
#include "fastconv/status.h"
#include "fastconv/tiled_conv.h"

namespace {

using fastconv::Shape;
using Wide = __int128;

// How many inputs reached a valid problem / a plan, per target (printed by main()).
long g_valid[4] = {0, 0, 0, 0}, g_plans = 0;
std::string g_planning;  // the problem being planned (printed when an input hangs)

// Reads values from the fuzz input; past its end every read returns 0.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool flag() { return byte() & 1; }
  int64_t raw64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | byte();
    return int64_t(v);
  }
  // Mostly small values, often edge values, sometimes any 64-bit value.
  int64_t value(int64_t lo, int64_t hi) {
    static const int64_t kEdges[] = {0,
                                     1,
                                     2,
                                     3,
                                     -1,
                                     -2,
                                     int64_t(1) << 31,
                                     (int64_t(1) << 31) - 1,
                                     int64_t(1) << 40,
                                     (int64_t(1) << 40) + 1,
                                     (int64_t(1) << 40) - 1,
                                     int64_t(1) << 62,
                                     std::numeric_limits<int64_t>::max(),
                                     std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::min() + 1};
    const uint8_t k = byte();
    if (k < 200) return lo + int64_t(byte()) % (hi - lo + 1);
    if (k < 250) return kEdges[byte() % (sizeof(kEdges) / sizeof(kEdges[0]))];
    return raw64();
  }
  Shape dims(size_t n, int64_t lo, int64_t hi) {
    Shape v(n);
    for (auto& e : v) e = value(lo, hi);
    return v;
  }
  // Usually `rank` entries, sometimes another count (a wrong-length argument).
  size_t count(size_t rank) {
    const uint8_t k = byte();
    return k < 240 ? rank : size_t(k % 5);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

[[noreturn]] void defect(const std::string& what) {
  std::fprintf(stderr, "fuzz_geometry: DEFECT: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void expect(bool ok, const std::string& what) {
  if (!ok) defect(what);
}

std::string dims(const Shape& s) { return fastconv::format_dims(s); }

bool fits(const Shape& s) {  // non-negative, element count in int64
  Wide p = 1;
  for (int64_t e : s) {
    if (e < 0) return false;
    p *= e;
    if (p > std::numeric_limits<int64_t>::max()) return false;
  }
  return true;
}

// The output-size formula, independently, in 128 bits.
Wide extent(Wide in, Wide k, Wide s, Wide lo, Wide hi, Wide d, bool ceil_mode) {
  const Wide span = in + lo + hi - d * (k - 1) - 1;
  if (!ceil_mode) return span < 0 ? 0 : span / s + 1;
  Wide num = span + s - 1;
  Wide q = num / s;
  if (num % s != 0 && num < 0) --q;
  Wide out = q + 1;
  if ((out - 1) * s >= in + lo) --out;
  return out;
}

void check_conv_geometry(const fastconv::ConvGeometry& g, const std::string& ctx) {
  expect(g.rank >= 1 && g.rank <= 3, ctx + ": rank");
  expect(g.n >= 0 && g.c >= 1 && g.k >= 1 && g.groups >= 1, ctx + ": n/c/k/groups");
  expect(g.c % g.groups == 0 && g.k % g.groups == 0, ctx + ": groups divide c and k");
  for (int d = 0; d < fastconv::kMaxRank; ++d) {
    expect(g.in[d] >= 1 && g.kernel[d] >= 1 && g.stride[d] >= 1 && g.dilation[d] >= 1,
           ctx + ": extents >= 1 in dim " + std::to_string(d));
    const Wide want = extent(g.in[d], g.kernel[d], g.stride[d], g.pad_lo[d], g.pad_hi[d],
                             g.dilation[d], false);
    expect(g.out[d] >= 1 && Wide(g.out[d]) == want,
           ctx + ": out[" + std::to_string(d) + "] = " + std::to_string(g.out[d]) +
               " disagrees with the formula");
  }
  expect(fits(g.input_shape()) && fits(g.weight_shape()) && fits(g.output_shape()),
         ctx + ": shapes fit int64: x " + dims(g.input_shape()) + " w " + dims(g.weight_shape()) +
             " y " + dims(g.output_shape()));
}

void fuzz_conv(Reader& r) {
  fastconv::ConvArguments a;
  const bool transposed = r.flag();
  a.op = transposed ? fastconv::ConvOp::kConvTranspose : fastconv::ConvOp::kConv;
  a.pass = fastconv::ConvPass(r.byte() % 3);
  const size_t rank = 1 + r.byte() % 3;
  a.shape = r.dims(r.byte() < 245 ? rank + 2 : r.byte() % 7, 0, 9);
  a.w_shape = r.dims(r.byte() < 245 ? rank + 2 : r.byte() % 7, 1, 5);
  a.stride = r.dims(r.count(rank), 1, 4);
  a.dilation = r.dims(r.count(rank), 1, 3);
  a.padding = fastconv::PaddingRule(r.byte() % 4);
  if (a.padding == fastconv::PaddingRule::kExplicit) {
    a.pad_lo = r.dims(r.count(rank), 0, 4);
    a.pad_hi = r.dims(r.count(rank), 0, 4);
  }
  if (transposed) a.output_padding = r.dims(r.count(rank), 0, 3);
  a.groups = r.value(1, 3);
  if (r.byte() < 220 && a.shape.size() >= 2 && a.w_shape.size() >= 2) {
    // Mostly consistent channels, so that the size checks after them run too.
    int64_t prod = 0;
    const size_t cin = transposed ? 0 : 1;  // conv: w (K, C/G); transposed: w (C_in, K/G)
    if (!__builtin_mul_overflow(a.w_shape[cin], transposed ? 1 : a.groups, &prod)) {
      a.shape[1] = prod;
    }
    if (!transposed && !__builtin_mul_overflow(a.groups, r.value(1, 3), &prod)) a.w_shape[0] = prod;
    if (transposed && !__builtin_mul_overflow(a.groups, r.value(1, 3), &prod)) {
      a.w_shape[0] = a.shape[1] = prod;
    }
  }
  a.mode = r.flag() ? fastconv::ConvMode::kConv : fastconv::ConvMode::kCross;
  a.dtype = r.flag() ? fastconv::DType::kFloat64 : fastconv::DType::kFloat32;
  const bool plan = r.byte() < 64;
  const int algo = r.byte() % 7;
  fastconv::ConvProblem p;
  try {
    p = fastconv::make_conv_problem(a);
  } catch (const fastconv::InvalidArgument&) {
    return;
  }
  const std::string ctx = std::string(transposed ? "conv_transpose " : "conv ") +
                          fastconv::pass_name(a.pass) + " shape " + dims(a.shape) + " w " +
                          dims(a.w_shape);
  ++g_valid[0];
  check_conv_geometry(p.g, ctx);
  for (const Shape* s : {&p.x_shape, &p.w_shape, &p.y_shape, &p.result_shape,
                         &p.operand_shapes[0], &p.operand_shapes[1]}) {
    expect(s->size() == rank + 2 && fits(*s), ctx + ": a shape " + dims(*s));
  }
  if (!transposed) {
    expect(p.y_shape == p.g.output_shape() && p.x_shape == a.shape, ctx + ": conv shapes");
    for (size_t d = 0; d < rank; ++d) {
      // "same": out = ceil(in / stride); "full"/"valid"/explicit: the formula (checked above)
      if (a.padding == fastconv::PaddingRule::kSame) {
        const int64_t in = a.shape[2 + d], s = a.stride[d];
        expect(p.y_shape[2 + d] == (in + s - 1) / s, ctx + ": 'same' output size");
      }
    }
  } else {
    // The transposed conv's x is its conv's output, its y the conv's input.
    expect(p.x_shape == p.g.output_shape() || p.x_shape[0] == 0 ||
               Shape(p.x_shape.begin() + 2, p.x_shape.end()) ==
                   Shape(p.g.output_shape().begin() + 2, p.g.output_shape().end()),
           ctx + ": transposed x and the conv output");
    expect(p.y_shape == p.g.input_shape(), ctx + ": transposed y and the conv input");
    for (size_t d = 0; d < rank; ++d) {
      const int64_t op = a.output_padding[d];
      expect(op >= 0 && (op < a.stride[d] || op < a.dilation[d]), ctx + ": output_padding");
    }
  }
  switch (a.pass) {
    case fastconv::ConvPass::kForward:
      expect(p.result_shape == p.y_shape && p.bias_channels == p.y_shape[1], ctx + ": forward");
      break;
    case fastconv::ConvPass::kBackwardData:
      expect(p.result_shape == p.x_shape && p.operand_shapes[0] == p.y_shape, ctx + ": bwd data");
      break;
    case fastconv::ConvPass::kBackwardWeight:
      expect(p.result_shape == p.w_shape && p.operand_shapes[1] == p.y_shape, ctx + ": bwd w");
      break;
  }
  // Plans: of problems whose operands real arrays can be (< 2^28 elements each); calls check
  // that their result can be allocated before planning (python/fastconv/_calls.py), and plans
  // of geometries no array could hold may take long (docs/reliability-fuzzing.md, open items).
  auto count = [](const Shape& s) {
    Wide c = 1;
    for (int64_t e : s) c *= e;
    return c;
  };
  const Wide limit = Wide(1) << 28;
  if (!plan || count(p.x_shape) >= limit || count(p.w_shape) >= limit ||
      count(p.y_shape) >= limit)
    return;
  g_planning = ctx + " stride " + dims(a.stride) + " pad " + dims(p.g.pad_lo.size() ? Shape(p.g.pad_lo.begin(), p.g.pad_lo.end()) : Shape{}) + "/" + dims(Shape(p.g.pad_hi.begin(), p.g.pad_hi.end())) + " dilation " + dims(a.dilation) + " groups " + std::to_string(a.groups) + " algo " + std::to_string(algo);
  try {
    const auto result = fastconv::plan_conv(p.g, p.conv_pass, p.dtype, fastconv::Algorithm(algo));
    ++g_plans;
    if (result.plan) {
      expect(result.plan->workspace_bytes >= 0, ctx + ": negative workspace " +
                                                    std::to_string(result.plan->workspace_bytes));
    } else {
      expect(!result.unsupported.empty() || !result.invalid.empty(), ctx + ": no plan, no reason");
    }
  } catch (const fastconv::InvalidArgument&) {
  } catch (const fastconv::Unsupported&) {
  } catch (const std::bad_alloc&) {
    // Plans of problems no array could hold may size tables by the problem (reported as
    // MemoryError); a problem of real arrays (each operand < 2^28 elements) must plan.
    const Wide limit = Wide(1) << 28;
    auto count = [](const Shape& s) {
      Wide p = 1;
      for (int64_t e : s) p *= e;
      return p;
    };
    // Known, open: an empty batch (N == 0) with huge spatial extents still plans by the
    // extents (docs/reliability-fuzzing.md); skipped so that the campaign goes on.
    const bool empty_batch = p.x_shape[0] == 0;
    if (!empty_batch && count(p.x_shape) < limit && count(p.w_shape) < limit &&
        count(p.y_shape) < limit)
      defect(ctx + " stride " + dims(a.stride) + " plan " + std::to_string(algo) + ": bad_alloc");
  } catch (const std::exception& e) {
    defect(ctx + " stride " + dims(a.stride) + " dilation " + dims(a.dilation) + " plan " +
           std::to_string(algo) + ": " + typeid(e).name() + " " + e.what());
  }
}

void fuzz_pool(Reader& r) {
  fastconv::PoolArguments a;
  a.kind = fastconv::PoolKind(r.byte() % 4);
  a.pass = fastconv::PoolPass(r.byte() % 3);
  const size_t rank = 1 + r.byte() % 3;
  a.x_shape = r.dims(r.byte() < 245 ? rank + 2 : r.byte() % 7, 0, 9);
  a.kernel = r.dims(r.count(rank), 1, 4);
  if (r.flag()) a.stride = r.dims(r.count(rank), 1, 4);
  a.pad_lo = r.dims(r.count(rank), 0, 2);
  a.pad_hi = r.dims(r.count(rank), 0, 2);
  a.dilation = r.dims(r.count(rank), 1, 3);
  a.ceil_mode = r.flag();
  if (a.kind == fastconv::PoolKind::kUnpool && r.flag()) a.output_size = r.dims(r.count(rank), 1, 20);
  fastconv::PoolProblem p;
  try {
    p = fastconv::make_pool_problem(a);
  } catch (const fastconv::InvalidArgument&) {
    return;
  }
  ++g_valid[1];
  const std::string ctx = std::string(fastconv::pool_kind_name(a.kind)) + " x " + dims(a.x_shape);
  expect(fits(p.x_shape) && fits(p.y_shape) && fits(p.result_shape), ctx + ": shapes fit");
  const auto& g = p.g;
  for (int d = 0; d < fastconv::kMaxRank; ++d) {
    expect(g.in[d] >= 0 && g.kernel[d] >= 1 && g.stride[d] >= 1, ctx + ": window");
    if (a.kind == fastconv::PoolKind::kUnpool) {
      // g.in: the unpooled output (>= 1, below 2^40); g.out: x's extents (may be 0)
      expect(g.in[d] >= 1 && g.in[d] <= (int64_t(1) << 40) && g.out[d] >= 0, ctx + ": unpool");
    } else {
      expect(g.out[d] >= 1, ctx + ": out >= 1");
      const Wide want = extent(g.in[d], g.kernel[d], g.stride[d], g.pad_lo[d], g.pad_hi[d],
                               g.dilation[d], g.ceil_mode);
      expect(Wide(g.out[d]) == want, ctx + ": out disagrees with the formula");
      expect(2 * g.pad_lo[d] <= g.kernel[d] && 2 * g.pad_hi[d] <= g.kernel[d], ctx + ": padding");
    }
  }
}

void fuzz_tiled(Reader& r) {
  fastconv::TiledConvArguments a;
  a.pass = fastconv::ConvPass(r.byte() % 3);
  const size_t rank = 1 + r.byte() % 3;
  a.shape = r.dims(r.byte() < 245 ? rank + 2 : r.byte() % 7, 0, 9);
  a.w_shape = r.dims(r.byte() < 245 ? 2 + 2 * rank : r.byte() % 9, 1, 4);
  a.stride = r.dims(r.count(rank), 1, 3);
  a.pad_lo = r.dims(r.count(rank), 0, 3);
  a.pad_hi = r.dims(r.count(rank), 0, 3);
  a.dilation = r.dims(r.count(rank), 1, 3);
  a.local = r.flag();
  if (r.byte() < 220 && a.shape.size() >= 2 && a.w_shape.size() == 2 + 2 * rank) {
    a.w_shape[1 + rank] = a.shape[1];  // mostly consistent channels
  }
  fastconv::TiledConvProblem p;
  try {
    p = fastconv::make_tiled_conv_problem(a);
  } catch (const fastconv::InvalidArgument&) {
    return;
  }
  ++g_valid[2];
  const std::string ctx = "tiled x " + dims(a.shape) + " w " + dims(a.w_shape);
  expect(fits(p.x_shape) && fits(p.w_shape) && fits(p.y_shape), ctx + ": shapes fit");
  const auto& g = p.g;
  for (int d = 0; d < fastconv::kMaxRank; ++d) {
    expect(g.out[d] >= 1, ctx + ": out >= 1");
    expect(g.tiles[d] >= 1 && g.kernel[d] >= 1, ctx + ": tiles and kernel >= 1");
  }
  for (size_t d = 0; d < rank; ++d) {
    const size_t s = fastconv::kMaxRank - rank + d;
    const Wide want = extent(a.shape[2 + d], g.kernel[s], g.stride[s], a.pad_lo[d], a.pad_hi[d],
                             g.dilation[s], false);
    expect(Wide(g.out[s]) == want, ctx + ": out disagrees with the formula");
  }
  int64_t ws = 0;
  try {
    ws = fastconv::tiled_conv_workspace_bytes(p);
  } catch (const fastconv::InvalidArgument&) {
    return;
  }
  expect(ws >= 0, ctx + ": negative workspace");
}

void fuzz_resample(Reader& r) {
  fastconv::ResampleArguments a;
  a.kind = fastconv::ResampleKind(r.byte() % 5);
  a.pass = fastconv::PoolPass(r.byte() % 3);
  const size_t rank = 1 + r.byte() % 3;
  a.x_shape = r.dims(r.byte() < 245 ? rank + 2 : r.byte() % 7, 0, 9);
  // x may be empty along one dim and huge along another (an empty array's shape)
  if (r.byte() < 16 && !a.x_shape.empty()) a.x_shape[0] = 0;
  a.scale = r.dims(a.kind == fastconv::ResampleKind::kPixelShuffle ||
                           a.kind == fastconv::ResampleKind::kPixelUnshuffle
                       ? 1
                       : r.count(rank),
                   1, 4);
  a.align_corners = r.flag();
  a.kernel = r.dims(r.count(rank), 1, 4);
  if (r.flag()) a.stride = r.dims(r.count(rank), 1, 4);
  a.pad_lo = r.dims(r.count(rank), 0, 2);
  a.pad_hi = r.dims(r.count(rank), 0, 2);
  a.training = r.flag();
  fastconv::ResampleProblem p;
  try {
    p = fastconv::make_resample_problem(a);
  } catch (const fastconv::InvalidArgument&) {
    return;
  }
  ++g_valid[3];
  const std::string ctx =
      std::string(fastconv::resample_kind_name(a.kind)) + " x " + dims(a.x_shape);
  expect(fits(p.x_shape) && fits(p.y_shape) && fits(p.result_shape), ctx + ": shapes fit");
  expect(p.y_shape.size() == p.x_shape.size(), ctx + ": rank");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  try {
    switch (r.byte() % 4) {
      case 0: fuzz_conv(r); break;
      case 1: fuzz_pool(r); break;
      case 2: fuzz_tiled(r); break;
      default: fuzz_resample(r); break;
    }
  } catch (const fastconv::InvalidArgument&) {
  } catch (const fastconv::InvalidType&) {
  } catch (const fastconv::Unsupported&) {
  } catch (const std::exception& e) {
    defect(std::string("undocumented exception ") + typeid(e).name() + ": " + e.what());
  }
  return 0;
}

#ifndef FASTCONV_LIBFUZZER
namespace {

const std::vector<uint8_t>* g_current = nullptr;

// An input that runs past the per-input limit is a hang: print it (hex, for a reproducer file)
// and abort.
void on_alarm(int) {
  static const char kHex[] = "0123456789abcdef";
  char line[512];
  size_t n = 0;
  const char head[] = "fuzz_geometry: DEFECT: an input ran past 10 s (hang); hex: ";
  for (char c : head)
    if (c) line[n++] = c;
  if (g_current) {
    for (uint8_t b : *g_current) {
      if (n + 3 >= sizeof(line)) break;
      line[n++] = kHex[b >> 4];
      line[n++] = kHex[b & 15];
    }
  }
  line[n++] = '\n';
  if (write(2, line, n) < 0 || write(2, g_planning.data(), g_planning.size()) < 0) {
  }
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGALRM, on_alarm);
  // Planning must not allocate by the problem's size: cap the address space so that it would
  // show as std::bad_alloc (reported as a defect) instead of exhausting the machine.
  struct rlimit lim = {size_t(4) << 30, size_t(4) << 30};
  setrlimit(RLIMIT_AS, &lim);
  long iterations = 100000;
  uint64_t seed = 1;
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (in) {  // a corpus file or a crash reproducer
      std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), {});
      LLVMFuzzerTestOneInput(data.data(), data.size());
      ++files;
    } else if (i == 1) {
      iterations = std::atol(argv[i]);
    } else {
      seed = std::strtoull(argv[i], nullptr, 10);
    }
  }
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&state]() {  // xorshift64*
    state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
  };
  std::vector<uint8_t> buf;
  for (long it = 0; it < iterations; ++it) {
    buf.resize(next() % 96);
    for (auto& b : buf) b = uint8_t(next() >> 56);
    g_current = &buf;
    alarm(10);
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
    alarm(0);
  }
  std::printf("fuzz_geometry: %ld random inputs (seed %llu) and %d files: no defect; valid "
              "problems: conv %ld (%ld planned), pool %ld, tiled %ld, resample %ld\n",
              iterations, (unsigned long long)seed, files, g_valid[0], g_plans, g_valid[1],
              g_valid[2], g_valid[3]);
  return 0;
}
#endif
