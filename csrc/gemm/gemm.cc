// The packed GEMM driver: cache blocking from the detected cache sizes, packing of A and dense B,
// the five GotoBLAS/BLIS loops around the micro-kernel, and the M/N split over the thread pool
// (the batched front ends: gemm_batched.cc; what both share: gemm_driver.h).
#include "gemm/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "fastconv/cpu_features.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"
#include "gemm/cache_sizes.h"
#include "gemm/kernel_table.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack_buffers.h"

namespace fastconv::gemm {
namespace {

// Asks for every cache line of `count` rows of `bytes` bytes each (rows[i] onwards) to be in L1.
template <typename T>
inline void prefetch_rows(const T* const* rows, int64_t count, int64_t bytes) {
  for (int64_t r = 0; r < count; ++r) {
    const uintptr_t first = reinterpret_cast<uintptr_t>(rows[r]);
    for (uintptr_t line = first & ~uintptr_t(63); line < first + uintptr_t(bytes); line += 64) {
      __builtin_prefetch(reinterpret_cast<const void*>(line), 0, 3);
    }
  }
}

// Sizes the blocks from the caches: the B micro-panel (kc x nr) takes about two thirds of L1 (the
// streamed A micro-panel and the C tile share the rest), the packed A block a quarter of L2 (B
// panels stream through the rest), the packed B block half of this core's share of L3 but at
// most 1.5 MiB (larger blocks measured no faster, every pool thread keeps its buffers, and
// implicit GEMM promises at most ~2 MiB of scratch per thread).
template <typename T>
Blocking compute_blocking(const CacheSizes& caches, int64_t mr, int64_t nr) {
  const int64_t s = int64_t(sizeof(T));
  Blocking b;
  b.kc = std::clamp<int64_t>(caches.l1d * 2 / 3 / (nr * s) / 8 * 8, 64, 1024);
  b.mc = std::clamp<int64_t>(caches.l2 / 4 / (b.kc * s) / mr * mr, mr, 4096 / mr * mr);
  const int64_t b_bytes = std::min<int64_t>(caches.l3_per_core / 2, int64_t(3) << 19);
  b.nc = std::clamp<int64_t>(b_bytes / (b.kc * s) / nr * nr, 4 * nr, 8192 / nr * nr);
  return b;
}

// ---- packing

// Writes rows [i0, i0 + mc) x columns [k0, k0 + kc) of A as ceil(mc / mr) panels of kc x mr,
// k-major (element (i, kk) of panel p at dst[p * kc * mr + kk * mr + i]); rows past mc are zero.
// An A stored column by column (unit row stride: a transposed weight) is packed a column at a
// time across every panel: each column's mc elements are one contiguous read, where panel by
// panel each column's few elements of a line left the rest to be fetched again for the next
// panels (and columns a multiple of 4 KiB apart, dcgan.g2's 16 KiB, evicted each other first).
// MR > 0: panels of that height (a constant-size copy, a few vector moves: the element loop
// over a run-time mr took 8% of dcgan.g2's transposed forward); MR = 0: of height mr.
template <typename T, int64_t MR>
void pack_a_columns(int64_t mr, MatrixRef<T> a, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                    T* dst) {
  if constexpr (MR > 0) mr = MR;
  const int64_t full = mc / mr * mr, panel = kc * mr;
  constexpr int64_t kAhead = 8, kLine = 64 / int64_t(sizeof(T));
  for (int64_t kk = 0; kk < kc; ++kk) {
    const T* src = a.data + i0 + (k0 + kk) * a.cs;
    if (kk + kAhead < kc)
      for (int64_t i = 0; i < mc; i += kLine) __builtin_prefetch(src + kAhead * a.cs + i);
    T* d = dst + kk * mr;
    for (int64_t p = 0; p < full; p += mr, d += panel) {
      if constexpr (MR > 0) {
        std::memcpy(d, src + p, MR * sizeof(T));
      } else {
        for (int64_t i = 0; i < mr; ++i) d[i] = src[p + i];
      }
    }
    if (full < mc) {
      for (int64_t i = 0; i < mc - full; ++i) d[i] = src[full + i];
      for (int64_t i = mc - full; i < mr; ++i) d[i] = T(0);
    }
  }
}

template <typename T>
void pack_a_columns(int64_t mr, MatrixRef<T> a, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                    T* dst) {
  switch (mr) {  // the micro-kernels' heights (ukernels/gemm/gemm_ukernels.h)
    case 4: return pack_a_columns<T, 4>(mr, a, i0, mc, k0, kc, dst);
    case 6: return pack_a_columns<T, 6>(mr, a, i0, mc, k0, kc, dst);
    case 12: return pack_a_columns<T, 12>(mr, a, i0, mc, k0, kc, dst);
    default: return pack_a_columns<T, 0>(mr, a, i0, mc, k0, kc, dst);
  }
}

template <typename T>
void pack_a(const GemmKernel<T>& kern, MatrixRef<T> a, int64_t i0, int64_t mc, int64_t k0,
            int64_t kc, T* dst) {
  if (a.rs == 1 && a.cs != 1 && mc > kern.mr)
    return pack_a_columns(kern.mr, a, i0, mc, k0, kc, dst);
  for (int64_t p = 0; p < mc; p += kern.mr, dst += kc * kern.mr) {
    kern.pack_a(std::min(kern.mr, mc - p), kc, a.data + (i0 + p) * a.rs + k0 * a.cs, a.rs, a.cs,
                dst);
  }
}

thread_local PackBuffers t_pack;

// ---- the five loops

// Packs rows [i0, i0 + mc) x columns [k0, k0 + kc) of the problem's A (pack_a's layout): from
// the dense A, or from its source, whose panels of A^T mr columns wide are that same layout.
template <typename T>
void pack_a_block(const Problem<T>& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
  if (p.a_src) return p.a_src->pack(k0, kc, i0, mc, p.kernel->mr, dst);
  pack_a(*p.kernel, p.a, i0, mc, k0, kc, dst);
}

// The packed rows [i0, i0 + mc) x columns [k0, k0 + kc) of A (i0 a multiple of MR): where they
// lie in an A packed ahead (pack_a_rows: k block by k block, each round_up(m, MR) x kc in panels
// of MR rows), else packed into abuf.
template <typename T>
const T* a_block(const Problem<T>& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* abuf) {
  if (p.a_packed) return p.a_packed + k0 * round_up(p.m, p.kernel->mr) + i0 * kc;
  pack_a_block(p, i0, mc, k0, kc, abuf);
  return abuf;
}


// Runs the micro-kernel over one packed A block (mc rows) and nc packed B columns.
template <typename T>
void kernel_block(const Problem<T>& p, int64_t kc, int64_t mc, int64_t nc, const T* abuf,
                  const T* bbuf, T* c, T beta) {
  const GemmKernel<T>& kern = *p.kernel;
  for (int64_t jr = 0; jr < nc; jr += kern.nr) {
    const int64_t nr_valid = std::min(kern.nr, nc - jr);
    for (int64_t ir = 0; ir < mc; ir += kern.mr) {
      kern.fn(kc, abuf + ir * kc, bbuf + jr * kc, c + ir * p.ldc + jr, p.ldc,
              std::min(kern.mr, mc - ir), nr_valid, p.alpha, beta);
    }
  }
}

// True when rows of A lda elements apart all fall into one L1 set position (their byte stride a
// multiple of 4 KiB, the period of the L1 sets): the micro-kernel's mr row streams then evict
// each other from L1 on every k step. Such tiles are packed first (one pass over each row):
// 512 x 49 x 2048 (the weight of a 1x1 conv over 2048 channels) 1.86 -> 1.57 ms, 256 x 196 x
// 1024 1.61 -> 1.15 ms (one thread, AVX-512). Rows 2 KiB apart (two positions, mr / 2 rows
// per set) run faster in place: res5.3x3 forward (rows of 4608 floats) 1.55 vs 1.66 ms packed.
template <typename T>
bool a_rows_alias(int64_t lda) {
  return (lda * int64_t(sizeof(T))) % 4096 == 0;
}

// The tile rows of gemm_block_row_a for k blocks [kq, kq_end), B packed at bbuf (null: B lies
// packed ahead, each block read where the source has it, PanelSource::packed()).
template <typename T>
void gemm_rows_row_a(const Problem<T>& p, int64_t kc_max, int64_t kq, int64_t kq_end, int64_t m0,
                     int64_t m1, int64_t n0, int64_t n1, const T* bbuf, T* abuf) {
  const GemmKernel<T>& kern = *p.kernel;
  const int64_t mr = kern.mr, nr = kern.nr, cols = n1 - n0, panels = ceil_div(cols, nr);
  const bool pack_all = a_rows_alias<T>(p.a.rs);
  for (int64_t ir = m0; ir < m1; ir += mr) {
    const int64_t rows = std::min(mr, m1 - ir);
    const T* arow = p.a.data + ir * p.a.rs;
    T* crow = p.c + ir * p.ldc + n0;
    for (int64_t pc = kq; pc < kq_end; pc += kc_max) {
      const int64_t kc = std::min(kc_max, p.k - pc);
      const T beta = pc == 0 ? p.beta : T(1);
      // B packed here (bbuf), or read where it lies packed ahead (bbuf null)
      const T* bblock = bbuf ? bbuf + (pc - kq) * panels * nr : p.b->packed(pc, kc, n0, cols, nr);
      if (rows < mr || pack_all) kern.pack_a(rows, kc, arow + pc, p.a.rs, 1, abuf);
      for (int64_t jr = 0; jr < cols; jr += nr) {
        const int64_t nr_valid = std::min(nr, cols - jr);
        if (rows == mr && !pack_all) {
          kern.fn_row_a(kc, arow + pc, p.a.rs, bblock + jr * kc, crow + jr, p.ldc, nr_valid,
                        p.alpha, beta);
        } else {
          kern.fn(kc, abuf, bblock + jr * kc, crow + jr, p.ldc, rows, nr_valid, p.alpha, beta);
        }
      }
    }
  }
}

// gemm_block for a block with few columns and a row-major A: B packed once for all k, then each
// tile row of A read in place (edge rows, fewer than mr, packed as usual), k blocks as in the
// packed loops so results are identical.
template <typename T>
void gemm_block_row_a(const Problem<T>& p, int64_t kc_max, int64_t m0, int64_t m1, int64_t n0,
                      int64_t n1) {
  const GemmKernel<T>& kern = *p.kernel;
  const int64_t mr = kern.mr, nr = kern.nr, cols = n1 - n0, panels = ceil_div(cols, nr);
  // k in stretches of whole k blocks whose packed B takes at most half of L2.
  const int64_t block_bytes = panels * nr * kc_max * int64_t(sizeof(T));
  const int64_t kq_max = std::max<int64_t>(1, cache_sizes().l2 / 2 / block_bytes) * kc_max;
  T *abuf, *bbuf;
  // B packed ahead (PanelSource::packed()): each stretch's blocks are read where they lie.
  const bool prepacked = p.b->packed(0, std::min(kc_max, p.k), n0, cols, nr) != nullptr;
  t_pack.reserve<T>(mr * kc_max, prepacked ? 0 : panels * nr * std::min(kq_max, p.k), &abuf,
                    &bbuf);
  for (int64_t kq = 0; kq < p.k; kq += kq_max) {
    const int64_t kq_end = std::min(p.k, kq + kq_max);
    if (prepacked) {
      gemm_rows_row_a(p, kc_max, kq, kq_end, m0, m1, n0, n1, static_cast<const T*>(nullptr), abuf);
      continue;
    }
    for (int64_t pc = kq; pc < kq_end; pc += kc_max) {  // at bbuf + (pc - kq) * panels * nr
      p.b->pack(pc, std::min(kc_max, p.k - pc), n0, cols, nr, bbuf + (pc - kq) * panels * nr);
    }
    gemm_rows_row_a(p, kc_max, kq, kq_end, m0, m1, n0, n1, bbuf, abuf);
  }
}

// Computes rows [m0, m1) x columns [n0, n1) of C on the calling thread.
template <typename T>
void gemm_block(const Problem<T>& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const GemmKernel<T>& kern = *p.kernel;
  const int64_t mr = kern.mr, nr = kern.nr;
  const int64_t kc_max = k_block(p.k, p.blocking.kc);
  // Rows up to an eighth past mc stay one A block (a quarter of L2 grown to 0.28), so the B
  // panels are packed right before use or read in place (below) instead of packed as blocks
  // for two A blocks: 256 rows at AVX2 (mc 252) and 512 at AVX-512 (mc 504), the common
  // 256 / 512 output channels.
  const int64_t a_blocks =
      8 * (m1 - m0) <= 9 * p.blocking.mc ? 1 : ceil_div(m1 - m0, p.blocking.mc);
  const int64_t mc_max = round_up(ceil_div(m1 - m0, a_blocks), mr);
  const int64_t nc_max = round_up(ceil_div(n1 - n0, ceil_div(n1 - n0, p.blocking.nc)), nr);
  T *abuf, *bbuf;
  if (n1 - n0 <= p.row_a_cols) return gemm_block_row_a(p, kc_max, m0, m1, n0, n1);
  if (m1 - m0 <= mc_max) {
    // One A block covers every row: pack each B panel right before the micro-kernels use it,
    // so it (and the input it is gathered from) is still in L1. With few rows (convolutions
    // with 64-256 output channels) packing B dominates otherwise: a whole packed B block is
    // larger than L2 and each panel would come back from L3.
    // Panels the source has in memory as rows are read in place (no copy at all).
    t_pack.reserve<T>(mc_max * kc_max, kc_max * nr, &abuf, &bbuf);
    thread_local std::vector<const T*> t_rows, t_next;
    std::vector<const T*>& rows = t_rows;
    std::vector<const T*>& next = t_next;
    rows.resize(size_t(kc_max));
    next.resize(size_t(kc_max));
    const int64_t row_blocks = ceil_div(m1 - m0, mr);
    for (int64_t pc = 0; pc < p.k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, p.k - pc);
      const T beta = pc == 0 ? p.beta : T(1);
      const T* ablock = a_block(p, m0, m1 - m0, pc, kc, abuf);
      bool have_rows = false;  // rows holds this panel's (the previous one's `next`)
      for (int64_t jr = n0; jr < n1; jr += nr) {
        const int64_t cols = std::min(nr, n1 - jr);
        if (cols == nr && (have_rows || p.b->rows(pc, kc, jr, nr, rows.data()))) {
          // The next panel's rows, when also read in place, are prefetched a share after each
          // tile row: they are kc separate streams (one per channel and tap), more than the
          // hardware prefetchers follow, and the input plane is often out of L2.
          const bool prefetch = jr + 2 * nr <= n1 && p.b->rows(pc, kc, jr + nr, nr, next.data());
          const int64_t share = ceil_div(kc, row_blocks);
          for (int64_t ir = 0, blk = 0; ir < m1 - m0; ir += mr, ++blk) {
            kern.fn_indirect_b(kc, ablock + ir * kc, rows.data(), p.c + (m0 + ir) * p.ldc + jr,
                               p.ldc, std::min(mr, m1 - m0 - ir), p.alpha, beta);
            if (prefetch) {
              prefetch_rows(next.data() + std::min(kc, blk * share),
                            std::max<int64_t>(0, std::min(share, kc - blk * share)),
                            nr * int64_t(sizeof(T)));
            }
          }
          if (prefetch) std::swap(t_rows, t_next);  // the next panel's rows, found above
          have_rows = prefetch;
          continue;
        }
        have_rows = false;
        const T* panel = p.b->packed(pc, kc, jr, cols, nr);
        if (!panel) p.b->pack(pc, kc, jr, cols, nr, bbuf), panel = bbuf;
        for (int64_t ir = 0; ir < m1 - m0; ir += mr) {
          kern.fn(kc, ablock + ir * kc, panel, p.c + (m0 + ir) * p.ldc + jr, p.ldc,
                  std::min(mr, m1 - m0 - ir), cols, p.alpha, beta);
        }
      }
    }
    return;
  }
  t_pack.reserve<T>(mc_max * kc_max, kc_max * nc_max, &abuf, &bbuf);
  for (int64_t jc = n0; jc < n1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n1 - jc);
    for (int64_t pc = 0; pc < p.k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, p.k - pc);
      const T beta = pc == 0 ? p.beta : T(1);  // later k blocks accumulate
      const T* bblock = p.b->packed(pc, kc, jc, nc, nr);
      if (!bblock) p.b->pack(pc, kc, jc, nc, nr, bbuf), bblock = bbuf;
      for (int64_t ic = m0; ic < m1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, m1 - ic);
        kernel_block(p, kc, mc, nc, a_block(p, ic, mc, pc, kc, abuf), bblock,
                     p.c + ic * p.ldc + jc, beta);
      }
    }
  }
}

