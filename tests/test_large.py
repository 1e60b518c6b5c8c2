"""64-bit sizes and memory limits.

- Index math past 2^31: a 1-channel 1-D signal of more than 2^31 elements (8 GiB in float32)
  through every algorithm that serves it and through pooling (`large`: skipped, with the
  reason, where the memory is not available or the test would exceed the memory budget
  FASTCONV_TEST_MEMORY_GIB, default 12); and, cheaply, a 2-D problem whose patch matrix has more
  than 2^31 elements (im2col's column count, implicit GEMM's virtual B, FFT tiles) while its
  arrays are a few MiB.
- Workspaces: one larger than the machine can give is a MemoryError naming the algorithm and
  the size, raised before any work; FASTCONV_WORKSPACE_LIMIT only cuts im2col's column matrix
  into smaller chunks (the results stay bitwise the same); failing and succeeding calls leave
  the resident memory where it was.
"""

from __future__ import annotations

import os
import textwrap
import time

import fastconv
import numpy as np
import pytest
from conftest import available_memory_bytes, rand, run_python, tolerance

GIB = 2**30
BUDGET = float(os.environ.get("FASTCONV_TEST_MEMORY_GIB", "12")) * GIB


def require(nbytes, what, held=0):
    """Skips unless `nbytes` more are available now and, with the `held` bytes the test already
    has (its operands), within the test memory budget."""
    if held + nbytes > BUDGET:
        pytest.skip(
            f"{what} needs {(held + nbytes) / GIB:.1f} GiB, over the test memory budget of "
            f"{BUDGET / GIB:.0f} GiB (FASTCONV_TEST_MEMORY_GIB)"
        )
    available = available_memory_bytes()
    if available is None:
        pytest.skip("no /proc/meminfo: cannot tell whether the memory is there")
    if available < nbytes + GIB:  # and a margin for everything else on the machine
        pytest.skip(
            f"{what} needs {nbytes / GIB:.1f} GiB (+1 GiB margin), "
            f"{available / GIB:.1f} GiB available"
        )


def close(got, want, reduction, err_msg=""):
    """|got - want| within the float32 tolerance (conftest) of the largest |want|."""
    want = np.asarray(want, np.float64)
    scale = float(np.max(np.abs(want))) or 1.0
    atol = 2 * tolerance(np.float32, reduction, scale)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
    assert err <= atol, f"{err_msg}: max |error| {err:.3g} > {atol:.3g}"


# ---- a long 1-D signal: more than 2^31 elements

LONG = 2**31 + 2**21  # elements (a multiple of TAPS)
TAPS = 64  # kernel size = stride: each output reads its own 64 inputs, the output is 128 MiB
PERIOD = 1_000_003  # odd: an offset wrapped at 2^31 or 2^32 reads other values
BOUNDARY = 2**31 // TAPS  # the first output whose window starts at element 2^31
OUTPUTS = LONG // TAPS
SIGNAL_BYTES = LONG * 4
# direct and depthwise copy the padded signal into their workspace (8 and 16 GiB: over the
# default budget); fft splits it into 64 polyphase components, ~3.5 min a pass on 2 cores.
SIGNAL_ALGOS = [
    pytest.param(a, marks=pytest.mark.slow) if a in ("direct", "fft", "depthwise") else a
    for a in ("direct", "im2col", "implicit_gemm", "fft", "depthwise")
]


@pytest.fixture(scope="module")
def long_signal():
    require(SIGNAL_BYTES + 3 * OUTPUTS * 8, "the long signal (2^31 + 2^21 float32)")
    period = np.random.default_rng(31).uniform(-1, 1, PERIOD).astype(np.float32)
    x = np.empty((1, 1, LONG), np.float32)
    flat = x.reshape(-1)
    flat[:PERIOD] = period
    filled = PERIOD
    while filled < LONG:  # the periods so far, copied after themselves (12 big copies)
        n = min(filled, LONG - filled)
        flat[filled : filled + n] = flat[:n]
        filled += n
    w = np.random.default_rng(32).uniform(-1, 1, (1, 1, TAPS)).astype(np.float32)
    yield x, w
    del x, flat


