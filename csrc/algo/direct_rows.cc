// The direct algorithm's dense path (see direct_rows.h): builds the zero-padded planes the row
// kernels read, packs the weights per term, and spreads output rows (forward, backward data) or
// output channels (backward weight) over the thread pool.
#include "algo/direct_rows.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "algo/direct.h"
#include "algo/direct_rows_parts.h"
#include "fastconv/parallel.h"
#include "ukernels/rows/rows_ukernels.h"
#include "ukernels/transpose/transpose_ukernels.h"

namespace fastconv::algo {
using namespace rows_parts;
namespace {

// Backward data by input phases: input position i (padded: X = i + pad_lo) of phase
// rho = X mod s, q = X / s receives tap t (t * dilation = rho + m * s) from output q - m. grad_y
// is padded by P = the largest m in front (and zeros past its end), so each phase row reads
// unit-stride runs of a padded grad_y row, m elements back.
struct PhaseLayout {
  Dims pad{}, positions{}, ext{};  // P, Q (phase positions covering the input), J = Q + P
  int64_t pitch = 0;               // elements per output channel, slack included
  int64_t phases = 1;
};

PhaseLayout phase_layout(const ConvGeometry& g) {
  PhaseLayout l;
  int64_t volume = 1;
  for (int d = 0; d < kMaxRank; ++d) {
    l.pad[d] = (g.kernel[d] - 1) * g.dilation[d] / g.stride[d];
    l.positions[d] = (g.in[d] - 1 + g.pad_lo[d]) / g.stride[d] + 1;
    l.ext[d] = l.positions[d] + l.pad[d];
    volume *= l.ext[d];
    l.phases *= g.stride[d];
  }
  l.pitch = volume + kSlack;
  return l;
}

// Every phase's terms (output channel, tap of that phase), in phase order: off[] relative to
// the phase row's padded base, w[term * C + c] the tap's weight for input channel c.
template <typename T>
void phase_terms(const ConvGeometry& g, const PhaseLayout& l, const T* w, int64_t kb,
                 std::vector<int64_t>& off, std::vector<int64_t>& first, T* packed) {
  const int64_t taps = g.kernel_spatial();
  off.clear();
  first.assign(size_t(l.phases + 1), 0);
  std::vector<int64_t> tap_list, shift, term_tap;
  for (int64_t ph = 0; ph < l.phases; ++ph) {
    const int64_t rho[3] = {ph / (g.stride[1] * g.stride[2]), ph / g.stride[2] % g.stride[1],
                            ph % g.stride[2]};
    tap_list.clear(), shift.clear();
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t tap[3] = {t / (g.kernel[1] * g.kernel[2]), t / g.kernel[2] % g.kernel[1],
                              t % g.kernel[2]};
      int64_t m[3];
      bool hit = true;
      for (int d = 0; d < kMaxRank; ++d) {
        const int64_t a = tap[d] * g.dilation[d] - rho[d];
        hit = hit && a >= 0 && a % g.stride[d] == 0;
        m[d] = a / g.stride[d];
      }
      if (!hit) continue;
      tap_list.push_back(t);
      shift.push_back((m[0] * l.ext[1] + m[1]) * l.ext[2] + m[2]);
    }
    const int64_t t0 = int64_t(off.size()), per_k = int64_t(tap_list.size());
    for (int64_t k = 0; k < g.k; ++k)
      for (int64_t i = 0; i < per_k; ++i) off.push_back(k * l.pitch - shift[size_t(i)]);
    // Term r = k * per_k + i of this phase, for input channel c.
    pack_chunks(g.c, g.k * per_k, kb, [&](int64_t c, int64_t r) {
      return w[(r / per_k * g.c + c) * taps + stored_tap(g, tap_list[size_t(r % per_k)])];
    }, packed + t0 * g.c);
    first[size_t(ph + 1)] = int64_t(off.size());
  }
}

// grad_y's padded planes of one image: row (j0, j1) of channel k holds output row (j0 - P0,
// j1 - P1) at columns [P2, P2 + out2), zeros elsewhere.
template <typename T>
void fill_grad_planes(const ConvGeometry& g, const PhaseLayout& l, const T* gy, T* buf) {
  parallel_for(g.k, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k)
      for (int64_t j0 = 0; j0 < l.ext[0]; ++j0)
        for (int64_t j1 = 0; j1 < l.ext[1]; ++j1) {
          T* row = buf + k * l.pitch + (j0 * l.ext[1] + j1) * l.ext[2];
          const int64_t o0 = j0 - l.pad[0], o1 = j1 - l.pad[1];
          std::fill(row, row + l.ext[2], T(0));
          if (o0 < 0 || o0 >= g.out[0] || o1 < 0 || o1 >= g.out[1]) continue;
          const T* src = gy + (k * g.out[0] + o0) * g.out[1] * g.out[2] + o1 * g.out[2];
          std::copy(src, src + std::min(g.out[2], l.ext[2] - l.pad[2]), row + l.pad[2]);
        }
  });
}

