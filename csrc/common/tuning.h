// The tuning knobs set through environment variables, read once per process.
#pragma once
#include <cstdint>
#include <string>

namespace fastconv {

// Each field is read from its variable on the first call to tuning() and kept for the life of
// the process: setting a variable later (os.environ in Python) changes nothing, so run code that
// needs another value in a fresh process. Unset or empty variables give the defaults.
// FASTCONV_ISA (isa/cpu_features.cc) and FASTCONV_NUM_THREADS (common/thread_pool.cc) are read
// once in their own modules.
struct Tuning {
  // FASTCONV_WINOGRAD_TILE: the output tile m every Winograd pass uses where that tile exists:
  // F(m,3) / F(mxm,3x3) for m = 2, 4, 6, F(m,2) / F(mxm,2x2) for m = 2, 3, 4 (2, 3, 4 or 6; a
  // kernel without that tile keeps its default); "4x3" or "3x4" (winograd_tile_h x
  // winograd_tile), F(4x3,2x2) / F(3x4,2x2), 2-D 2-tap kernels only. 0 (the default) lets
  // algo/winograd_tiles.cc choose per layer (default_tile).
  int winograd_tile = 0;
  int winograd_tile_h = 0;  // rows of a rectangular tile; 0: square (m x m, or m in 1-D)
  // Set when FASTCONV_WINOGRAD_TILE holds anything else: the message Winograd raises as
  // InvalidArgument (Python ValueError) when it is planned or run. Other algorithms ignore it.
  std::string winograd_tile_error;
  // FASTCONV_WINOGRAD_BLOCK_BYTES: bytes of transform-domain data per Winograd block, an
  // integer >= 1. 0 (the default; also for values that do not parse to a positive integer) uses
  // the per-schedule budgets of algo/winograd.cc (block_budget_bytes); it also sizes the chunks
  // of tiles of the 1x7 / 7x1 weight gradient (algo/winograd_line.cc).
  int64_t winograd_block_bytes = 0;
  // FASTCONV_WORKSPACE_LIMIT: most bytes im2col's patch-matrix chunk may take; a positive
  // number with an optional K, M or G suffix (powers of 1024; KB / KiB forms too), raised to at
  // least 4096. Default 256 MiB, also for values that are not positive or do not parse.
  int64_t workspace_limit_bytes = int64_t(256) << 20;
  // FASTCONV_L2_BYTES: the per-core L2 size to use instead of the detected one (VMs may report
  // the host's or a made-up size), the same format, raised to at least 16 KiB; 0 (the default,
  // also for values that are not positive or do not parse) keeps the detected size
  // (gemm/cache_sizes.h). Everything that sizes blocks by L2 reads it: the GEMM's A blocks and
  // row-A k stretches, the per-tap path's weight blocks, the phase bands' height, and auto's
  // rule (python/fastconv/_cpu_shape.py, _small_l2).
  int64_t l2_bytes = 0;
  // FASTCONV_SPIN_US: microseconds a pool thread polls for the next job before it sleeps (and
  // the caller polls for joined workers before it sleeps), an integer 0-1000000. Default 2000:
  // on a 2-vCPU VM a worker that slept between two calls came back late or on the caller's CPU,
  // so half the calls of a batch-1 layer ran at one thread's speed (resnet50.res3.1x1 forward
  // median 1.23 ms with 50 us, 0.54 with 2 ms, best 0.51). OpenMP runtimes spin similarly.
  int64_t spin_us = 2000;
  // FASTCONV_PIN_THREADS: whether the pool's workers are bound to CPUs. "auto" (the default): when
  // the pool has exactly as many threads as the CPUs this process may run on, worker i is bound to
  // the (i + 1)-th of them, the caller's thread left free. "1": always (CPUs reused round-robin);
  // "0": never. On the 2-vCPU VM, with PyTorch calls between fastconv's, a woken worker was
  // placed on the caller's CPU and the two shared it for whole rounds of calls: Inception's
  // mixed5b.5x5 forward p50 / p90 1.22-1.31 / 4.3-4.6 ms unbound, 0.71-0.77 / 1.2-1.3 bound
  // (best 0.59). The caller can still land on a worker's CPU: each job then first moves that
  // worker to the CPU left free (thread_pool.cc, follow_caller).
  int pin_threads = -1;  // -1 auto, 0 never, 1 always
};

// The knobs, read from the environment on first use.
const Tuning& tuning();

}  // namespace fastconv
