"""The direct algorithm's dense path (csrc/algo/direct_rows.cc): row kernels vectorised along
output rows over phase-split planes, every pass against the float64 oracle, outputs poisoned."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import (
    FastconvProcess,
    assert_close,
    assert_passes_match,
    rand,
    same_at_thread_counts,
    skip_unless_isa_runs,
)

# (x_shape, w_shape, kwargs): few input channels, strides 1-4 (also above the kernel), kernels
# 1..11, padding (also wider than the kernel, asymmetric), dilation, batch > 1, odd sizes, true
# convolution, ranks 1-3, rows longer than one register block, many output channels (several
# register blocks plus a remainder) and dense layers with many input channels.
GEOMETRIES = [
    ((1, 3, 23, 21), (64, 3, 7, 7), dict(stride=2, padding=3)),  # resnet stem, odd image
    ((2, 3, 31, 29), (13, 3, 11, 11), dict(stride=4, padding=2)),  # alexnet stem
    ((3, 3, 17, 18), (32, 3, 3, 3), dict(stride=2, padding=1, mode="conv")),  # mobilenet stem
    ((1, 1, 19, 20), (7, 1, 5, 5), dict(stride=3, padding=(4, 6))),  # padding > kernel / 2
    ((2, 2, 15, 16), (5, 2, 2, 3), dict(stride=(4, 3), padding=((0, 3), (1, 0)))),  # s > k
    ((1, 4, 21, 19), (9, 4, 3, 5), dict(stride=2, dilation=(2, 3), padding=(2, 5))),
    ((1, 3, 9, 300), (20, 3, 3, 3), dict(padding=1)),  # stride 1, long rows
    ((2, 4, 12, 11), (3, 4, 1, 1), dict(stride=2)),  # 1x1 strided
    ((1, 3, 40), (6, 3, 7), dict(stride=2, padding=3, dilation=2)),  # rank 1
    ((2, 2, 67), (29, 2, 4), dict(stride=3, padding=((1, 2),), mode="conv")),
    ((1, 3, 7, 9, 10), (5, 3, 3, 3, 3), dict(stride=(1, 2, 2), padding=1)),  # rank 3
    ((1, 2, 6, 7, 8), (4, 2, 2, 3, 2), dict(stride=(2, 3, 2), dilation=(2, 1, 1), mode="conv")),
    ((1, 24, 14, 13), (17, 24, 3, 3), dict(stride=2, padding=1)),  # many input channels
    # 512+ terms and short rows with 16+ channels each side (the forward on the per-tap GEMM
    # path, direct_taps; backward data and weight on the row kernels)
    ((2, 60, 15, 13), (16, 60, 3, 3), dict(stride=2, padding=1)),
    ((1, 64, 9, 6), (21, 64, 3, 3), dict(stride=2, dilation=(1, 2), padding=(1, 2), mode="conv")),
    # 256+ terms, 12 output channels (not the tap path) and 35-wide rows: the float32 forward
    # vectorised over output channels (direct_rows.cc forward_channels), 1225 positions in
    # chunks of 320 per call, two per thread, the last one shorter
    ((1, 30, 70, 70), (12, 30, 3, 3), dict(stride=2, padding=1)),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_direct_rows_passes(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    assert_passes_match(fastconv, "direct", x, w, b, kw, dtype, rng)


def test_direct_rows_infinite_input_stays_local(rng):
    """Weight-gradient tails are masked: an inf next to a row's end cannot leak into a sum."""
    x = rand(rng, (1, 3, 20, 21), np.float32)
    x[0, 1, 5, 20] = np.inf  # last column: read past the row only by an unmasked tail load
    gy = rand(rng, (1, 8, 9, 9), np.float32)
    gy[..., :, 8] = 0.0  # outputs whose windows reach the inf column get no gradient
    got = fastconv.conv_backward_weight(x, gy, (8, 3, 4, 4), stride=2, algo="direct")
    want = ref.conv_backward_weight(np.nan_to_num(x, posinf=0.0), gy, (8, 3, 4, 4), stride=2)
    assert np.all(np.isfinite(got[:, 0])) and np.all(np.isfinite(got[:, 2]))
    assert_close(got[:, [0, 2]], want[:, [0, 2]], np.float32, 81)