// Whether the forward reads its input two taps at a time (RowsKernels::forward_pairs, from runs
// copied into a thread's scratch):
// the last kernel dim is 2 taps at stride 2 and no dim is padded in front or reads past the
// input (a negative high padding only leaves input unread), so every output's two source
// elements are adjacent and inside the input. 2x2 / 2 layers (U-Net's transposed decoders seen
// from their backward data) then need no phase split: it took 13% of unet.up4's forward.
bool pairs_serve(const ConvGeometry& g) {
  if (g.kernel[2] != 2 || g.stride[2] != 2 || g.dilation[2] != 1) return false;
  for (int d = 0; d < kMaxRank; ++d)
    if (g.pad_lo[d] != 0 || g.pad_hi[d] > 0) return false;
  return true;
}

// The pairs forward's chunk of an output row: `outputs` positions, each term's run of 2 x that
// many source elements at `pitch` elements in a slot's scratch. The chunk keeps a slot's runs
// within 128 KiB (L2) and whole rows where they fit; the pitch is a cache line past a multiple
// of 16 elements so the runs spread over the cache's sets.
struct PairChunk {
  int64_t outputs = 0, pitch = 0;
};
PairChunk pair_chunk(const ConvGeometry& g, int64_t elem) {
  const int64_t nred = g.c * g.kernel_spatial() / 2, budget = int64_t(128) << 10;
  const int64_t fit = budget / (2 * elem * std::max<int64_t>(nred, 1)) / 16 * 16;
  PairChunk c;
  c.outputs = std::min(g.out[2], std::max<int64_t>(fit, 16));
  c.pitch = (2 * c.outputs + 15) / 16 * 16 + 64 / elem;
  return c;
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Output positions per forward_channels call: its scratch holds that many rows of kp channels,
// up to 256 KiB (L2; at least 96 positions however wide kp is), and at most kChannelChunk. Longer chunks write longer runs of each output
// channel's plane when the scratch is transposed out: alexnet.conv1 (96 channels, 2 threads,
// AVX-512, interleaved in one process) 0.96 ms in chunks of 96 positions, 0.89 of 192, 0.79 of
// 384; res3.3x3s2 and resnet50.conv1 within 1% from 96 to 480.
constexpr int64_t kChannelChunk = 384;
int64_t channel_chunk(int64_t kp, int64_t elem) {
  return std::clamp<int64_t>((int64_t(256) << 10) / (kp * elem), 96, kChannelChunk);
}

// Whether the forward pass vectorises over output channels: for long reductions (whose source
// rows outgrow L1 in the row kernel) when an output row leaves a larger share of its vectors
// empty than the channel count does. 1 thread, avx512, ms: resnet50.res3.3x3s2 (28 positions
// = 2 vectors of 16 with 4 empty, 1152 terms) 2.40 vs 3.02 by rows; alexnet.conv1 (55
// positions, 363 terms) 2.07 vs 1.91 by rows on that Xeon, but on an AMD Zen 4 (median ms)
// 2.02 vs 2.26 at 1 thread, 1.10 vs 1.40 at 2 (AVX2: 1.29 vs 1.48), so from 256 terms it runs
// by channels; rows that fill their vectors stay on rows (resnet50.conv1, 112 positions: 2.50
// vs 2.12).
bool forward_by_channels(const ConvGeometry& g, int64_t lanes) {
  const int64_t n = g.out[2], np = round_up(n, lanes), kp = round_up(g.k, lanes);
  if (g.c * g.kernel_spatial() < 256) return false;
  return (np - n) * kp > (kp - g.k) * np;
}

// The forward's output rows in bands (2-D, or a kernel depth of 1: one depth slice of input
// per output slice; several output rows): each slot fills the input rows one band of output
// rows reads into its own buffer and runs the kernels over them while they are in L2, instead
// of every channel's whole plane being filled first (3 channels of 640x640, phase-split: 4.7
// MiB, filled 2:1 over 2 threads by channel, then read back from L3). A band's rows are about
// kBandBytes of plane rows; the kernel rows two bands share are filled twice. AVX2, 2 threads,
// p10 ms interleaved in one process, whole planes -> bands: yolov5s.stem 6.56 -> 5.36,
// yolov8s.stem 2.65 -> 2.21, inception_v3.conv1a 0.471 -> 0.339, efficientnet_b0.stem 0.265
// -> 0.185, ssd_mobilenet_v1.conv1 0.502 -> 0.344, resnet50.conv1 1.61 -> 1.53, unet.inc.conv1
// 2.04 -> 1.98, r2plus1d_18.stem 5.29 -> 4.78.
constexpr int64_t kBandBytes = int64_t(128) << 10;
struct RowBands {
  int64_t rows = 0;   // output rows per band (the last may have fewer)
  int64_t count = 0;  // bands per image (0: not banded)
};
RowBands row_bands(const ConvGeometry& g, int threads, int64_t elem) {
  RowBands b;
  const DwPlane p = input_plane(g);
  const int64_t slots = slots_of(threads), out_rows = g.out[1];
  if (g.kernel[0] != 1 || out_rows < 2 * slots) return b;
  const int64_t row_bytes = g.c * p.stride[2] * p.width * elem;  // one plane row, all channels
  const int64_t reach = (g.kernel[1] - 1) * g.dilation[1] + 1;   // plane rows of one output row
  const int64_t fit = (kBandBytes / std::max<int64_t>(row_bytes, 1) - reach) / g.stride[1] + 1;
  b.rows = std::clamp<int64_t>(fit, 4, out_rows);
  // Whole rounds of bands over the slots: no slot waits on another's last band.
  const int64_t rounds = std::max<int64_t>(1, (out_rows + b.rows * slots - 1) / (b.rows * slots));
  b.rows = (out_rows + rounds * slots - 1) / (rounds * slots);
  b.count = (out_rows + b.rows - 1) / b.rows;
  return b;
}

// Lanes of the row kernels for dtype t.
int64_t kernel_lanes(DType t) {
  return t == DType::kFloat64 ? rows_kernels<double>().lanes : rows_kernels<float>().lanes;
}

// Scratch rows of one backward-data slot: C phase rows of the last dim.
int64_t phase_rows_elems(const ConvGeometry& g, const PhaseLayout& l) {
  return g.c * (l.positions[2] + kSlack);
}

}  // namespace

