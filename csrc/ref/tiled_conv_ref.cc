// Reference tiled / locally connected convolution: the definition, loop by loop.
#include "ref/tiled_conv_ref.h"

#include <vector>

namespace fastconv::ref {

namespace {

// Calls fn(y_index, phase, x_offset_or_-1, w_offset) for every (n, k, output position, c, tap)
// with x_offset the flat offset of the input element the tap reads (-1 in the padding).
template <typename Fn>
void for_each_term(const TiledGeometry& g, Fn&& fn) {
  const int64_t P = g.phases(), T = g.taps(), S = g.in_spatial(), O = g.out_spatial();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t k = 0; k < g.k; ++k)
      for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            const int64_t o = (o0 * g.out[1] + o1) * g.out[2] + o2;
            const int64_t p =
                ((o0 % g.tiles[0]) * g.tiles[1] + o1 % g.tiles[1]) * g.tiles[2] + o2 % g.tiles[2];
            const int64_t yi = (n * g.k + k) * O + o;
            for (int64_t c = 0; c < g.c; ++c)
              for (int64_t t0 = 0; t0 < g.kernel[0]; ++t0)
                for (int64_t t1 = 0; t1 < g.kernel[1]; ++t1)
                  for (int64_t t2 = 0; t2 < g.kernel[2]; ++t2) {
                    const int64_t t = (t0 * g.kernel[1] + t1) * g.kernel[2] + t2;
                    const int64_t wi = ((k * P + p) * g.c + c) * T + t;
                    const int64_t i0 = o0 * g.stride[0] - g.pad_lo[0] + t0 * g.dilation[0];
                    const int64_t i1 = o1 * g.stride[1] - g.pad_lo[1] + t1 * g.dilation[1];
                    const int64_t i2 = o2 * g.stride[2] - g.pad_lo[2] + t2 * g.dilation[2];
                    const bool inside = i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] &&
                                        i2 >= 0 && i2 < g.in[2];
                    const int64_t xi =
                        inside ? (n * g.c + c) * S + (i0 * g.in[1] + i1) * g.in[2] + i2 : -1;
                    fn(yi, p, xi, wi);
                  }
          }
}

}  // namespace

template <typename T>
void tiled_conv_forward(const TiledGeometry& g, const T* x, const T* w, const T* bias,
                        bool bias_per_phase, T* y) {
  const int64_t O = g.out_spatial(), P = g.phases();
  std::vector<double> acc(size_t(g.n * g.k * O), 0.0);
  for_each_term(g, [&](int64_t yi, int64_t, int64_t xi, int64_t wi) {
    if (xi >= 0) acc[size_t(yi)] += double(x[xi]) * double(w[wi]);
  });
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t k = 0; k < g.k; ++k)
      for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            const int64_t yi = (n * g.k + k) * O + (o0 * g.out[1] + o1) * g.out[2] + o2;
            double b = 0.0;
            if (bias && bias_per_phase) {
              const int64_t p = ((o0 % g.tiles[0]) * g.tiles[1] + o1 % g.tiles[1]) * g.tiles[2] +
                                o2 % g.tiles[2];
              b = double(bias[k * P + p]);
            } else if (bias) {
              b = double(bias[k]);
            }
            y[yi] = T(acc[size_t(yi)] + b);
          }
}

template <typename T>
void tiled_conv_backward_data(const TiledGeometry& g, const T* grad_y, const T* w, T* grad_x) {
  std::vector<double> acc(size_t(g.n * g.c * g.in_spatial()), 0.0);
  for_each_term(g, [&](int64_t yi, int64_t, int64_t xi, int64_t wi) {
    if (xi >= 0) acc[size_t(xi)] += double(grad_y[yi]) * double(w[wi]);
  });
  for (size_t i = 0; i < acc.size(); ++i) grad_x[i] = T(acc[i]);
}

template <typename T>
void tiled_conv_backward_weight(const TiledGeometry& g, const T* x, const T* grad_y, T* grad_w) {
  std::vector<double> acc(size_t(g.k * g.phases() * g.row()), 0.0);
  for_each_term(g, [&](int64_t yi, int64_t, int64_t xi, int64_t wi) {
    if (xi >= 0) acc[size_t(wi)] += double(grad_y[yi]) * double(x[xi]);
  });
  for (size_t i = 0; i < acc.size(); ++i) grad_w[i] = T(acc[i]);
}

#define FASTCONV_INSTANTIATE(T)                                                               \
  template void tiled_conv_forward<T>(const TiledGeometry&, const T*, const T*, const T*,     \
                                      bool, T*);                                              \
  template void tiled_conv_backward_data<T>(const TiledGeometry&, const T*, const T*, T*);    \
  template void tiled_conv_backward_weight<T>(const TiledGeometry&, const T*, const T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::ref
