// Convolution op: the algorithm table (plan + run per algorithm), the workspace, and the run of
// a problem's pass. The only place that knows every algorithm; selection lives in Python
// (python/fastconv/selection.py) and asks plan_conv() what each algorithm can do.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <new>
#include <string>

#include "algo/direct.h"
#include "algo/fft_conv.h"
#include "algo/gemm_conv.h"
#include "algo/winograd.h"
#include "common/dtype_dispatch.h"
#include "fastconv/algorithm.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "ref/conv_ref.h"

namespace fastconv {

namespace {

// The three pass runners of one algorithm for one element type.
template <typename T>
struct PassRunners {
  void (*forward)(const ConvPlan&, const T* x, const T* w, const T* bias, T* y, T* ws);
  void (*backward_data)(const ConvPlan&, const T* grad_y, const T* w, T* grad_x, T* ws);
  void (*backward_weight)(const ConvPlan&, const T* x, const T* grad_y, T* grad_w, T* ws);
};

std::string reference_plan(ConvPlan&) { return ""; }

template <typename T>
constexpr PassRunners<T> reference_runners() {
  return {[](const ConvPlan& p, const T* x, const T* w, const T* b, T* y, T*) {
            ref::conv_forward<T>(p.g, x, w, b, y);
          },
          [](const ConvPlan& p, const T* gy, const T* w, T* gx, T*) {
            ref::conv_backward_data<T>(p.g, gy, w, gx);
          },
          [](const ConvPlan& p, const T* x, const T* gy, T* gw, T*) {
            ref::conv_backward_weight<T>(p.g, x, gy, gw);
          }};
}

#define FASTCONV_RUNNERS(family, T) \
  PassRunners<T> { algo::family##_forward<T>, algo::family##_backward_data<T>, \
                   algo::family##_backward_weight<T> }

// One row per algorithm, in the order algorithms() lists them. plan() fills a plan's workspace,
// note and layout or returns why the algorithm cannot run it; the runners only execute.
struct AlgorithmEntry {
  Algorithm algo;
  const char* name;
  std::string (*plan)(ConvPlan&);
  PassRunners<float> f32;
  PassRunners<double> f64;
};

const AlgorithmEntry kAlgorithms[] = {
    {Algorithm::kReference, "reference", reference_plan, reference_runners<float>(),
     reference_runners<double>()},
    {Algorithm::kDirect, "direct", algo::direct_plan, FASTCONV_RUNNERS(direct, float),
     FASTCONV_RUNNERS(direct, double)},
    {Algorithm::kIm2col, "im2col", algo::im2col_plan, FASTCONV_RUNNERS(im2col, float),
     FASTCONV_RUNNERS(im2col, double)},
    {Algorithm::kImplicitGemm, "implicit_gemm", algo::implicit_gemm_plan,
     FASTCONV_RUNNERS(implicit_gemm, float), FASTCONV_RUNNERS(implicit_gemm, double)},
    {Algorithm::kWinograd, "winograd", algo::winograd_plan, FASTCONV_RUNNERS(winograd, float),
     FASTCONV_RUNNERS(winograd, double)},
    {Algorithm::kFft, "fft", algo::fft_plan, FASTCONV_RUNNERS(fft, float),
     FASTCONV_RUNNERS(fft, double)},
    // depthwise is the direct algorithm restricted to one input channel per group.
    {Algorithm::kDepthwise, "depthwise", algo::depthwise_plan, FASTCONV_RUNNERS(direct, float),
     FASTCONV_RUNNERS(direct, double)},
};

#undef FASTCONV_RUNNERS

const AlgorithmEntry& entry(Algorithm a) {
  for (const auto& e : kAlgorithms)
    if (e.algo == a) return e;
  throw InvalidArgument("unknown algorithm");
}

// Scratch memory for one run, sized by the plan (allocation happens here, never in the drivers
// or micro-kernels). Each calling thread keeps its largest block up to kKeptWorkspace and
// reuses it: a fresh multi-MiB block per call comes from mmap, and faulting its pages in again
// every call costs about as much as a small layer's whole convolution (measured: fft on
// dense5x5 2.3 ms with a fresh block vs 1.15 ms reused).
constexpr int64_t kKeptWorkspace = int64_t(64) << 20;

// "1.5 GiB (1610612736 bytes)"
std::string describe_bytes(int64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f GiB (%lld bytes)", double(bytes) / double(1 << 30),
                static_cast<long long>(bytes));
  return text;
}

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : INT64_MAX;
}

// What the kernel says can still be had without running out: MemAvailable + SwapFree from
// /proc/meminfo (Linux), or -1 when unknown. Read per large workspace (tens of microseconds,
// next to the milliseconds a block of more than kKeptWorkspace takes to fault in).
int64_t available_memory_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  long long available = -1, swap_free = 0, kib = 0;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::sscanf(line, "MemAvailable: %lld kB", &kib) == 1) available = kib;
    if (std::sscanf(line, "SwapFree: %lld kB", &kib) == 1) swap_free = kib;
  }
  std::fclose(f);
  return available < 0 ? -1 : int64_t(available + swap_free) * 1024;
}