bool rows_serve(const ConvGeometry& g, ConvPass pass) {
  if (g.groups != 1) return false;
  for (int d = 0; d < kMaxRank; ++d)
    if (g.pad_lo[d] < 0) return false;
  return true;
}

bool rows_pairs(const ConvGeometry& g, ConvPass pass) {
  return pass == ConvPass::kForward && rows_serve(g, pass) && pairs_serve(g);
}

bool rows_bands(const ConvGeometry& g, ConvPass pass, DType t, int threads) {
  const int64_t lanes = kernel_lanes(t);
  if (pass == ConvPass::kBackwardWeight)
    return rows_serve(g, pass) && weight_bands(g, threads, dtype_size(t)).per_image > 0;
  return pass == ConvPass::kForward && rows_serve(g, pass) && !pairs_serve(g) &&
         !forward_by_channels(g, lanes) && row_bands(g, threads, dtype_size(t)).count > 0;
}

int rows_narrow_bits(const ConvGeometry& g, ConvPass pass, DType t) {
  if (pass == ConvPass::kBackwardData) return 0;
  // Forward by pairs: not measured; by channels: vectors along the channels.
  const bool forward = pass == ConvPass::kForward;
  if (forward && (rows_pairs(g, pass) || forward_by_channels(g, kernel_lanes(t)))) return 0;
  const int64_t n = kernel_row_width(g);
  const int64_t lanes = t == DType::kFloat64 ? rows_kernels_for_row<double>(n).lanes
                                             : rows_kernels_for_row<float>(n).lanes;
  return lanes == kernel_lanes(t) ? 0 : int(lanes * dtype_size(t) * 8);
}

