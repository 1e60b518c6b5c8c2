"""Batch folding and stride phases of implicit GEMM (csrc/algo/implicit_gemm.cc,
phase_backward_data.cc): small images with batch > 1 run one GEMM over several images, and
strided backward data (a transposed conv's forward) one GEMM per stride phase. Cases cover a
last chunk of fewer images (batch above the fold), odd sizes, output_padding, groups, dilation,
ranks 1-3 and float64, for every pass, with NaN-poisoned outputs."""

from __future__ import annotations

import math

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, rand

# (name, x shape (N, C_in, *in), weight shape (C_in, K/G, *kernel), keyword arguments)
TRANSPOSED = [
    ("dcgan-like", (5, 8, 4, 4), (8, 6, 4, 4), dict(stride=2, padding=1)),
    # 20x20 input: 400 positions per phase, 10 images per GEMM, so 13 images are 10 + 3.
    ("two-chunks", (13, 3, 20, 20), (3, 4, 4, 4), dict(stride=2, padding=1)),
    (
        "odd-outpad",
        (3, 4, 5, 3),
        (4, 3, 3, 4),
        dict(stride=(2, 3), padding=1, output_padding=(1, 2)),
    ),
    ("groups", (4, 6, 5, 6), (6, 2, 4, 4), dict(stride=2, padding=1, groups=3)),
    (
        "dilation",
        (3, 4, 5, 5),
        (4, 3, 3, 3),
        dict(stride=2, padding=2, dilation=2, output_padding=1),
    ),
    ("stride>kernel", (3, 4, 4, 5), (4, 3, 2, 2), dict(stride=3, padding=(0, 1))),
    ("unet-like", (3, 8, 6, 6), (8, 5, 2, 2), dict(stride=2)),
    ("rank1", (6, 5, 9), (5, 4, 5), dict(stride=3, padding=2, output_padding=1)),
    ("rank3", (3, 4, 3, 4, 3), (4, 3, 3, 2, 3), dict(stride=(2, 1, 2), padding=1, groups=1)),
    # kernel a multiple of the stride (k4 s2, k2 s2: the dcgan / unet shapes), backward data folded
    ("k4s2-outpad", (3, 5, 5, 4), (5, 3, 4, 4), dict(stride=2, padding=(1, 2), output_padding=1)),
    ("k4s2-groups-rank1", (5, 6, 7), (6, 2, 4), dict(stride=2, padding=1, groups=3)),
    ("k2s2-rank3", (2, 4, 3, 2, 3), (4, 3, 2, 2, 4), dict(stride=(2, 1, 2), padding=(0, 1, 1))),
]
ALGOS = ["implicit_gemm", "auto"]


def _reduction(w):
    return w.shape[0] * math.prod(w.shape[2:])


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSPOSED, ids=lambda c: c[0])
def test_transposed_passes(case, dtype, algo, rng, poisoned_outputs):
    _, x_shape, w_shape, kw = case
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    groups = kw.get("groups", 1)
    b = rand(rng, (w_shape[1] * groups,), dtype)
    y = fastconv.conv_transpose(x, w, b, algo=algo, **kw)
    assert_close(y, ref.conv_transpose(x, w, b, **kw), reduction=_reduction(w))
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.conv_transpose_backward_data(gy, w, algo=algo, **kw)
    assert_close(gx, ref.conv_transpose_backward_data(gy, w, **kw), reduction=_reduction(w))
    gw = fastconv.conv_transpose_backward_weight(x, gy, w.shape, algo=algo, **kw)
    want = ref.conv_transpose_backward_weight(x, gy, w.shape, **kw)
    assert_close(gw, want, reduction=x_shape[0] * math.prod(y.shape[2:]))


