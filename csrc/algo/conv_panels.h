// PanelSources that pack GEMM B panels straight from convolution tensors: the implicit
// im2col matrices of the three conv passes, built on the fly so no column buffer exists.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "fastconv/geometry.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

// dst[0 : n) = src[0 : n) for the short runs of panel packing (a row of a 7x7 or 14x14 image, a
// kernel's taps): a libc call per run cost more than the copy (res5.3x3 backward data spent half
// its time in memmove, 262144 calls of 9 floats). Longer runs go to memcpy.
template <typename T>
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))  // keep the loop a loop
#endif
inline void copy_short(const T* src, int64_t n, T* dst) {
  if (n > 32) {
    std::memcpy(dst, src, size_t(n) * sizeof(T));
    return;
  }
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const T v0 = src[i], v1 = src[i + 1], v2 = src[i + 2], v3 = src[i + 3];
    dst[i] = v0, dst[i + 1] = v1, dst[i + 2] = v2, dst[i + 3] = v3;
  }
  for (; i < n; ++i) dst[i] = src[i];
}

// dst[0 : n) = src[0 : n) for a panel row of one position's channels: the micro-kernel tiles'
// widths (B panels 32/16/8, A panels 12/6/4) as fixed-size copies the compiler inlines (a libc
// call per 128-byte row cost more than the copy).
template <typename T>
inline void copy_channels(const T* src, int64_t n, T* dst) {
  switch (n) {
    case 32: return void(std::memcpy(dst, src, 32 * sizeof(T)));
    case 16: return void(std::memcpy(dst, src, 16 * sizeof(T)));
    case 12: return void(std::memcpy(dst, src, 12 * sizeof(T)));
    case 8: return void(std::memcpy(dst, src, 8 * sizeof(T)));
    case 6: return void(std::memcpy(dst, src, 6 * sizeof(T)));
    case 4: return void(std::memcpy(dst, src, 4 * sizeof(T)));
    default: copy_short(src, n, dst);
  }
}

// Spatial position of stored kernel tap t along dim d (true convolution flips the kernel).
inline int64_t tap_position(const ConvGeometry& g, int d, int64_t t) {
  return g.mode == ConvMode::kConv ? g.kernel[d] - 1 - t : t;
}

// The input offsets every kernel tap reads, relative to a window's corner, and the tap's
// per-dim extents (dilation applied); shared by the three sources.
struct TapTable {
  std::vector<int64_t> dz, dy, dx;  // dilated tap position per dim
  explicit TapTable(const ConvGeometry& g);
  TapTable() = default;
};

// A PanelSource reading one conv tensor (the channels of one image and group) through the
// geometry's kernel taps; the three conv passes differ only in how pack() walks it.
// With image_stride > 0 the positions (columns, or rows for WeightColumns) run on over the
// following images (batch folding): position p reads image p / positions-per-image, whose
// channels start image_stride elements after the previous image's.
template <typename T>
class TensorColumns : public gemm::PanelSource<T> {
 public:
  TensorColumns(const ConvGeometry& g, const T* src, int64_t image_stride = 0)
      : g_(g), taps_(g), src_(src), image_stride_(image_stride) {}
  // With the tap offsets given (a stride-phase geometry and its table, ForwardPhases).
  TensorColumns(const ConvGeometry& g, TapTable taps, const T* src, int64_t image_stride)
      : g_(g), taps_(std::move(taps)), src_(src), image_stride_(image_stride) {}

 protected:
  const ConvGeometry& g_;
  TapTable taps_;
  const T* src_;
  int64_t image_stride_;
};

// Forward: B[(c, tap), o] = x[c, o * stride - pad_lo + tap * dilation] (0 outside), for the
// Cg channels of one image and group starting at x.
template <typename T>
class ForwardColumns final : public TensorColumns<T> {
 public:
  using TensorColumns<T>::TensorColumns;
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;
  // At unit step, a panel inside one output row whose every (channel, tap) row reads inside
  // the input is kc runs of the input itself: the micro-kernel reads them in place.
  bool rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const override;

 private:
  using TensorColumns<T>::g_, TensorColumns<T>::taps_, TensorColumns<T>::src_,
      TensorColumns<T>::image_stride_;
};

