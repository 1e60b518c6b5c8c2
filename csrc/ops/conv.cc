// Convolution op: dispatches each pass of a validated geometry to the chosen algorithm and dtype.
#include <string>

#include "common/dtype_dispatch.h"
#include "fastconv/algorithm.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
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
    {Algorithm::kDirect, "direct", false},
    {Algorithm::kIm2col, "im2col", false},
    {Algorithm::kImplicitGemm, "implicit_gemm", false},
    {Algorithm::kWinograd, "winograd", false},
    {Algorithm::kFft, "fft", false},
    {Algorithm::kDepthwise, "depthwise", false},
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

void conv_forward(const ConvGeometry& g, Algorithm a, DType t, const void* x, const void* w,
                  const void* bias, void* y) {
  if (a != Algorithm::kReference) unsupported(a);
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::conv_forward<T>(g, static_cast<const T*>(x), static_cast<const T*>(w),
                         static_cast<const T*>(bias), static_cast<T*>(y));
  });
}

void conv_backward_data(const ConvGeometry& g, Algorithm a, DType t, const void* grad_y,
                        const void* w, void* grad_x) {
  if (a != Algorithm::kReference) unsupported(a);
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::conv_backward_data<T>(g, static_cast<const T*>(grad_y), static_cast<const T*>(w),
                               static_cast<T*>(grad_x));
  });
}

void conv_backward_weight(const ConvGeometry& g, Algorithm a, DType t, const void* x,
                          const void* grad_y, void* grad_w) {
  if (a != Algorithm::kReference) unsupported(a);
  dispatch_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    ref::conv_backward_weight<T>(g, static_cast<const T*>(x), static_cast<const T*>(grad_y),
                                 static_cast<T*>(grad_w));
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
