// GEMM-based convolution drivers: explicit im2col (+ col2im) and implicit GEMM, all passes.
#pragma once
#include <cstdint>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo {

using Pass = ConvPass;

// Bytes of scratch memory the driver needs for `pass` (the caller allocates and passes it).
int64_t im2col_workspace_bytes(const ConvGeometry& g, Pass pass, int64_t elem_size);
int64_t implicit_gemm_workspace_bytes(const ConvGeometry& g, Pass pass, int64_t elem_size,
                                      int threads);

// Upper bound on the im2col column buffer: FASTCONV_WORKSPACE_LIMIT (bytes; K/M/G suffixes
// allowed), default 256 MiB.
int64_t workspace_limit_bytes();

// Plans (csrc/include/fastconv/algorithm.h): fill the plan's workspace, or return why not.
std::string im2col_plan(ConvPlan& plan);
std::string implicit_gemm_plan(ConvPlan& plan);

template <typename T>
void im2col_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws);
template <typename T>
void im2col_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws);
template <typename T>
void im2col_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws);

template <typename T>
void implicit_gemm_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                           T* ws);
template <typename T>
void implicit_gemm_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                                 T* ws);
template <typename T>
void implicit_gemm_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                   T* ws);

// y[n, k, ...] = bias[k] (or 0 without bias): the C a forward GEMM then accumulates into.
template <typename T>
void fill_bias(const ConvGeometry& g, const T* bias, T* y);

// Each group's weight rows (k_per_group x c_per_group x taps) packed once for the forward GEMMs
// that share it (gemm::pack_a_rows' layout; gemm_packed_a reads it), group grp at packed + grp *
// group_elems; in parallel chunks of at least 128K elements (a small weight packs inline,
// without waking the pool). implicit_gemm.cc.
template <typename T>
void pack_forward_weight(const ConvGeometry& g, const T* w, int64_t group_elems, T* packed);

}  // namespace fastconv::algo
