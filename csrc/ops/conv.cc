// Convolution op: dispatches each pass of a validated geometry to the chosen algorithm and dtype.
#include <memory>
#include <string>

#include "common/dtype_dispatch.h"
#include "fastconv/algorithm.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "algo/direct.h"
#include "algo/fft_conv.h"
#include "algo/gemm_conv.h"
#include "algo/winograd.h"
#include "ref/conv_ref.h"

namespace fastconv {

namespace {

struct AlgorithmEntry {
  Algorithm algo;
  const char* name;
  bool built;  // compiled into this build (later issues flip these on)
};

constexpr AlgorithmEntry kAlgorithms[] = {
    {Algorithm::kReference, "reference", true},
    {Algorithm::kDirect, "direct", true},
    {Algorithm::kIm2col, "im2col", true},
    {Algorithm::kImplicitGemm, "implicit_gemm", true},
    {Algorithm::kWinograd, "winograd", true},
    {Algorithm::kFft, "fft", true},
    {Algorithm::kDepthwise, "depthwise", true},
};

[[noreturn]] void unsupported(Algorithm a) {
  throw Unsupported(std::string("algorithm '") + algorithm_name(a) +
                    "' is not available in this build of fastconv");
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
    for (const auto& e : kAlgorithms)
      if (e.built) names.push_back(e.name);
  } else {
    names.push_back("reference");  // pooling has one kernel family per op for now
  }
  return names;
}

int64_t conv_workspace_bytes(const ConvGeometry& g, Algorithm a, ConvPass pass, DType t) {
  const int64_t elem = t == DType::kFloat32 ? 4 : 8;
  switch (a) {
    case Algorithm::kIm2col: return algo::im2col_workspace_bytes(g, pass, elem);
    case Algorithm::kImplicitGemm: return algo::implicit_gemm_workspace_bytes(g, pass, elem);
    case Algorithm::kWinograd: return algo::winograd_workspace_bytes(g, pass, elem);
    case Algorithm::kFft: return algo::fft_workspace_bytes(g, pass, elem);
    case Algorithm::kDirect:
    case Algorithm::kDepthwise: return algo::direct_workspace_bytes(g, pass, elem);
    default: return 0;
  }
}

std::string conv_unsupported_reason(const ConvGeometry& g, Algorithm a, ConvPass pass) {
  for (const auto& e : kAlgorithms)
    if (e.algo == a && !e.built)
      return std::string("algorithm '") + e.name + "' is not available in this build of fastconv";
  switch (a) {
    case Algorithm::kWinograd: return algo::winograd_unsupported_reason(g, pass);
    case Algorithm::kFft: return algo::fft_unsupported_reason(g, pass);
    case Algorithm::kDepthwise: return algo::depthwise_unsupported_reason(g, pass);
    default: return "";
  }
}

std::string conv_algorithm_note(const ConvGeometry& g, Algorithm a, ConvPass pass) {
  if (a == Algorithm::kWinograd && conv_unsupported_reason(g, a, pass).empty())
    return algo::winograd_note(g, pass);
  return "";
}

namespace {

void check_supported(const ConvGeometry& g, Algorithm a, ConvPass pass) {
  const std::string why = conv_unsupported_reason(g, a, pass);
  if (!why.empty()) throw Unsupported(why);
}

// Scratch memory for one call, sized by the algorithm (allocation happens here, never in
// the drivers or micro-kernels). Each calling thread keeps its largest block up to
// kKeptWorkspace and reuses it: a fresh multi-MiB block per call comes from mmap, and faulting
// its pages in again every call costs about as much as a small layer's whole convolution
// (measured: fft on dense5x5 2.3 ms with a fresh block vs 1.15 ms reused).
constexpr int64_t kKeptWorkspace = int64_t(64) << 20;

class Workspace {
 public:
  explicit Workspace(int64_t bytes) {
    if (bytes <= 0) return;
    const size_t words = size_t((bytes + 63) / 64);  // 64-byte units: aligned for any T
    if (bytes > kKeptWorkspace) {
      owned_.reset(new Block[words]);
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
Workspace workspace(const ConvGeometry& g, Algorithm a, ConvPass pass) {
  return Workspace(
      conv_workspace_bytes(g, a, pass, sizeof(T) == 4 ? DType::kFloat32 : DType::kFloat64));
}

}  // namespace

void conv_forward(const ConvGeometry& g, Algorithm a, DType t, const void* x, const void* w,
                  const void* bias, void* y) {
  check_supported(g, a, ConvPass::kForward);
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x);
    const T* pw = static_cast<const T*>(w);
    const T* pb = static_cast<const T*>(bias);
    T* py = static_cast<T*>(y);
    const Workspace scratch = workspace<T>(g, a, ConvPass::kForward);
    T* ws = scratch.template as<T>();
    switch (a) {
      case Algorithm::kReference: return ref::conv_forward<T>(g, px, pw, pb, py);
      case Algorithm::kIm2col: return algo::im2col_forward<T>(g, px, pw, pb, py, ws);
      case Algorithm::kImplicitGemm:
        return algo::implicit_gemm_forward<T>(g, px, pw, pb, py, ws);
      case Algorithm::kWinograd: return algo::winograd_forward<T>(g, px, pw, pb, py, ws);
      case Algorithm::kFft: return algo::fft_forward<T>(g, px, pw, pb, py, ws);
      case Algorithm::kDirect:
      case Algorithm::kDepthwise:
        return algo::direct_forward<T>(g, px, pw, pb, py, ws);
      default: unsupported(a);
    }
  });
}

void conv_backward_data(const ConvGeometry& g, Algorithm a, DType t, const void* grad_y,
                        const void* w, void* grad_x) {
  check_supported(g, a, ConvPass::kBackwardData);
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* pgy = static_cast<const T*>(grad_y);
    const T* pw = static_cast<const T*>(w);
    T* pgx = static_cast<T*>(grad_x);
    const Workspace scratch = workspace<T>(g, a, ConvPass::kBackwardData);
    T* ws = scratch.template as<T>();
    switch (a) {
      case Algorithm::kReference: return ref::conv_backward_data<T>(g, pgy, pw, pgx);
      case Algorithm::kIm2col: return algo::im2col_backward_data<T>(g, pgy, pw, pgx, ws);
      case Algorithm::kImplicitGemm:
        return algo::implicit_gemm_backward_data<T>(g, pgy, pw, pgx, ws);
      case Algorithm::kWinograd:
        return algo::winograd_backward_data<T>(g, pgy, pw, pgx, ws);
      case Algorithm::kFft: return algo::fft_backward_data<T>(g, pgy, pw, pgx, ws);
      case Algorithm::kDirect:
      case Algorithm::kDepthwise:
        return algo::direct_backward_data<T>(g, pgy, pw, pgx, ws);
      default: unsupported(a);
    }
  });
}