# The forward by pairs (RowsKernels::forward_pairs): a last kernel dim of 2 taps at stride 2
# over an unpadded input, read from per-row copies of the input's runs (direct_rows.cc
# pairs_forward). Rows that end inside a vector (1, 3, 5, 7, 9 and 13 outputs past whole
# vectors), rows cut into chunks (2048 terms: 16 outputs per chunk), more output channels than one
# register block (17, 128) and fewer (3), leading-dim strides and dilation, ranks 1-3, batches.
PAIRS = [
    ((1, 64, 4, 256), (128, 64, 2, 2), dict(stride=2)),  # U-Net's transposed decoders, a strip
    ((2, 5, 9, 37), (7, 5, 3, 2), dict(stride=(1, 2))),
    ((1, 3, 8, 30), (13, 3, 2, 2), dict(stride=2, mode="conv")),
    ((1, 4, 10), (6, 4, 2), dict(stride=2)),
    ((1, 3, 4, 6, 20), (5, 3, 2, 3, 2), dict(stride=(1, 2, 2), mode="conv")),
    ((1, 2048, 4, 66), (3, 2048, 2, 2), dict(stride=2)),
    ((1, 4, 20, 64), (5, 4, 2, 2), dict(stride=2, dilation=(2, 1))),
    ((2, 3, 7, 18), (17, 3, 2, 2), dict(stride=(3, 2))),
    ((1, 6, 6, 41), (17, 6, 2, 2), dict(stride=2)),  # odd width: the last column unread
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", PAIRS, ids=[f"p{i}" for i in range(len(PAIRS))])
def test_direct_rows_forward_pairs(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    assert "pair" in str(fastconv.explain(x, w, algo="direct", **kw))
    x0, w0 = x.copy(), w.copy()
    got = fastconv.conv(x, w, b, algo="direct", **kw)
    assert_close(got, ref.conv(x, w, b, **kw), dtype, w_shape[1] * int(np.prod(w_shape[2:])))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_direct_rows_pairs_transposed_output_padding(poisoned_outputs, rng):
    """A transposed 2x2 / 2 layer with output_padding: its backward data is a pairs forward over
    a grad_y one row and column longer than the windows reach (a negative high padding)."""
    gy = rand(rng, (1, 16, 41, 83), np.float32)
    w = rand(rng, (8, 16, 2, 2), np.float32)
    kw = dict(stride=2, output_padding=1)
    x = np.zeros((1, 8, 20, 41), np.float32)
    e = fastconv.explain(x, w, op="conv_transpose", pass_="backward_data", algo="direct", **kw)
    assert "pair" in str(e)
    got = fastconv.conv_transpose_backward_data(gy, w, algo="direct", **kw)
    assert_close(got, ref.conv_transpose_backward_data(gy, w, **kw), np.float32, 64)


# (x_shape, w_shape, kwargs, pass, algorithm auto picks): the few-input-channel clause of
# _cpu_rule.cpu_rule and its exceptions (long weight-gradient kernels; the stride-1 forward of
# batches of small images).
AUTO = [
    # 7x7 / 2's forward: Winograd along the rows (_cpu_stems._stem_row_winograd)
    ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), "forward", "winograd"),
    ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), "backward_data", "direct"),
    # 49 taps: direct (_cpu_stems._direct_weight_taps)
    ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), "backward_weight", "direct"),
    ((1, 3, 224, 224), (32, 3, 3, 3), dict(stride=2, padding=1), "backward_weight", "direct"),
    # 3x3 backward data from 4096 input positions: im2col's C x taps rows (_stem_column_data)
    ((1, 3, 64, 64), (16, 3, 3, 3), dict(padding=1), "backward_data", "im2col"),
    ((4, 3, 32, 32), (64, 3, 3, 3), dict(padding=1), "backward_data", "im2col"),
    ((1, 3, 224, 224), (32, 3, 3, 3), dict(stride=2, padding=1), "backward_data", "im2col"),
    ((1, 3, 32, 32), (16, 3, 3, 3), dict(padding=1), "backward_data", "direct"),
    ((1, 3, 64, 64, 8), (16, 3, 3, 3, 1), dict(padding=1), "backward_data", "direct"),  # 3-D
    ((1, 3, 64, 64), (16, 3, 3, 3), dict(padding=1), "forward", "direct"),
    ((8, 3, 32, 32), (64, 3, 3, 3), dict(padding=1), "forward", "implicit_gemm"),
    # stride 4 with 3 taps per phase: Winograd over the 48 stacked phase channels, every pass
    ((1, 3, 224, 224), (96, 3, 11, 11), dict(stride=4, padding=2), "backward_weight", "winograd"),
    ((1, 3, 224, 224), (96, 3, 11, 11), dict(stride=4, padding=2), "forward", "winograd"),
    ((1, 3, 227, 227), (96, 3, 11, 11), dict(stride=4), "forward", "winograd"),
    # stride 2 with 3 taps per phase (12 stacked channels): backward data, and at AVX-512 the
    # forward on 65536+ outputs (YOLOv5s's 640x640 stem; "a|b": a at AVX-512, b below), never
    # the weight gradient
    # (6x6 / 2 forwards: Winograd along the rows, _cpu_stems._stem_row_winograd)
    ((1, 3, 224, 224), (64, 3, 6, 6), dict(stride=2, padding=2), "forward", "winograd"),
    ((1, 3, 640, 640), (32, 3, 6, 6), dict(stride=2, padding=2), "forward", "winograd"),
    ((1, 3, 224, 224), (64, 3, 6, 6), dict(stride=2, padding=2), "backward_data", "winograd"),
    ((1, 3, 224, 224), (32, 3, 5, 5), dict(stride=2, padding=2), "backward_data", "winograd"),
    ((1, 3, 640, 640), (32, 3, 6, 6), dict(stride=2, padding=2), "backward_weight", "direct"),
    ((1, 3, 88, 88), (32, 3, 6, 6), dict(stride=2, padding=2), "backward_data", "direct"),  # 1936
    ((1, 3, 224, 224), (32, 3, 9, 9), dict(stride=3), "backward_data", "direct"),  # unmeasured
    ((1, 3, 64, 64), (96, 3, 11, 11), dict(stride=4, padding=2), "forward", "direct"),  # 196 out
    ((1, 3, 16000), (64, 3, 11), dict(stride=4), "forward", "direct"),  # 1-D: not measured
    # stride 4 with 3 taps per phase, backward data: Winograd's stacked-input gradient
    ((1, 3, 224, 224), (96, 3, 11, 11), dict(stride=4, padding=2), "backward_data", "winograd"),
    # (128 channels, not the row kernels: tests/test_strided_paths.py's res3 56x56 b1)
]


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_few_input_channels_long_weight_gradient(isa):
    """A first layer's weight gradient runs the direct kernels up to 49 taps, past them implicit
    GEMM, never the FFT (whose transforms cost more than 3 channels save: 2x on 7x7, 8x on
    3x3x3)."""
    skip_unless_isa_runs(isa)
    cases = [  # (x, w, padding, want at AVX2, want at AVX-512)
        ((1, 3, 224, 224), (64, 3, 7, 7), 3, "direct", "direct"),
        ((1, 3, 16, 112, 112), (64, 3, 3, 3, 3), 1, "direct", "direct"),
        ((1, 3, 16000), (64, 3, 49), 24, "direct", "direct"),
        ((1, 3, 224, 224), (64, 3, 9, 9), 4, "implicit_gemm", "implicit_gemm"),
    ]
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, pad, at_avx2, at_avx512 in cases:
            e = fc.explain(x_shape, w_shape, padding=pad, pass_="backward_weight")
            assert e.algo == (at_avx512 if isa == "avx512" else at_avx2), str(e)


