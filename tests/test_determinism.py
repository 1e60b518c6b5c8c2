"""Determinism: every algorithm gives bitwise-identical results run to run and for any thread
count (docs/api-contract.md, "Determinism").

Each case runs every pass at 1, 2, 3 and 4 threads (more than this machine's cores is fine: the
thread count shapes the schedules, not the answer), twice each, and compares the bytes of the
results with those of the first run at one thread. The shapes are picked so that the thread
count changes the schedules: the GEMM's M/N split, im2col's column tiles (one of the cases
below once summed a grad_x element's taps in another order at 3 threads than at 1), Winograd's
tile blocks, the FFT's lane chunks, direct's scratch slots, the pooling row bands.
"""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
from conftest import DTYPES, algorithm_applies, rand

THREADS = (1, 2, 3, 4)
CONV_ALGOS = ("direct", "im2col", "implicit_gemm", "winograd", "fft", "depthwise", "auto")
PASSES = ("forward", "backward_data", "backward_weight")

# (x shape, w shape, keyword arguments)
CONV_CASES = {
    "2d-3x3": ((2, 16, 20, 20), (24, 16, 3, 3), dict(padding=1)),
    # im2col backward data: 3-4 threads cut the column tiles into bands (float64)
    "2d-3x3-wide": ((1, 64, 30, 30), (64, 64, 3, 3), dict(padding=1)),
    "2d-5x5-stride2": ((4, 8, 33, 33), (8, 8, 5, 5), dict(stride=2, padding=2)),
    "2d-depthwise": ((2, 32, 16, 16), (32, 1, 3, 3), dict(padding=1, groups=32)),
    "2d-grouped": ((2, 16, 12, 12), (16, 4, 3, 3), dict(padding=1, groups=4)),
    "2d-1x1": ((1, 256, 7, 7), (256, 256, 1, 1), {}),
    "1d-long-kernel": ((3, 3, 200), (8, 3, 17), dict(padding=8)),
    "3d": ((1, 4, 8, 10, 10), (6, 4, 3, 3, 3), dict(padding=1)),
    "2d-batch": ((8, 64, 12, 12), (128, 64, 3, 3), dict(padding=1)),
    "1d-depthwise-multiplier": ((2, 8, 500), (16, 1, 7), dict(padding=3, groups=8, stride=2)),
}


def _serves_a_pass(algo, case):
    _, w_shape, kw = CONV_CASES[case]
    return algo == "auto" or any(algorithm_applies(algo, p, w_shape, kw) for p in PASSES)


ALGO_CASES = [(a, c) for a in CONV_ALGOS for c in sorted(CONV_CASES) if _serves_a_pass(a, c)]


def _call(algo, pass_, x, w, gy, kw):
    if pass_ == "forward":
        return fastconv.conv(x, w, algo=algo, **kw)
    if pass_ == "backward_data":
        return fastconv.conv_backward_data(gy, w, x.shape, algo=algo, **kw)
    return fastconv.conv_backward_weight(x, gy, w.shape, algo=algo, **kw)