int64_t rows_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads) {
  int64_t weights = checked_product({g.k, g.c, g.kernel_spatial()}, "direct workspace");
  int64_t elems = 0;
  const int64_t lanes = kernel_lanes(t);
  const bool pairs = rows_pairs(g, pass);
  if (pass == ConvPass::kForward && !pairs && forward_by_channels(g, lanes)) {
    const int64_t kp = round_up(g.k, lanes);  // padded weights, outputs
    weights = checked_product({kp, g.c, g.kernel_spatial()}, "direct workspace") +
              checked_product({slots_of(threads), channel_chunk(kp, dtype_size(t)), kp},
                              "direct workspace");
  }
  if (pairs) {  // the packed weights and each slot's runs
    const int64_t terms = g.c * g.kernel_spatial() / 2;
    elems = checked_product({slots_of(threads), terms, pair_chunk(g, dtype_size(t)).pitch},
                            "direct workspace");
  } else if (pass == ConvPass::kBackwardData) {
    const PhaseLayout l = phase_layout(g);
    elems = checked_product({g.k, l.pitch}, "direct workspace") +
            checked_product({slots_of(threads), phase_rows_elems(g, l)}, "direct workspace");
  } else if (pass == ConvPass::kBackwardWeight && rows_bands(g, pass, t, threads)) {
    const WeightBands b = weight_bands(g, threads, dtype_size(t));
    const DwPlane band = band_plane(input_plane(g), b.rows);
    elems = checked_product({slots_of(threads), g.c, plane_pitch(band)}, "direct workspace") +
            checked_product({b.round, g.k, g.c, g.kernel_spatial()},
                            "direct workspace");
  } else if (rows_bands(g, pass, t, threads)) {
    const DwPlane band = band_plane(input_plane(g), row_bands(g, threads, dtype_size(t)).rows);
    elems = checked_product({slots_of(threads), g.c, plane_pitch(band)}, "direct workspace");
  } else {
    elems = checked_product({g.c, plane_pitch(input_plane(g))}, "direct workspace");
  }
  return checked_product({elems + weights, dtype_size(t)}, "direct workspace");
}

