// A strided convolution as a stride-1 one over its stride phases, for Winograd (which needs
// stride 1): tap t = s * q + a of a kernel of k taps at stride s reads only input positions of
// residue a, so the input split into its s^rank phase planes, stacked as channels (channel
// c * P + phase, P = the number of phases), convolved at stride 1 with a kernel of r =
// ceil(k / s) taps per dim and no padding, gives the same output. All three passes run on that
// stacked convolution: forward and weight gradient read the stacked input, backward data
// computes the stacked input's gradient and moves it back (every input position is one stacked
// element; stacked positions past the input are dropped). Pure data movement; the transforms
// and GEMMs are the Winograd driver's.
#pragma once
#include <cstdint>
#include <vector>

#include "fastconv/geometry.h"

namespace fastconv::algo::winograd_phases {

struct Split {
  ConvGeometry g;        // the strided convolution
  ConvGeometry stacked;  // stride 1, channels C * P, kernel r, padding 0, in = out + r - 1, kCross
  int64_t phases = 1;    // P = product of the strides
  // Folded (small images in a batch): one wide plane per channel holds the images side by side,
  // image n's stacked columns at n * seg + j (seg = stacked.in[2]), so the transforms' runs of
  // tiles along a row span images instead of a few tiles each. `run` is then the convolution of
  // that one wide image (in (hs, N * seg), out (out_h, N * seg - r + 1)); its outputs between
  // images are dropped, and grad_y is spread into the same layout with zero gaps. Unfolded, run
  // is `stacked`.
  bool folded = false;
  int64_t seg = 0;
  ConvGeometry run;
  // Where tap q of phase p of the stacked kernel lies in a stored one: tap[p * taps + q], the
  // stored kernel's flat tap (reversed for mode kConv), or -1 past the kernel (zero).
  std::vector<int32_t> tap;
};

// The stacked weight read from the stored one run by run (gather_kernels), never stacked in
// memory: the run's weight element (grp, k, c) is stacked channel k (phase_in_k: backward
// data's correlation, output channel c * P + phase) or c (forward) of a stored kernel, whose
// index / P and the other index select it through the caller's strides.
struct PhasedWeight {
  const int32_t* tap = nullptr;  // Split::tap; null: the weight is stored as the run reads it
  int64_t phases = 1, taps = 0;
  bool phase_in_k = false;
  bool dense = false;  // no tap of any phase past the kernel (tap has no -1)
};
PhasedWeight phased_weight(const Split& s, bool phase_in_k);

// r = ceil(kernel / stride) per dim and the stacked geometry of g (dilation 1, rank 1 or 2),
// folded when `fold`.
Split make_split(const ConvGeometry& g, bool fold);

// Elements of the stacked input (N, C * P, out + r - 1...) (folded or not), the stacked weight
// (the weight gradient's: the other passes gather the stored weight) and, folded only, an
// output-sized buffer in the wide layout (grad_y: backward data and the weight gradient); 0
// unfolded.
int64_t stacked_input_elems(const Split& s);
int64_t stacked_weight_elems(const Split& s);
int64_t wide_output_elems(const Split& s);

// xs[n][c * P + phase][i] = x[n][c][s * i + a - pad_lo] (zero outside x), in run's layout.
template <typename T>
void stack_input(const Split& s, const T* x, T* xs);
// grad_x from the stacked input's gradient in run's layout (the inverse of stack_input).
template <typename T>
void unstack_input_gradient(const Split& s, const T* gxs, T* grad_x);
// The same for channels [c0, c1) of every image, on the calling thread (run as soon as their
// stacked channels c * P + phase are computed, while they are still in cache).
template <typename T>
void unstack_input_channels(const Split& s, const T* gxs, int64_t c0, int64_t c1, T* grad_x);
// A window of the stacked input's gradient, moved into grad_x without the whole of it ever being
// in memory (tile blocks, winograd.cc; stride 2 along rows): stacked rows [i0, i0 + rows) and
// run columns [j0, j0 + cols) of the P stacked channels of stored channel c, phase p's row r at
// win + (p * rows + r) * cols. Run column j is, folded, column j % seg of image j / seg, else
// column j of image n.
// A window's bytes at most (on the stack of whichever thread runs the transform).
constexpr int64_t kWindowBytes = 32768;
// Tiles of mh x mw outputs (r taps per dim) per window of elements of `elem` bytes, in whole runs
// of `lanes` where more than one fits (the transforms' vectors), 0 if not one tile fits: output
// windows (the stacked input's gradient) hold P planes of mh x (n * mw), input windows P x
// alpha_h x (n * mw + r - 1), alpha_h = mh + r - 1 in 2-D, 1 in 1-D.
int64_t window_tiles(const Split& s, int64_t mh, int64_t mw, int64_t r, int64_t lanes,
                     int64_t elem, bool output);
template <typename T>
void unstack_window(const Split& s, const T* win, int64_t n, int64_t c, int64_t i0, int64_t rows,
                    int64_t j0, int64_t cols, T* grad_x);
// The inverse move for forward and the weight gradient: the same window of the stacked input
// (P phase planes of rows x cols, zero past the stacked plane) filled from x, so the input
// transform reads it from the stack and the stacked input is never written whole.
template <typename T>
void stack_window(const Split& s, const T* x, int64_t n, int64_t c, int64_t i0, int64_t rows,
                  int64_t j0, int64_t cols, T* win);
// Folded forwards: tiles of mh x mw outputs per window of the wide output (one plane of mh
// rows), in whole runs of `lanes`; and a window of rows [i0, i0 + rows), wide columns
// [j0, j0 + cols) of output channel k moved into y (N, K, out...), each image's columns
// (wide column j: image j / seg, column j % seg, the columns past out[2] dropped).
int64_t fold_window_tiles(int64_t mh, int64_t mw, int64_t lanes, int64_t elem);
template <typename T>
void unfold_window(const Split& s, const T* win, int64_t k, int64_t i0, int64_t rows, int64_t j0,
                   int64_t cols, T* y);
// Whether grad_x has positions no output reads (rows or columns past the stacked input's reach),
// which windows never write, and zeroing them.
bool has_unread(const Split& s);
template <typename T>
void zero_unread(const Split& s, T* grad_x);
// Folded: grad_y (N, K, out...) into the wide layout with zero gaps (backward data and the
// weight gradient; the forward's output moves back window by window, unfold_window).
template <typename T>
void fold_output(const Split& s, const T* y, T* wide);
// buf[l * taps + q] = tap q of the run's weight element (grp, k, c + l) for l < n, read from
// the stored weight at w: stacked index i (k or c) of stored kernel w + grp * gs + (k or k / P)
// * ks + (c or c / P) * cs, phase i % P (tap s * q + a of it, flipped first for mode kConv;
// zero past the kernel).
template <typename T>
void gather_kernels(const PhasedWeight& pw, const T* w, int64_t gs, int64_t ks, int64_t cs,
                    int64_t grp, int64_t k, int64_t c, int64_t n, T* buf);
// grad_w[k][c][t] from the stacked weight gradient, (K, C * P, r...) per group: stacked
// entry (k, c * P + phase, q) is tap s * q + a of kernel (k, c) (gather_kernels' mapping).
template <typename T>
void unstack_weight_gradient(const Split& s, const T* gws, T* grad_w);

}  // namespace fastconv::algo::winograd_phases
