// Placeholder until the fft algorithm lands: reports itself unsupported for every problem.
#include "algo/fft_conv.h"

#include "fastconv/status.h"

namespace fastconv::algo {

std::string fft_unsupported_reason(const ConvGeometry&, ConvPass) {
  return "the fft algorithm is not implemented yet";
}

int64_t fft_workspace_bytes(const ConvGeometry&, ConvPass, int64_t) { return 0; }

template <typename T>
void fft_forward(const ConvGeometry&, const T*, const T*, const T*, T*, T*) {
  throw Unsupported("the fft algorithm is not implemented yet");
}
template <typename T>
void fft_backward_data(const ConvGeometry&, const T*, const T*, T*, T*) {
  throw Unsupported("the fft algorithm is not implemented yet");
}
template <typename T>
void fft_backward_weight(const ConvGeometry&, const T*, const T*, T*, T*) {
  throw Unsupported("the fft algorithm is not implemented yet");
}

#define FASTCONV_INSTANTIATE(T)                                                          \
  template void fft_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, T*); \
  template void fft_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, T*);     \
  template void fft_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