// ---- threading

// Packing one element of A / B costs about this many multiply-adds of compute.
constexpr double kPackACost = 16, kPackBCost = 24;
// Reading A in place (small N) streams it from memory into each part that uses it: splitting
// such a GEMM over M reads A once in all, over N once per part (the weight of a batch-1 1x1 conv
// on a 7x7 image is 4 MiB, its input 0.4 MiB).
constexpr double kReadACost = 8;
// At most this many parts per thread, each with at least kSplitMinFactor times more compute than
// packing.
constexpr int64_t kMaxSplit = 4;
constexpr double kSplitMinFactor = 20;
// Only worth it while a thread's share is short (~0.5 ms) next to the wake-up delay.
constexpr double kSplitMaxWork = double(1 << 25);

struct Partition {
  int64_t tm, tn;  // threads along M and N
};

// Splits C into tm x tn rectangles of whole tiles minimising the slowest thread's estimated time
// (its share of the multiply-adds plus its packing). N is preferred on ties, since each thread
// then packs only its own columns of B (the expensive source in implicit GEMM).
Partition choose_partition(int64_t m, int64_t n, int64_t k, int64_t mr, int64_t nr,
                           const Blocking& blk, int64_t row_a_cols, int threads) {
  const double work = double(m) * double(n) * double(k);
  const int64_t max_parts =
      std::max<int64_t>(1, std::min<double>(threads, std::max(1.0, work / kMinWorkPerThread)));
  const int64_t mb = ceil_div(m, mr), nb = ceil_div(n, nr);
  Partition best{1, 1};
  double best_cost = std::numeric_limits<double>::infinity();
  for (int64_t tm = 1; tm <= std::min(max_parts, mb); ++tm) {
    for (int64_t tn = 1; tm * tn <= max_parts && tn <= nb; ++tn) {
      const double mt = double(ceil_div(mb, tm) * mr), nt = double(ceil_div(nb, tn) * nr);
      // A is repacked per B block, or read in place once per part (gemm_block_row_a)
      const double a_cost = nt <= double(row_a_cols) ? kReadACost
                                                     : kPackACost * std::ceil(nt / double(blk.nc));
      const double cost =
          (mt * nt + a_cost * mt + kPackBCost * nt) * double(k) * (1 + 1e-9 * tm);
      if (cost < best_cost) best_cost = cost, best = {tm, tn};
    }
  }
  if (best.tm * best.tn < 2 || work / double(best.tm * best.tn) > kSplitMaxWork) return best;
  // Waking a pool thread takes tens of microseconds on some systems (VMs); the caller starts at
  // once. Cutting the threads' shares into a few smaller parts, handed out dynamically, lets the
  // early threads absorb that delay, where the extra packing of each new part is cheap: A is
  // packed once per column part, B once per row part.
  for (int64_t f = kMaxSplit; f > 1; --f) {
    const int64_t nt = ceil_div(nb, best.tn * f) * nr, mt = ceil_div(mb, best.tm * f) * mr;
    if (best.tn * f <= nb && double(nt) >= kSplitMinFactor * kPackACost)
      return {best.tm, best.tn * f};
    if (best.tm * f <= mb && double(mt) >= kSplitMinFactor * kPackBCost)
      return {best.tm * f, best.tn};
  }
  return best;
}


}  // namespace