def assert_bitwise_stable(run, what):
    """run() at each thread count, twice: bitwise the result of the first run at one thread."""
    first = None
    for threads in THREADS:
        fastconv.set_num_threads(threads)
        for attempt in range(2):
            got = run()
            results = got if isinstance(got, tuple) else (got,)
            results = tuple(np.ascontiguousarray(r) for r in results)
            if first is None:
                first = results
                continue
            for r, f in zip(results, first):
                if r.tobytes() != f.tobytes():
                    diff = np.max(np.abs(r.astype(np.float64) - f.astype(np.float64)))
                    pytest.fail(
                        f"{what}: {threads} threads (run {attempt + 1}) differs from 1 thread "
                        f"(max |diff| {diff:.3g})"
                    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo, case", ALGO_CASES)
def test_conv_bitwise_across_threads(algo, case, dtype, rng, restore_threads):
    x_shape, w_shape, kw = CONV_CASES[case]
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    y_shape = fastconv.conv(x, w, algo="reference", **kw).shape
    gy = rand(rng, y_shape, dtype)
    for pass_ in PASSES:
        if algo != "auto" and not algorithm_applies(algo, pass_, w_shape, kw):
            continue
        assert_bitwise_stable(
            lambda: _call(algo, pass_, x, w, gy, kw), f"{algo} {pass_} {case} {dtype.__name__}"
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose_bitwise_across_threads(dtype, rng, restore_threads):
    x = rand(rng, (2, 16, 9, 9), dtype)
    w = rand(rng, (16, 8, 4, 4), dtype)
    kw = dict(stride=2, padding=1)
    for algo in ("direct", "im2col", "implicit_gemm", "fft"):
        assert_bitwise_stable(
            lambda: fastconv.conv_transpose(x, w, algo=algo, **kw), f"conv_transpose {algo}"
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_separable_bitwise_across_threads(dtype, rng, restore_threads):
    # conv(algo="separable") on a rank-1 kernel, and separable_conv's own passes
    x = rand(rng, (2, 8, 24, 24), dtype)
    f0, f1 = rand(rng, (12, 8, 5), dtype), rand(rng, (12, 8, 3), dtype)
    w = np.einsum("kci,kcj->kcij", f0, f1).astype(dtype)
    kw = dict(padding=(2, 1))
    gy = rand(rng, fastconv.conv(x, w, **kw).shape, dtype)
    checks = {
        "conv separable forward": lambda: fastconv.conv(x, w, algo="separable", **kw),
        "conv separable backward_data": lambda: fastconv.conv_backward_data(
            gy, w, x.shape, algo="separable", **kw
        ),
        "separable_conv": lambda: fastconv.separable_conv(x, [f0, f1], **kw),
        "separable_conv_backward_data": lambda: fastconv.separable_conv_backward_data(
            gy, [f0, f1], x.shape, **kw
        ),
        "separable_conv_backward_factors": lambda: tuple(
            fastconv.separable_conv_backward_factors(x, gy, [f0, f1], **kw)
        ),
    }
    # a depthwise 17x17 chain: the fused passes, the factor sums per (pair, image) included
    xd = rand(rng, (3, 4, 40, 40), dtype)
    fd = [rand(rng, (4, 1, 17), dtype), rand(rng, (4, 1, 17), dtype)]
    kd = dict(padding="same", groups=4)
    gd = rand(rng, fastconv.separable_conv(xd, fd, **kd).shape, dtype)
    checks["fused separable_conv_backward_factors"] = lambda: tuple(
        fastconv.separable_conv_backward_factors(xd, gd, fd, **kd)
    )
    checks["fused separable_conv"] = lambda: fastconv.separable_conv(xd, fd, **kd)
    for what, run in checks.items():
        assert_bitwise_stable(run, f"{what} {dtype.__name__}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_bitwise_across_threads(dtype, rng, restore_threads):
    x = rand(rng, (3, 10, 23, 29), dtype)
    xp = np.abs(x) + 0.1
    kw = dict(kernel_size=3, stride=2, padding=1)
    gy = rand(rng, fastconv.max_pool(x, **kw).shape, dtype)
    checks = {
        "max_pool": lambda: fastconv.max_pool(x, return_indices=True, **kw),
        "max_pool_backward": lambda: fastconv.max_pool_backward(gy, x, **kw),
        "avg_pool": lambda: fastconv.avg_pool(x, **kw),
        "avg_pool_backward": lambda: fastconv.avg_pool_backward(gy, x.shape, **kw),
        "lp_pool": lambda: fastconv.lp_pool(xp, 2.0, 3, stride=2),
        "lp_pool_backward": lambda: fastconv.lp_pool_backward(
            rand(np.random.default_rng(1), fastconv.lp_pool(xp, 2.0, 3, stride=2).shape, dtype),
            xp,
            2.0,
            3,
            stride=2,
        ),
        "global_avg_pool": lambda: fastconv.global_avg_pool(x),
        "global_max_pool": lambda: fastconv.global_max_pool(x),
        "stochastic_pool": lambda: fastconv.stochastic_pool(xp, 2, seed=7, return_indices=True),
        "upsample_linear_backward": lambda: fastconv.upsample_linear_backward(
            rand(np.random.default_rng(2), (3, 10, 46, 58), dtype), x.shape, 2
        ),
        "blur_pool": lambda: fastconv.blur_pool(x),
    }
    for what, run in checks.items():
        assert_bitwise_stable(run, f"{what} {dtype.__name__}")


def test_repeated_runs_bitwise_at_default_threads(rng):
    """Run to run at the default thread count, many times (dynamic chunk hand-out must not
    change a result)."""
    x, w = rand(rng, (2, 32, 28, 28), np.float32), rand(rng, (32, 32, 3, 3), np.float32)
    gy = rand(rng, (2, 32, 28, 28), np.float32)
    for algo in ("direct", "im2col", "implicit_gemm", "winograd", "fft"):
        for pass_ in PASSES:
            first = _call(algo, pass_, x, w, gy, dict(padding=1)).tobytes()
            for _ in range(5):
                got = _call(algo, pass_, x, w, gy, dict(padding=1)).tobytes()
                assert got == first, f"{algo} {pass_} changed between runs"