// Forward vectorised over output channels: chunks of channel_chunk() output positions, each
// computed as (position, channel) rows in a slot's scratch, then written out transposed.
template <typename T, typename Weight>
void forward_channels(const ConvPlan& plan, const DwPlane& p, const std::vector<int64_t>& off,
                      Weight&& weight, const T* x, const T* bias, T* y, T* planes, T* packed) {
  const ConvGeometry& g = plan.g;
  const RowsKernels<T>& kern = rows_kernels<T>();
  const TransposeKernels<T>& transpose = transpose_kernels<T>();
  const int64_t nred = int64_t(off.size()), kp = round_up(g.k, kern.lanes);
  const int64_t os = g.out_spatial(), slots = slots_of(plan.threads);
  parallel_for(nred, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t k = 0; k < kp; ++k) packed[r * kp + k] = k < g.k ? weight(k, r) : T(0);
  });
  T* scratch = packed + nred * kp;
  // Two chunks per slot where the positions allow (chunks are whole vectors of 16), so that no
  // thread waits on a long last chunk.
  const int64_t chunk = std::min(channel_chunk(kp, int64_t(sizeof(T))),
                                 round_up((os + 2 * slots - 1) / (2 * slots), 16));
  const int64_t chunks = (os + chunk - 1) / chunk;
  for (int64_t n = 0; n < g.n; ++n) {
    fill_planes(g, p, x + n * g.c * g.in_spatial(), planes);
    T* yn = y + n * g.k * os;
    parallel_for(std::min(slots, chunks), 1, [&](int64_t sb, int64_t se) {
      for (int64_t slot = sb; slot < se; ++slot) {
        T* out = scratch + slot * chunk * kp;
        int64_t pos[kChannelChunk];
        for (int64_t c = slot; c < chunks; c += slots) {
          const int64_t p0 = c * chunk, count = std::min(chunk, os - p0);
          for (int64_t i = 0; i < count; ++i) {
            const int64_t o = p0 + i, row = o / g.out[2];
            pos[i] = p.row_base(row / g.out[1], row % g.out[1]) + o % g.out[2];
          }
          kern.forward_channels(planes, pos, count, off.data(), nred, packed, kp, g.k, out, kp);
          transpose.transpose(out, kp, count, g.k, bias, yn + p0, os);
        }
      }
    });
  }
}

// The forward by pairs (pairs_serve): terms (channel, leading taps), their two taps adjacent in
// the input. Each slot copies the source runs of one output row's chunk of pair_chunk() outputs
// into its scratch, a run per term (every input element copied once where the kernel tiles the
// input), then runs the kernel over it. Read in place, the runs lie a power of two apart (256 KiB
// for 64 x 256 x 256: one L1 and one L2 set for all of them), which ran unet.up4 at 22 ms
// against 13 from phase-split planes; from the scratch, whose runs are a cache line past a
// multiple of it, at ~9 (AVX2, 2 threads).
template <typename T>
void pairs_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  const RowsKernels<T>& kern = rows_kernels<T>();
  const int64_t taps = g.kernel_spatial(), lead = taps / 2, nred = g.c * lead;
  const int64_t is = g.in_spatial(), os = g.out_spatial(), rows = g.out[0] * g.out[1];
  const PairChunk ch = pair_chunk(g, sizeof(T));
  std::vector<int64_t> off(static_cast<size_t>(nred)), run(static_cast<size_t>(nred));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t t = 0; t < lead; ++t) {
      const int64_t t0 = t / g.kernel[1], t1 = t % g.kernel[1], r = c * lead + t;
      off[size_t(r)] = c * is + (t0 * g.dilation[0] * g.in[1] + t1 * g.dilation[1]) * g.in[2];
      run[size_t(r)] = r * ch.pitch;
    }
  // Term r's two taps are correlation taps 2r and 2r + 1 of its channel's kernel.
  T* packed = ws;
  const int64_t kb = kern.pair_rows;
  for (int64_t f0 = 0; f0 < g.k; f0 += kb) {
    const int64_t kbc = std::min(kb, g.k - f0);
    T* chunk = packed + 2 * f0 * nred;
    for (int64_t r = 0; r < nred; ++r)
      for (int64_t j = 0; j < kbc; ++j)
        for (int64_t t = 0; t < 2; ++t) {
          const int64_t c = r / lead, tap = 2 * (r % lead) + t;
          chunk[2 * (r * kbc + j) + t] = w[(f0 + j) * g.c * taps + c * taps + stored_tap(g, tap)];
        }
  }
  T* scratch = packed + g.k * g.c * taps;
  const int64_t chunks = (g.out[2] + ch.outputs - 1) / ch.outputs, items = g.n * rows * chunks;
  const int64_t slots = std::min(slots_of(plan.threads), items);
  parallel_for(slots, 1, [&](int64_t sb, int64_t se) {
    for (int64_t slot = sb; slot < se; ++slot) {
      T* buf = scratch + slot * nred * ch.pitch;
      for (int64_t item = slot * items / slots; item < (slot + 1) * items / slots; ++item) {
        const int64_t n = item / (rows * chunks), row = item / chunks % rows;
        const int64_t x0 = item % chunks * ch.outputs, xn = std::min(ch.outputs, g.out[2] - x0);
        const int64_t o0 = row / g.out[1], o1 = row % g.out[1];
        const T* src = x + n * g.c * is +
                       (o0 * g.stride[0] * g.in[1] + o1 * g.stride[1]) * g.in[2] + 2 * x0;
        for (int64_t r = 0; r < nred; ++r)
          std::copy(src + off[size_t(r)], src + off[size_t(r)] + 2 * xn, buf + r * ch.pitch);
        kern.forward_pairs(buf, run.data(), nred, packed, g.k, bias,
                           y + n * g.k * os + row * g.out[2] + x0, os, xn);
      }
    }
  });
}

