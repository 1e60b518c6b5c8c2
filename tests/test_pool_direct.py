"""The direct (SIMD) pooling kernels against the reference kernels over random geometries.

_C.pool(..., reference=True) runs csrc/ref on the same problem. Max pooling (values, indices,
the backward pass that recomputes each window's argmax) must match exactly, ties, NaN and -inf
included; avg and lp to the rounding of their element type. Every ISA level runs in a process
of its own (FASTCONV_ISA is read once, at import)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_with_isa
from fastconv import _C

# avg/lp: the direct kernels sum in the element type, the reference in double.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _geometry(rng, kind):
    """A random valid (x_shape, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode)."""
    rank = int(rng.integers(1, 4))
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    kernel, stride, pad, dilation, size = [], [], [], [], []
    for d in range(rank):
        k = int(rng.integers(1, 5))
        dil = int(rng.integers(1, 3)) if kind == "max" else 1
        p = int(rng.integers(0, k // 2 + 1)) if kind != "lp" else 0
        wide = d == rank - 1 and rng.random() < 0.6  # the W dim: whole vectors and tails
        lo = (k - 1) * dil + 1 - 2 * p
        size.append(max(1, lo, int(rng.integers(1, 70 if wide else 12))))
        kernel.append(k)
        stride.append(int(rng.choice([1, 1, 2, 2, 3])))
        pad.append(p)
        dilation.append(dil)
    ceil_mode = bool(rng.random() < 0.4)
    return [n, c] + size, kernel, stride, pad, pad, dilation, ceil_mode


def _x(rng, shape, dtype, kind):
    if kind == "lp":
        return rng.uniform(0.05, 1.0, size=shape).astype(dtype)
    # Few distinct values, so windows tie (the first maximum wins), with -0.0 / 0.0 ties too.
    x = rng.integers(-3, 4, size=shape).astype(dtype) * dtype(0.5)
    if kind == "max":
        x[rng.random(shape) < 0.1] = -0.0
        x[rng.random(shape) < 0.05] = -np.inf
        if rng.random() < 0.5:
            x[rng.random(shape) < 0.03] = np.nan
    if rng.random() < 0.3:
        x = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    return x


def _problem(kind, pass_, geometry, dtype, count_include_pad=True, p=2.0):
    shape, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode = geometry
    return _C.pool_problem(
        kind + "_pool" if kind != "max_unpool" else kind,
        pass_,
        shape,
        kernel,
        stride,
        pad_lo,
        pad_hi,
        dilation,
        ceil_mode,
        count_include_pad,
        p,
        [],
        np.dtype(dtype).name,
    )


def _run(pb, a, b=None, indices=None, reference=False):
    out = np.full(pb.result_shape, np.nan, dtype=a.dtype)
    _C.pool(pb, a, b, indices, out, reference=reference)
    return out


def _same(got, want, what):
    assert got.shape == want.shape, what
    # Bitwise up to NaN payloads; -0.0 and 0.0 told apart.
    same = (got == want) & (np.signbit(got) == np.signbit(want))
    same |= np.isnan(got) & np.isnan(want)
    assert same.all(), (
        f"{what}: {np.argwhere(~same)[:5].tolist()} {got[~same][:5]} {want[~same][:5]}"
    )


def _close(got, want, dtype, what):
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype], err_msg=what)


def check_max(rng, dtype):
    g = _geometry(rng, "max")
    pb = _problem("max", "forward", g, dtype)
    if pb.result_shape[2:] and 0 in pb.result_shape:
        return 0
    x = _x(rng, pb.x_shape, dtype, "max")
    what = f"max {np.dtype(dtype).name} {g}"
    idx, idx_ref = (np.full(pb.y_shape, -7, dtype=np.int64) for _ in range(2))
    y = _run(pb, x, indices=idx)
    y_ref = _run(pb, x, indices=idx_ref, reference=True)
    _same(y, y_ref, what + " y")
    assert (idx == idx_ref).all(), what + " indices"
    _same(_run(pb, x), y_ref, what + " y without indices")
    bw = _problem("max", "backward", g, dtype)
    gy = rng.integers(-4, 5, size=bw.y_shape).astype(dtype) * dtype(0.25)
    _same(_run(bw, gy, x), _run(bw, gy, x, reference=True), what + " backward")
    if (idx >= 0).all():  # an empty window's -1 is rejected by both
        got = _run(bw, gy, x, indices=idx)
        _same(got, _run(bw, gy, x, indices=idx_ref, reference=True), what + " backward, indices")
    return int(_C.pool_runs_direct(pb)) + int(_C.pool_runs_direct(bw))


def check_sum(rng, dtype, kind):
    g = _geometry(rng, kind)
    cip = bool(rng.random() < 0.5)
    p = float(rng.choice([1.0, 2.0, 3.0, 1.5])) if kind == "lp" else 2.0
    pb = _problem(kind, "forward", g, dtype, cip, p)
    if 0 in pb.result_shape:
        return 0
    x = _x(rng, pb.x_shape, dtype, kind)
    what = f"{kind} p={p} cip={cip} {np.dtype(dtype).name} {g}"
    _close(_run(pb, x), _run(pb, x, reference=True), dtype, what)
    bw = _problem(kind, "backward", g, dtype, cip, p)
    gy = rng.uniform(-1.0, 1.0, size=bw.y_shape).astype(dtype)
    xb = x if kind == "lp" else None
    _close(_run(bw, gy, xb), _run(bw, gy, xb, reference=True), dtype, what + " backward")
    return int(_C.pool_runs_direct(pb)) + int(_C.pool_runs_direct(bw))


def check_random_geometries(seed, count):
    """count random problems per kind and dtype; returns how many passes ran direct."""
    rng = np.random.default_rng(seed)
    direct = 0
    for dtype in (np.float32, np.float64):
        for _ in range(count):
            direct += check_max(rng, dtype)
            direct += check_sum(rng, dtype, "avg")
            direct += check_sum(rng, dtype, "lp")
    return direct


def test_random_geometries_match_reference():
    direct = check_random_geometries(seed=13, count=150)
    assert direct > 0.8 * 2 * 150 * 3 * 2  # most passes run on the direct kernels


def test_random_geometries_per_isa(isa):
    """Each ISA level's kernel table."""
    run_with_isa("import test_pool_direct as t; t.check_random_geometries(seed=31, count=60)", isa)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kernel,stride,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1)], ids=["2x2s2", "3x3s2p1", "3x3s1p1"]
)
def test_common_2d_layers(kernel, stride, pad, dtype):
    """The common 2-D windows over rows long enough for whole vector blocks and tails."""
    rng = np.random.default_rng(kernel * 10 + stride)
    g = ([2, 3, 19, 77], [kernel] * 2, [stride] * 2, [pad] * 2, [pad] * 2, [1, 1], False)
    x = rng.standard_normal(g[0]).astype(dtype)
    x[0, 0, 3, 5] = np.nan
    pb = _problem("max", "forward", g, dtype)
    assert _C.pool_runs_direct(pb)
    idx, idx_ref = np.zeros(pb.y_shape, np.int64), np.zeros(pb.y_shape, np.int64)
    _same(_run(pb, x, indices=idx), _run(pb, x, indices=idx_ref, reference=True), "max")
    assert (idx == idx_ref).all()
    for cip in (True, False):
        pa = _problem("avg", "forward", g, dtype, cip)
        _close(_run(pa, x), _run(pa, x, reference=True), dtype, "avg")
        ba = _problem("avg", "backward", g, dtype, cip)
        gy = rng.standard_normal(ba.y_shape).astype(dtype)
        _close(_run(ba, gy), _run(ba, gy, reference=True), dtype, "avg backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_pools(dtype):
    """Global windows run on the whole-plane kernels: max with indices (NaN and ties), avg."""
    rng = np.random.default_rng(5)
    for hw in ([7, 7], [1, 1], [3, 50]):
        g = ([3, 4] + hw, hw, hw, [0, 0], [0, 0], [1, 1], False)
        x = rng.integers(-2, 3, size=g[0]).astype(dtype)
        x[1, 2].flat[-1] = np.nan
        pb = _problem("max", "forward", g, dtype)
        idx, idx_ref = np.zeros(pb.y_shape, np.int64), np.zeros(pb.y_shape, np.int64)
        _same(_run(pb, x, indices=idx), _run(pb, x, indices=idx_ref, reference=True), "max")
        assert (idx == idx_ref).all()
        bw = _problem("max", "backward", g, dtype)
        gy = rng.standard_normal(bw.y_shape).astype(dtype)
        _same(_run(bw, gy, x), _run(bw, gy, x, reference=True), "max backward")
        pa = _problem("avg", "forward", g, dtype)
        _close(_run(pa, x), _run(pa, x, reference=True), dtype, "avg")
        ba = _problem("avg", "backward", g, dtype)
        _same(_run(ba, gy), _run(ba, gy, reference=True), "avg backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_unpool(dtype):
    """max_unpool scatters (the last of equal indices wins) like the reference; bad indices."""
    rng = np.random.default_rng(3)
    g = ([2, 3, 5, 7], [2, 2], [2, 2], [0, 0], [0, 0], [1, 1], False)  # x: the pooled tensor
    un = _problem("max_unpool", "forward", g, dtype)
    assert _C.pool_runs_direct(un)
    x = rng.standard_normal(un.x_shape).astype(dtype)
    plane = int(np.prod(un.result_shape[2:]))
    idx = rng.integers(0, plane, size=un.x_shape).astype(np.int64)
    idx[0, 0, 0, :3] = 4  # repeated: the last write wins
    _same(_run(un, x, indices=idx), _run(un, x, indices=idx, reference=True), "max_unpool")
    idx[0, 1, :2, 3] = idx[1, 2, 4, 6] = -1  # windows of padding only: nothing to scatter
    got = _run(un, x, indices=idx)
    _same(got, _run(un, x, indices=idx, reference=True), "max_unpool with -1")
    assert x[1, 2, 4, 6] not in got[1, 2]
    idx[1, 2, 4, 6] = plane
    for reference in (False, True):
        with pytest.raises(ValueError, match=rf"indices must lie in \[0, {plane}\).*got {plane}"):
            _run(un, x, indices=idx, reference=reference)


def test_max_backward_rejects_bad_indices():
    g = ([1, 2, 8, 8], [2, 2], [2, 2], [0, 0], [0, 0], [1, 1], False)
    bw = _problem("max", "backward", g, np.float32)
    gy = np.ones(bw.y_shape, np.float32)
    idx = np.zeros(bw.y_shape, np.int64)
    idx[0, 1, 3, 2] = -1  # a window of padding only: its grad goes nowhere
    for reference in (False, True):
        got = _run(bw, gy, np.zeros(bw.x_shape, np.float32), indices=idx, reference=reference)
        assert got[0, 0, 0, 0] == 16 and got[0, 1, 0, 0] == 15
    idx[0, 1, 3, 3] = 64
    for reference in (False, True):
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 64\).*got 64"):
            _run(bw, gy, np.zeros(bw.x_shape, np.float32), indices=idx, reference=reference)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_gather(dtype):
    """The gather pass (max pooling's second order, fastconv.jax) reads an x-shaped array at the
    forward's indices, and is the adjoint of the backward from those indices."""
    rng = np.random.default_rng(5)
    g = ([2, 3, 7, 9], [3, 2], [2, 1], [1, 0], [1, 0], [1, 2], True)
    fw = _problem("max", "forward", g, dtype)
    x = rng.standard_normal(fw.x_shape).astype(dtype)
    idx = np.full(fw.y_shape, -7, dtype=np.int64)
    _run(fw, x, indices=idx)
    ga = _problem("max", "gather", g, dtype)
    assert ga.pass_ == "gather" and tuple(ga.result_shape) == tuple(fw.y_shape)
    assert not _C.pool_runs_direct(ga)  # a plain gather: the reference's loop
    c = rng.standard_normal(fw.x_shape).astype(dtype)
    got = _run(ga, c, indices=idx)
    planes = c.reshape(6, -1)
    want = np.take_along_axis(planes, idx.reshape(6, -1), axis=1).reshape(fw.y_shape)
    _same(got, want, "gather")
    gy = rng.standard_normal(fw.y_shape).astype(dtype)
    grad_x = _run(_problem("max", "backward", g, dtype), gy, indices=idx)
    np.testing.assert_allclose(
        np.vdot(got, gy), np.vdot(c, grad_x), rtol=RTOL[dtype] * 10, err_msg="adjoint"
    )
    idx[1, 2, 0, 0] = planes.shape[1]
    with pytest.raises(ValueError, match=rf"indices must lie in \[0, {planes.shape[1]}\)"):
        _run(ga, c, indices=idx)
    with pytest.raises(ValueError, match="gather needs indices"):
        _run(ga, c)
    with pytest.raises(ValueError, match="gather pass is max_pool's only"):
        _problem("avg", "gather", g, dtype)


# Output rows long enough that the forward passes (and max's backward, which finds each argmax
# again) split them into segments (csrc/algo/pool_rows.h: more than twice max(256, 16384 /
# stride) outputs, rounded up to 16): every segment boundary, the first segment's padding, the
# last's partial span and ceil_mode windows.
LONG_ROWS = [
    ([1, 2, 70000], [3], [1], [1], [2], False),  # 5 segments of 16384, the last partial
    ([2, 1, 40001], [5], [2], [2], [1], True),  # stride 2: 8192 a segment
    ([1, 1, 64 * 600 + 13], [64], [64], [0], [1], True),  # 256 a segment, a ceil window
    ([1, 2, 3, 40000], [3, 3], [2, 2], [1, 1], [1, 1], True),
    ([1, 1, 2, 2, 40000], [2, 1, 4], [1, 1, 4], [0, 0, 1], [1, 1, 1], False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(LONG_ROWS)))
def test_long_rows_in_segments_match_reference(case, dtype):
    shape, kernel, stride, pad, dilation, ceil_mode = LONG_ROWS[case]
    rng = np.random.default_rng(case)
    g = (shape, kernel, stride, pad, pad, dilation, ceil_mode)
    pb = _problem("max", "forward", g, dtype)
    x = _x(rng, pb.x_shape, dtype, "max")
    x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan  # NaN in some segments' windows
    idx, idx_ref = (np.full(pb.y_shape, -7, dtype=np.int64) for _ in range(2))
    assert _C.pool_runs_direct(pb)
    y_ref = _run(pb, x, indices=idx_ref, reference=True)
    _same(_run(pb, x, indices=idx), y_ref, f"max {g}")
    assert (idx == idx_ref).all(), f"max indices {g}"
    _same(_run(pb, x), y_ref, f"max without indices {g}")
    bw = _problem("max", "backward", g, dtype)  # each window's argmax found again, by segment
    gy = rng.integers(-4, 5, size=bw.y_shape).astype(dtype) * dtype(0.25)
    _same(_run(bw, gy, x), _run(bw, gy, x, reference=True), f"max backward {g}")
    for kind, p, cip in (("avg", 2.0, True), ("avg", 2.0, False), ("lp", 2.0, True),
                         ("lp", 3.0, True)):  # fmt: skip
        sb = _problem(kind, "forward", g, dtype, cip, p)
        xs = _x(rng, sb.x_shape, dtype, kind)
        what = f"{kind} p={p} cip={cip} {g}"
        _close(_run(sb, xs), _run(sb, xs, reference=True), dtype, what)
