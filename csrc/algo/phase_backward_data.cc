// Strided backward data by stride phases (also a strided transposed convolution's forward):
// the input positions of one residue class modulo the stride receive only the kernel taps of
// that class, from grad_y positions that advance one per step, so each phase is a unit-stride
// GEMM over shifted grad_y rows, with no multiply-by-zero work. The GEMM's columns run over
// the phase grids of several images at once (batch folding), and the weight is regrouped by
// phase in one pass per group.
#include "algo/phase_backward_data.h"

#include <algorithm>
#include <vector>

#include "algo/conv_panels.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

// Input positions of phase q along one dim: q, q + s, q + 2s, ... below `in`.
inline int64_t phase_extent(int64_t in, int64_t q, int64_t s) {
  return q < in ? (in - q + s - 1) / s : 0;
}

inline int64_t floor_mod(int64_t a, int64_t s) { return ((a % s) + s) % s; }

// One residue class q of the input positions.
struct Phase {
  int64_t q[3];
  ConvGeometry grid;            // stride 1, unpadded: input = grad_y, output = the phase grid
  TapTable offsets;             // grad_y offset of each of the phase's taps, per dim
  std::vector<int64_t> taps;    // the stored kernel taps (flat index) the phase uses
  int64_t weight_offset = 0;    // its gathered weight block, in units of cg * kg
};

// Every phase with a non-empty grid. Along dim d, tap t reaches the phase q with
// (q + pad_lo - position(t) * dilation) divisible by the stride, at grad_y offset m + that / s.
std::vector<Phase> make_phases(const ConvGeometry& g) {
  std::vector<Phase> phases;
  int64_t weight_offset = 0;
  for (int64_t qz = 0; qz < g.stride[0]; ++qz)
    for (int64_t qy = 0; qy < g.stride[1]; ++qy)
      for (int64_t qx = 0; qx < g.stride[2]; ++qx) {
        Phase p;
        p.q[0] = qz, p.q[1] = qy, p.q[2] = qx;
        p.grid = g;
        std::vector<int64_t> tap_list[3], offset_list[3];
        for (int d = 0; d < kMaxRank; ++d) {
          p.grid.in[d] = g.out[d];
          p.grid.out[d] = phase_extent(g.in[d], p.q[d], g.stride[d]);
          p.grid.stride[d] = 1;
          p.grid.pad_lo[d] = p.grid.pad_hi[d] = 0;
          for (int64_t t = 0; t < g.kernel[d]; ++t) {
            const int64_t s = p.q[d] + g.pad_lo[d] - tap_position(g, d, t) * g.dilation[d];
            if (floor_mod(s, g.stride[d]) != 0) continue;
            tap_list[d].push_back(t);
            offset_list[d].push_back((s - floor_mod(s, g.stride[d])) / g.stride[d]);
          }
        }
        if (p.grid.out_spatial() == 0) continue;
        for (size_t a = 0; a < tap_list[0].size(); ++a)
          for (size_t b = 0; b < tap_list[1].size(); ++b)
            for (size_t c = 0; c < tap_list[2].size(); ++c) {
              p.offsets.dz.push_back(offset_list[0][a]);
              p.offsets.dy.push_back(offset_list[1][b]);
              p.offsets.dx.push_back(offset_list[2][c]);
              p.taps.push_back((tap_list[0][a] * g.kernel[1] + tap_list[1][b]) * g.kernel[2] +
                               tap_list[2][c]);
            }
        p.weight_offset = weight_offset;
        weight_offset += int64_t(p.taps.size());
        phases.push_back(std::move(p));
      }
  return phases;
}

// Regroups one group's weight by phase: phase p's block (cg rows of kg * ntaps) holds
// w[grp * kg + k][c][p.taps[i]] at [c][k * ntaps + i]. One pass over w.
template <typename T>
void gather_phase_weights(const ConvGeometry& g, const std::vector<Phase>& phases, const T* w,
                          int64_t grp, T* dst) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  // Blocks of kBlock channels c: for each k their taps are one contiguous stretch of w, and
  // the destination lines of the block (kBlock x phases) stay in L1 while k fills them.
  constexpr int64_t kBlock = 16;
  parallel_for((cg + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t c0 = b0 * kBlock; c0 < std::min(cg, b1 * kBlock); c0 += kBlock) {
      const int64_t c1 = std::min(cg, c0 + kBlock);
      for (int64_t k = 0; k < kg; ++k) {
        const T* src = w + ((grp * kg + k) * cg + c0) * taps;  // taps of (k, c0), (k, c0 + 1), ...
        for (const Phase& p : phases) {
          const int64_t ntaps = int64_t(p.taps.size());
          const int64_t* tap = p.taps.data();
          T* out = dst + cg * kg * p.weight_offset + c0 * kg * ntaps + k * ntaps;
          const T* s = src;
          for (int64_t c = c0; c < c1; ++c, s += taps, out += kg * ntaps)
            for (int64_t i = 0; i < ntaps; ++i) out[i] = s[tap[i]];
        }
      }
    }
  });
}