// "im2col (forward)": the call a workspace error is about.
std::string what(const ConvPlan& p) {
  const char* pass = p.pass == ConvPass::kForward        ? "forward"
                     : p.pass == ConvPass::kBackwardData ? "backward_data"
                                                         : "backward_weight";
  return std::string(algorithm_name(p.algo)) + " (" + pass + ")";
}

class Workspace {
 public:
  // The workspace of `plan`. One that cannot be had is a MemoryError (OutOfMemory) naming the
  // algorithm, the pass and the size, raised here, before the runner starts. A block larger
  // than the machine's memory is refused outright: with Linux's overcommit it might be granted
  // and then kill the process when touched.
  explicit Workspace(const ConvPlan& plan) {
    const int64_t bytes = plan.workspace_bytes;
    if (bytes <= 0) return;
    const size_t words = size_t((bytes + 63) / 64);  // 64-byte units: aligned for any T
    if (bytes > kKeptWorkspace) {
      static const int64_t memory = physical_memory_bytes();
      if (bytes > memory) {
        throw OutOfMemory("fastconv: " + what(plan) + " needs a workspace of " +
                          describe_bytes(bytes) + ", more than this machine's memory (" +
                          describe_bytes(memory) + ")");
      }
      // Linux grants more than it has (overcommit) and kills the process when the pages are
      // touched: refuse what the machine cannot give now.
      const int64_t available = available_memory_bytes();
      if (available >= 0 && bytes > available) {
        throw OutOfMemory("fastconv: " + what(plan) + " needs a workspace of " +
                          describe_bytes(bytes) + ", more than the memory available now (" +
                          describe_bytes(available) + ")");
      }
      owned_.reset(new (std::nothrow) Block[words]);
      if (!owned_) {
        throw OutOfMemory("fastconv: " + what(plan) + " could not allocate its workspace of " +
                          describe_bytes(bytes));
      }
      data_ = owned_.get();
      return;
    }
    thread_local std::unique_ptr<Block[]> kept;
    thread_local size_t kept_words = 0;
    if (kept_words < words) {
      kept.reset();  // release the old block before taking the larger one
      kept.reset(new Block[words]);
      kept_words = words;
    }
    data_ = kept.get();
  }
  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(data_);
  }

 private:
  struct alignas(64) Block {
    unsigned char bytes[64];
  };
  std::unique_ptr<Block[]> owned_;
  Block* data_ = nullptr;
};

template <typename T>
void run_plan(const ConvPlan& p, const PassRunners<T>& r, const void* a, const void* b,
              const void* bias, void* out) {
  const Workspace scratch(p);
  T* ws = scratch.template as<T>();
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  T* po = static_cast<T*>(out);
  switch (p.pass) {
    case ConvPass::kForward: return r.forward(p, pa, pb, static_cast<const T*>(bias), po, ws);
    case ConvPass::kBackwardData: return r.backward_data(p, pa, pb, po, ws);
    case ConvPass::kBackwardWeight: return r.backward_weight(p, pa, pb, po, ws);
  }
}

}  // namespace

const char* algorithm_name(Algorithm a) {
  for (const auto& e : kAlgorithms)
    if (e.algo == a) return e.name;
  return "unknown";
}

Algorithm parse_algorithm(const std::string& name) {
  for (const auto& e : kAlgorithms)
    if (name == e.name) return e.algo;
  throw InvalidArgument("algo must be 'auto' or one of the algorithm names, got '" + name + "'");
}

std::vector<std::string> built_algorithms(const std::string& op) {
  std::vector<std::string> names;
  if (op == "conv" || op == "conv_transpose") {
    for (const auto& e : kAlgorithms) names.push_back(e.name);
  } else {
    // Pooling: the direct kernels where they serve, else the reference (no algo argument).
    names = {"direct", "reference"};
  }
  return names;
}

