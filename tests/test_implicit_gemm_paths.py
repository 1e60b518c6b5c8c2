"""Two implicit_gemm paths (csrc/algo/implicit_gemm.cc) and the pool's spin knob.

Weight gradients split along their reduction (split_gemm): a small output (K/G x C/G*taps up to
2^16) over 2048+ output positions is computed in chunks of ~1024 positions or fewer (a multiple
of 4 chunks) summed in a fixed order. Cases cover the unfolded path (one image, and several
images accumulating), the folded path (small images, batch folded into the reduction, with a
last chunk of fewer images), the pointwise (1x1) path, groups, rank 1 and 3, float32/float64,
against the float64 oracle; and that the result does not depend on the thread count.

Unit-stride backward data on small images (transposed_backward_data: one image of at most 256
positions, C/G >= output positions) as grad_y^T W plus a col2im: kernels 2-D/1-D/3-D, non-square,
padding, dilation, true convolution (flipped taps), groups; and shapes just outside the rule.

Weight gradients of kernels with 16+ taps (or 7+ along one dim: 1xN, Nx1, Nx1x1) and 16+
channels per group over a long reduction (channels_last_weight: N * output positions >= 2 K/G)
read a channels-last copy of the input with (tap, channel) columns, then reorder the product:
strided 4x4 (DCGAN), 1x7 / 7x1 / 7x1x1, folded and unfolded,
split along the reduction, channel counts that are not a multiple of the panel width (a panel
row spanning two taps), groups, dilation, ranks 1-3, true convolution, against the oracle; with
192+ output channels the panels inside one tap are read in place, at every ISA level.

Padding-heavy weight gradients (less than 85% of the (tap, position) pairs inside the input,
16+ channels each side, 256+ positions: box_weight) run one GEMM per kernel tap over only the
positions that tap reaches, both operands channels-last: dilated, strided, folded over two image
blocks, groups, taps that reach nothing, ranks 1-3, true convolution, against the oracle.

Forward and unit-stride backward-data B panels that lie inside one row with every tap inside
the tensor they read are read in place by the micro-kernel (ForwardColumns::rows,
BackwardDataColumns::rows): padded 2-D, dilated 1-D, folded images and rank 3, against the
oracle.

Packed forward and unit-step backward-data panels (columns crossing rows and images, padding on
every side, a k block starting inside a channel) at every ISA level, whose panel-row kernels
(csrc/ukernels/panel) differ: masked AVX-512 / AVX2 loads, or element by element.

Forwards whose GEMMs share the weight (one group, several images or blocks of folded images, too
many columns for A to be read in place) read it packed once per call (prepacked_weight_elems):
unfolded and folded images, pointwise, stride phases and the stride-2 gather, with a bias,
against the oracle at 1 and 2 threads; explain's workspace holds the packed weight.

FASTCONV_SPIN_US, which the threaded calls exercise."""

from __future__ import annotations

import math

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, rand