// Writes a phase's GEMM block (cg rows of cnt images x positions) to its positions in grad_x
// (zeros for a phase no tap reaches: block == nullptr).
template <typename T>
void scatter_phase(const ConvGeometry& g, const Phase& p, const T* block, int64_t cnt, T* gx) {
  const int64_t cg = g.c_per_group(), in_sp = g.in_spatial(), positions = p.grid.out_spatial();
  const int64_t cols = cnt * positions;
  const int64_t grain = std::max<int64_t>(1, 4096 / positions);
  parallel_for(cg * cnt, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t ci = b0; ci < b1; ++ci) {
      const int64_t c = ci / cnt, i = ci % cnt;
      const T* src = block ? block + c * cols + i * positions : nullptr;
      T* plane = gx + i * g.c * in_sp + c * in_sp;
      int64_t m = 0;
      for (int64_t mz = 0; mz < p.grid.out[0]; ++mz)
        for (int64_t my = 0; my < p.grid.out[1]; ++my) {
          T* row = plane +
                   ((p.q[0] + mz * g.stride[0]) * g.in[1] + p.q[1] + my * g.stride[1]) * g.in[2] +
                   p.q[2];
          const int64_t sx = g.stride[2], len = p.grid.out[2];
          if (src) {
            for (int64_t mx = 0; mx < len; ++mx) row[mx * sx] = src[m + mx];
          } else {
            for (int64_t mx = 0; mx < len; ++mx) row[mx * sx] = T(0);
          }
          m += len;
        }
    }
  });
}

int64_t max_phase_positions(const ConvGeometry& g) {
  int64_t n = 1;
  for (int d = 0; d < kMaxRank; ++d) n *= phase_extent(g.in[d], 0, g.stride[d]);
  return n;
}

}  // namespace

int64_t phase_backward_data_positions(const ConvGeometry& g) { return max_phase_positions(g); }

int64_t phase_backward_data_workspace(const ConvGeometry& g, int64_t fold) {
  return g.k_per_group() * g.c_per_group() * g.kernel_spatial() +
         g.c_per_group() * fold * max_phase_positions(g);
}

template <typename T>
void phase_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x, T* ws,
                         int64_t fold) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial();
  const std::vector<Phase> phases = make_phases(g);
  T* weights = ws;                    // every phase's (cg, kg * phase taps) weight block
  T* block = ws + kg * cg * taps;     // (cg, fold images x phase positions) GEMM output
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    gather_phase_weights(g, phases, w, grp, weights);
    // Images outer, phases inner: the images' grad_x planes stay in cache across the phases.
    for (int64_t n0 = 0; n0 < g.n; n0 += fold) {
      const int64_t cnt = std::min(fold, g.n - n0);
      T* gx = grad_x + (n0 * g.c + grp * cg) * in_sp;
      for (const Phase& p : phases) {
        const int64_t ntaps = int64_t(p.taps.size()), depth = kg * ntaps;
        const int64_t cols = cnt * p.grid.out_spatial();
        if (ntaps == 0) {
          scatter_phase<T>(g, p, nullptr, cnt, gx);
          continue;
        }
        const PhaseColumns<T> b(p.grid, p.offsets, ntaps, grad_y + (n0 * g.k + grp * kg) * out_sp,
                                g.k * out_sp);
        gemm::gemm<T>(cg, cols, depth, T(1), {weights + cg * kg * p.weight_offset, depth, 1}, b,
                      T(0), block, cols);
        scatter_phase<T>(g, p, block, cnt, gx);
      }
    }
  }
}

template void phase_backward_data<float>(const ConvGeometry&, const float*, const float*, float*,
                                         float*, int64_t);
template void phase_backward_data<double>(const ConvGeometry&, const double*, const double*,
                                          double*, double*, int64_t);

}  // namespace fastconv::algo