// ---- public entry points

template <typename T>
Blocking blocking() {
  static const Blocking b =
      compute_blocking<T>(cache_sizes(), gemm_kernel<T>().mr, gemm_kernel<T>().nr);
  return b;
}

template <typename T>
void DenseSource<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                          T* dst) const {
  const GemmKernel<T>& kern = gemm_kernel<T>();
  // Panel by panel: each destination panel stays in L1 while it fills (walking whole rows across
  // many panels instead thrashes the L1 sets, as panels lie a power of two apart). A panel's
  // lines are B's columns: element (j, kk) at src[j * cs + kk * rs].
  for (int64_t p = 0; p < nc; p += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p);
    const T* src = b_.data + k0 * b_.rs + (n0 + p) * b_.cs;
    if (nr == kern.nr) {  // the tile's own packer, with its unit-stride fast paths
      kern.pack_b(cols, kc, src, b_.cs, b_.rs, dst);
      continue;
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
      T* d = dst + kk * nr;
      for (int64_t j = 0; j < cols; ++j) d[j] = src[kk * b_.rs + j * b_.cs];
      std::fill(d + cols, d + nr, T(0));
    }
  }
}

// Splits the problem over the threads (choose_partition) and runs its blocks.
template <typename T>
void run_problem(const Problem<T>& p) {
  const GemmKernel<T>& kern = *p.kernel;
  const int64_t m = p.m, n = p.n, k = p.k;
  const Partition part =
      choose_partition(m, n, k, kern.mr, kern.nr, p.blocking, p.row_a_cols, get_num_threads());
  const int64_t parts = part.tm * part.tn;
  if (parts == 1) return gemm_block(p, 0, m, 0, n);

  // Part boundaries fall on tile edges, whole tiles spread evenly.
  const int64_t mb = ceil_div(m, kern.mr), nb = ceil_div(n, kern.nr);
  parallel_for(parts, 1, [&](int64_t begin, int64_t end) {
    // The whole range in one call means the pool ran us inline (nested or busy): one block.
    if (end - begin == parts) return gemm_block(p, 0, m, 0, n);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t / part.tn, tj = t % part.tn;
      const int64_t m0 = mb * ti / part.tm * kern.mr, m1 = mb * (ti + 1) / part.tm * kern.mr;
      const int64_t n0 = nb * tj / part.tn * kern.nr, n1 = nb * (tj + 1) / part.tn * kern.nr;
      if (m0 < m1 && n0 < n1) gemm_block(p, m0, std::min(m1, m), n0, std::min(n1, n));
    }
  });
}