# (name, x shape, weight shape, keyword arguments)
CASES = [
    # resnet50.conv1-like: 3 channels, 7x7 s2 over 96x96 -> 48x48 = 2304 positions (4 chunks)
    ("stem-s2", (1, 3, 96, 96), (8, 3, 7, 7), dict(stride=2, padding=3)),
    # two images, each 3200 positions (4 chunks), accumulated image by image
    ("two-images", (2, 4, 40, 80), (6, 4, 3, 3), dict(padding=1)),
    # folded: 16x16 outputs, 12 images per fold (16 * 256 = 4096 positions), 20 = 16 + 4
    ("folded", (20, 3, 18, 18), (5, 3, 3, 3), dict()),
    ("pointwise", (1, 8, 64, 64), (16, 8, 1, 1), dict()),
    ("groups", (1, 8, 50, 50), (6, 4, 3, 3), dict(padding=1, groups=2)),
    ("rank1", (2, 3, 5000), (4, 3, 9), dict(stride=2, padding=4, dilation=1)),
    ("rank3", (1, 2, 14, 14, 14), (3, 2, 3, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_split_weight_gradient(case, dtype, rng, poisoned_outputs):
    _, x_shape, w_shape, kw = case
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    y = ref.conv(x, w, **kw)
    positions = x_shape[0] * math.prod(y.shape[2:])
    assert positions >= 2048  # long enough to be split
    gy = rand(rng, y.shape, dtype)
    gw = fastconv.conv_backward_weight(x, gy, w.shape, algo="implicit_gemm", **kw)
    assert_close(gw, ref.conv_backward_weight(x, gy, w.shape, **kw), reduction=positions)


# (name, x shape, weight shape, keyword arguments): all take the channels-last columns
CHANNELS_LAST = [
    ("dcgan-s2-folded", (8, 32, 8, 8), (16, 32, 4, 4), dict(stride=2, padding=1)),
    ("split-one-image", (1, 16, 70, 70), (8, 16, 4, 4), dict(padding=1)),
    ("channels-20-dilated", (2, 20, 13, 13), (6, 20, 5, 5), dict(padding=4, dilation=2)),
    ("groups", (2, 64, 9, 9), (16, 32, 4, 4), dict(stride=2, padding=2, groups=2)),
    ("rank1", (3, 16, 90), (8, 16, 17), dict(stride=3, padding=8)),
    ("rank3", (2, 16, 6, 7, 8), (8, 16, 3, 3, 2), dict(stride=(1, 2, 1), padding=(1, 0, 1))),
    # 7+ taps along one dim (1xN, Nx1, Nx1x1): 20 channels, so panels span two taps
    ("1x7-folded", (4, 20, 5, 20), (16, 20, 1, 7), dict(padding=(0, 3))),
    ("7x1-strided", (3, 16, 24, 6), (8, 16, 7, 1), dict(stride=(2, 1), padding=(3, 0))),
    ("7x1x1-rank3", (2, 16, 20, 3, 4), (8, 16, 7, 1, 1), dict(padding=(3, 0, 0))),
    # 192+ output channels: panels inside one tap's channels are read in place (rows of zeros
    # in the padding); with 40 channels every other panel spans two taps and is packed
    ("in-place-s2", (4, 40, 20, 22), (192, 40, 4, 4), dict(stride=2, padding=1)),
    ("in-place-rank3", (3, 32, 6, 15, 15), (200, 32, 3, 3, 3), dict(stride=(1, 2, 2))),
]


@pytest.mark.parametrize("case", CHANNELS_LAST[-2:], ids=lambda c: c[0])
def test_weight_gradient_in_place_at_each_isa(case, fastconv_with_env, isa, rng):
    """The channels-last weight gradient's panels read in place (rows of 128+ bytes: float32 and
    float64 at AVX-512) or packed (AVX2's 64-byte rows, scalar), both dtypes, vs the oracle."""
    _, x_shape, w_shape, kw = case
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    for dtype in DTYPES:
        x = rand(rng, x_shape, dtype)
        y = ref.conv(x, rand(rng, w_shape, dtype), **kw)
        gy = rand(rng, y.shape, dtype)
        gw = fc.conv_backward_weight(x, gy, w_shape, algo="implicit_gemm", **kw)
        want = ref.conv_backward_weight(x, gy, w_shape, **kw)
        assert_close(gw, want, reduction=x_shape[0] * math.prod(y.shape[2:]))


@pytest.mark.parametrize(
    "w_shape, kw",
    [((16, 20, 1, 5), dict(padding=(0, 2))), ((16, 20, 3, 3), dict(padding=(0, 1)))],
    ids=["1x5", "3x3"],
)
def test_weight_gradient_columns_below_the_channels_last_taps(w_shape, kw, rng):
    """Fewer than 16 taps, unless 7+ along one dim: the (c, tap) columns (no path note in
    explain), vs the oracle; the channels and reduction of the 1x7 case that takes channels-last."""
    x, w = rand(rng, (4, 20, 5, 20), np.float32), rand(rng, w_shape, np.float32)
    why = str(fastconv.explain(x, w, pass_="backward_weight", algo="implicit_gemm", **kw))
    assert "forced by algo=." in why  # no note: neither channels-last nor the per-tap boxes
    y = ref.conv(x, w, **kw)
    gy = rand(rng, y.shape, np.float32)
    gw = fastconv.conv_backward_weight(x, gy, w_shape, algo="implicit_gemm", **kw)
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    assert_close(gw, want, reduction=4 * math.prod(y.shape[2:]))


# (name, x shape, weight shape, keyword arguments): all take the per-tap box path
BOXES = [
    ("dilated", (1, 16, 20, 20), (16, 16, 3, 3), dict(padding=4, dilation=4)),
    ("folded-two-blocks", (12, 16, 20, 20), (16, 16, 3, 3), dict(padding=4, dilation=4)),
    ("dcgan-s2", (16, 16, 8, 8), (32, 16, 4, 4), dict(stride=2, padding=1)),
    ("groups", (2, 64, 12, 12), (32, 32, 3, 3), dict(padding=3, dilation=3, groups=2)),
    ("taps-reach-nothing", (4, 16, 4, 20), (20, 16, 3, 3), dict(padding=(9, 1), dilation=(9, 1))),
    ("rank1", (12, 16, 24), (16, 16, 5), dict(padding=8, dilation=4)),
    ("rank3", (1, 16, 8, 8, 8), (16, 16, 3, 3, 3), dict(padding=2, dilation=2)),
]


# explain()'s note of each weight-gradient path, and its cases
WEIGHT_PATHS = [("(tap, channel) columns", c) for c in CHANNELS_LAST] + [
    ("padding skipped", c) for c in BOXES
]


@pytest.mark.parametrize("mode", ["cross", "conv"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "note, case", WEIGHT_PATHS, ids=lambda c: c if isinstance(c, str) else c[0]
)
def test_weight_gradient_paths(note, case, dtype, mode, rng, poisoned_outputs):
    """The channels-last (tap, channel) columns (16+ taps, 16+ channels, a long reduction) and
    the per-tap boxes (padding-heavy layers, 16+ channels each side, 256+ positions): explain()
    names the path, and the result matches the oracle."""
    _, x_shape, w_shape, kw = case
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    why = fastconv.explain(x, w, pass_="backward_weight", algo="implicit_gemm", mode=mode, **kw)
    assert note in str(why)
    y = ref.conv(x, w, mode=mode, **kw)
    positions = x_shape[0] * math.prod(y.shape[2:])
    gy = rand(rng, y.shape, dtype)
    gw = fastconv.conv_backward_weight(x, gy, w.shape, algo="implicit_gemm", mode=mode, **kw)
    assert_close(gw, ref.conv_backward_weight(x, gy, w.shape, mode=mode, **kw), reduction=positions)


# (name, x shape, weight shape, keyword arguments): passes whose interior B panels (inside one
# row, every tap inside the tensor read) the micro-kernel reads in place
IN_PLACE = [
    ("2d-padded", (1, 8, 5, 100), (12, 8, 3, 3), dict(padding=1)),
    ("1d-dilated", (1, 16, 300), (24, 16, 2), dict(dilation=8)),
    ("folded-images", (3, 8, 4, 64), (16, 8, 3, 3), dict(padding=(0, 1))),
    ("rank3", (1, 4, 3, 4, 70), (8, 4, 2, 3, 3), dict(padding=(0, 1, 1))),
    # strided: the forward reads the input's stride-phase planes, backward data grad_y by phases
    ("strided", (1, 8, 7, 140), (12, 8, 3, 3), dict(stride=2, padding=1)),
    ("strided-k4", (2, 8, 10, 140), (12, 8, 4, 4), dict(stride=2, padding=1)),
    ("strided-1d", (1, 16, 1201), (24, 16, 5), dict(stride=3, padding=2)),
    # rows as channel bases plus per-tap offsets (shifted_rows): a k block that starts inside a
    # channel (170 x 7 rows at every level's k block), and taps past a k block (the row walk)
    ("k-block-mid-channel", (1, 170, 2, 90), (8, 170, 1, 7), dict(padding=(0, 3))),
    ("taps-past-k-block", (1, 2, 1300), (8, 2, 1100), {}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", IN_PLACE, ids=lambda c: c[0])
def test_panels_read_in_place(case, dtype, rng, poisoned_outputs):
    """Forward and backward data (strided layers by stride phases) vs the oracle."""
    _, x_shape, w_shape, kw = case
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    y = fastconv.conv(x, w, algo="implicit_gemm", **kw)
    assert_close(y, ref.conv(x, w, **kw), reduction=math.prod(w_shape[1:]))
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo="implicit_gemm", **kw)
    want = ref.conv_backward_data(gy, w, x.shape, **kw)
    assert_close(gx, want, reduction=w_shape[0] * math.prod(w_shape[2:]))


# (name, x shape, weight shape, keyword arguments): packed B panels (csrc/ukernels/panel) whose
# columns cross rows and images, with padding on every side, so that a panel row is several
# stretches, some cut short by the padding and some rows outside the input
PACKED = [
    ("1x7-folded", (3, 8, 9, 9), (8, 8, 1, 7), dict(padding=(0, 3))),
    ("7x7-pad3", (2, 3, 7, 7), (8, 3, 7, 7), dict(padding=3)),
    # 170 channels x 7 taps = 1190 rows: at every level's k block (L1-sized: 240 to 600 rows on
    # a 48 KiB L1, up to 1024) the second block starts inside a channel
    ("k-block-mid-channel", (2, 170, 4, 20), (8, 170, 1, 7), dict(padding=(0, 3))),
    ("dilated-rows-outside", (2, 8, 5, 6), (12, 8, 3, 3), dict(padding=3, dilation=2)),
    ("asymmetric", (2, 6, 4, 11), (10, 6, 2, 5), dict(padding=(1, 4))),
    # strided: backward data by stride phases (unit-step panels of grad_y)
    ("strided", (2, 8, 9, 9), (12, 8, 3, 3), dict(stride=2, padding=1)),
    ("rank1", (3, 8, 21), (12, 8, 5), dict(padding=4)),
    ("rank3", (2, 4, 3, 4, 5), (8, 4, 3, 2, 3), dict(padding=(1, 1, 2))),
]


@pytest.mark.parametrize("mode", ["cross", "conv"])
@pytest.mark.parametrize("case", PACKED, ids=lambda c: c[0])
def test_packed_panels_at_each_isa(case, mode, fastconv_with_env, isa, rng):
    """Forward and backward data through packed panels at every ISA level (each packs a panel
    row with its own kernel: masked vector loads, or element by element), both dtypes, against
    the oracle."""
    _, x_shape, w_shape, kw = case
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    for dtype in DTYPES:
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        y = fc.conv(x, w, algo="implicit_gemm", mode=mode, **kw)
        assert_close(y, ref.conv(x, w, mode=mode, **kw), reduction=math.prod(w_shape[1:]))
        gy = rand(rng, y.shape, dtype)
        gx = fc.conv_backward_data(gy, w, x.shape, algo="implicit_gemm", mode=mode, **kw)
        want = ref.conv_backward_data(gy, w, x.shape, mode=mode, **kw)
        assert_close(gx, want, reduction=w_shape[0] * math.prod(w_shape[2:]))


@pytest.mark.parametrize(
    "x_shape, gy_shape, w_shape, kw",
    [
        ((1, 3, 96, 96), (1, 8, 48, 48), (8, 3, 7, 7), dict(stride=2, padding=3)),  # split
        ((8, 32, 20, 20), (8, 64, 20, 20), (64, 32, 3, 3), dict(padding=4, dilation=4)),  # boxes
    ],
    ids=["split", "boxes"],
)
def test_weight_gradient_is_independent_of_threads(x_shape, gy_shape, w_shape, kw, rng):
    x, gy = rand(rng, x_shape, np.float32), rand(rng, gy_shape, np.float32)
    saved = fastconv.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(
                fastconv.conv_backward_weight(x, gy, w_shape, algo="implicit_gemm", **kw)
            )
    finally:
        fastconv.set_num_threads(saved)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("spin", ["0", "50", "not-a-number"])
def test_pool_spin_setting(fastconv_with_env, rng, spin):
    """FASTCONV_SPIN_US (read once per process) only changes how long pool threads poll before
    they sleep: with 0 every job wakes the workers through the condition variable, and many
    short parallel calls in a row must neither hang nor lose work; a value that does not parse
    keeps the default."""
    fc = fastconv_with_env(FASTCONV_SPIN_US=spin, FASTCONV_NUM_THREADS="3")
    x = rand(rng, (1, 3, 64, 64), np.float64)
    gy = rand(rng, (1, 8, 32, 32), np.float64)
    want = ref.conv_backward_weight(x, gy, (8, 3, 5, 5), stride=2, padding=2)
    for _ in range(20):
        got = fc.conv_backward_weight(
            x, gy, (8, 3, 5, 5), stride=2, padding=2, algo="implicit_gemm"
        )
        assert_close(got, want, reduction=32 * 32)


# (x shape, weight shape, keyword arguments): one image, C/G >= output positions
TRANSPOSED_DATA = [
    ("res5-like", (1, 64, 7, 7), (48, 64, 3, 3), dict(padding=1)),
    ("asym-pad", (1, 64, 5, 6), (32, 64, 3, 3), dict(padding=(1, 2))),
    ("dilation", (1, 64, 5, 6), (32, 64, 3, 3), dict(padding=2, dilation=2)),
    ("no-pad", (1, 40, 8, 8), (16, 40, 3, 3), dict()),
    ("kernel2x3", (1, 60, 6, 7), (16, 60, 2, 3), dict(padding=(0, 1))),
    ("groups", (1, 80, 5, 6), (12, 40, 3, 3), dict(padding=1, groups=2)),
    ("rank1", (1, 40, 30), (16, 40, 5), dict(padding=2)),
    ("rank3", (1, 24, 2, 3, 3), (8, 24, 3, 3, 3), dict(padding=1)),
    # outside the rule: more output positions than channels, and two images
    ("wide-image", (1, 16, 9, 9), (8, 16, 3, 3), dict(padding=1)),
    ("two-images", (2, 64, 5, 5), (16, 64, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("mode", ["cross", "conv"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSPOSED_DATA, ids=lambda c: c[0])
def test_small_image_backward_data(case, dtype, mode, rng, poisoned_outputs):
    _, x_shape, w_shape, kw = case
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    y = ref.conv(x, w, mode=mode, **kw)
    gy = rand(rng, y.shape, dtype)
    got = fastconv.conv_backward_data(gy, w, x_shape, algo="implicit_gemm", mode=mode, **kw)
    want = ref.conv_backward_data(gy, w, x_shape, mode=mode, **kw)
    assert_close(got, want, reduction=w_shape[0] * math.prod(w_shape[2:]))


# Convs on small images run as the transposed product (positions x channels) when the positions
# fill the micro-kernel's tile rows better than its panels: 49 positions at every ISA level, 13
# and 3x5 ones, groups, a bias added while transposing; pointwise backward data, pointwise
# forwards whose weight rows are a multiple of 4 KiB (1024 float32 / 512 float64 channels; the
# other pointwise forwards here read the weight in place, the usual orientation) and other
# kernels (forward); and shapes left to the usual orientation (a large image, folded batches).
POINTWISE_SMALL = [
    ("7x7", (1, 64, 7, 7), (40, 64, 1, 1), dict()),
    ("13-positions", (1, 24, 13), (36, 24, 1), dict()),
    ("3x5-groups", (1, 12, 3, 5), (18, 6, 1, 1), dict(groups=2)),
    ("large-image", (1, 8, 40, 40), (16, 8, 1, 1), dict()),
    ("folded", (6, 16, 7, 7), (24, 16, 1, 1), dict()),
    ("7x7-aliased-rows", (1, 1024, 7, 7), (20, 1024, 1, 1), dict()),
    # other kernels on small images: the columns gathered once, the transposed product on them
    ("3x3-7x7", (1, 40, 7, 7), (36, 40, 3, 3), dict(padding=1)),
    (
        "3x3-s2-dilated",
        (1, 12, 15, 13),
        (20, 6, 3, 3),
        dict(stride=2, padding=2, dilation=2, groups=2),
    ),
    ("rank1-k5", (1, 16, 13), (24, 16, 5), dict(padding=2)),
]


def _forward_matches(case, dtype, threads, rng):
    """implicit_gemm's forward of case (name, x shape, w shape, kwargs) with a bias at `threads`
    threads against the oracle; returns (y, w)."""
    _, x_shape, w_shape, kw = case
    fastconv.set_num_threads(threads)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    y = fastconv.conv(x, w, b, algo="implicit_gemm", **kw)
    assert_close(y, ref.conv(x, w, b, **kw), reduction=w_shape[1])
    return y, w


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", POINTWISE_SMALL, ids=lambda c: c[0])
def test_small_image_pointwise(case, dtype, threads, rng, poisoned_outputs, restore_threads):
    _, x_shape, w_shape, kw = case
    y, w = _forward_matches(case, dtype, threads, rng)
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x_shape, algo="implicit_gemm", **kw)
    assert_close(gx, ref.conv_backward_data(gy, w, x_shape, **kw), reduction=w_shape[0])


# (name, x shape, weight shape, keyword arguments, images per GEMM): forwards that pack their
# weight once for the GEMMs of every image (prepacked_weight_elems)
PREPACKED = [
    ("images", (3, 8, 30, 30), (20, 8, 3, 3), dict(padding=1), 1),  # 900 columns per image
    ("folded-blocks", (13, 3, 16, 20), (7, 3, 3, 3), dict(padding=1), 12),  # two blocks
    ("pointwise", (3, 24, 30, 30), (30, 24, 1, 1), {}, 1),
    ("phases", (2, 5, 60, 40), (13, 5, 5, 5), dict(stride=2, padding=2), 1),  # rows of 20
    ("gather", (2, 5, 50, 60), (13, 5, 3, 3), dict(stride=2, padding=1), 1),  # rows of 30
    ("rank3", (2, 4, 6, 12, 14), (9, 4, 3, 3, 3), dict(padding=1), 1),
    # 295K weight elements: packed by the threads in several chunks
    ("large-weight", (2, 128, 24, 24), (256, 128, 3, 3), dict(padding=1), 1),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", PREPACKED, ids=lambda c: c[0])
def test_forward_with_the_weight_packed_once(
    case, dtype, threads, rng, poisoned_outputs, restore_threads
):
    _, x_shape, w_shape, kw, per_gemm = case
    fastconv.set_num_threads(threads)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    y = fastconv.conv(x, w, b, algo="implicit_gemm", **kw)
    assert_close(y, ref.conv(x, w, b, **kw), reduction=math.prod(w_shape[1:]))
    if per_gemm == 1:  # one GEMM per image: the packed weight is all the batch adds
        name = np.dtype(dtype).name
        one = fastconv.explain((1, *x_shape[1:]), w_shape, algo="implicit_gemm", dtype=name, **kw)
        many = fastconv.explain(x_shape, w_shape, algo="implicit_gemm", dtype=name, **kw)
        if "column planes" in str(many):
            # (AVX2 float32: a batch runs on the column planes, one image on the packed phases;
            # the column planes pack the weight for any batch, next to the planes)
            assert w.nbytes <= many.workspace_bytes, str(many)
        else:
            extra = many.workspace_bytes - one.workspace_bytes
            assert w.nbytes <= extra <= 2 * w.nbytes, (str(one), str(many))


# (name, x shape, weight shape, keyword arguments): pointwise forwards with several A blocks
# (300+ output channels per group), whose B blocks are packed row by row (pack_pointwise in
# csrc/algo/conv_panels.cc): images folded side by side with panels across two images, a last
# panel part full, groups, ranks 1 and 3.
POINTWISE_BLOCKS = [
    ("folded", (4, 40, 13, 13), (300, 40, 1, 1), {}),
    ("groups", (3, 24, 9, 11), (600, 12, 1, 1), dict(groups=2)),
    ("rank1", (5, 33, 37), (310, 33, 1), {}),
    ("rank3", (2, 16, 3, 5, 7), (320, 16, 1, 1, 1), {}),
    ("long-k", (2, 700, 6, 6), (330, 700, 1, 1), {}),  # two k blocks
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", POINTWISE_BLOCKS, ids=lambda c: c[0])
def test_pointwise_blocks(case, dtype, threads, rng, poisoned_outputs, restore_threads):
    _forward_matches(case, dtype, threads, rng)


# 1x1 weight gradients pack B by the ISA's transpose tiles (conv_panels.cc: pack_pointwise): a
# batch whose images a panel's positions cross (3 x 5x7), channels that leave a partial panel
# (37, 70), groups (each group's channels from its offset), 1-D and 3-D, one position per image.
POINTWISE = [
    ((3, 37, 5, 7), (20, 37, 1, 1), {}),
    ((2, 70, 9, 9), (48, 35, 1, 1), dict(groups=2)),
    ((4, 33, 50), (16, 33, 1), {}),
    ((2, 40, 3, 4, 5), (24, 40, 1, 1, 1), {}),
    ((16, 64, 1, 1), (32, 64, 1, 1), {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,kw", POINTWISE)
def test_pointwise_weight_gradient(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    x = rand(rng, x_shape, dtype)
    gy = rand(rng, ref.conv(x, rand(rng, w_shape, dtype), **kw).shape, dtype)
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    depth = math.prod(gy.shape) // gy.shape[1]
    for algo in ("implicit_gemm", "auto"):
        got = fastconv.conv_backward_weight(x, gy, w_shape, algo=algo, **kw)
        assert_close(got, want, dtype, depth, err_msg=algo)


def test_pointwise_weight_gradient_every_isa_level(isa):
    from conftest import FastconvProcess

    r = np.random.default_rng(11)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in POINTWISE[:3]:
            for dtype in DTYPES:
                x = rand(r, x_shape, dtype)
                gy = rand(r, ref.conv(x, rand(r, w_shape, dtype), **kw).shape, dtype)
                got = fc.conv_backward_weight(x, gy, w_shape, algo="implicit_gemm", **kw)
                depth = math.prod(gy.shape) // gy.shape[1]
                want = ref.conv_backward_weight(x, gy, w_shape, **kw)
                assert_close(got, want, dtype, depth)