def _windows(x):
    return x.reshape(OUTPUTS, TAPS)


@pytest.mark.large
@pytest.mark.parametrize("algo", SIGNAL_ALGOS)
def test_long_signal_forward(algo, long_signal):
    x, w = long_signal
    ws = fastconv.explain(x.shape, w.shape, stride=TAPS, algo=algo).workspace_bytes
    require(ws + 2 * OUTPUTS * 4, f"{algo} forward on the long signal", SIGNAL_BYTES)
    y = fastconv.conv(x, w, stride=TAPS, algo=algo)
    assert y.shape == (1, 1, OUTPUTS)
    want = _windows(x) @ w.reshape(TAPS)  # float32: every output checked
    close(y.reshape(-1), want, TAPS, f"{algo} forward")
    for o in (0, 1, BOUNDARY - 1, BOUNDARY, BOUNDARY + 1, OUTPUTS - 1):  # exactly, in float64
        exact = np.dot(x[0, 0, o * TAPS : (o + 1) * TAPS].astype(np.float64), w[0, 0])
        close(y[0, 0, o : o + 1], [exact], TAPS, f"{algo} forward output {o}")


# im2col's weight gradient streams the 8 GiB patch matrix (8 s on a quiet machine, 130 s here
# next to other jobs): with -m slow.
@pytest.mark.large
@pytest.mark.parametrize(
    "algo",
    [pytest.param("im2col", marks=pytest.mark.slow) if a == "im2col" else a for a in SIGNAL_ALGOS],
)
def test_long_signal_backward_weight(algo, long_signal):
    x, w = long_signal
    ws = fastconv.explain(
        x.shape, w.shape, stride=TAPS, algo=algo, pass_="backward_weight"
    ).workspace_bytes
    require(ws + OUTPUTS * 4, f"{algo} backward_weight on the long signal", SIGNAL_BYTES)
    # grad_y is zero but for a few windows around element 2^31 and at the end: the weight
    # gradient then depends on the elements past 2^31 (summed over every window, it would
    # hide them under rounding).
    gy = np.zeros((1, 1, OUTPUTS), np.float32)
    hot = [0, BOUNDARY - 2, BOUNDARY - 1, BOUNDARY, BOUNDARY + 1, BOUNDARY + 7, OUTPUTS - 1]
    gy[0, 0, hot] = np.random.default_rng(33).uniform(0.5, 1.5, len(hot))
    gw = fastconv.conv_backward_weight(x, gy, w.shape, stride=TAPS, algo=algo)
    want = sum(
        float(gy[0, 0, o]) * x[0, 0, o * TAPS : (o + 1) * TAPS].astype(np.float64) for o in hot
    )
    close(gw.reshape(-1), want, OUTPUTS, f"{algo} backward_weight")


@pytest.mark.large
def test_long_signal_pooling(long_signal):
    x, _ = long_signal
    require(4 * OUTPUTS * 8, "pooling the long signal", SIGNAL_BYTES)
    windows = _windows(x)
    y, idx = fastconv.max_pool(x, TAPS, return_indices=True)
    assert np.array_equal(y.reshape(-1), windows.max(axis=1))  # every output
    # Indices and averages (their NumPy oracles over all 2^31 elements took ~8 s) on the
    # outputs at both ends, around element 2^31 and every 257th (coprime to any vector or
    # block width): an offset wrapped past 2^31 or a lane mixed up shows in those.
    span = np.arange(4096)
    pick = np.unique(
        np.concatenate(
            [span, BOUNDARY - 2048 + span, OUTPUTS - 4096 + span, np.arange(0, OUTPUTS, 257)]
        )
    )
    picked = windows[pick]
    assert np.array_equal(idx.reshape(-1)[pick], picked.argmax(axis=1) + pick * TAPS)
    assert idx[0, 0, -1] > 2**31  # plane offsets past 2^31 (int64 indices)
    a = fastconv.avg_pool(x, TAPS)
    close(a.reshape(-1)[pick], picked.mean(axis=1, dtype=np.float64), TAPS, "avg_pool")


# ---- a patch matrix of more than 2^31 elements from arrays of a few MiB (always runs)

