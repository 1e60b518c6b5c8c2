"""Every built conv algorithm x pass x dtype vs the float64 oracle, outputs poisoned with NaN."""

from __future__ import annotations

import json
import math
import textwrap

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import (
    algorithm_applies,
    assert_close,
    call_or_refused,
    rand,
    run_python,
    transposed_conv_pass,
)

ALGOS = [a for a in fastconv.algorithms("conv") if a != "reference"]

# (x_shape, w_shape, kwargs): ranks 1-3, strides, every padding form, dilation, groups,
# channel multipliers, true convolution, odd and prime sizes.
GEOMETRIES = [
    ((2, 5, 13), (7, 5, 3), dict(padding=1)),
    ((1, 4, 17), (6, 2, 4), dict(stride=3, padding=((2, 1),), dilation=2, groups=2)),
    ((3, 6, 9, 8), (4, 6, 3, 3), dict(padding="same", mode="conv")),
    ((1, 8, 11, 7), (8, 8, 1, 1), dict()),  # pointwise: GEMM straight on the input
    ((2, 8, 6, 5), (12, 8, 1, 1), dict(stride=2)),
    ((1, 3, 15, 14), (5, 3, 5, 3), dict(stride=(2, 1), padding=((2, 3), (0, 1)), dilation=(1, 2))),
    ((1, 6, 9, 9), (6, 1, 3, 3), dict(padding=1, groups=6)),  # depthwise
    ((1, 4, 8, 9), (8, 1, 3, 3), dict(stride=2, padding="same", groups=4)),  # multiplier 2
    ((2, 23, 7, 6), (19, 23, 3, 3), dict(padding="full")),
    ((1, 4, 5, 6, 4), (3, 4, 3, 2, 3), dict(padding=1, stride=(1, 2, 1))),
    ((1, 4, 6, 5, 7), (4, 2, 2, 3, 3), dict(dilation=(2, 1, 2), groups=2, mode="conv")),
    ((0, 4, 6, 6), (4, 4, 3, 3), dict(padding=1)),  # empty batch
    # depthwise: dilation + stride + true conv (1-D), 3-D, rows wider than one register block,
    # stride 3 with a kernel wider than the stride
    ((2, 3, 20), (6, 1, 5), dict(stride=2, padding=((3, 1),), dilation=2, groups=3, mode="conv")),
    ((1, 4, 5, 6, 7), (4, 1, 3, 3, 2), dict(padding=1, stride=(1, 2, 1), groups=4)),
    ((2, 5, 9, 70), (10, 1, 3, 3), dict(padding=(1, 2), groups=5)),
    ((1, 2, 33, 31), (2, 1, 7, 7), dict(padding=3, stride=3, groups=2)),
    ((2, 3, 37), (3, 1, 3), dict(padding=1, groups=3)),
    # small images, many channels (res4/res5-like): the GEMM reads the weight in place (few
    # output columns; 37 or 15 rows leave an edge tile), the unit-stride backward data
    # transposes the weight in blocks of 16 k (9 taps known at compile time, 7 and 35 not),
    # runs short (copied inline) and long (> 32).
    ((1, 40, 7, 7), (37, 40, 3, 3), dict(padding=1)),
    ((2, 24, 5, 6), (30, 12, 1, 1), dict(groups=2)),
    ((1, 8, 6, 40), (20, 8, 1, 7), dict(padding=(0, 3))),
    ((1, 16, 9, 9), (25, 16, 7, 5), dict(padding=(3, 2), dilation=(1, 2))),
    # direct's stacked group planes: 16 per group (one full stack) on rows wider than a vector;
    # 18 per group (two stacks, 12 outputs per group: blocks of 4); 3 per group with 5 outputs
    # per group, stride, dilation; 1-D and 3-D groups; strided backward data of 8 per group
    ((2, 32, 9, 19), (32, 16, 3, 3), dict(padding=1, groups=2)),
    ((1, 36, 7, 23), (24, 18, 3, 3), dict(padding=(0, 2), groups=2)),
    (
        (2, 12, 11, 10),
        (20, 3, 3, 2),
        dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2), groups=4),
    ),
    ((3, 10, 41), (15, 2, 3), dict(padding=2, dilation=3, groups=5, mode="conv")),
    ((1, 8, 5, 6, 18), (8, 4, 3, 3, 3), dict(padding=1, groups=2)),
    ((1, 16, 9, 11), (8, 8, 3, 3), dict(stride=2, padding=1, groups=2)),
    # depthwise row blocks: 13 rows of one vector (blocks of 8, 4, 1), narrow flat rows with a
    # multiplier, stride 2 on odd widths (phase pairs), padding wider than the kernel
    ((1, 3, 13, 14), (3, 1, 3, 3), dict(padding=1, groups=3)),
    ((2, 2, 11, 5), (4, 1, 3, 3), dict(padding=1, groups=2)),
    ((2, 3, 15, 33), (3, 1, 5, 5), dict(stride=2, padding=2, groups=3)),
    ((1, 2, 9, 10), (2, 1, 3, 3), dict(stride=2, padding=4, groups=2)),
    # the 3x3 register-weight path: stride 2, column dilation, rows of several vectors
    ((1, 2, 12, 75), (2, 1, 3, 3), dict(stride=2, padding=1, dilation=(1, 2), groups=2)),
    # atrous: padding a multiple of the dilation (Winograd on the dilation phases), 13 columns
    # (phases of 7 and 6)
    ((2, 6, 14, 13), (5, 6, 3, 3), dict(padding=2, dilation=2)),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def _reduction(w_shape):
    return int(np.prod(w_shape[1:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_conv_passes(poisoned_outputs, rng, x_shape, w_shape, kw, algo, dtype):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    kw = dict(kw)
    if "groups" not in kw:
        kw["groups"] = x_shape[1] // w_shape[1]
    want = ref.conv(x, w, b, **kw)
    y = call_or_refused(
        algo, "forward", w_shape, kw, lambda: fastconv.conv(x, w, b, algo=algo, **kw)
    )
    if y is not None:
        assert_close(y, want, dtype, _reduction(w_shape))
    gy = rand(rng, want.shape, dtype)
    gx = call_or_refused(
        algo,
        "backward_data",
        w_shape,
        kw,
        lambda: fastconv.conv_backward_data(gy, w, x_shape, algo=algo, **kw),
    )
    if gx is not None:
        assert_close(gx, ref.conv_backward_data(gy, w, x_shape, **kw), dtype, w_shape[0] * 27)
    gw = call_or_refused(
        algo,
        "backward_weight",
        w_shape,
        kw,
        lambda: fastconv.conv_backward_weight(x, gy, w_shape, algo=algo, **kw),
    )
    if gw is not None:
        out_count = int(np.prod(want.shape)) // max(want.shape[1], 1)
        want_gw = ref.conv_backward_weight(x, gy, w_shape, **kw)
        assert_close(gw, want_gw, dtype, max(out_count, 1))


TRANSPOSED = [
    ((2, 6, 5, 4), (6, 3, 4, 4), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 7), (4, 2, 3), dict(stride=1, padding=1, output_padding=1, dilation=2, groups=2)),
    ((1, 4, 3, 4, 3), (4, 2, 2, 3, 2), dict(stride=(2, 1, 3), padding=((0, 1), 1, 0))),
    ((1, 4, 6, 7), (4, 1, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=4)),
    ((2, 3, 9), (3, 2, 4), dict(stride=1, padding=2, groups=3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("x_shape,w_shape,kw", TRANSPOSED)
def test_transposed_passes(poisoned_outputs, rng, x_shape, w_shape, kw, algo, dtype):
    groups = kw.get("groups", 1)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[1] * groups,), dtype)

    # conv_transpose's weight is (C_in, K/G, *kernel); its conv's weight shape is what matters
    # for applicability only through rank, stride and dilation, which the two share.
    def run(pass_, fn):
        return call_or_refused(algo, transposed_conv_pass(pass_), w_shape, kw, fn)

    want = ref.conv_transpose(x, w, b, **kw)
    y = run("forward", lambda: fastconv.conv_transpose(x, w, b, algo=algo, **kw))
    if y is not None:
        assert_close(y, want, dtype, 64)
    gy = rand(rng, want.shape, dtype)
    gx = run("backward_data", lambda: fastconv.conv_transpose_backward_data(gy, w, algo=algo, **kw))
    if gx is not None:
        assert_close(gx, ref.conv_transpose_backward_data(gy, w, **kw), dtype, 64)
    gw = run(
        "backward_weight",
        lambda: fastconv.conv_transpose_backward_weight(x, gy, w_shape, algo=algo, **kw),
    )
    if gw is not None:
        want_gw = ref.conv_transpose_backward_weight(x, gy, w_shape, **kw)
        assert_close(gw, want_gw, dtype, 256)


def test_gemm_error_within_stated_multiple_of_reference(rng):
    """float32 GEMM algorithms may be at most 8x sqrt(L) ulps off (conftest's rule); check the
    measured error on a long reduction stays within 4x the reference algorithm's own error
    plus that bound's floor of one ulp of scale per sqrt(L)."""
    x, w = rand(rng, (1, 64, 12, 12), np.float32), rand(rng, (32, 64, 3, 3), np.float32)
    want = ref.conv(x, w, padding=1)
    scale = float(np.abs(want).max())
    eps = float(np.finfo(np.float32).eps)
    ref_err = float(np.abs(fastconv.conv(x, w, padding=1, algo="reference") - want).max())
    for algo in ALGOS:
        if algo in ("winograd", "fft"):
            continue  # transform algorithms: their own error budget, tests/test_winograd|fft.py
        if not algorithm_applies(algo, "forward", w.shape, {}):
            continue  # depthwise: refusals are checked by test_conv_passes
        err = float(np.abs(fastconv.conv(x, w, padding=1, algo=algo) - want).max())
        assert err <= 4 * ref_err + eps * scale * math.sqrt(64 * 9), (algo, err, ref_err)


def test_im2col_chunks_under_a_small_workspace_limit():
    """FASTCONV_WORKSPACE_LIMIT caps the column buffer; results stay exact across chunks."""
    code = textwrap.dedent(
        """
        import json, numpy as np, fastconv
        r = np.random.default_rng(3)
        x = r.standard_normal((2, 6, 13, 11)); w = r.standard_normal((4, 3, 3, 3))
        kw = dict(padding=1, stride=(1, 2), groups=2)
        y = fastconv.conv(x, w, algo="im2col", **kw)
        gy = r.standard_normal(y.shape)
        out = {}
        for algo in ("im2col", "reference"):
            out[algo] = [fastconv.conv(x, w, algo=algo, **kw).tolist(),
                         fastconv.conv_backward_data(gy, w, x.shape, algo=algo, **kw).tolist(),
                         fastconv.conv_backward_weight(x, gy, w.shape, algo=algo, **kw).tolist()]
        ws = fastconv.explain(x, w, algo="im2col", **kw).workspace_bytes
        print(json.dumps({"out": out, "ws": ws}))
        """
    )
    res = run_python(code, env={"FASTCONV_WORKSPACE_LIMIT": "4096"})
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0 < data["ws"] <= 4096
    for got, want in zip(data["out"]["im2col"], data["out"]["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_explain_reports_workspace():
    x_shape, w_shape = (1, 16, 20, 20), (8, 16, 3, 3)
    im2col = fastconv.explain(x_shape, w_shape, padding=1, algo="im2col")
    assert im2col.workspace_bytes == 16 * 9 * 400 * 4  # whole patch matrix fits the default cap
    assert fastconv.explain(x_shape, w_shape, padding=1, algo="implicit_gemm").workspace_bytes == 0
    bd = fastconv.explain(x_shape, w_shape, padding=1, algo="implicit_gemm", pass_="backward_data")
    assert bd.workspace_bytes == 8 * 16 * 9 * 4  # one transposed copy of the weight
    assert "workspace" in str(im2col).lower()


def test_auto_is_built_and_forcing_an_unbuilt_algorithm_says_so():
    x, w = np.ones((1, 4, 6, 6), np.float32), np.ones((4, 4, 3, 3), np.float32)
    e = fastconv.explain(x, w, padding=1)
    assert e.algo in fastconv.algorithms("conv") and e.reason
    unbuilt = [a for a in ("winograd", "fft", "direct") if a not in fastconv.algorithms("conv")]
    for name in unbuilt:
        with pytest.raises(NotImplementedError, match=name):
            fastconv.conv(x, w, algo=name)