# Plain convolutions whose small images fold: stride 1 (unit-stride backward data), 1x1,
# strided, batch above the fold (20x20 outputs: 10 images per GEMM).
CONVS = [
    ("3x3", (5, 6, 7, 6), (4, 6, 3, 3), dict(padding=1)),
    ("1x1", (7, 6, 5, 5), (4, 6, 1, 1), {}),
    # pointwise images of 256+ positions: one GEMM per image on the tensors (odd sizes: 17x19)
    ("1x1-per-image", (3, 7, 17, 19), (5, 7, 1, 1), {}),
    ("two-chunks", (13, 3, 22, 22), (4, 3, 3, 3), dict(padding=0)),
    ("strided-groups", (4, 6, 9, 8), (4, 3, 3, 3), dict(stride=2, padding=1, groups=2)),
    ("rank1-dilated", (6, 4, 11), (5, 4, 3), dict(padding=2, dilation=2)),
    ("rank3", (3, 4, 4, 3, 5), (2, 4, 2, 2, 3), dict(stride=(1, 2, 1), padding=1)),
    # strided with kernel a multiple of the stride (every phase has the same taps), patchify
    ("k4s2-odd", (3, 4, 9, 7), (5, 4, 4, 4), dict(stride=2, padding=(1, 2))),
    ("k2s2-flipped", (2, 4, 8, 9), (6, 4, 2, 2), dict(stride=2, mode="conv")),
    ("k6s3-groups", (3, 6, 11, 10), (4, 3, 6, 3), dict(stride=3, padding=2, groups=2)),
    ("patchify-big", (1, 3, 64, 48), (5, 3, 4, 4), dict(stride=4)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CONVS, ids=lambda c: c[0])
def test_conv_passes(case, dtype, rng, poisoned_outputs):
    _, x_shape, w_shape, kw = case
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, (w_shape[0],), dtype)
    y = fastconv.conv(x, w, b, algo="implicit_gemm", **kw)
    reduction = math.prod(w_shape[1:])
    assert_close(y, ref.conv(x, w, b, **kw), reduction=reduction)
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo="implicit_gemm", **kw)
    assert_close(gx, ref.conv_backward_data(gy, w, x.shape, **kw), reduction=reduction)
    gw = fastconv.conv_backward_weight(x, gy, w.shape, algo="implicit_gemm", **kw)
    want = ref.conv_backward_weight(x, gy, w.shape, **kw)
    assert_close(gw, want, reduction=x_shape[0] * math.prod(y.shape[2:]))


# Folded forwards of larger batches: the threads take whole blocks of images, each through its
# own output block and stride phases (implicit_gemm.cc: forward_thread_images), where the batch
# gives each thread two blocks (the L2 pinned at 2 MiB so that every case gets there at 2 and 3
# threads); a last block of fewer images, groups, bias, unit stride, packed stride phases (7x7
# outputs: not the column planes) and the column planes (float32 at AVX-512 and AVX2: whole
# images per thread, wide_phases.cc: wide_thread_images).
THREAD_BLOCKS = [
    ("unit", (200, 4, 8, 8), (64, 4, 3, 3), dict(padding=1)),
    ("phases", (200, 4, 14, 14), (64, 4, 3, 3), dict(stride=2, padding=1)),
    ("groups", (200, 8, 8, 8), (128, 4, 3, 3), dict(padding=1, groups=2)),
    ("wide", (200, 4, 32, 32), (16, 4, 3, 3), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", THREAD_BLOCKS, ids=lambda c: c[0])
def test_forward_thread_blocks(case, dtype, fastconv_with_env, rng):
    """explain() names the blocks per thread at 2 and 3 threads (not at 1: shared blocks); the
    results match the oracle and are bit-identical at 1, 2 and 3 threads (the blocks' sums run
    in the same order either way). The process's outputs start as NaN."""
    _, x_shape, w_shape, kw = case
    fc = fastconv_with_env(FASTCONV_L2_BYTES=str(2 << 20))
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, (w_shape[0],), dtype)
    name = np.dtype(dtype).name
    results = []
    try:
        for threads in (1, 2, 3):
            fc.set_num_threads(threads)
            e = fc.explain(x_shape, w_shape, algo="implicit_gemm", dtype=name, **kw)
            assert ("at a time" in e.reason) == (threads > 1), (threads, str(e))
            # the column planes take one image per thread, the others folded blocks
            wide = case[0] == "wide" and fc.info()["isa_active"] in ("avx2", "avx512")
            assert ("column planes" in e.reason) == (wide and dtype == np.float32), str(e)
            if threads > 1:
                per = "one image at a time" if "column planes" in e.reason else "images at a time"
                assert per in e.reason, (threads, str(e))
            results.append(fc.conv(x, w, b, algo="implicit_gemm", **kw))
    finally:
        fc.set_num_threads(2)
    for threads, y in zip((2, 3), results[1:]):
        np.testing.assert_array_equal(results[0], y, err_msg=f"{threads} threads")
    assert_close(results[0], ref.conv(x, w, b, **kw), reduction=math.prod(w_shape[1:]))