template <typename T>
void rows_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  if (pairs_serve(g)) return pairs_forward(plan, x, w, bias, y, ws);
  const DwPlane p = input_plane(g);
  const std::vector<int64_t> off = input_terms(g, p);
  const int64_t taps = g.kernel_spatial(), nred = g.c * taps, os = g.out_spatial();
  T* planes = ws;
  T* packed = ws + g.c * plane_pitch(p);
  auto weight = [&](int64_t k, int64_t r) {
    return w[k * nred + (r / taps) * taps + stored_tap(g, r % taps)];
  };
  if (forward_by_channels(g, rows_kernels<T>().lanes)) {
    forward_channels(plan, p, off, weight, x, bias, y, planes, packed);
    return;
  }
  const RowsKernels<T>& kern = rows_kernels_for_row<T>(kernel_row_width(g));
  const int64_t kb = kern.forward_rows(g.k, g.out[2]);
  if (rows_bands(g, plan.pass, plan.dtype, plan.threads)) {
    const RowBands b = row_bands(g, plan.threads, sizeof(T));
    const DwPlane bp = band_plane(p, b.rows);
    const std::vector<int64_t> band_off = input_terms(g, bp);
    const int64_t pitch = plane_pitch(bp), bands = g.out[0] * b.count, items = g.n * bands;
    const int64_t slots = std::min(slots_of(plan.threads), items);
    T* packed_w = ws + slots_of(plan.threads) * g.c * pitch;
    pack_chunks(g.k, nred, kb, weight, packed_w);
    // Bands are handed out as slots finish one (a thread the OS delays leaves its share to the
    // others); an output row's sums do not depend on which slot computes it.
    std::atomic<int64_t> next{0};
    parallel_for(slots, 1, [&](int64_t sb, int64_t se) {
      for (int64_t slot = sb; slot < se; ++slot) {
        T* buf = ws + slot * g.c * pitch;
        for (int64_t item; (item = next.fetch_add(1)) < items;) {
          const int64_t n = item / bands, oz = item % bands / b.count;
          const int64_t o0 = item % b.count * b.rows, rows = std::min(b.rows, g.out[1] - o0);
          const T* xn = x + n * g.c * g.in_spatial();
          const DwPlane filled = band_plane(p, rows);  // the last band may be shorter
          for (int64_t c = 0; c < g.c; ++c)
            fill_input_rows(g, oz * g.stride[0], o0 * g.stride[1], filled,
                            xn + c * g.in_spatial(), buf + c * pitch);
          T* yr = y + n * g.k * os + (oz * g.out[1] + o0) * g.out[2];
          for (int64_t r = 0; r < rows; ++r)
            kern.forward(buf + bp.row_base(0, r), band_off.data(), nred, packed_w, kb, g.k, bias,
                         false, yr + r * g.out[2], os, g.out[2]);
        }
      }
    });
    return;
  }
  pack_chunks(g.k, nred, kb, weight, packed);
  for (int64_t n = 0; n < g.n; ++n) {
    fill_planes(g, p, x + n * g.c * g.in_spatial(), planes);
    parallel_for(g.out[0] * g.out[1], 1, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const T* src = planes + p.row_base(row / g.out[1], row % g.out[1]);
        kern.forward(src, off.data(), nred, packed, kb, g.k, bias, false,
                     y + n * g.k * os + row * g.out[2], os, g.out[2]);
      }
    });
  }
}

