"""The direct algorithm's path for batches of small maps (csrc/algo/batch_taps.cc): the forward
gathering per tap from x's stride-phase planes, strided backward data (a transposed
convolution's forward) scattering into grad_x's, unit-stride backward data as the forward of its
correlation with the flipped kernel, the weight gradient summing per tap over both;
against the float64 oracle with outputs poisoned, at each ISA level, threads agreeing bit for
bit, and where `auto` takes it."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import (
    FastconvProcess,
    assert_close,
    rand,
    same_at_thread_counts,
    skip_unless_isa_runs,
)

SCATTER = "scattered into stride-phase planes"
GATHER = "gathered from stride-phase planes"
WEIGHT = "rows against stride-phase planes"
AUTO = "a batch of small maps"

# (x_shape, w_shape, kwargs) of the conv whose backward data runs: 8+ images, 16+ channels each
# side, grad_y maps of at most 64 positions. Input channels not a multiple of the panel width
# (a partial panel), 7x7 maps, true convolution, more than 256 output channels (two blocks of
# grad_y channels: the second adds), padding wider than the kernel's reach past the stride,
# stride 3 with a rectangular kernel, kernel = stride (one tap per grad_x position), 1x1 / 2
# (grad_x positions no tap reaches: zero), stride 2 x 1 with asymmetric padding.
GEOMETRIES = [
    ((16, 32, 8, 8), (48, 32, 4, 4), dict(stride=2, padding=1)),  # dcgan.g2 in small
    ((8, 17, 14, 14), (40, 17, 3, 3), dict(stride=2, padding=1)),
    ((9, 20, 9, 11), (33, 20, 3, 3), dict(stride=2, padding=1, mode="conv")),
    ((8, 16, 10, 12), (300, 16, 4, 4), dict(stride=2, padding=3)),
    ((8, 24, 13, 10), (16, 24, 5, 3), dict(stride=(3, 2), padding=(2, 0))),
    ((8, 16, 8, 9), (24, 16, 2, 2), dict(stride=2)),
    ((10, 16, 7, 7), (20, 16, 1, 1), dict(stride=2)),
    ((8, 16, 8, 8), (16, 16, 3, 3), dict(stride=(2, 1), padding=((1, 0), (1, 1)))),
    ((8, 16, 9, 10), (20, 16, 3, 3), dict(stride=2, padding=2, dilation=2)),
    ((8, 16, 40, 33), (18, 16, 5, 3), dict(stride=16, padding=(1, 2))),  # the 16 x 16 phases
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


# The forward's (rows of at most 7 outputs): a partial panel of output channels (40), unit
# stride with true convolution, dilation with 300 output channels (ten panels), 300 input
# channels (two blocks of the depth: the second adds), stride 3 with a rectangular kernel, 1x1 /
# 2, stride 1 x 2 with asymmetric padding.
FORWARD = [
    ((16, 32, 8, 8), (48, 32, 4, 4), dict(stride=2, padding=1)),  # dcgan.g2's backward data
    ((8, 17, 10, 10), (40, 17, 3, 3), dict(stride=2, padding=1)),
    ((9, 20, 5, 5), (33, 20, 3, 3), dict(padding=1, mode="conv")),
    ((8, 20, 6, 6), (300, 20, 3, 3), dict(padding=2, dilation=2)),
    ((8, 300, 6, 6), (24, 300, 3, 3), dict(stride=2, padding=1)),
    ((8, 24, 13, 10), (16, 24, 5, 3), dict(stride=(3, 2), padding=(2, 0))),
    ((10, 16, 7, 7), (20, 16, 1, 1), dict(stride=2)),
    ((8, 16, 8, 8), (16, 16, 3, 3), dict(stride=(1, 2), padding=((1, 0), (1, 1)))),
    ((8, 16, 2, 2), (24, 16, 3, 3), dict(padding=3)),  # corner outputs read only padding: bias
    ((8, 16, 40, 33), (18, 16, 5, 3), dict(stride=16, padding=(1, 2))),
]


def _note(x_shape, w_shape, kw, pass_="backward_data", dtype="float32"):
    return fastconv.explain(x_shape, w_shape, pass_=pass_, algo="direct", dtype=dtype, **kw).reason


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_scatter_backward_data(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    assert SCATTER in _note(x_shape, w_shape, kw, dtype=np.dtype(dtype).name)
    _check_direct_backward_data(rng, x_shape, w_shape, kw, dtype)


def _check_direct_backward_data(rng, x_shape, w_shape, kw, dtype):
    """algo="direct"'s backward data against the float64 oracle, its inputs unmodified."""
    w = rand(rng, w_shape, dtype)
    y_shape = ref.conv(np.zeros(x_shape), np.zeros(w_shape), **kw).shape
    gy = rand(rng, y_shape, dtype)
    gy0, w0 = gy.copy(), w.copy()
    got = fastconv.conv_backward_data(gy, w, x_shape, algo="direct", **kw)
    taps = int(np.prod(w_shape[2:]))
    assert_close(got, ref.conv_backward_data(gy, w, x_shape, **kw), dtype, w_shape[0] * taps)
    np.testing.assert_array_equal(gy, gy0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", FORWARD, ids=[f"f{i}" for i in range(len(FORWARD))])
def test_gather_forward(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    assert GATHER in _note(x_shape, w_shape, kw, "forward", np.dtype(dtype).name)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    x0, w0 = x.copy(), w.copy()
    got = fastconv.conv(x, w, b, algo="direct", **kw)
    taps = int(np.prod(w_shape[2:]))
    assert_close(got, ref.conv(x, w, b, **kw), dtype, w_shape[1] * taps)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


# Unit-stride backward data, as the forward's correlation of grad_y with the flipped kernel
# (data_correlation_geometry, fastconv/geometry.h): grad_x maps of at most 64 positions and rows
# of at most 7. True convolution, dilation, asymmetric padding, 300 output channels (two depth
# blocks of the correlation), 300 input channels (ten panels), a rectangular kernel, 1x1, no
# padding (grad_x larger than grad_y), padding wider than the kernel's reach on one side only.
UNIT_DATA = [  # (x, w, kwargs, on the path)
    ((32, 64, 6, 6), (64, 64, 3, 3), dict(padding=1), True),
    ((8, 16, 5, 5), (40, 16, 3, 3), dict(padding=1, mode="conv"), True),
    ((9, 20, 8, 6), (33, 20, 3, 3), dict(padding=(2, 1), dilation=(2, 1)), True),
    ((8, 16, 6, 6), (16, 16, 3, 3), dict(padding=((1, 0), (2, 1))), True),
    ((8, 24, 4, 4), (300, 24, 3, 3), dict(padding=1), True),
    ((8, 300, 4, 4), (24, 300, 3, 3), dict(padding=1), True),
    ((8, 16, 5, 6), (20, 16, 5, 3), dict(padding=(2, 1)), True),
    ((8, 16, 6, 6), (16, 16, 1, 1), {}, True),
    ((8, 16, 6, 6), (24, 16, 3, 3), {}, True),
    ((8, 16, 5, 5), (16, 16, 3, 3), dict(padding=((1, 3), (1, 1))), True),  # high pad past reach
    ((8, 16, 5, 5), (16, 16, 3, 3), dict(padding=((3, 0), (1, 1))), False),  # low pad past reach
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,kw,served", UNIT_DATA, ids=[f"u{i}" for i in range(len(UNIT_DATA))]
)
def test_unit_stride_backward_data(poisoned_outputs, rng, x_shape, w_shape, kw, served, dtype):
    note = _note(x_shape, w_shape, kw, dtype=np.dtype(dtype).name)
    assert ("correlation with the flipped kernel" in note) == served, note
    _check_direct_backward_data(rng, x_shape, w_shape, kw, dtype)


def test_unit_stride_backward_data_threads_agree(rng):
    assert "correlation with the flipped kernel" in _note((12, 24, 6, 6), (300, 24, 3, 3), {})
    w = rand(rng, (300, 24, 3, 3), np.float32)
    gy = rand(rng, (12, 300, 6, 6), np.float32)
    one = same_at_thread_counts(
        lambda: fastconv.conv_backward_data(gy, w, (12, 24, 6, 6), padding=1, algo="direct")
    )
    want = ref.conv_backward_data(gy, w, (12, 24, 6, 6), padding=1)
    assert_close(one, want, np.float32, 300 * 9)


# The weight gradient's: the forward's geometries with rows of 7-8 too (it serves any row
# length up to 64 positions) and unit-stride backward data's 7x7.
WEIGHT_GEOMETRIES = FORWARD + [
    ((9, 24, 7, 7), (40, 24, 3, 3), dict(padding=1)),
    ((16, 32, 16, 16), (48, 32, 4, 4), dict(stride=2, padding=1, mode="conv")),  # 8x8 outputs
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,kw", WEIGHT_GEOMETRIES, ids=[f"w{i}" for i in range(len(WEIGHT_GEOMETRIES))]
)
def test_weight_gradient(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    assert WEIGHT in _note(x_shape, w_shape, kw, "backward_weight", np.dtype(dtype).name)
    x = rand(rng, x_shape, dtype)
    gy = rand(rng, ref.conv(np.zeros(x_shape), np.zeros(w_shape), **kw).shape, dtype)
    x0, gy0 = x.copy(), gy.copy()
    got = fastconv.conv_backward_weight(x, gy, w_shape, algo="direct", **kw)
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    assert_close(got, want, dtype, x_shape[0] * gy.shape[2] * gy.shape[3])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)


def test_weight_gradient_threads_agree(rng):
    x = rand(rng, (12, 48, 10, 10), np.float32)
    gy = rand(rng, (12, 96, 5, 5), np.float32)
    kw = dict(stride=2, padding=1)
    one = same_at_thread_counts(
        lambda: fastconv.conv_backward_weight(x, gy, (96, 48, 3, 3), algo="direct", **kw)
    )
    want = ref.conv_backward_weight(x, gy, (96, 48, 3, 3), **kw)
    assert_close(one, want, np.float32, 12 * 25)


def test_scatter_unreached_positions_are_zero(poisoned_outputs, rng):
    """1x1 / 2: odd rows and columns of grad_x take no tap; they must be exactly zero, also after
    a call that left other values in the workspace."""
    w = rand(rng, (20, 16, 1, 1), np.float32)
    gy = rand(rng, (10, 20, 4, 4), np.float32)
    fastconv.conv_backward_data(gy * 3, w, (10, 16, 7, 7), stride=2, algo="direct")
    gx = fastconv.conv_backward_data(gy, w, (10, 16, 7, 7), stride=2, algo="direct")
    assert not gx[:, :, 1::2, :].any() and not gx[:, :, :, 1::2].any()
    want = ref.conv_backward_data(gy, w, (10, 16, 7, 7), stride=2)
    assert_close(gx, want, np.float32, 20)


def test_scatter_transposed_forward(rng):
    """The transposed convolution's forward (DCGAN's 4x4 / 2 with output_padding, true
    convolution off) goes through the same path."""
    x = rand(rng, (8, 40, 4, 4), np.float64)
    w = rand(rng, (40, 24, 4, 4), np.float64)
    b = rand(rng, (24,), np.float64)
    kw = dict(stride=2, padding=1, output_padding=1)
    e = fastconv.explain(x, w, op="conv_transpose", algo="direct", **kw)
    assert SCATTER in e.reason, str(e)
    got = fastconv.conv_transpose(x, w, b, algo="direct", **kw)
    assert_close(got, ref.conv_transpose(x, w, b, **kw), np.float64, 40 * 16)


def test_scatter_threads_agree(rng):
    """Each panel of grad_x channels is one thread's, its taps and blocks in a fixed order: the
    result does not depend on the threads."""
    w = rand(rng, (64, 96, 4, 4), np.float32)
    gy = rand(rng, (12, 64, 5, 5), np.float32)
    one = same_at_thread_counts(
        lambda: fastconv.conv_backward_data(
            gy, w, (12, 96, 10, 10), stride=2, padding=1, algo="direct"
        )
    )
    want = ref.conv_backward_data(gy, w, (12, 96, 10, 10), stride=2, padding=1)
    assert_close(one, want, np.float32, 64 * 16)


def test_gather_threads_agree(rng):
    x = rand(rng, (12, 48, 10, 10), np.float32)
    w = rand(rng, (96, 48, 3, 3), np.float32)
    one = same_at_thread_counts(lambda: fastconv.conv(x, w, stride=2, padding=1, algo="direct"))
    assert_close(one, ref.conv(x, w, stride=2, padding=1), np.float32, 48 * 9)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_batch_taps_at_each_isa(rng, isa):
    """The tiles and panel widths of each level (16 columns at AVX2, 32 at AVX-512), with auto
    taking the path (AVX-512 as on 256-bit units, set here; 512-bit units take it alike; backward
    data into 128+ input channels: _cpu_taps._few_scatter_columns)."""
    skip_unless_isa_runs(isa)
    x_shape, w_shape, kw = GEOMETRIES[1]
    w = rand(rng, w_shape, np.float32)
    gy = rand(rng, (8, 40, 7, 7), np.float32)
    fx_shape, fw_shape, fkw = FORWARD[1]
    x, fw = rand(rng, fx_shape, np.float32), rand(rng, fw_shape, np.float32)
    with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": "256"}) as fc:
        got = fc.conv_backward_data(gy, w, x_shape, algo="direct", **kw)
        auto = fc.explain((8, 128, 14, 14), (40, 128, 3, 3), pass_="backward_data", **kw)
        fwd = fc.conv(x, fw, algo="direct", **fkw)
        fauto = fc.explain(fx_shape, fw_shape, **fkw)
    assert_close(got, ref.conv_backward_data(gy, w, x_shape, **kw), np.float32, 40 * 9)
    assert auto.algo == "direct" and SCATTER in auto.reason, str(auto)
    assert_close(fwd, ref.conv(x, fw, **fkw), np.float32, 17 * 9)
    assert fauto.algo == "direct" and GATHER in fauto.reason, str(fauto)


@pytest.mark.parametrize(
    "x_shape,w_shape,kw,pass_,batch",
    [
        ((16, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1), "backward_data", True),
        ((16, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1), "forward", True),
        ((8, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1), "backward_data", True),
        ((16, 512, 6, 6), (512, 512, 3, 3), dict(stride=2, padding=1), "forward", True),
        ((8, 256, 5, 5), (256, 256, 3, 3), dict(padding=1), "forward", True),
        # ahead of Winograd (_batch_first): 288 F(2x2) tiles; unit-stride backward data too
        ((32, 64, 6, 6), (64, 64, 3, 3), dict(padding=1), "forward", True),
        ((32, 64, 6, 6), (64, 64, 3, 3), dict(padding=1), "backward_data", True),
        ((64, 512, 4, 4), (512, 512, 3, 3), dict(padding=1), "backward_data", True),
        ((8, 256, 5, 5), (256, 256, 3, 3), dict(padding=1), "backward_data", True),
        # strided backward data into 128+ channels; under 128, im2col's columns
        ((8, 128, 16, 16), (256, 128, 3, 3), dict(stride=2, padding=1), "backward_data", True),
        ((128, 32, 16, 16), (64, 32, 3, 3), dict(stride=2, padding=1), "backward_data", False),
        ((32, 64, 12, 12), (64, 64, 3, 3), dict(stride=2, padding=1), "backward_data", False),
        # whole F(2x2) tiles over 128+ channels: Winograd's (its runs go on over images)
        ((32, 512, 6, 6), (512, 512, 3, 3), dict(padding=1), "forward", False),
        ((32, 512, 6, 6), (512, 512, 3, 3), dict(padding=1), "backward_data", False),
        ((64, 128, 6, 6), (128, 128, 3, 3), dict(padding=1), "forward", False),
        ((32, 256, 6, 6), (256, 256, 3, 3), dict(padding=1), "backward_data", False),
        ((32, 96, 6, 6), (96, 96, 3, 3), dict(padding=1), "forward", True),  # F(4x4) there
        # g3: Winograd's stride phases; 4 images; 256 positions; unit-stride backward data on
        # grad_x maps of 72 positions; grouped; rows of 8 (the per-tap path ties, keeps them)
        ((16, 128, 16, 16), (256, 128, 4, 4), dict(stride=2, padding=1), "backward_data", False),
        ((4, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1), "backward_data", False),
        ((8, 64, 32, 32), (128, 64, 3, 3), dict(stride=2, padding=1), "backward_data", False),
        ((8, 256, 8, 9), (512, 256, 3, 3), dict(padding=1), "backward_data", False),  # 72 pos.
        ((8, 256, 14, 14), (512, 128, 3, 3), dict(stride=2, padding=1, groups=2), "forward", False),
        ((8, 512, 8, 8), (512, 512, 3, 3), dict(padding=1), "forward", False),
        # 1x1 / 2 and 2x2 / 2 (unmeasured), a 1x1 forward on 6x6 maps (implicit GEMM's)
        ((8, 256, 14, 14), (512, 256, 1, 1), dict(stride=2), "backward_data", False),
        ((8, 256, 14, 14), (512, 256, 2, 2), dict(stride=2), "backward_data", False),
        ((8, 64, 6, 6), (64, 64, 1, 1), {}, "forward", False),
    ],
)
@pytest.mark.parametrize("units", ["256", "512"])
def test_auto_batch_taps(x_shape, w_shape, kw, pass_, batch, units):
    """Where auto takes the path, on either AVX-512 unit width (set here; the rule no longer
    depends on it)."""
    with FastconvProcess({"FASTCONV_AVX512_UNITS": units}) as fc:
        e = fc.explain(x_shape, w_shape, pass_=pass_, **kw)
    strided = kw.get("stride", 1) != 1
    path = SCATTER if pass_ == "backward_data" and strided else GATHER
    assert (e.algo == "direct" and path in e.reason) == batch, str(e)
    assert (AUTO in e.reason) == batch, str(e)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_few_scatter_columns(isa):
    """Strided backward data of a batch of small maps into under 128 input channels runs im2col's
    column tiles, not the batch path's scatter (_cpu_taps._few_scatter_columns), at both levels;
    the result matches the float64 oracle."""
    skip_unless_isa_runs(isa)
    rng = np.random.default_rng(3)
    w = rand(rng, (64, 32, 3, 3), np.float32)
    gy = rand(rng, (16, 64, 8, 8), np.float32)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        e = fc.explain((16, 32, 16, 16), w.shape, stride=2, padding=1, pass_="backward_data")
        assert e.algo == "im2col" and "under 128 channels" not in e.reason, str(e)
        got = fc.conv_backward_data(gy, w, (16, 32, 16, 16), stride=2, padding=1)
    want = ref.conv_backward_data(gy, w, (16, 32, 16, 16), stride=2, padding=1)
    assert_close(got, want, np.float32, 64 * 9)


@pytest.mark.parametrize("units", ["256", "512"])
def test_auto_names_the_batch_path_that_runs(units):
    """Where auto picks direct, its reason names the images-innermost path exactly where the
    plan runs it (_cpu_taps._batch_taps_served mirrors batch_taps_serve), on either AVX-512 unit
    width and in both dtypes."""
    shapes = [
        ((16, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1)),
        ((16, 512, 6, 6), (512, 512, 3, 3), dict(stride=2, padding=1)),
        ((8, 256, 5, 5), (256, 256, 3, 3), dict(padding=1)),
        ((8, 256, 7, 7), (256, 256, 3, 3), dict(padding=1)),
        ((7, 256, 5, 5), (256, 256, 3, 3), dict(padding=1)),
        ((8, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1)),
        ((8, 384, 8, 8), (384, 384, 1, 3), dict(padding=(0, 1))),
        ((12, 64, 9, 9), (64, 64, 2, 2), dict(stride=2)),
    ]
    with FastconvProcess({"FASTCONV_AVX512_UNITS": units}) as fc:
        for x_shape, w_shape, kw in shapes:
            for pass_ in ("forward", "backward_data", "backward_weight"):
                for dtype in ("float32", "float64"):
                    e = fc.explain(x_shape, w_shape, pass_=pass_, dtype=dtype, **kw)
                    if e.algo != "direct":
                        continue
                    runs = "stride-phase planes" in e.reason  # the plan's note
                    assert (AUTO in e.reason) == runs, (x_shape, pass_, dtype, str(e))


def test_mirror_matches_the_plan():
    """_cpu_taps._batch_taps_served (what auto reasons with) against batch_taps_serve (what the
    direct plan runs), over the edges of its domain: images, channels, positions, forward row
    length, strides, unit-stride backward data, groups, padding, ranks 1 and 3."""
    from fastconv._cpu_shape import _Shape
    from fastconv._cpu_taps import _batch_taps_served, _batch_taps_shape
    from fastconv._problem import conv_problem

    cases = []
    for n in (7, 8):
        for c, k in ((15, 32), (16, 16), (32, 15)):
            for h, wd, stride, pad in (
                (8, 8, 2, 1),
                (12, 12, 1, 1),
                (7, 7, 1, 1),
                (16, 16, 2, 1),
                (18, 18, 2, 1),
                (40, 40, 17, 0),
                (9, 9, 2, 0),
                (12, 14, 1, 0),
                (6, 6, 1, 1),  # unit-stride backward data on 6x6 grad_x maps: the forward's
                (5, 6, 1, 2),  # correlation; padding up to the kernel's reach,
                (6, 6, 1, 3),  # past it (not served),
                (7, 6, 1, 1),  # rows of 6 on 7 rows; 5x7 (rows of 7), 4x9 (of 9: not served)
                (5, 7, 1, 1),
                (4, 9, 1, 1),
            ):
                cases.append(((n, c, h, wd), (k, c, 3, 3), dict(stride=stride, padding=pad)))
    cases += [
        ((8, 32, 8, 8), (32, 16, 3, 3), dict(stride=2, padding=1, groups=2)),
        ((8, 32, 16), (32, 32, 3), dict(stride=2, padding=1)),  # rank 1
        ((8, 32, 4, 8, 8), (32, 32, 3, 3, 3), dict(stride=2, padding=1)),  # rank 3
        ((8, 32, 8, 8), (32, 32, 4, 4), dict(stride=2, padding="same")),
        # unit-stride backward data: dilated padding up to the reach (4) and past it, low
        # padding past the reach on one side, high padding past it (served)
        ((8, 32, 6, 6), (32, 32, 3, 3), dict(padding=4, dilation=2)),
        ((8, 32, 6, 6), (32, 32, 3, 3), dict(padding=5, dilation=2)),
        ((8, 32, 5, 5), (32, 32, 3, 3), dict(padding=((3, 0), (1, 1)))),
        ((8, 32, 5, 5), (32, 32, 3, 3), dict(padding=((1, 3), (1, 1)))),
    ]
    checked = 0
    for x_shape, w_shape, kw in cases:
        for pass_ in ("forward", "backward_data", "backward_weight"):
            try:
                problem = conv_problem("conv", pass_, x_shape, w_shape, "float32", **kw)
            except ValueError:
                continue
            runs = "stride-phase planes" in _note(x_shape, w_shape, kw, pass_)
            # the weight gradient: every shape of the domain (_batch_weight_taps narrows auto's)
            mirror = _batch_taps_shape if pass_ == "backward_weight" else _batch_taps_served
            assert mirror(_Shape.of(problem)) == runs, (x_shape, w_shape, kw, pass_)
            checked += runs
    assert checked >= 12  # the grid reaches into the domain, not only around it


# 3x3 stride-1 weight gradients of batches of small maps (_cpu_taps._batch_weight_taps):
# direct's path on up to 64 channels a side, and on up to 256 with output rows of at most 7;
# Winograd keeps 8x8 maps on 64+ channels, 4x4 maps on 256 (128 below AVX-512) and 512
# channels. "avx512": the path at that level only.
WEIGHT_TAPS = [
    ((32, 64, 6, 6), (64, 64, 3, 3), True),
    ((32, 64, 8, 8), (64, 64, 3, 3), False),
    ((128, 64, 8, 8), (64, 64, 3, 3), False),
    ((64, 32, 8, 8), (32, 32, 3, 3), True),
    ((32, 64, 4, 4), (64, 64, 3, 3), True),
    ((32, 128, 4, 4), (128, 128, 3, 3), "avx512"),
    ((64, 256, 4, 4), (256, 256, 3, 3), False),
    ((8, 256, 4, 4), (256, 256, 3, 3), True),  # 8 tiles: Winograd would leave it to implicit GEMM
    ((8, 64, 8, 8), (64, 64, 3, 3), False),
    ((16, 128, 7, 7), (128, 128, 3, 3), True),
    ((8, 256, 5, 5), (256, 256, 3, 3), True),
    ((32, 128, 8, 8), (128, 128, 3, 3), False),
    ((8, 256, 8, 8), (256, 256, 3, 3), False),
    ((16, 512, 4, 4), (512, 512, 3, 3), False),
    ((8, 512, 7, 7), (512, 512, 3, 3), False),
    ((7, 64, 6, 6), (64, 64, 3, 3), False),  # 7 images: not the path's domain
    ((32, 64, 9, 9), (64, 64, 3, 3), False),  # 81 positions: not the path's domain
]


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_batch_weight_taps(isa):
    """auto's weight gradient on direct's path (float32, at both levels and unit widths, stride 1
    or 2), not in float64 nor at stride 3 (unmeasured)."""
    skip_unless_isa_runs(isa)
    for units in ("256", "512"):
        with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": units}) as fc:
            for x_shape, w_shape, path in WEIGHT_TAPS:
                batch = path is True or path == isa
                e = fc.explain(x_shape, w_shape, padding=1, pass_="backward_weight")
                assert (e.algo == "direct" and AUTO in e.reason) == batch, (isa, str(e))
                assert (WEIGHT in e.reason) == batch, (isa, str(e))
                if batch:
                    e64 = fc.explain(
                        x_shape, w_shape, padding=1, pass_="backward_weight", dtype="float64"
                    )
                    assert AUTO not in e64.reason, str(e64)
            # 3x3 / 2 on 6x6 outputs too (as 32->64 on 16x16 x128: 1.80 vs implicit GEMM's
            # 2.81 ms); 3x3 / 3 not (unmeasured)
            kw = dict(padding=1, pass_="backward_weight")
            e = fc.explain((32, 64, 12, 12), (64, 64, 3, 3), stride=2, **kw)
            assert AUTO in e.reason, str(e)
            e = fc.explain((32, 64, 18, 18), (64, 64, 3, 3), stride=3, **kw)
            assert AUTO not in e.reason, str(e)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_whole_tiles_from_256_at_avx512(isa):
    """Whole F(2x2) tiles under 512 channels leave the batch path for Winograd at AVX-512 from
    256 tiles over the batch (6x6 maps: 32 images), below AVX-512 from Winograd's own 129
    (_cpu_taps._batch_first); 512 channels at any count."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for n, c, batch in ((16, 128, isa == "avx512"), (32, 128, False), (16, 512, False)):
            for pass_ in ("forward", "backward_data"):
                e = fc.explain((n, c, 6, 6), (c, c, 3, 3), padding=1, pass_=pass_)
                assert (AUTO in e.reason) == batch, (isa, n, c, pass_, str(e))


def test_auto_batch_weight_taps_results(poisoned_outputs, rng):
    """The weight gradient auto now runs on direct's path, against the float64 oracle."""
    x = rand(rng, (8, 64, 6, 6), np.float32)
    w_shape = (64, 64, 3, 3)
    gy = rand(rng, (8, 64, 6, 6), np.float32)
    e = fastconv.explain(x.shape, w_shape, padding=1, pass_="backward_weight")
    assert e.algo == "direct" and WEIGHT in e.reason, str(e)
    got = fastconv.conv_backward_weight(x, gy, w_shape, padding=1)
    want = ref.conv_backward_weight(x, gy, w_shape, padding=1)
    assert_close(got, want, np.float32, 8 * 36)
