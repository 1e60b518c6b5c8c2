// Winograd tile transforms: pure functions over one run of up to `lanes` tiles (or kernel
// pairs), one set per (dtype, tile, rank, ISA); the driver in algo/winograd.cc picks a set once.
#pragma once
#include <cstdint>

namespace fastconv::winograd {

// The transform domain of a block holds coordinate a (of alpha_h * alpha_w) at base + a * as,
// with the run's tiles (or pairs) at consecutive addresses from there.
template <typename T>
struct TileKernels {
  // Input tiles (BT d B) of one channel plane (h x w): tile l of the run reads the alpha_h x
  // alpha_w patch at rows iy0 + i, columns ix0 + l * m_w + j (zero outside the plane). A run
  // may go on over the next tile rows (Rows): its first `first` tiles are in the row at iy0,
  // the rest in rows of `row_tiles` tiles m_h further down each, from column x_first; rows of
  // at least (r - 1) / m_w tiles (first >= nt: one row). With image_rows > 0 the run also goes
  // on over the next images of a batch (small images, whose tiles fill few lanes each): after
  // `rows_left` more tile rows, the next tile row is the next image's first, at row y_first of a
  // plane image_stride elements on, and each image after that has image_rows tile rows.
  struct Rows {
    int64_t first, row_tiles, x_first;
    int64_t rows_left = 0, image_rows = 0, y_first = 0, image_stride = 0;
  };
  void (*input)(const T* plane, int64_t h, int64_t w, int64_t iy0, int64_t ix0, int64_t nt,
                Rows rows, T* v, int64_t as);
  // Output tiles (AT M A) + bias into one output plane (h x w) at rows oy0 + i, columns
  // ox0 + l * m_w + j; positions outside the plane are not written (rows: as input's, the later
  // rows from column x_first).
  void (*output)(const T* mdom, int64_t as, int64_t nt, T bias, T* plane, int64_t h, int64_t w,
                 int64_t oy0, int64_t ox0, Rows rows);
  // Kernel transforms (G g GT) of np kernels, kernel p at k + p * ps (r_h x r taps, row-major;
  // flip reverses every dim, i.e. true convolution).
  void (*kernel)(const T* k, int64_t ps, int64_t np, bool flip, T* u, int64_t as);
  // Weight gradient, F(rxr, mxm) per tile (its input side is `input`): output-gradient tiles
  // (G' gy G'^T) of one plane, tile l of the run is the m_h x m_w block at rows oy0 + i,
  // columns ox0 + l * m_w + j (zero outside the plane; rows: as output's).
  void (*grad)(const T* plane, int64_t h, int64_t w, int64_t oy0, int64_t ox0, int64_t nt,
               Rows rows, T* v, int64_t as);
  // The np kernel gradients (AT' M A') from the transform domain, written as r_h x r taps at
  // k + p * ps (flip reverses every dim).
  void (*weight)(const T* mdom, int64_t as, int64_t np, bool flip, T* k, int64_t ps);
  int lanes;
  const char* name;
};

}  // namespace fastconv::winograd

#define FASTCONV_DECLARE_WINOGRAD_TABLE(isa)                                             \
  namespace fastconv::isa {                                                              \
  /* F(mh x mw, r x r), mh = 1: F(mw, r). r = 3: square, m = 2, 4, 6; r = 2: square, m =   \
     2, 3, 4, and 4 x 3, 3 x 4; r = 5: m = 2. */                                          \
  const winograd::TileKernels<float>& f32_winograd_tiles(int mh, int mw, int r);         \
  const winograd::TileKernels<double>& f64_winograd_tiles(int mh, int mw, int r);        \
  }
FASTCONV_DECLARE_WINOGRAD_TABLE(scalar)
FASTCONV_DECLARE_WINOGRAD_TABLE(avx2)
FASTCONV_DECLARE_WINOGRAD_TABLE(avx512)
#undef FASTCONV_DECLARE_WINOGRAD_TABLE
