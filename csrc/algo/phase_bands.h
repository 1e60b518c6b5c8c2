// The strided forward of one large image over stride phases, band by band (implicit GEMM with
// panels of up to 16 columns, where forward_reads_phases holds): instead of splitting the whole
// image into its phases ahead of the GEMM (13 MiB for yolov5s's 32->64 3x3/2 on 320x320, written
// to memory and read back by the GEMM), each thread splits the phase rows of a band of output
// rows into planes of its own that stay in L2, runs the band's GEMM on them, and moves the rows
// the next band shares (the taps' row span) to the top instead of splitting them again.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "algo/conv_panels.h"
#include "fastconv/geometry.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

struct PhaseBands {
  int64_t rows = 0;    // output rows per band (0: not banded)
  int64_t height = 0;  // phase rows a band's planes hold: rows plus the taps' row span
  int64_t qy0 = 0;     // phase row of a band's first plane row, relative to its first output row
  int64_t slots = 0;   // threads' band planes
  int64_t slot = 0;    // elements of one thread's band planes (channels x phases x height x Wp)
};

// The bands for a forward that reads stride phases (forward_reads_phases) of single images
// (no batch folding) on `threads` threads, rows 0 where the whole image is split ahead instead
// (its phases are small enough to stay in cache, too few bands for the threads, or panels wider
// than 16, where bands were never measured). The caller passes the plan's thread count: the
// workspace holds one band's planes per thread.
PhaseBands phase_bands(const ConvGeometry& g, int64_t elem_size, int threads);

// explain()'s note where the forward runs in bands ("" elsewhere).
std::string phase_bands_note(const PhaseBands& pb);

// C (the group's Kg x cols output positions, row stride the image's output plane, at c) = the
// weight times B; cols positions from the band's first.
template <typename T>
using BandProduct = std::function<void(const gemm::PanelSource<T>& b, int64_t cols, T* c)>;

// The group's output of one image (y: its first channel) from the group's channels of that
// image (x), band by band in parallel; ws holds pb.slots x pb.slot elements.
template <typename T>
void phase_bands_forward(const ConvGeometry& g, const ForwardPhases& ph, const PhaseBands& pb,
                         const T* x, T* y, T* ws, const BandProduct<T>& product);

}  // namespace fastconv::algo
