"""Public API surface: algorithms(), explain(), threads, __version__, the `fastconv info` CLI."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import call_or_refused, rand, run_python

OPS = ["conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool"]
PUBLIC = [
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_backward_data",
    "conv_backward_weight",
    "conv_backward_bias",
    "conv_transpose",
    "conv_transpose_backward_data",
    "conv_transpose_backward_weight",
    "max_pool",
    "avg_pool",
    "lp_pool",
    "global_avg_pool",
    "global_max_pool",
    "max_unpool",
    "max_pool_backward",
    "avg_pool_backward",
    "lp_pool_backward",
    "algorithms",
    "explain",
    "set_num_threads",
    "get_num_threads",
]


def test_public_names_exist_and_are_exported():
    for name in PUBLIC:
        assert callable(getattr(fastconv, name)), name
        assert name in fastconv.__all__, name


def test_version():
    assert isinstance(fastconv.__version__, str) and fastconv.__version__
    assert fastconv.__version__ == importlib.metadata.version("fastconv")


@pytest.mark.parametrize("op", OPS)
def test_algorithms_lists_reference_for_every_op(op):
    algos = fastconv.algorithms(op)
    assert isinstance(algos, list) and all(isinstance(a, str) for a in algos)
    assert "reference" in algos
    assert len(set(algos)) == len(algos)
    assert fastconv.algorithms(op, device="cpu") == algos


def test_algorithms_default_is_conv_on_cpu():
    assert fastconv.algorithms() == fastconv.algorithms("conv", "cpu")


@pytest.mark.parametrize("pass_", ["forward", "backward_data", "backward_weight"])
def test_explain_with_arrays(pass_):
    x, w = np.ones((2, 3, 9, 8)), np.ones((4, 3, 3, 3))
    e = fastconv.explain(x, w, stride=1, padding=1, dilation=1, groups=1, mode="cross", pass_=pass_)
    assert isinstance(e, fastconv.Explanation)
    assert e.algo in fastconv.algorithms()
    assert e.op == "conv" and e.pass_ == pass_
    assert e.algo in e.candidates
    assert isinstance(e.workspace_bytes, int) and e.workspace_bytes >= 0
    assert isinstance(e.reason, str) and e.reason
    text = str(e)
    assert text.strip() and e.algo in text


def test_explain_with_shapes_and_forced_algo():
    e = fastconv.explain((1, 8, 12, 12), (8, 1, 3, 3), padding="same", groups=8)
    assert e.algo in fastconv.algorithms()
    forced = fastconv.explain(
        (1, 8, 12, 12), (8, 1, 3, 3), padding="same", groups=8, algo="reference"
    )
    assert forced.algo == "reference"


def test_explain_conv_transpose():
    e = fastconv.explain((1, 4, 5, 5), (4, 3, 3, 3), stride=2, op="conv_transpose")
    assert e.algo in fastconv.algorithms("conv_transpose") and str(e)


def test_auto_and_every_listed_algorithm_agree(rng):
    x, w = rand(rng, (2, 4, 9, 8)), rand(rng, (6, 4, 3, 3))
    want = ref.conv(x, w, padding=1)
    for algo in ["auto"] + fastconv.algorithms():
        y = call_or_refused(
            algo, "forward", w.shape, {}, lambda: fastconv.conv(x, w, padding=1, algo=algo)
        )
        if y is None:
            continue
        np.testing.assert_allclose(
            y,
            want,
            rtol=0,
            atol=1e-10 * np.abs(want).max(),
            err_msg=algo,
        )


def test_num_threads_round_trip(restore_threads):
    for n in (1, 2, 3, 1):
        fastconv.set_num_threads(n)
        assert fastconv.get_num_threads() == n


def test_results_do_not_depend_on_thread_count(restore_threads, rng):
    x, w = rand(rng, (3, 8, 12, 11), np.float32), rand(rng, (8, 4, 3, 3), np.float32)
    gy = rand(rng, (3, 8, 6, 6), np.float32)
    runs = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        runs.append(
            (
                fastconv.conv(x, w, stride=2, padding=1, groups=2),
                fastconv.conv_backward_data(gy, w, x.shape, stride=2, padding=1, groups=2),
                fastconv.conv_backward_weight(x, gy, w.shape, stride=2, padding=1, groups=2),
                fastconv.max_pool(x, 3, stride=2, padding=1),
                fastconv.avg_pool(x, 3, stride=2, padding=1),
            )
        )
    (y1, gx1, gw1, m1, a1), (y2, gx2, gw2, m2, a2) = runs
    # every output element is computed by one thread: bitwise identical
    for one, two in ((y1, y2), (gx1, gx2), (m1, m2), (a1, a2)):
        np.testing.assert_array_equal(one, two)
    # a weight gradient may split its reduction across threads: equal to float32 rounding
    np.testing.assert_allclose(gw1, gw2, rtol=0, atol=1e-5 * np.abs(gw1).max())


def test_num_threads_environment_variable_and_default():
    code = "import fastconv; print(fastconv.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k != "FASTCONV_NUM_THREADS"}
    proc = run_python(code, {"FASTCONV_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == 1
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    cores = {
        os.cpu_count(),
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    assert int(proc.stdout) in cores


def test_cli_info():
    proc = subprocess.run(
        [sys.executable, "-m", "fastconv", "info"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "threads" in proc.stdout.lower()
    assert fastconv.__version__ in proc.stdout
    caches = fastconv.info()["caches"]
    assert f"L2 {caches['l2'] >> 10} KiB" in proc.stdout


def test_l2_bytes_override():
    """FASTCONV_L2_BYTES replaces the detected per-core L2 (read once per process): info() and
    `fastconv info` report it, and the GEMM's A block (mc: a quarter of L2) follows it. K / M / G
    suffixes (KB / KiB forms too); small positive values are raised to 16 KiB, values past int64
    saturate; anything else (zero, negative, junk, another suffix) keeps the detected size."""
    snippet = (
        "import json, fastconv; from fastconv import _C; "
        "print(json.dumps([fastconv.info()['caches'], _C.gemm_blocking('float32')]))"
    )

    def run(value):
        env = {k: v for k, v in os.environ.items() if k != "FASTCONV_L2_BYTES"}
        if value is not None:
            env["FASTCONV_L2_BYTES"] = value
        proc = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    detected = run(None)[0]
    small, small_blk = run("256K")
    big, big_blk = run("4M")
    assert small["l2"] == 256 << 10 and big["l2"] == 4 << 20
    assert small["l1d"] == big["l1d"] == detected["l1d"]
    assert small_blk["kc"] == big_blk["kc"] and small_blk["mc"] < big_blk["mc"]
    for value, want in (("512KiB", 512 << 10), ("1MB", 1 << 20), ("0.5", 16 << 10)):
        assert run(value)[0]["l2"] == want, value
    huge, huge_blk = run("1e30")
    assert huge["l2"] == 2**63 - 1 and huge_blk["mc"] % huge_blk["mr"] == 0
    for ignored in ("0", "-5", "junk", "512X", "512 K", "nan"):
        assert run(ignored)[0] == detected, ignored


def test_auto_runs_grouped_layers_direct_and_long_short_1d_kernels_on_implicit_gemm():
    """_cpu_rule.cpu_rule: up to 16 channels per group run direct, strided backward data too
    (one stride-1 correlation per input phase), beyond that a GEMM; a long 1-D signal with a
    2-tap kernel runs implicit GEMM, every pass (im2col's column chunks scale poorly)."""
    assert (
        fastconv.explain((1, 512, 14, 14), (512, 16, 3, 3), padding=1, groups=32).algo == "direct"
    )
    kw = dict(padding=1, groups=32, stride=2, pass_="backward_data")
    assert fastconv.explain((1, 256, 28, 28), (256, 8, 3, 3), **kw).algo == "direct"
    assert fastconv.explain((1, 128, 28, 28), (128, 4, 3, 3), **kw).algo == "direct"
    assert fastconv.explain((1, 1024, 28, 28), (1024, 32, 3, 3), **kw).algo != "direct"
    # 2-4 input channels, stride-1 forward: direct on one image, a GEMM on batches of small
    # ones, never Winograd or the FFT (their transforms cost more than they save)
    assert fastconv.explain((1, 3, 256, 256), (64, 3, 3, 3), padding=1).algo == "direct"
    assert fastconv.explain((1, 3, 64, 64), (16, 3, 5, 5), padding=2).algo == "direct"
    assert fastconv.explain((8, 3, 32, 32), (64, 3, 3, 3), padding=1).algo == "implicit_gemm"
    # large images: im2col's column chunks at stride 1 (dilated with padding that is not a
    # multiple of the dilation: no Winograd; with such padding Winograd over the dilation
    # phases), at stride 2 the direct row kernels at AVX2 and AVX-512 (64 channels each side;
    # on 512-bit units up to 64 output channels: _cpu_stems._strided_rows), else implicit GEMM;
    # on 256-bit AVX-512 units (Zen 4) with an L2 of 512 KiB or more (the transformed kernels,
    # 256 KiB, in half of it) Winograd at stride 2 in bands (test_winograd_stride2.py)
    big = ((1, 64, 224, 224), (64, 64, 3, 3))
    assert fastconv.explain(*big, padding=1, dilation=2).algo == "im2col"
    assert fastconv.explain(*big, padding=2, dilation=2).algo == "winograd"
    from fastconv._cpu_shape import _active_isa, _avx512_on_256bit_units, _l2_bytes

    want = "direct" if _active_isa() in ("avx2", "avx512") else "implicit_gemm"
    if want == "direct" and _avx512_on_256bit_units() and _l2_bytes() >= 512 << 10:
        want = "winograd"
    assert fastconv.explain(*big, padding=1, stride=2).algo == want
    # 3-D 3x3x3 forward on 64 channels: Winograd over its depth taps at every level
    # (_cpu_volume._depth_winograd)
    assert fastconv.explain((1, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=1).algo == "winograd"
    wave = dict(dilation=8)
    for p in ("forward", "backward_data", "backward_weight"):
        e = fastconv.explain((1, 64, 16000), (64, 64, 2), pass_=p, **wave)
        assert e.algo == "implicit_gemm", e