@pytest.mark.parametrize("x_shape,w_shape,kw,pass_,algo", AUTO)
def test_auto_few_input_channels(x_shape, w_shape, kw, pass_, algo):
    e = fastconv.explain(x_shape, w_shape, pass_=pass_, **kw)
    avx512 = fastconv.info()["isa_active"] == "avx512"
    if "|" in algo:
        algo = algo.split("|")[0 if avx512 else 1]
    if algo == "avx512":
        algo = "direct" if avx512 else None
    if algo is None:
        assert e.algo != "direct", str(e)
    else:
        assert e.algo == algo, str(e)
    if e.algo == "direct":
        assert ("row kernels" if x_shape[1] <= 4 else "a GEMM call per tap") in e.reason


# The forward in bands of output rows (direct_rows.cc rows_bands): each thread fills the input
# rows of a band into its own buffer. Bands of ~128 KiB of input rows: 8 channels of 300-wide
# rows give bands of a few rows, several rounds of them per thread; output row counts that leave
# a shorter last band; padding above and below (bands reading padded rows only at the edges),
# stride 2-3 and a dilated kernel (rows two bands share), batches, and kernel depth 1 over 3-D
# inputs (a band per output slice, strided and padded along depth).
BANDS = [
    ((1, 8, 41, 300), (6, 8, 3, 3), dict(padding=1)),
    ((2, 8, 87, 301), (5, 8, 5, 4), dict(stride=(2, 3), padding=(4, 1))),
    ((1, 8, 60, 280), (9, 8, 3, 3), dict(stride=2, dilation=(3, 1), padding=(2, 0))),
    ((1, 3, 61, 640), (32, 3, 6, 6), dict(stride=2, padding=2, mode="conv")),
    ((2, 3, 7, 40, 150), (5, 3, 1, 7, 7), dict(stride=(2, 2, 2), padding=(1, 3, 3))),
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", BANDS, ids=[f"b{i}" for i in range(len(BANDS))])
def test_direct_rows_forward_bands(
    poisoned_outputs, restore_threads, rng, x_shape, w_shape, kw, dtype, threads
):
    fastconv.set_num_threads(threads)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    assert "band by band" in str(fastconv.explain(x, w, algo="direct", **kw))
    x0 = x.copy()
    got = fastconv.conv(x, w, b, algo="direct", **kw)
    assert_close(got, ref.conv(x, w, b, **kw), dtype, w_shape[1] * int(np.prod(w_shape[2:])))
    np.testing.assert_array_equal(x, x0)


# The weight gradient in bands (direct_rows.cc weight_bands): each band of a kernel call's output
# rows sums into a partial of its own, added in (image, slice, band) order. Bands that are whole
# images (7-row outputs, images in rounds of several), a last band shorter, a batch that leaves
# a shorter last round, kernel depth 1 over 3-D inputs, true convolution. With 64 threads the
# same problems take the whole-plane path (too few bands for the slots): the sums match it bit
# for bit, and every thread count's.
WEIGHT_BANDS = [
    # 75 rows: 5 bands of 15, the output channels in 2 parts on 2 threads, 3 parts on 3
    ((1, 3, 149, 129), (32, 3, 3, 3), dict(stride=2, padding=1)),
    ((1, 3, 161, 129), (30, 3, 3, 3), dict(stride=2, padding=1)),  # 81 rows: 5 x 15 + 6
    ((7, 3, 15, 16), (7, 3, 3, 3), dict(stride=2, mode="conv")),  # whole images, rounds of 4
    ((1, 2, 121, 300), (6, 2, 5, 4), dict(stride=(2, 3), padding=(4, 1), dilation=(2, 1))),
    ((2, 3, 7, 40, 150), (5, 3, 1, 7, 7), dict(stride=(2, 2, 2), padding=(1, 3, 3))),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,kw", WEIGHT_BANDS, ids=[f"wb{i}" for i in range(len(WEIGHT_BANDS))]
)
def test_direct_rows_weight_bands(
    poisoned_outputs, restore_threads, rng, x_shape, w_shape, kw, dtype
):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    gy = rand(rng, ref.conv(x, w, **kw).shape, dtype)
    x0, gy0 = x.copy(), gy.copy()
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    got = {}
    for threads in (1, 2, 3, 64):
        fastconv.set_num_threads(threads)
        e = str(fastconv.explain(x, w, algo="direct", pass_="backward_weight", **kw))
        assert ("band by band" in e) == (threads < 64), e
        got[threads] = fastconv.conv_backward_weight(x, gy, w_shape, algo="direct", **kw)
    assert_close(got[1], want, dtype, x_shape[0] * int(np.prod(gy.shape[2:])))
    for threads in (2, 3, 64):
        np.testing.assert_array_equal(got[threads], got[1])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)


