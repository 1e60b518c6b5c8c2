// A dilated stride-1 convolution as a dense one over its dilation phases (space to batch, as
// atrous convolution is often run): with dilation d and padding a multiple of d in a dim, output
// position d * q + r reads only input positions of residue r, at d * (q + t - pad_lo / d) + r.
// So each of the P = prod(d) phase planes of the input, as an image of its own, convolved with
// the same kernel at dilation 1 and padding pad / d, gives the output's phase r. The phases are
// stacked as images (image n * P + phase), each ceil(in / d) positions per dim with zeros past
// the input (they act as the padding they replace); the dense output, ceil(out / d) per dim,
// holds every output position once, the rest dropped. The weight is the same. Pure data
// movement: Winograd (which needs dilation 1) runs the dense convolution's three passes.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv::algo::dilation_phases {

struct Split {
  ConvGeometry g;        // the dilated convolution
  ConvGeometry dense;    // n * P images of ceil(in / d), dilation 1, padding / d, same kernel
  int64_t phases = 1;    // P = the product of the dilations
};

// Whether g can run on its dilation phases: stride 1, some dilation > 1, and every padding a
// multiple of its dim's dilation.
bool splittable(const ConvGeometry& g);
Split make_split(const ConvGeometry& g);

// Elements of the stacked input (n * P, C, dense.in...) and output (n * P, K, dense.out...).
int64_t input_elems(const Split& s);
int64_t output_elems(const Split& s);

// The input (or grad_x) into its stacked phases, zero past the input, and back.
template <typename T>
void split_input(const Split& s, const T* x, T* xs);
template <typename T>
void merge_input(const Split& s, const T* xs, T* x);
// The output (y or grad_y) into its stacked phases, zero past the output, and back.
template <typename T>
void split_output(const Split& s, const T* y, T* ys);
template <typename T>
void merge_output(const Split& s, const T* ys, T* y);

}  // namespace fastconv::algo::dilation_phases