PATCH_X = (1, 4, 1024, 1024)
PATCH_W = (1, 4, 23, 23)  # 4 * 23 * 23 rows x 1024 * 1024 columns = 2.2e9 > 2^31
PATCH_KW = dict(padding=11)
PATCH_ALGOS = ["direct", "im2col", "implicit_gemm", "fft", "auto"]
# im2col and implicit GEMM stream the whole patch matrix (8.9 GB of float32) through each pass,
# ~3 s a pass here: the forward pass always runs, the gradients with -m slow.
PATCH_PASSES = [
    pytest.param(p, marks=pytest.mark.slow) if p != "forward" else p
    for p in ("forward", "backward_data", "backward_weight")
]


def _patch_sum(xp, w, o0, o1):
    """y[:, :, o0, o1] in float64 from the padded input."""
    k = w.shape[-1]
    window = xp[0, :, o0 : o0 + k, o1 : o1 + k].astype(np.float64)
    return np.einsum("chw,kchw->k", window, w.astype(np.float64))


@pytest.mark.parametrize("pass_", PATCH_PASSES)
@pytest.mark.parametrize("algo", PATCH_ALGOS)
def test_patch_matrix_over_2_31_elements(algo, pass_, rng):
    c, taps = PATCH_W[1], PATCH_W[2] * PATCH_W[3]
    assert c * taps * PATCH_X[2] * PATCH_X[3] > 2**31
    x, w = rand(rng, PATCH_X, np.float32), rand(rng, PATCH_W, np.float32)
    xp = np.pad(x, ((0, 0), (0, 0), (11, 11), (11, 11)))
    points = [(0, 0), (511, 700), (1023, 1023), (1000, 3), (3, 1000)]
    if pass_ == "forward":
        y = fastconv.conv(x, w, algo=algo, **PATCH_KW)
        assert y.shape == (1, 1, 1024, 1024)
        for o0, o1 in points:
            want = _patch_sum(xp, w, o0, o1)
            close(y[0, :, o0, o1], want, c * taps, f"{algo} forward at {o0, o1}")
        return
    gy = rand(rng, (1, 1, 1024, 1024), np.float32)
    if pass_ == "backward_weight":
        # a few taps, each a sum over every output position
        gw = fastconv.conv_backward_weight(x, gy, w.shape, algo=algo, **PATCH_KW)
        for ci, ti, tj in [(0, 0, 0), (3, 22, 22), (1, 11, 5)]:
            patch = xp[0, ci, ti : ti + 1024, tj : tj + 1024].astype(np.float64)
            want = np.einsum("khw,hw->k", gy[0].astype(np.float64), patch)
            close(gw[:, ci, ti, tj], want, 1024 * 1024, f"{algo} backward_weight {ci, ti, tj}")
        return
    # backward data: grad_x at a few points = sum over the taps reaching it
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo=algo, **PATCH_KW)
    gyp = np.pad(gy, ((0, 0), (0, 0), (11, 11), (11, 11)))
    wf = w[:, :, ::-1, ::-1].astype(np.float64)  # grad_x = full correlation with flipped w
    for i0, i1 in points:
        want = np.einsum(
            "khw,kchw->c", gyp[0, :, i0 : i0 + 23, i1 : i1 + 23].astype(np.float64), wf
        )
        close(gx[0, :, i0, i1], want, taps, f"{algo} backward_data at {i0, i1}")


# ---- workspaces


def _over_memory_problem():
    """(x_shape, w_shape, workspace bytes) of an im2col backward_data whose workspace (a tile
    of one grad_y line by every tap of a channel) exceeds this machine's memory, with arrays of
    at most ~400 MiB; None when no such problem is that small here."""
    from fastconv.backends import cpu

    n = 8192
    for k in (1025, 2049, 3073, 4097):
        x_shape, w_shape = (1, 1, n, n), (1, 1, k, k)
        ws = fastconv.explain(
            x_shape, w_shape, algo="im2col", pass_="backward_data"
        ).workspace_bytes
        if ws > cpu._MEMORY:
            return x_shape, w_shape, ws
    return None


