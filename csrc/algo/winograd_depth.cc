// 3-D convolutions as 2-D ones over their depth taps (winograd_depth.h).
#include "algo/winograd_depth.h"

#include <algorithm>

#include "fastconv/parallel.h"

namespace fastconv::algo::winograd_depth {

bool stackable(const ConvGeometry& g) {
  if (g.rank != 3) return false;
  const int64_t r = g.kernel[1];
  return g.kernel[2] == r && (r == 2 || r == 3 || r == 5) && g.stride[1] == 1 &&
         g.stride[2] == 1 && g.dilation[1] == 1 && g.dilation[2] == 1;
}

std::string unstackable_reason(const ConvGeometry& g) {
  return "winograd runs a 3-D convolution as 2-D ones over its depth taps: it needs stride 1 "
         "and dilation 1 along H and W and the same 2, 3 or 5 taps along both, got kernel " +
         format_dims({g.kernel[0], g.kernel[1], g.kernel[2]}) + ", stride " +
         format_dims({g.stride[0], g.stride[1], g.stride[2]}) + ", dilation " +
         format_dims({g.dilation[0], g.dilation[1], g.dilation[2]});
}

ConvGeometry flat_geometry(const ConvGeometry& g, ConvPass pass) {
  ConvGeometry f;
  f.rank = 2;
  f.groups = g.groups;
  f.mode = g.mode;
  const bool bd = pass == ConvPass::kBackwardData;
  f.n = g.n * (bd ? g.in[0] : g.out[0]);
  f.c = bd ? g.c : g.c * g.kernel[0];
  f.k = bd ? g.k * g.kernel[0] : g.k;
  for (int d = 1; d < kMaxRank; ++d) {
    f.in[d] = g.in[d];
    f.out[d] = g.out[d];
    f.kernel[d] = g.kernel[d];
    f.pad_lo[d] = g.pad_lo[d];
    f.pad_hi[d] = g.pad_hi[d];
  }
  return f;
}

DepthStack make_stack(const ConvGeometry& g, ConvPass pass) {
  DepthStack s;
  s.backward_data = pass == ConvPass::kBackwardData;
  s.images_d = s.backward_data ? g.in[0] : g.out[0];
  s.src_d = s.backward_data ? g.out[0] : g.in[0];
  s.src_channels = s.backward_data ? g.k : g.c;
  s.dst_channels = s.backward_data ? g.c : g.k;
  s.taps = g.kernel[0];
  s.stride = g.stride[0];
  s.dilation = g.dilation[0];
  s.pad = g.pad_lo[0];
  s.flip = g.mode == ConvMode::kConv;
  const int64_t in_plane = g.in[1] * g.in[2], out_plane = g.out[1] * g.out[2];
  s.src_plane = s.backward_data ? out_plane : in_plane;
  s.dst_plane = s.backward_data ? in_plane : out_plane;
  return s;
}

int64_t weight_elems(const ConvGeometry& g, ConvPass pass) {
  return pass == ConvPass::kBackwardData ? g.k * g.c_per_group() * g.kernel_spatial() : 0;
}

template <typename T>
void swap_weight(const ConvGeometry& g, const T* w, T* out) {
  const int64_t cg = g.c_per_group(), kd = g.kernel[0], plane = g.kernel[1] * g.kernel[2];
  parallel_for(g.k, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t d = 0; d < kd; ++d) {
          const T* src = w + ((k * cg + c) * kd + d) * plane;
          std::copy(src, src + plane, out + ((k * kd + d) * cg + c) * plane);
        }
  });
}

template void swap_weight<float>(const ConvGeometry&, const float*, float*);
template void swap_weight<double>(const ConvGeometry&, const double*, double*);

}  // namespace fastconv::algo::winograd_depth
