// im2col convolution: the patch matrix of one (image, group) is materialised in column chunks
// sized to stay in cache (never above the workspace limit), then one packed GEMM per chunk;
// backward data runs the GEMM into column tiles and gathers them back (column_backward_data.cc).
#include <algorithm>
#include <string>

#include "algo/column_backward_data.h"
#include "algo/conv_panels.h"
#include "algo/gemm_conv.h"
#include "common/tuning.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

// Rows of the patch matrix: (c, tap) of one group; columns: output positions.
inline int64_t patch_rows(const ConvGeometry& g) { return g.c_per_group() * g.kernel_spatial(); }

// Output columns per chunk: patch_rows x chunk elements within the workspace limit and, when
// the rows allow it, within the cache budget below.
int64_t chunk_columns(const ConvGeometry& g, int64_t elem_size) {
  const int64_t per_column = patch_rows(g) * elem_size;
  const int64_t cap = std::max<int64_t>(1, workspace_limit_bytes() / std::max<int64_t>(1, per_column));
  // A chunk that stays in cache between being written and being packed by the GEMM (a whole
  // patch matrix of a large layer streams through memory twice), but wide enough that the
  // GEMMs keep their panels busy.
  constexpr int64_t kCacheBytes = int64_t(1) << 19, kMinColumns = 256;
  const int64_t cached = std::max(kMinColumns, kCacheBytes / std::max<int64_t>(1, per_column));
  return std::min({cap, cached, g.out_spatial()});
}

// Fills the patch matrix rows x [o0, o0 + cols) of one image and group with the implicit-GEMM
// panel packer (one panel as wide as the chunk), parallel over row blocks.
template <typename T>
void fill_patches(const ConvGeometry& g, const T* image, T* col, int64_t o0, int64_t cols) {
  const ForwardColumns<T> source(g, image);
  const int64_t rows = patch_rows(g);
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols));
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    source.pack(r0, r1 - r0, o0, cols, cols, col + r0 * cols);
  });
}

}  // namespace

int64_t workspace_limit_bytes() { return tuning().workspace_limit_bytes; }

int64_t im2col_workspace_bytes(const ConvGeometry& g, Pass, int64_t elem_size) {
  return patch_rows(g) * chunk_columns(g, elem_size) * elem_size;
}

template <typename T>
void fill_bias(const ConvGeometry& g, const T* bias, T* y) {
  const int64_t out_sp = g.out_spatial();
  // A few tens of KiB per task: waking the pool costs more than filling less.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out_sp));
  parallel_for(g.n * g.k, grain, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane)
      std::fill(y + plane * out_sp, y + (plane + 1) * out_sp, bias ? bias[plane % g.k] : T(0));
  });
}

template <typename T>
void im2col_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = patch_rows(g);
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const int64_t chunk = chunk_columns(g, sizeof(T));
  if (bias) fill_bias(g, bias, y);
  const T beta = bias ? T(1) : T(0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t o0 = 0; o0 < out_sp; o0 += chunk) {
        const int64_t cols = std::min(chunk, out_sp - o0);
        fill_patches(g, x + (n * g.c + grp * cg) * in_sp, ws, o0, cols);
        gemm::gemm<T>(kg, cols, rows, T(1), {w + grp * kg * rows, rows, 1}, {ws, cols, 1}, beta,
                      y + (n * g.k + grp * kg) * out_sp + o0, out_sp);
      }
}

template <typename T>
void im2col_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  column_backward_data(plan.g, *static_cast<const ColumnSchedule*>(plan.detail.get()), grad_y, w,
                       grad_x, ws);
}

template <typename T>
void im2col_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws) {
  const ConvGeometry& g = plan.g;
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = patch_rows(g);
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const int64_t chunk = chunk_columns(g, sizeof(T));
  if (g.n == 0) std::fill(grad_w, grad_w + g.k * rows, T(0));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t o0 = 0; o0 < out_sp; o0 += chunk) {
        const int64_t cols = std::min(chunk, out_sp - o0);
        fill_patches(g, x + (n * g.c + grp * cg) * in_sp, ws, o0, cols);
        // grad_w_g (kg x rows) += grad_y (kg x cols) * col^T (cols x rows)
        const bool first = n == 0 && o0 == 0;
        gemm::gemm<T>(kg, rows, cols, T(1), {grad_y + (n * g.k + grp * kg) * out_sp + o0, out_sp, 1},
                      {ws, 1, cols}, first ? T(0) : T(1), grad_w + grp * kg * rows, rows);
      }
}

std::string im2col_plan(ConvPlan& plan) {
  if (plan.pass == Pass::kBackwardData) {  // column GEMM tiles, gathered by stride phase
    auto schedule = column_schedule(plan.g, plan.threads, dtype_size(plan.dtype));
    plan.workspace_bytes =
        column_backward_data_workspace(*schedule) * dtype_size(plan.dtype);
    plan.note = "column tiles of " + std::to_string(schedule->cb) + " channels x " +
                (schedule->rr < schedule->lines ? std::to_string(schedule->rr) + " grad_y lines"
                                                 : std::to_string(schedule->ib) + " image(s)") +
                (schedule->planes ? ", gathered plane by plane" : ", gathered line by line") +
                (schedule->parts > 1 ? ", in parallel" : "") +
                (schedule->shared_b_elems > 0 ? ", grad_y packed once for all tiles" : "");
    plan.detail = std::move(schedule);
    return "";
  }
  plan.workspace_bytes = im2col_workspace_bytes(plan.g, plan.pass, dtype_size(plan.dtype));
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                                  \
  template void fill_bias<T>(const ConvGeometry&, const T*, T*);                                 \
  template void im2col_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*);    \
  template void im2col_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);        \
  template void im2col_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