def test_direct_rows_weight_bands_in_rounds(poisoned_outputs, restore_threads, rng):
    """Bands whose partials pass the 8 MiB round budget go in rounds (100 one-slice bands of
    128 x 196 sums: 83 per round), each round's partials added in band order before the next:
    the workspace stays bounded and the sums are the same at every thread count."""
    x_shape, w_shape, kw = (1, 4, 100, 8, 8), (128, 4, 1, 7, 7), dict(padding=(0, 3, 3))
    x = rand(rng, x_shape, np.float32)
    gy = rand(rng, (1, 128, 100, 8, 8), np.float32)
    e = fastconv.explain(x, w_shape, algo="direct", pass_="backward_weight", **kw)
    assert "band by band" in str(e) and e.workspace_bytes < 9 << 20, str(e)
    got = same_at_thread_counts(
        lambda: fastconv.conv_backward_weight(x, gy, w_shape, algo="direct", **kw)
    )
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    assert_close(got, want, np.float32, 100 * 64)


# Rows of each width class for the row kernels' choice by row (rows_kernels_for_row): where
# AVX-512 runs on 256-bit units, forward and weight-gradient rows of up to 64 floats (32 doubles)
# whose last 512-bit vector is at most half full run the AVX2 kernels (floats: 56 = 7 x 8 instead
# of 4 x 16, 40, 20, 8; doubles: 20 = 5 x 4 instead of 3 x 8, 8), the rest the AVX-512 ones
# (floats: 57, last vector 9 of 16; 64 and 72, full or 5 vectors of 16 saving too little;
# doubles: 40, 56 and the rest). Backward data stays on the AVX-512 kernels.
NARROW_ROWS = [
    ((1, 3, 5, 112), (45, 3, 3, 7), dict(stride=2, padding=(1, 3)), 56),  # R(2+1)D stem's rows
    ((1, 3, 4, 80), (13, 3, 3, 3), dict(stride=2, padding=1), 40),
    ((2, 2, 6, 8), (7, 2, 3, 3), dict(padding=1), 8),
    ((1, 3, 5, 40), (9, 3, 3, 3), dict(stride=2, padding=1), 20),
    ((1, 3, 5, 114), (9, 3, 3, 3), dict(stride=2, padding=1), 57),
    ((1, 3, 5, 128), (11, 3, 3, 3), dict(stride=2, padding=1), 64),
    ((1, 2, 5, 144), (6, 2, 3, 3), dict(stride=2, padding=1), 72),
]


