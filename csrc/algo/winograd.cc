// Placeholder until the winograd algorithm lands: reports itself unsupported for every problem.
#include "algo/winograd.h"

#include "fastconv/status.h"

namespace fastconv::algo {

std::string winograd_unsupported_reason(const ConvGeometry&, ConvPass) {
  return "the winograd algorithm is not implemented yet";
}
int winograd_tile(const ConvGeometry&, ConvPass) { return 0; }
int64_t winograd_workspace_bytes(const ConvGeometry&, ConvPass, int64_t) { return 0; }

template <typename T>
void winograd_forward(const ConvGeometry&, const T*, const T*, const T*, T*, T*) {
  throw Unsupported("the winograd algorithm is not implemented yet");
}
template <typename T>
void winograd_backward_data(const ConvGeometry&, const T*, const T*, T*, T*) {
  throw Unsupported("the winograd algorithm is not implemented yet");
}
template <typename T>
void winograd_backward_weight(const ConvGeometry&, const T*, const T*, T*, T*) {
  throw Unsupported("the winograd algorithm is not implemented yet");
}

#define FASTCONV_INSTANTIATE(T)                                                          \
  template void winograd_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, T*); \
  template void winograd_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, T*);     \
  template void winograd_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