template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a, const PanelSource<T>& b, T beta,
          T* c, int64_t ldc) {
  check_sizes(m, n, k, ldc);
  check_extent<T>(m, k, a.rs, a.cs, "A");
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == T(0)) return scale_c(m, n, beta, c, ldc);  // BLAS: A, B not read

  const GemmKernel<T>& kern = gemm_kernel<T>();
  run_problem(Problem<T>{m, n, k, alpha, beta, a, &b, c, ldc, &kern, blocking<T>(),
                         row_a_columns(a, kern.nr)});
}

template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, const PanelSource<T>& a_t,
          const PanelSource<T>& b, T beta, T* c, int64_t ldc) {
  check_sizes(m, n, k, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == T(0)) return scale_c(m, n, beta, c, ldc);  // BLAS: A, B not read
  const GemmKernel<T>& kern = gemm_kernel<T>();
  run_problem(Problem<T>{m, n, k, alpha, beta, MatrixRef<T>{nullptr, 0, 0}, &b, c, ldc, &kern,
                         blocking<T>(), 0, &a_t});
}

template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a, MatrixRef<T> b, T beta, T* c,
          int64_t ldc) {
  check_extent<T>(k, n, b.rs, b.cs, "B");
  gemm(m, n, k, alpha, a, DenseSource<T>(b), beta, c, ldc);
}