def test_workspace_over_memory_is_memory_error_before_work():
    found = _over_memory_problem()
    if found is None:
        pytest.skip("no im2col workspace here exceeds this machine's memory")
    x_shape, w_shape, ws = found
    # zeros: calloc'ed pages that the failing call must never touch
    w = np.zeros(w_shape, np.float32)
    gy = np.zeros((1, 1, x_shape[2] - w_shape[2] + 1, x_shape[3] - w_shape[3] + 1), np.float32)
    start = time.perf_counter()
    with pytest.raises(MemoryError) as info:
        fastconv.conv_backward_data(gy, w, x_shape, algo="im2col")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "im2col" in message and "backward_data" in message, message
    assert f"{ws} bytes" in message, message  # the size, as explain reports it
    assert elapsed < 5, f"the MemoryError came after {elapsed:.1f} s: work was done first"
    # auto does not pick an algorithm the machine cannot run
    auto = fastconv.explain(x_shape, w_shape, pass_="backward_data")
    assert auto.workspace_bytes < ws, auto


def test_workspace_limit_chunks_im2col_bitwise(fastconv_with_env, rng):
    """FASTCONV_WORKSPACE_LIMIT caps im2col's column chunk. The forward pass is bitwise the same
    for any limit (a chunk is a block of output columns; the GEMM sums each element over the
    same depth in the same order); the weight gradient sums over the chunks, so its rounding
    follows the limit (the same for any thread count at one limit)."""
    small = fastconv_with_env(FASTCONV_WORKSPACE_LIMIT="16K")
    x, w = rand(rng, (2, 8, 40, 40), np.float32), rand(rng, (6, 8, 5, 5), np.float32)
    gy = rand(rng, (2, 6, 40, 40), np.float32)
    kw = dict(padding=2, algo="im2col")
    assert fastconv.explain(x, w, **kw).workspace_bytes > 16 * 1024
    assert small.conv(x, w, **kw).tobytes() == fastconv.conv(x, w, **kw).tobytes()
    got = small.conv_backward_weight(x, gy, w.shape, **kw)
    close(got, fastconv.conv_backward_weight(x, gy, w.shape, **kw), 2 * 40 * 40, "weight")


RSS_CODE = textwrap.dedent(
    """
    import numpy as np
    import fastconv

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

    fastconv.set_num_threads(2)
    x_shape, w_shape = {x_shape!r}, {w_shape!r}
    big_w = np.zeros(w_shape, np.float32)
    big_gy = np.zeros((1, 1, x_shape[2] - w_shape[2] + 1, x_shape[3] - w_shape[3] + 1), np.float32)
    # a call that succeeds with a workspace of more than the 64 MiB a thread keeps (1-D: the
    # direct forward's padded plane of the whole row; 2-D runs in bands of rows)
    x = np.ones((1, 1, 20_000_000), np.float32)
    w = np.ones((1, 1, 3), np.float32)
    assert fastconv.explain(x, w, algo="direct").workspace_bytes > 64 << 20

    def round_trip():
        try:
            fastconv.conv_backward_data(big_gy, big_w, x_shape, algo="im2col")
            raise SystemExit("no MemoryError")
        except MemoryError:
            pass
        try:
            fastconv.conv(np.ones((1, 1, 1 << 20)), np.ones((1 << 16, 1, 1)))  # a 512 GiB output
            raise SystemExit("no MemoryError")
        except MemoryError:
            pass
        y = fastconv.conv(x, w, algo="direct")
        assert y[0, 0, 1] == 3.0

    for _ in range(2):
        round_trip()
    base = rss()
    for _ in range(8):
        round_trip()
    grown = rss() - base
    print("rss growth MiB", grown / 2**20)
    assert grown < 48 << 20, grown
    """
)


def test_failed_and_successful_calls_leave_rss(tmp_path):
    found = _over_memory_problem()
    if found is None:
        pytest.skip("no im2col workspace here exceeds this machine's memory")
    x_shape, w_shape, _ = found
    require(2 * GIB, "the RSS check")
    proc = run_python(RSS_CODE.format(x_shape=x_shape, w_shape=w_shape), timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
