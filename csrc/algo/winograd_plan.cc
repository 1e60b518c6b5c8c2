// Winograd's planner (algo/winograd.h: winograd_plan): whether it runs a pass, its tile, the
// stride or dilation phases and the block schedule, kept in the plan's detail (winograd_plan.h).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algo/gemm_conv.h"
#include "algo/winograd.h"
#include "algo/winograd_plan.h"
#include "algo/winograd_line.h"
#include "algo/winograd_rows.h"
#include "algo/winograd_stride2.h"
#include "algo/winograd_tiles.h"
#include "common/signed_div.h"

namespace fastconv::algo {

namespace {

using winograd_schedule::make_schedule;
using winograd_schedule::schedule_elems;
using winograd_schedule::weight_gradient_by_winograd;
using winograd_tiles::choose_tile;
using winograd_tiles::pass_geometry;
using winograd_tiles::tile_note;


std::string dims_text(const ConvGeometry& g, const Dims& v) {
  std::vector<int64_t> d(v.begin() + (kMaxRank - g.rank), v.end());
  return format_dims(d);
}

// Taps per dim of the stride-1 kernel that runs: the kernel itself at stride 1, a stride phase's
// share ceil(kernel / stride) on strided layers (winograd_phases.h).
int64_t phase_taps(const ConvGeometry& g, int d) {
  return (g.kernel[d] + g.stride[d] - 1) / g.stride[d];
}

bool strided(const ConvGeometry& g) {
  for (int d = 0; d < kMaxRank; ++d)
    if (g.stride[d] != 1) return true;
  return false;
}

// The kernels winograd_axis.h runs, for the refusals.
constexpr const char* kAxisAlternative =
    "; or taps along one axis only at stride and dilation 1, one group, no padding along the "
    "other dims (Winograd along that axis): 3x1x1, 3x1 or 1x3, or 1x7 / 7x1 (16+ summed "
    "channels, padding under 7)";

// The forwards winograd_rows.h runs, for the refusals.
constexpr const char* kRowsAlternative =
    "; the forward also runs 2-5 taps per stride phase along W (one group, kernel depth 1, "
    "dilation 1 along W: Winograd along the rows)";

std::string unsupported_reason(const ConvGeometry& g) {
  if (winograd_axis::serves(g)) return "";
  if (g.rank == 3)
    return winograd_depth::stackable(g) ? "" : winograd_depth::unstackable_reason(g) + kAxisAlternative;
  const int first = kMaxRank - g.rank;
  for (int d = first; d < kMaxRank; ++d)
    if (g.dilation[d] != 1 && !dilation_phases::splittable(g))
      return "winograd needs dilation 1 in every dim, or stride 1 and padding a multiple of the "
             "dilation (it then runs on the dilation phases), got dilation " +
             dims_text(g, g.dilation) + " at stride " + dims_text(g, g.stride) + ", padding " +
             dims_text(g, g.pad_lo) + " / " + dims_text(g, g.pad_hi);
  const int64_t r = phase_taps(g, first);
  // 5 taps (F(2x2,5x5)) at stride 1 only: the stride phases run 2 or 3.
  bool ok = r == 2 || r == 3 || (r == 5 && !strided(g));
  for (int d = first; d < kMaxRank; ++d) ok = ok && phase_taps(g, d) == r;
  if (!ok) {
    if (!strided(g))
      return "winograd needs 2, 3 or 5 taps in every dim (the same in each), got kernel " +
             dims_text(g, g.kernel) + (g.rank == 2 ? kAxisAlternative : "");
    return "winograd needs 2 or 3 taps per stride phase in every dim (kernel / stride rounded "
           "up, the same in each), got kernel " +
           dims_text(g, g.kernel) + " at stride " + dims_text(g, g.stride) +
           (g.rank == 2 ? kAxisAlternative : "");
  }
  return "";
}

constexpr const char* kImplicitGemmFallbackNote =
    "implicit_gemm (too few output tiles for the fewer products to pay, or fewer than 16 "
    "channels per group: the transform-domain weight gradient would cost more than it saves)";
constexpr const char* kDepthFallbackNote =
    "implicit_gemm (too few output tiles for the fewer products to pay, or fewer than 16 "
    "channels x depth taps per group: the transform-domain weight gradient would cost more "
    "than it saves)";
// F(5x5,2x2)'s output transform scales by up to 16: float32 error ~18x implicit GEMM's over
// 64 channels on 28x28 (forward and backward data's F(2x2,5x5) 4.4-5.6x).
constexpr const char* kFiveTapWeightNote =
    "implicit_gemm (a 5-tap kernel's transform-domain weight gradient, F(5x5,2x2), has ~18x "
    "the error)";

// How a transform-domain weight gradient forms its sums (Schedule::fold_rows).
std::string fold_note(const winograd_schedule::Schedule& p) {
  if (p.fold_rows == 0) return "";
  return ", the sums formed and folded " + std::to_string(p.fold_rows) +
         " output channels at a time";
}

// The weight gradient's fallback to implicit_gemm where the transform domain does not pay.
std::string plan_weight_fallback(ConvPlan& plan, const char* note) {
  plan.runner = Algorithm::kImplicitGemm;
  const std::string implicit_gemm_why = implicit_gemm_plan(plan);  // its workspace and detail
  if (!implicit_gemm_why.empty()) return implicit_gemm_why;
  plan.note = note;
  return "";
}

// A kernel with taps along one axis: F(m,r) along it (winograd_axis.h), every pass.
std::string plan_axis(ConvPlan& plan) {
  WinogradPlan wp;
  wp.axis = true;
  wp.along_axis = winograd_axis::make(plan.g, plan.pass, winograd_tiles::forced_tile(),
                                      dtype_size(plan.dtype));
  const winograd_axis::Along& t = wp.along_axis;
  const bool empty = plan.g.n * plan.g.out_spatial() == 0;
  plan.workspace_bytes = empty ? 0 : t.elems() * dtype_size(plan.dtype);
  const std::string m = std::to_string(t.m), r = std::to_string(t.r);
  const bool depth = plan.g.rank == 3;
  const std::string axis = depth ? "depth" : t.transposed ? "W" : "H";
  const std::string slices = depth ? "planes" : t.transposed ? "columns" : "rows";
  const std::string columns = depth ? "the H x W planes" : t.transposed ? "the (transposed) columns" : "the rows";
  plan.note = (plan.pass == ConvPass::kBackwardWeight ? "F(" + r + "," + m + ")"
                                                      : "F(" + m + "," + r + ")") +
              " along " + axis + " (" + std::to_string(t.alpha) + " points per " + m +
              " output " + slices + ", " + columns + " as GEMM columns" +
              (t.folded ? ", the batch's images side by side in each" : "") + ")";
  plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
  return "";
}

// A 3-D layer: the 2-D convolution of its depth taps (winograd_depth.h).
std::string plan_depth(ConvPlan& plan) {
  const ConvGeometry& g = plan.g;
  WinogradPlan wp;
  wp.depth = true;
  wp.depth_stack = winograd_depth::make_stack(g, plan.pass);
  const ConvGeometry f = winograd_depth::flat_geometry(g, plan.pass);
  const int64_t summed = plan.pass == ConvPass::kBackwardData ? f.k_per_group() : f.c_per_group();
  const winograd_tiles::Tile tile = choose_tile(f, plan.pass, summed);
  wp.main = make_schedule(f, plan.pass, tile, dtype_size(plan.dtype), plan.threads);
  const bool five_taps = g.kernel[2] == 5;
  if (plan.pass == ConvPass::kBackwardWeight &&
      (five_taps || !weight_gradient_by_winograd(wp.main, g)))
    return plan_weight_fallback(plan, five_taps ? kFiveTapWeightNote : kDepthFallbackNote);
  wp.a_elems = round_up(winograd_depth::weight_elems(g, plan.pass), 16);
  wp.b_elems = round_up(wp.depth_stack.src_plane, 16);
  const bool empty = g.n * g.out_spatial() == 0 || wp.main.tiles == 0;
  plan.workspace_bytes =
      empty ? 0 : (wp.buffers() + schedule_elems(wp.main)) * dtype_size(plan.dtype);
  const bool bd = plan.pass == ConvPass::kBackwardData;  // grad_y's planes as K x KD channels
  plan.note = tile_note(2, g.kernel[2], plan.pass, tile) + " over the " +
              std::to_string(g.kernel[0]) + " depth taps (2-D over " + std::to_string(f.n) +
              " planes, " + std::to_string(bd ? f.k : f.c) + " -> " +
              std::to_string(bd ? f.c : f.k) + " channels)" + fold_note(wp.main);
  plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
  return "";
}

// A forward the transforms above do not take, or few-channel 6x6 / 2-like ones they do, by
// F(m, r) along its rows (winograd_rows.h).
std::string plan_rows(ConvPlan& plan) {
  const ConvGeometry& g = plan.g;
  WinogradPlan wp;
  wp.rows = true;
  wp.along_rows = winograd_rows::make(g, dtype_size(plan.dtype), plan.threads);
  const winograd_rows::Rows& rw = wp.along_rows;
  plan.workspace_bytes = g.n * g.out_spatial() == 0 ? 0 : rw.elems() * dtype_size(plan.dtype);
  const std::string m = std::to_string(rw.m), r = std::to_string(rw.r);
  plan.note = "F(" + m + "," + r + ") along W over its " + std::to_string(g.stride[2]) +
              " stride phases (" + std::to_string(rw.alpha) + " points per " + m +
              " outputs; row kernels over (channel, kernel row, phase) terms, in bands of " +
              std::to_string(rw.band) + " output rows)";
  plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
  return "";
}

}  // namespace

std::string winograd_plan(ConvPlan& plan) {
  const ConvGeometry& g = plan.g;
  if (winograd_rows::preferred(g, plan.pass)) return plan_rows(plan);
  const std::string why = line_winograd_serves(g, plan.pass) ? "" : unsupported_reason(g);
  if (!why.empty()) {
    if (winograd_rows::serves(g, plan.pass)) return plan_rows(plan);
    return why + kRowsAlternative;
  }
  if (winograd_axis::serves(g)) return plan_axis(plan);
  if (g.rank == 3) return plan_depth(plan);
  WinogradPlan wp;
  if (line_winograd_serves(g, plan.pass)) {
    if (plan.pass == ConvPass::kBackwardWeight && !line_weight_tiles_pay(g))
      return plan_weight_fallback(plan, kImplicitGemmFallbackNote);
    wp.line = true;
    plan.workspace_bytes =
        g.n * g.out_spatial() == 0
            ? 0
            : line_winograd_workspace_bytes(g, plan.pass, plan.dtype, plan.threads);
    const std::string axis = g.kernel[1] == 7 ? "H" : "W";
    plan.note = plan.pass == ConvPass::kBackwardWeight
                    ? "F(7,3) along " + axis +
                          " (the weight gradient of F(3,7): 11 points per 3 outputs, "
                          "channels-last, each point's sum over the tiles one GEMM)"
                    : "F(3,7) along " + axis +
                          " (11 points per 3 outputs, channels-last: each point a GEMM over the "
                          "tiles)";
    plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
    return "";
  }
  if (stride2_winograd_serves(g, plan.pass)) {
    wp.stride2 = true;
    plan.workspace_bytes =
        g.n * g.out_spatial() == 0
            ? 0
            : stride2_winograd_workspace_bytes(g, plan.pass, plan.dtype, plan.threads);
    plan.note = plan.pass == ConvPass::kBackwardWeight
                    ? "F(3x3,2x2) at stride 2 (the weight gradient of F(2x2,3x3) at stride 2: 5x5 "
                      "points per tile)"
                    : "F(2x2,3x3) at stride 2 (5x5 points per tile: F(2,2) on the even taps, the "
                      "odd tap as is)";
    if (plan.pass == ConvPass::kForward &&
        stride2_winograd_banded(g, plan.pass, plan.dtype, plan.threads))
      plan.note += ", in bands of tile rows (each block's input window and outputs moved in cache)";
    plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
    return "";
  }
  wp.phased = strided(g);
  wp.dilated = dilation_phases::splittable(g);
  const int64_t elem = dtype_size(plan.dtype);
  if (wp.phased) wp.split = winograd_phases::make_split(g, false);
  if (wp.dilated) wp.dilation = dilation_phases::make_split(g);
  // The stride-1, dilation-1 convolution that runs.
  const ConvGeometry& f = wp.phased ? wp.split.stacked : wp.dilated ? wp.dilation.dense : g;
  const int64_t summed = plan.pass == ConvPass::kBackwardData ? f.k_per_group() : f.c_per_group();
  const int64_t lanes = 64 / elem;
  const winograd_tiles::Tile tile = choose_tile(f, plan.pass, summed, wp.phased ? lanes : 0);
  std::string note = tile_note(g.rank, f.kernel[2], plan.pass, tile);
  if (wp.phased) {
    // Small images' batch folded side by side (winograd_tiles::folds_batch).
    if (winograd_tiles::folds_batch(f, plan.pass, tile, lanes))
      wp.split = winograd_phases::make_split(g, true);
    // The stacked weight's gradient (the other passes gather the stored weight run by run).
    if (plan.pass == ConvPass::kBackwardWeight)
      wp.a_elems = round_up(winograd_phases::stacked_weight_elems(wp.split), 16);
    wp.b_elems = round_up(winograd_phases::stacked_input_elems(wp.split), 16);
    // The folded grad_y of backward data and the weight gradient (the forward's output moves
    // into y window by window).
    if (plan.pass != ConvPass::kForward)
      wp.c_elems = round_up(winograd_phases::wide_output_elems(wp.split), 16);
    note += " over the " + std::to_string(wp.split.phases) + " stride phases stacked as channels";
    if (wp.split.folded) note += ", the batch's images side by side";
  }
  if (wp.dilated) {
    wp.b_elems = round_up(dilation_phases::input_elems(wp.dilation), 16);
    wp.c_elems = round_up(dilation_phases::output_elems(wp.dilation), 16);
    note += " over the " + std::to_string(wp.dilation.phases) + " dilation phases as images";
  }
  wp.main = make_schedule(wp.phased ? wp.split.run : f, plan.pass, tile, elem, plan.threads);
  // The stacked input (or its gradient) in windows on the stack, never whole in memory: moved
  // back from memory afterwards, the stacked gradient took 12% of dcgan.g4's transposed
  // forward (kernel blocks move theirs back block by block, while in cache), and stacking the
  // input ahead 10% of its backward data.
  // Stride 2 along rows only, each pair of row columns one stacked column of two phases moved
  // by an interleave (stride 4, alexnet.conv1's 16 phases, per element: its forward 0.71 -> 0.93
  // ms and weight gradient 0.79-1.0 -> 1.03-1.19 through windows, where stacking ahead
  // writes 0.6 MiB), and where a window holds a whole run of the transforms' vectors (or a tile
  // row): shorter windows would cut the runs.
  const bool bd = plan.pass == ConvPass::kBackwardData;
  wp.windows = wp.phased && g.stride[2] == 2 && !(bd && wp.main.kernel_blocks) &&
               winograd_phases::window_tiles(wp.split, wp.main.mh, wp.main.mw, wp.main.r, lanes,
                                             elem, bd) >= std::min(lanes, wp.main.tiles_w);
  if (wp.windows) {
    wp.b_elems = 0;
    note += bd ? ", moved into the input gradient window by window"
               : ", stacked window by window";
  }
  const bool five_taps = f.kernel[2] == 5;
  if (plan.pass == ConvPass::kBackwardWeight &&
      (five_taps || !weight_gradient_by_winograd(wp.main, g)))
    return plan_weight_fallback(plan, five_taps ? kFiveTapWeightNote : kImplicitGemmFallbackNote);
  const bool empty = g.n * g.out_spatial() == 0 || wp.main.tiles == 0;
  plan.workspace_bytes =
      empty ? 0 : (wp.buffers() + schedule_elems(wp.main)) * dtype_size(plan.dtype);
  plan.note = note + fold_note(wp.main);
  plan.detail = std::make_shared<const WinogradPlan>(std::move(wp));
  return "";
}

}  // namespace fastconv::algo
