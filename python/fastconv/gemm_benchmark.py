"""GEMM benchmark: fastconv's packed GEMM engine against numpy.matmul on the same arrays.

Times a square SGEMM and four convolution-shaped ones (im2col GEMMs of ResNet-style layers:
M output channels x N output pixels x K = C * kernel taps), interleaving fastconv and NumPy in one
process and reporting medians. NumPy's BLAS is limited to the same thread count when its thread
pool can be reached (threadpoolctl, or OpenBLAS directly). For a fair comparison run with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset: they can force OpenBLAS onto a slower kernel.

    python -m fastconv.gemm_benchmark --threads 1,2 --dtype both
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import _C
from ._runtime import get_num_threads, set_num_threads

# (M, N, K): C (M x N) = A (M x K) @ B (K x N).
SHAPES: tuple[tuple[int, int, int], ...] = (
    (1024, 1024, 1024),
    (64, 3136, 576),  # 3x3 conv, 64 -> 64 channels, 56x56
    (256, 784, 1152),  # 3x3 conv, 128 -> 256 channels, 28x28
    (512, 196, 2304),  # 3x3 conv, 256 -> 512 channels, 14x14
    (128, 3136, 64),  # 1x1 conv, 64 -> 128 channels, 56x56
)
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ROUNDS = 3  # blocks per library and shape
BLOCK_S = 0.15  # timed seconds per block
MIN_CALLS = 5  # timed calls per block at least
WARM_S = 0.02  # untimed calls before each block
SETTLE_S = 0.05  # quiet before each block when threaded (OpenBLAS's spinning threads time out)


# ---- NumPy's BLAS thread count

_SET_THREADS_SYMBOLS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GET_THREADS_SYMBOLS = tuple(s.replace("set_", "get_") for s in _SET_THREADS_SYMBOLS)


def _openblas_handles() -> list[tuple[Any, Any]]:
    """(set, get) function pairs of every OpenBLAS this process has loaded (Linux only)."""
    pairs = []
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return pairs
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in zip(_SET_THREADS_SYMBOLS, _GET_THREADS_SYMBOLS):
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                pairs.append((getattr(lib, set_name), getattr(lib, get_name)))
                break
    return pairs


@contextlib.contextmanager
def numpy_blas_threads(threads: int) -> Iterator[str]:
    """Limit NumPy's BLAS to `threads` inside the block; yields how (or that it could not)."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS library is loaded
    try:
        import threadpoolctl  # type: ignore[import-not-found]
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
            yield f"{threads} (threadpoolctl)"
        return
    handles = _openblas_handles()
    if not handles:
        yield "not controlled (no threadpoolctl, no OpenBLAS found)"
        return
    before = [get() for _, get in handles]
    for set_threads, _ in handles:
        set_threads(threads)
    try:
        yield f"{threads} (OpenBLAS)"
    finally:
        for (set_threads, _), n in zip(handles, before):
            set_threads(n)


# ---- timing


def _time_blocks(
    calls: Sequence[Any], rounds: int, block_s: float, min_calls: int, settle_s: float
) -> list[list[float]]:
    """Seconds per call for each callable, timed in alternating blocks: `rounds` rounds, each
    giving every callable `settle_s` of quiet, WARM_S of untimed calls, then a block of timed
    calls (at least `min_calls`, about `block_s` long).

    Blocks rather than single calls alternate, with quiet and warm-up before each, so both
    libraries are timed in their steady state: OpenBLAS's idle threads keep spinning on the cores
    for a while after each call and would slow the next library's threads, and a sleeping pool
    (fastconv's) needs a few calls before the scheduler spreads its threads over the cores again.
    """
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            if settle_s:
                time.sleep(settle_s)
            start = time.perf_counter()
            call()
            while time.perf_counter() - start < WARM_S:
                call()
            start = time.perf_counter()
            while len(times[i]) % min_calls or time.perf_counter() - start < block_s:
                t0 = time.perf_counter()
                call()
                times[i].append(time.perf_counter() - t0)
    return times