template <typename T>
int64_t panel_width() {
  return gemm_kernel<T>().nr;
}

template <typename T>
bool reads_a_in_place(int64_t lda, int64_t n) {
  return n <= row_a_columns(MatrixRef<T>{nullptr, lda, 1}, gemm_kernel<T>().nr) &&
         !a_rows_alias<T>(lda);
}

template <typename T>
bool transpose_fills_better(int64_t n, double margin) {
  if (n <= 0) return false;
  const GemmKernel<T>& kern = gemm_kernel<T>();
  const double as_columns = double(n) / double(round_up(n, kern.nr));
  const double as_rows = double(n) / double(round_up(n, kern.row_step));
  return as_rows >= as_columns + margin;
}

std::string kernel_names() {
  return std::string(gemm_kernel<float>().name) + ", " + gemm_kernel<double>().name;
}

#define FASTCONV_INSTANTIATE_GEMM(T)                                                               \
  template class DenseSource<T>;                                                                   \
  template Blocking blocking<T>();                                                                 \
  template void gemm<T>(int64_t, int64_t, int64_t, T, MatrixRef<T>, const PanelSource<T>&, T, T*,  \
                        int64_t);                                                                  \
  template void gemm<T>(int64_t, int64_t, int64_t, T, MatrixRef<T>, MatrixRef<T>, T, T*, int64_t); \
  template void gemm<T>(int64_t, int64_t, int64_t, T, const PanelSource<T>&, const PanelSource<T>&, \
                        T, T*, int64_t);                                                   \
  template void run_problem<T>(const Problem<T>&);                                                  \
  template int64_t panel_width<T>();                                                               \
  template bool transpose_fills_better<T>(int64_t, double);                                        \
  template bool reads_a_in_place<T>(int64_t, int64_t);

FASTCONV_INSTANTIATE_GEMM(float)
FASTCONV_INSTANTIATE_GEMM(double)
#undef FASTCONV_INSTANTIATE_GEMM

}  // namespace fastconv::gemm
