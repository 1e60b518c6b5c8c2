// Backward data through the column matrix (im2col's backward pass; a transposed convolution's
// forward): GEMM tiles of col = W^T grad_y, then grad_x gathers its taps' columns by stride
// phase (csrc/algo/column_backward_data.cc).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "fastconv/geometry.h"

namespace fastconv::algo {

// The tiling and tap tables of one backward-data problem, decided once at plan time. A tile is
// cb channels (all their taps: the GEMM's rows) by the grad_y positions of ib whole images, or
// of rr grad_y lines (the (z, y) rows) of one image; the GEMM's depth is the group's K channels.
struct ColumnSchedule {
  int64_t cb = 1, cblocks = 1, ib = 1, nblocks = 1, rr = 1, lines = 1;
  int64_t tasks = 1;  // groups x channel blocks x image blocks; a task's line tiles run in order
  int64_t parts = 1;  // tasks run in parallel over this many parts (1: each GEMM splits instead)
  int64_t tile_elems = 0;  // one tile's column block: cb * taps x ib * rr * out_x
  int64_t part_elems = 0;  // workspace per part: the tile, its margins, the phase sums
  int64_t acc_elems = 0;   // one thread's phase sums (plane by plane)
  // Parallel tiles of one block of several images, all lines (one group): every task's GEMM
  // has the same B (grad_y), packed once for all of them into the workspace's end (0: each GEMM
  // packs its own).
  int64_t shared_b_elems = 0;
  int threads = 1;         // the plan's thread count

  // Line by line (any geometry): which grad_y index and tap reach grad_x index i along the outer
  // dims d = 0, 1: the pairs at [start[d][i], start[d][i + 1]) of tap[d] / out[d].
  std::vector<int64_t> start[2], tap[2], out[2];
  // Per grad_x line (z, y): the first and last grad_y line reaching it (-1: none does).
  std::vector<int64_t> first, last;
  bool unreached = false;  // some grad_x line no tap reaches
  // Along the innermost dim, stride phase q (grad_x x = q + s * m): the taps at
  // [phase_start[q], phase_start[q + 1]) read grad_y column m + phase_offset.
  std::vector<int64_t> phase_start, phase_tap, phase_offset;

  // Plane by plane: tiles of whole images where grad_x = stride x grad_y along every dim (a
  // transposed convolution with kernel = stride + 2 * padding, a "same" stride-1 convolution).
  // Then every stride phase of grad_x spans grad_y's grid and its sum over a tile is a few whole
  // tile rows, each shifted by a constant and masked at the image borders: long vector loops.
  struct PlaneTap {
    int64_t tap, shift, mask;  // tile row (flat tap), read offset, mask index (-1: none)
  };
  bool planes = false;
  std::vector<int64_t> plane_start;  // per phase (qz, qy, qx): its taps in plane_taps
  std::vector<PlaneTap> plane_taps;
  int64_t margin = 0;                // reads reach this far before and after the tile
  std::vector<float> masks32;        // mask rows of ib * out_spatial (1: the read is inside
  std::vector<double> masks64;       // the image), for the plan's element type
};

std::shared_ptr<const ColumnSchedule> column_schedule(const ConvGeometry& g, int threads,
                                                      int64_t elem_size);

// Workspace elements: one part's buffers per part, then the shared B.
int64_t column_backward_data_workspace(const ColumnSchedule& s);

// grad_x (N, C, *in) from grad_y (N, K, *out) and w (K, C/G, *kernel); every element of grad_x
// is written. ws: column_backward_data_workspace(s) elements.
template <typename T>
void column_backward_data(const ConvGeometry& g, const ColumnSchedule& s, const T* grad_y,
                          const T* w, T* grad_x, T* ws);

}  // namespace fastconv::algo