@pytest.mark.parametrize("units", ["256", "512"])
def test_direct_rows_kernels_by_row_width(rng, units):
    """Both kernel sets on every width class, all three passes against the oracle in float32
    and float64, and explain names the 256-bit vectors exactly where the rule takes them."""
    skip_unless_isa_runs("avx512")
    with FastconvProcess({"FASTCONV_ISA": "avx512", "FASTCONV_AVX512_UNITS": units}) as fc:
        for x_shape, w_shape, kw, width in NARROW_ROWS:
            for dtype in (np.float32, np.float64):
                x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
                b = rand(rng, (w_shape[0],), dtype)
                assert_passes_match(fc, "direct", x, w, b, kw, dtype, rng)
                half = 8 if dtype == np.float32 else 4
                narrow = units == "256" and width <= 4 * 2 * half and 0 < width % (2 * half) <= half
                for pass_ in ("forward", "backward_data", "backward_weight"):
                    e = fc.explain(x_shape, w_shape, algo="direct", pass_=pass_, dtype=dtype, **kw)
                    assert "row kernels" in e.reason, (pass_, e.reason)
                    want = narrow and pass_ != "backward_data"
                    note = f"256-bit vectors along rows of {width} "
                    assert (note in e.reason) == want, (units, width, dtype, pass_, e.reason)