ConvPlanResult plan_conv(const ConvGeometry& g, ConvPass pass, DType t, Algorithm a) {
  if (t != DType::kFloat32 && t != DType::kFloat64) {
    throw InvalidType(std::string("the CPU kernels take float32 or float64, got ") +
                      dtype_name(t));
  }
  auto plan = std::make_shared<ConvPlan>();
  plan->algo = a;
  plan->runner = a;
  plan->g = g;
  plan->pass = pass;
  plan->dtype = t;
  plan->threads = get_num_threads();
  ConvPlanResult result;
  // Window parameters far beyond any tensor (padding, a stride or a dilated kernel past 2^28
  // around a small input) and empty problems of huge extents go to the reference loops, whose
  // cost follows the output: the other plans size tables and schedules by these extents and
  // took minutes or gigabytes (tests/native/fuzz_geometry.cc). Inputs that are that long
  // themselves (a signal of 2^31 samples, tests/test_large.py) keep every algorithm.
  constexpr int64_t kMaxPlanExtent = int64_t(1) << 28;
  if (a != Algorithm::kReference) {
    const bool empty = g.n == 0 || g.c == 0 || g.k == 0 || g.out_spatial() == 0;
    for (int d = 0; d < kMaxRank; ++d) {
      const int64_t padding = g.pad_lo[d] + g.pad_hi[d], padded = g.in[d] + padding;
      const int64_t reach = g.dilation[d] * (g.kernel[d] - 1) + 1;
      if (padding > kMaxPlanExtent || g.stride[d] > kMaxPlanExtent || reach > kMaxPlanExtent ||
          (empty && padded > kMaxPlanExtent)) {
        result.unsupported = std::string(algorithm_name(a)) + ": the padding " +
                             std::to_string(padding) + ", stride " + std::to_string(g.stride[d]) +
                             " or dilated kernel extent " + std::to_string(reach) +
                             (empty ? " of an empty problem" : "") +
                             " is beyond 2^28 (only 'reference' runs such geometries)";
        return result;
      }
    }
  }
  try {
    result.unsupported = entry(a).plan(*plan);
  } catch (const InvalidArgument& e) {
    result.invalid = e.what();
    result.unsupported = result.invalid;
    return result;
  }
  if (result.unsupported.empty()) result.plan = std::move(plan);
  return result;
}

void run_conv(const ConvPlan& plan, const void* a, const void* b, const void* bias, void* out) {
  if (plan.threads != get_num_threads()) {  // the schedule and scratch depend on the threads
    const ConvPlanResult fresh = plan_conv(plan.g, plan.pass, plan.dtype, plan.algo);
    if (!fresh.invalid.empty()) throw InvalidArgument(fresh.invalid);
    if (!fresh.plan) throw Unsupported(fresh.unsupported);
    return run_conv(*fresh.plan, a, b, bias, out);
  }
  const AlgorithmEntry& e = entry(plan.runner);
  if (plan.dtype == DType::kFloat32)
    run_plan<float>(plan, e.f32, a, b, bias, out);
  else
    run_plan<double>(plan, e.f64, a, b, bias, out);
}

void run_conv_problem(const ConvProblem& problem, const ConvPlan& plan, const void* a,
                      const void* b, const void* bias, void* out) {
  const ConvGeometry& g = problem.g;
  if (problem.op == ConvOp::kConvTranspose && problem.pass == ConvPass::kForward) {
    // The conv's backward_data writes the transposed output; its bias follows (C channels).
    run_conv(plan, a, b, nullptr, out);
    if (bias) add_channel_bias(g.n, g.c, g.in_spatial(), problem.dtype, bias, out);
    return;
  }
  if (problem.swap_operands) return run_conv(plan, b, a, nullptr, out);
  run_conv(plan, a, b, problem.pass == ConvPass::kForward ? bias : nullptr, out);
}

void conv_backward_bias(int64_t n, int64_t k, int64_t spatial, DType t, const void* grad_y,
                        void* grad_bias) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* gy = static_cast<const T*>(grad_y);
    T* gb = static_cast<T*>(grad_bias);
    parallel_for(k, 1, [&](int64_t begin, int64_t end) {
      for (int64_t kk = begin; kk < end; ++kk) {
        double acc = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const T* p = gy + (i * k + kk) * spatial;
          for (int64_t s = 0; s < spatial; ++s) acc += double(p[s]);
        }
        gb[kk] = T(acc);
      }
    });
  });
}

void add_channel_bias(int64_t n, int64_t k, int64_t spatial, DType t, const void* bias, void* y) {
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* b = static_cast<const T*>(bias);
    T* out = static_cast<T*>(y);
    parallel_for(n * k, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const T v = b[plane % k];
        T* p = out + plane * spatial;
        for (int64_t s = 0; s < spatial; ++s) p[s] += v;
      }
    });
  });
}

}  // namespace fastconv