def run_gemm_bench(
    threads: int,
    dtype: str = "float32",
    shapes=SHAPES,
    rounds: int = ROUNDS,
    block_s: float = BLOCK_S,
    min_calls: int = MIN_CALLS,
    seed: int = 0,
) -> list[dict]:
    """Time fastconv's GEMM and numpy.matmul on `shapes` with `threads` threads each, in `rounds`
    alternating blocks of about `block_s` seconds (at least `min_calls` calls) per library.

    One row per shape: shape (M, N, K), fastconv_ms and numpy_ms (medians), gflops (fastconv),
    numpy_gflops, pct_peak (fastconv's share of peak_gflops * threads, the measured single-core
    FMA peak), ratio (numpy time / fastconv time: above 1 means fastconv is faster), max_rel_err
    (fastconv against numpy, relative to max |C|), repeats (timed calls of each library) and
    numpy_threads (how NumPy was limited).
    """
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if rounds < 1 or min_calls < 1 or block_s < 0:
        raise ValueError(
            f"need rounds >= 1, min_calls >= 1, block_s >= 0; got {rounds}, {min_calls}, {block_s}"
        )
    peak = _C.peak_gflops(dtype) * threads
    rng = np.random.default_rng(seed)
    rows = []
    saved = get_num_threads()
    set_num_threads(threads)
    try:
        with numpy_blas_threads(threads) as numpy_threads:
            for m, n, k in shapes:
                a = rng.uniform(-1, 1, (m, k)).astype(dtype)
                b = rng.uniform(-1, 1, (k, n)).astype(dtype)
                c_fc = np.empty((m, n), dtype)
                c_np = np.empty((m, n), dtype)
                calls = (lambda: _C.gemm(a, b, c_fc), lambda: np.matmul(a, b, out=c_np))
                settle = SETTLE_S if threads > 1 else 0.0
                times = _time_blocks(calls, rounds, block_s, min_calls, settle)
                t_fc, t_np = (statistics.median(t) for t in times)
                n_rep = min(map(len, times))
                flops = 2.0 * m * n * k
                scale = float(np.max(np.abs(c_np))) or 1.0
                rows.append(
                    {
                        "shape": (m, n, k),
                        "dtype": dtype,
                        "threads": threads,
                        "fastconv_ms": t_fc * 1e3,
                        "gflops": flops / t_fc / 1e9,
                        "pct_peak": 100.0 * flops / t_fc / 1e9 / peak,
                        "numpy_ms": t_np * 1e3,
                        "numpy_gflops": flops / t_np / 1e9,
                        "ratio": t_np / t_fc,
                        "max_rel_err": float(np.max(np.abs(c_fc - c_np))) / scale,
                        "repeats": n_rep,
                        "numpy_threads": numpy_threads,
                    }
                )
    finally:
        set_num_threads(saved)
    return rows


# ---- command line


def format_table(rows: Sequence[dict]) -> str:
    head = (
        f"{'shape (MxNxK)':>16} {'thr':>3} {'fastconv ms':>11} {'GFLOP/s':>8} {'% peak':>6} "
        f"{'numpy ms':>9} {'GFLOP/s':>8} {'np/fc':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        lines.append(
            f"{shape:>16} {r['threads']:>3} {r['fastconv_ms']:>11.3f} {r['gflops']:>8.1f} "
            f"{r['pct_peak']:>6.1f} {r['numpy_ms']:>9.3f} {r['numpy_gflops']:>8.1f} "
            f"{r['ratio']:>6.2f}"
        )
    return "\n".join(lines)


def describe_machine(dtypes: Sequence[str]) -> str:
    info = _C.cpu_info()
    lines = [
        f"cpu: {info['brand']} ({info['vendor']}), active ISA {info['active_isa']}",
        f"kernels: {_C.gemm_kernels()}",
    ]
    clock = _C.core_clock_ghz()
    for dtype in dtypes:
        blk, peak = _C.gemm_blocking(dtype), _C.peak_gflops(dtype)
        per_cycle = ""
        if clock > 0:
            lanes = 512 if info["active_isa"] == "avx512" else 256
            fma_width = lanes // (32 if dtype == "float32" else 64)
            per_cycle = (
                f" = {peak / clock:.1f} flop/cycle at {clock:.2f} GHz"
                f" ({peak / clock / 2 / fma_width:.2f} {lanes}-bit FMA/cycle)"
                if info["active_isa"] != "scalar"
                else f" = {peak / clock:.1f} flop/cycle"
            )
        lines.append(
            f"{dtype}: tile {blk['mr']}x{blk['nr']}, mc={blk['mc']} kc={blk['kc']} "
            f"nc={blk['nc']}; single-core peak {peak:.1f} GFLOP/s{per_cycle}"
        )
    set_env = [v for v in OPENBLAS_ENV if v in os.environ]
    if set_env:
        lines.append(
            f"note: {', '.join(set_env)} set; numpy/OpenBLAS may be slowed "
            f"(run with: env {' '.join('-u ' + v for v in set_env)} ...)"
        )
    else:
        lines.append("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: unset")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastconv.gemm_benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--threads",
        default=f"1,{os.cpu_count() or 1}",
        help="comma-separated thread counts (default: 1 and all cores)",
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64", "both"))
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help=f"alternating timed blocks per shape and library (default {ROUNDS})",
    )
    parser.add_argument(
        "--block-seconds",
        type=float,
        default=BLOCK_S,
        help=f"length of one timed block (default {BLOCK_S})",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.block_seconds < 0:
        parser.error("--rounds must be >= 1 and --block-seconds >= 0")
    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not threads or min(threads) < 1:
        parser.error("--threads must list counts >= 1")
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    print(describe_machine(dtypes))
    for dtype in dtypes:
        for t in threads:
            rows = run_gemm_bench(t, dtype, rounds=args.rounds, block_s=args.block_seconds)
            calls = min(r["repeats"] for r in rows)
            print(
                f"\n{dtype.replace('float', 'f')} GEMM, {t} thread{'s' if t > 1 else ''} "
                f"(numpy threads: {rows[0]['numpy_threads']}), median of {calls}+ calls in "
                f"{args.rounds} alternating blocks per library"
            )
            print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