template <typename T>
void rows_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  const ConvGeometry& g = plan.g;
  const PhaseLayout l = phase_layout(g);
  const int64_t slots = slots_of(plan.threads), is = g.in_spatial();
  const int64_t scratch = phase_rows_elems(g, l), row_pitch = l.positions[2] + kSlack;
  T* gbuf = ws;
  T* rows = gbuf + g.k * l.pitch;
  T* packed = rows + slots * scratch;
  const RowsKernels<T>& kern = rows_kernels<T>();  // not by row: see rows_kernels_for_row
  const int64_t kb = kern.forward_rows(g.c, (g.in[2] + g.stride[2] - 1) / g.stride[2]);
  std::vector<int64_t> off, first;
  phase_terms(g, l, w, kb, off, first, packed);
  const int64_t s2 = g.stride[2], pad2 = g.pad_lo[2];
  for (int64_t n = 0; n < g.n; ++n) {
    fill_grad_planes(g, l, grad_y + n * g.k * g.out_spatial(), gbuf);
    T* gx = grad_x + n * g.c * is;
    const int64_t items = g.in[0] * g.in[1];
    // One item per input row (i0, i1): its s2 phases of the last dim, each a kernel call.
    parallel_for(std::min(slots, items), 1, [&](int64_t sb, int64_t se) {
      for (int64_t slot = sb; slot < se; ++slot) {
        T* tmp = rows + slot * scratch;
        for (int64_t item = slot; item < items; item += slots) {
          const int64_t i0 = item / g.in[1], i1 = item % g.in[1];
          const int64_t x0 = i0 + g.pad_lo[0], x1 = i1 + g.pad_lo[1];
          const int64_t q0 = x0 / g.stride[0], q1 = x1 / g.stride[1];
          const int64_t ph01 = (x0 % g.stride[0] * g.stride[1] + x1 % g.stride[1]) * s2;
          const T* base = gbuf + ((q0 + l.pad[0]) * l.ext[1] + q1 + l.pad[1]) * l.ext[2] + l.pad[2];
          T* out_row = gx + item * g.in[2];
          for (int64_t rho = 0; rho < s2; ++rho) {
            // Phase positions q of the row's inputs: 0 <= q * s2 + rho - pad2 < in2.
            const int64_t lo = pad2 >= rho ? (pad2 - rho + s2 - 1) / s2 : 0;
            const int64_t last = g.in[2] - 1 + pad2 - rho;
            const int64_t count = last >= 0 ? last / s2 + 1 - lo : 0;
            if (count <= 0) continue;
            const int64_t ph = ph01 + rho, t0 = first[size_t(ph)];
            const int64_t terms = first[size_t(ph + 1)] - t0;
            if (s2 == 1) {
              kern.forward(base + lo, off.data() + t0, terms, packed + t0 * g.c, kb, g.c, nullptr,
                           false, out_row, is, count);
              continue;
            }
            kern.forward(base + lo, off.data() + t0, terms, packed + t0 * g.c, kb, g.c, nullptr,
                         false, tmp, row_pitch, count);
            const int64_t i_first = lo * s2 + rho - pad2;
            for (int64_t c = 0; c < g.c; ++c) {
              T* dst = out_row + c * is + i_first;
              const T* src = tmp + c * row_pitch;
              for (int64_t j = 0; j < count; ++j) dst[j * s2] = src[j];
            }
          }
        }
      }
    });
  }
}

#define FASTCONV_INSTANTIATE(T)                                                           \
  template void rows_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void rows_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