// Unit-stride backward data: B[(k, tap), i] = grad_y[k, i + pad_lo - tap * dilation] (0
// outside), for the Kg channels of one image and group starting at grad_y.
template <typename T>
class BackwardDataColumns final : public TensorColumns<T> {
 public:
  using TensorColumns<T>::TensorColumns;
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;
  // A panel inside one input row whose every (channel, tap) row reads inside grad_y: kc runs of
  // grad_y itself, read in place by the micro-kernel.
  bool rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const override;

 private:
  using TensorColumns<T>::g_, TensorColumns<T>::taps_, TensorColumns<T>::src_,
      TensorColumns<T>::image_stride_;
};

// Backward weight: B[o, (c, tap)] = x[c, o * stride - pad_lo + tap * dilation]: the forward
// columns transposed, so the reduction runs over output positions. Four columns whose runs lie
// inside the input at unit step are written as 4 x 4 register transposes (a row of four per
// store) instead of one strided store per element; strided convs read stride phases
// (ForwardPhases) so that their runs have unit step.
template <typename T>
class WeightColumns final : public TensorColumns<T> {
 public:
  using TensorColumns<T>::TensorColumns;
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;

 private:
  using TensorColumns<T>::g_, TensorColumns<T>::taps_, TensorColumns<T>::src_,
      TensorColumns<T>::image_stride_;
};

// Backward weight from a channels-last copy of the input (positions x `channels`, images
// in_spatial * channels apart): B[o, (tap, c)] = xcl[o * stride - pad_lo + tap * dilation, c]
// (0 outside). The columns run tap-major, so a panel row is one or two runs of consecutive
// channels, straight copies where WeightColumns transposes (and, strided, gathers); the product
// comes out as (k, tap, c) for the caller to reorder.
template <typename T>
class ChannelsLastWeightColumns final : public gemm::PanelSource<T> {
 public:
  ChannelsLastWeightColumns(const ConvGeometry& g, const T* xcl, int64_t channels,
                            bool in_place = false)
      : g_(g), taps_(g), src_(xcl), channels_(channels), in_place_(in_place) {}
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;
  // With in_place, a panel within one tap's channels is read in place: row k is one position's
  // run of nr channels (a row of zeros where the tap falls in the padding). Only panels of two
  // cache lines or more: AVX2's 64-byte rows read in place ran slower than packed (dcgan.g3's
  // weight gradient 5.50 vs 5.21 ms).
  bool rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const override;

 private:
  const ConvGeometry& g_;
  TapTable taps_;
  const T* src_;
  int64_t channels_;
  bool in_place_;
};

// The rows of one tensor's channels with the columns running on over several images (batch
// folding of a plain matrix): B[k, j] = src[(j / per_image) * image_stride + k * row_stride +
// j % per_image]. Each panel row is a few straight copies, one per image it spans.
template <typename T>
class FoldedColumns final : public gemm::PanelSource<T> {
 public:
  FoldedColumns(const T* src, int64_t row_stride, int64_t per_image, int64_t image_stride)
      : src_(src), row_stride_(row_stride), per_image_(per_image), image_stride_(image_stride) {}
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;

 private:
  const T* src_;
  int64_t row_stride_, per_image_, image_stride_;
};

// One phase of a strided backward-data pass: the input positions i = q + stride * m (m on the
// grid `phase.out`) receive grad_y[k, m + offset(tap)] only from the taps in `offsets`, so
// B[(k, tap), m] is a shifted copy of grad_y rows. `phase` is a stride-1, unpadded geometry
// whose input extents are grad_y's; rows run over the Kg channels starting at grad_y. Columns
// run on over images image_stride apart (batch folding), as in TensorColumns.
template <typename T>
class PhaseColumns final : public gemm::PanelSource<T> {
 public:
  PhaseColumns(const ConvGeometry& phase, const TapTable& offsets, int64_t ntaps, const T* grad_y,
               int64_t image_stride = 0)
      : g_(phase), taps_(offsets), ntaps_(ntaps), gy_(grad_y), image_stride_(image_stride) {}
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;
  // A full panel inside one row of the phase grid whose every (channel, tap) row reads inside
  // its plane: kc runs of the phase planes (or grad_y) themselves, read in place.
  bool rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const override;

 private:
  const ConvGeometry& g_;
  const TapTable& taps_;
  int64_t ntaps_;
  const T* gy_;
  int64_t image_stride_;
};