void conv_backward_weight(const ConvGeometry& g, Algorithm a, DType t, const void* x,
                          const void* grad_y, void* grad_w) {
  check_supported(g, a, ConvPass::kBackwardWeight);
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x);
    const T* pgy = static_cast<const T*>(grad_y);
    T* pgw = static_cast<T*>(grad_w);
    const Workspace scratch = workspace<T>(g, a, ConvPass::kBackwardWeight);
    T* ws = scratch.template as<T>();
    switch (a) {
      case Algorithm::kReference: return ref::conv_backward_weight<T>(g, px, pgy, pgw);
      case Algorithm::kIm2col: return algo::im2col_backward_weight<T>(g, px, pgy, pgw, ws);
      case Algorithm::kImplicitGemm:
        return algo::implicit_gemm_backward_weight<T>(g, px, pgy, pgw, ws);
      case Algorithm::kWinograd:
        return algo::winograd_backward_weight<T>(g, px, pgy, pgw, ws);
      case Algorithm::kFft: return algo::fft_backward_weight<T>(g, px, pgy, pgw, ws);
      case Algorithm::kDirect:
      case Algorithm::kDepthwise:
        return algo::direct_backward_weight<T>(g, px, pgy, pgw, ws);
      default: unsupported(a);
    }
  });
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
