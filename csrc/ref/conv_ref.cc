// Reference convolution passes: plain loops with double accumulators, parallel over
// independent output elements (batch x channel planes, or weight rows) so no two threads
// ever write the same location.
#include "ref/conv_ref.h"

#include "fastconv/parallel.h"

namespace fastconv::ref {
namespace {

// Kernel tap index as stored in w: true convolution reads the kernel flipped.
inline int64_t tap(const ConvGeometry& g, int d, int64_t i) {
  return g.mode == ConvMode::kConv ? g.kernel[d] - 1 - i : i;
}

inline int64_t weight_offset(const ConvGeometry& g, int64_t kd, int64_t kh, int64_t kw) {
  return (tap(g, 0, kd) * g.kernel[1] + tap(g, 1, kh)) * g.kernel[2] + tap(g, 2, kw);
}

}  // namespace

template <typename T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), k_sp = g.kernel_spatial();
  parallel_for_2d(g.n, g.k, [&](int64_t n, int64_t k) {
    const int64_t grp = k / kg;
    const T* xg = x + (n * g.c + grp * cg) * in_sp;
    const T* wk = w + k * cg * k_sp;
    T* yk = y + (n * g.k + k) * out_sp;
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          double acc = bias ? double(bias[k]) : 0.0;
          for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
            const int64_t id = od * g.stride[0] - g.pad_lo[0] + kd * g.dilation[0];
            if (id < 0 || id >= g.in[0]) continue;
            for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
              const int64_t ih = oh * g.stride[1] - g.pad_lo[1] + kh * g.dilation[1];
              if (ih < 0 || ih >= g.in[1]) continue;
              for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                const int64_t iw = ow * g.stride[2] - g.pad_lo[2] + kw * g.dilation[2];
                if (iw < 0 || iw >= g.in[2]) continue;
                const int64_t xo = (id * g.in[1] + ih) * g.in[2] + iw;
                const int64_t wo = weight_offset(g, kd, kh, kw);
                for (int64_t c = 0; c < cg; ++c)
                  acc += double(xg[c * in_sp + xo]) * double(wk[c * k_sp + wo]);
              }
            }
          }
          yk[(od * g.out[1] + oh) * g.out[2] + ow] = T(acc);
        }
  });
}

// Output position o along dim d that input position i reaches through tap t, or -1.
static inline int64_t source_output(const ConvGeometry& g, int d, int64_t i, int64_t t) {
  const int64_t s = i + g.pad_lo[d] - t * g.dilation[d];
  if (s < 0 || s % g.stride[d] != 0) return -1;
  const int64_t o = s / g.stride[d];
  return o < g.out[d] ? o : -1;
}

template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), k_sp = g.kernel_spatial();
  parallel_for_2d(g.n, g.c, [&](int64_t n, int64_t c) {
    const int64_t grp = c / cg, cl = c % cg;
    const T* gyg = grad_y + (n * g.k + grp * kg) * out_sp;
    const T* wg = w + (grp * kg * cg + cl) * k_sp;  // w[grp*kg + k][cl]
    T* gxc = grad_x + (n * g.c + c) * in_sp;
    for (int64_t id = 0; id < g.in[0]; ++id)
      for (int64_t ih = 0; ih < g.in[1]; ++ih)
        for (int64_t iw = 0; iw < g.in[2]; ++iw) {
          double acc = 0.0;
          for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
            const int64_t od = source_output(g, 0, id, kd);
            if (od < 0) continue;
            for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
              const int64_t oh = source_output(g, 1, ih, kh);
              if (oh < 0) continue;
              for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                const int64_t ow = source_output(g, 2, iw, kw);
                if (ow < 0) continue;
                const int64_t yo = (od * g.out[1] + oh) * g.out[2] + ow;
                const int64_t wo = weight_offset(g, kd, kh, kw);
                for (int64_t k = 0; k < kg; ++k)
                  acc += double(gyg[k * out_sp + yo]) * double(wg[k * cg * k_sp + wo]);
              }
            }
          }
          gxc[(id * g.in[1] + ih) * g.in[2] + iw] = T(acc);
        }
  });
}

template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* x, const T* grad_y, T* grad_w) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), k_sp = g.kernel_spatial();
  parallel_for_2d(g.k, cg, [&](int64_t k, int64_t cl) {
    const int64_t grp = k / kg;
    T* gw = grad_w + (k * cg + cl) * k_sp;
    for (int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
          double acc = 0.0;
          for (int64_t n = 0; n < g.n; ++n) {
            const T* xc = x + (n * g.c + grp * cg + cl) * in_sp;
            const T* gyk = grad_y + (n * g.k + k) * out_sp;
            for (int64_t od = 0; od < g.out[0]; ++od) {
              const int64_t id = od * g.stride[0] - g.pad_lo[0] + kd * g.dilation[0];
              if (id < 0 || id >= g.in[0]) continue;
              for (int64_t oh = 0; oh < g.out[1]; ++oh) {
                const int64_t ih = oh * g.stride[1] - g.pad_lo[1] + kh * g.dilation[1];
                if (ih < 0 || ih >= g.in[1]) continue;
                const T* xrow = xc + (id * g.in[1] + ih) * g.in[2];
                const T* gyrow = gyk + (od * g.out[1] + oh) * g.out[2];
                for (int64_t ow = 0; ow < g.out[2]; ++ow) {
                  const int64_t iw = ow * g.stride[2] - g.pad_lo[2] + kw * g.dilation[2];
                  if (iw < 0 || iw >= g.in[2]) continue;
                  acc += double(xrow[iw]) * double(gyrow[ow]);
                }
              }
            }
          }
          gw[weight_offset(g, kd, kh, kw)] = T(acc);
        }
  });
}

template void conv_forward<float>(const ConvGeometry&, const float*, const float*, const float*,
                                  float*);
template void conv_forward<double>(const ConvGeometry&, const double*, const double*,
                                   const double*, double*);
template void conv_backward_data<float>(const ConvGeometry&, const float*, const float*, float*);
template void conv_backward_data<double>(const ConvGeometry&, const double*, const double*,
                                         double*);
template void conv_backward_weight<float>(const ConvGeometry&, const float*, const float*, float*);
template void conv_backward_weight<double>(const ConvGeometry&, const double*, const double*,
                                           double*);

}  // namespace fastconv::ref