// Strided forward through stride phases (1-D and 2-D): the input is split once into its
// stride phases, plane (ry, rx) of a channel holding x[c, sy * j + ry, sx * i + rx] (zero past
// the input's end), so every (channel, tap) row of a panel is a unit-step shifted copy of one
// plane row instead of a gather with the stride (res3.3x3s2 spent a quarter of its time in that
// gather). The planes of a channel are stacked along the geometry's depth dim, so PhaseColumns
// reads them as a stride-1, unpadded geometry whose tap table names the plane as a depth offset.
struct ForwardPhases {
  ConvGeometry grid;    // stride 1, unpadded; in = (planes, Hp, Wp), out = the conv's
  TapTable offsets;     // per tap: plane (depth), row and column offset inside the plane
  int64_t channel_size;  // planes * Hp * Wp: the elements of one channel's planes
};

// True where the phase split applies and pays: a strided conv of rank <= 2 whose windows
// overlap (more taps than stride phases), or any with more than one tap where the GEMM's panels
// are 16 wide (AVX2: the strided gather costs twice as much per element there).
bool forward_phases_apply(const ConvGeometry& g);
// Where forward_phases_apply holds, whether a forward instead gathers its columns from the input
// itself at double step (x stride 2; ForwardColumns, the panel kernel's two loads per vector):
// with 32-wide panels (AVX-512 float32) and output rows of at least 24 columns (a panel spans
// two or three rows), the split's extra pass over the input (and, for the padded-width phases
// the column planes replaced, the copy out of the output's margins) costs more than the
// gather. 2 threads, min ms of 3, phases (wide where wide_phases_apply held) vs double step:
// yolov5s 32->64 3x3/2 on 320x320 5.78-6.01 vs 5.05-5.14, 64->128 on 160x160 4.65-4.97 vs 4.18-4.19, resnet50.res3.3x3s2 1.23-1.26 vs
// 1.14, its batch of 8 10.1-11.0 vs 9.40-9.55. Shorter rows keep the phases: 256->512 on
// 40x40 (20 columns) 3.87-3.89 vs 4.04-4.16 (though its batch of 8 gained, 33.7-35.0 vs
// 31.8-32.1); 17 and 14 columns even; dcgan.g3 / g4's backward data (8, 16) 4.49-4.73 vs 4.87-4.88,
// 4.74-5.16 vs 5.18-5.31. AVX2 (16-wide panels): even (res3.3x3s2 1.64-1.70 vs 1.68-1.71,
// 80x80 6.78-6.86 vs 6.30-6.40, 40x40 5.88-5.98 vs 5.79-6.07), so the phases stay.
bool forward_double_step(const ConvGeometry& g, int64_t elem_size);
// forward_phases_apply and not forward_double_step: the forward reads a phase split.
bool forward_reads_phases(const ConvGeometry& g, int64_t elem_size);
ForwardPhases make_forward_phases(const ConvGeometry& g);

// Splits `images` x `channels` planes of x (channel c of image i at x + i * image_stride + c *
// in_spatial) into dst, channel (i, c) at dst + (i * channels + c) * channel_size. Parallel.
template <typename T>
void split_forward_phases(const ConvGeometry& g, const ForwardPhases& ph, const T* x,
                          int64_t images, int64_t image_stride, int64_t channels, T* dst);

// Splits phase rows [j0, j0 + count) of one channel of x (its plane at xc) into dst: row r of
// stride phase (ry, rx) at dst + (ry * sx + rx) * plane + r * Wp holds x[sy * (j0 + r) + ry,
// sx * i + rx] (zero outside x, rows before it included). Serial.
template <typename T>
void split_phase_rows(const ConvGeometry& g, const ForwardPhases& ph, const T* xc, int64_t j0,
                      int64_t count, int64_t plane, T* dst);
// The same for rows `width` long whose column i of plane e < cols (cols >= sx; of row phase
// ry, at dst + (ry * cols + e) * plane) holds x[..., sx * i + e - pad] (the column planes of
// wide_phases.h: pad = -ex_min, one plane per column offset); split_phase_rows is pad 0, width
// Wp, cols sx. Both on the active ISA's row kernel (the depthwise driver's pack_rows), a column
// of vectors at a time down the rows, every plane of a row phase in one call.
template <typename T>
void split_plane_rows(const ConvGeometry& g, const T* xc, int64_t j0, int64_t count,
                      int64_t width, int64_t pad, int64_t cols, int64_t plane, T* dst);

}  // namespace fastconv::algo
