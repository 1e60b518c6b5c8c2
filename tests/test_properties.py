"""Hypothesis: random small geometries match the oracle or, when invalid, raise ValueError."""

from __future__ import annotations

import math

import fastconv
import numpy as np
import reference as ref
from conftest import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def per_dim_st(rank, lo, hi):
    """An int or a per-dim tuple (as a tuple or a list) with values in [lo, hi]."""
    one = st.integers(lo, hi)
    return st.one_of(one, st.tuples(*[one] * rank), st.lists(one, min_size=rank, max_size=rank))


def padding_st(rank, lo=0, hi=3, strings=True):
    one = st.integers(lo, hi)
    forms = [one, st.tuples(*[one] * rank), st.tuples(*[st.tuples(one, one)] * rank)]
    if strings:
        forms.append(st.sampled_from(["valid", "same", "full"]))
    return st.one_of(*forms)


@st.composite
def conv_problems(draw, allow_invalid_values=False):
    rank = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    vals = (-1, 3) if allow_invalid_values else (1, 3)
    return dict(
        rank=rank,
        n=draw(st.integers(0, 2)),
        groups=groups,
        c=groups * cg,
        k=groups * kg,
        in_sizes=draw(st.tuples(*[st.integers(1, 9)] * rank)),
        k_sizes=draw(st.tuples(*[st.integers(1, 4)] * rank)),
        stride=draw(per_dim_st(rank, *vals)),
        dilation=draw(per_dim_st(rank, *vals)),
        padding=draw(padding_st(rank, -1 if allow_invalid_values else 0)),
        mode=draw(st.sampled_from(["cross", "conv"])),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _flat_ints(v):
    if isinstance(v, (int, np.integer)):
        return [int(v)]
    out = []
    for e in v:
        out.extend(_flat_ints(e))
    return out


def conv_is_valid(p):
    """Independent validity check from the contract's rules."""
    if min(_flat_ints(p["stride"])) < 1 or min(_flat_ints(p["dilation"])) < 1:
        return False
    if not isinstance(p["padding"], str) and min(_flat_ints(p["padding"])) < 0:
        return False
    outs = ref.conv_out_shape(
        (1, 1) + p["in_sizes"], (1, 1) + p["k_sizes"], p["stride"], p["padding"], p["dilation"]
    )
    return min(outs) >= 1


def _arrays(p):
    rng = np.random.default_rng(p["seed"])
    x = rng.uniform(-1, 1, (p["n"], p["c"]) + p["in_sizes"]).astype(p["dtype"])
    w = rng.uniform(-1, 1, (p["k"], p["c"] // p["groups"]) + p["k_sizes"]).astype(p["dtype"])
    b = rng.uniform(-1, 1, p["k"]).astype(p["dtype"]) if p["bias"] else None
    return rng, x, w, b


def _kw(p):
    return dict(
        stride=p["stride"],
        padding=p["padding"],
        dilation=p["dilation"],
        groups=p["groups"],
        mode=p["mode"],
    )


@SETTINGS
@given(conv_problems())
def test_conv_valid_or_value_error(p):
    _, x, w, b = _arrays(p)
    if not conv_is_valid(p):
        try:
            fastconv.conv(x, w, b, **_kw(p))
        except ValueError:
            return
        raise AssertionError(f"no ValueError for invalid geometry {p}")
    y = fastconv.conv(x, w, b, **_kw(p))
    assert y.dtype == p["dtype"]
    assert_close(y, ref.conv(x, w, b, **_kw(p)), reduction=w[0].size)


@SETTINGS
@given(conv_problems(allow_invalid_values=True))
def test_conv_and_gradients_reject_invalid_values(p):
    # values out of range (stride/dilation < 1, padding < 0) or a kernel that does not fit
    rng, x, w, _ = _arrays(p)
    valid = conv_is_valid(p)
    kw = _kw(p)
    calls = [lambda: fastconv.conv(x, w, **kw)]
    if valid:
        gy = rng.uniform(-1, 1, fastconv.conv(x, w, **kw).shape).astype(p["dtype"])
        calls += [
            lambda: fastconv.conv_backward_data(gy, w, x.shape, **kw),
            lambda: fastconv.conv_backward_weight(x, gy, w.shape, **kw),
        ]
        red = gy.shape[0] * math.prod(gy.shape[2:])
        assert_close(
            calls[1](),
            ref.conv_backward_data(gy, w, x.shape, **kw),
            reduction=w.shape[0] * w[0].size,
        )
        assert_close(calls[2](), ref.conv_backward_weight(x, gy, w.shape, **kw), reduction=red)
    else:
        for call in calls:
            try:
                call()
            except ValueError:
                continue
            raise AssertionError(f"no ValueError for invalid arguments {p}")


@st.composite
def channel_problems(draw):
    """Channel/group combinations, often inconsistent."""
    return dict(
        c=draw(st.integers(1, 6)),
        k=draw(st.integers(1, 6)),
        cw=draw(st.integers(1, 6)),
        groups=draw(st.integers(-1, 4)),
        xrank=draw(st.integers(3, 5)),
        wrank=draw(st.integers(3, 5)),
    )


@SETTINGS
@given(channel_problems())
def test_channel_and_rank_consistency(p):
    x = np.ones((1, p["c"]) + (4,) * (p["xrank"] - 2))
    w = np.ones((p["k"], p["cw"]) + (2,) * (p["wrank"] - 2))
    g = p["groups"]
    ok = p["xrank"] == p["wrank"] and g >= 1 and p["c"] == p["cw"] * g and p["k"] % g == 0
    if ok:
        y = fastconv.conv(x, w, groups=g)
        assert y.shape == (1, p["k"]) + (3,) * (p["wrank"] - 2)
        np.testing.assert_allclose(y, p["cw"] * 2 ** (p["wrank"] - 2))  # all-ones data: window size
    else:
        try:
            fastconv.conv(x, w, groups=g)
        except ValueError:
            return
        raise AssertionError(f"no ValueError for {p}")


@st.composite
def pool_problems(draw):
    rank = draw(st.integers(1, 2))
    k = draw(st.tuples(*[st.integers(1, 4)] * rank))
    return dict(
        rank=rank,
        in_sizes=draw(st.tuples(*[st.integers(1, 9)] * rank)),
        k=k,
        stride=draw(st.one_of(st.none(), per_dim_st(rank, 1, 3))),
        padding=draw(padding_st(rank, 0, 2, strings=False)),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@SETTINGS
@given(pool_problems())
def test_pool_valid_or_value_error(p):
    rank = p["rank"]
    x = np.random.default_rng(p["seed"]).uniform(-1, 1, (2, 2) + p["in_sizes"])
    pads = ref.explicit_pairs(p["padding"], rank)
    k = p["k"]
    pad_ok = all(lo <= kk // 2 and hi <= kk // 2 for (lo, hi), kk in zip(pads, k))
    _, _, _, _, outs = ref.pool_geometry(
        p["in_sizes"], k, p["stride"], p["padding"], 1, p["ceil_mode"]
    )
    kw = dict(stride=p["stride"], padding=p["padding"], ceil_mode=p["ceil_mode"])
    if not pad_ok or min(outs) < 1:
        for fn in (fastconv.max_pool, fastconv.avg_pool):
            try:
                fn(x, k, **kw)
            except ValueError:
                continue
            raise AssertionError(f"no ValueError from {fn.__name__} for {p}")
        return
    y, idx = fastconv.max_pool(x, k, return_indices=True, **kw)
    want, want_idx = ref.max_pool(x, k, p["stride"], p["padding"], 1, p["ceil_mode"])
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(idx, want_idx)
    ya = fastconv.avg_pool(x, k, count_include_pad=p["count_include_pad"], **kw)
    assert_close(
        ya,
        ref.avg_pool(x, k, p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"]),
        reduction=math.prod(k),
    )


@st.composite
def transpose_problems(draw):
    rank = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    s = draw(st.tuples(*[st.integers(1, 3)] * rank))
    d = draw(st.tuples(*[st.integers(1, 3)] * rank))
    op = tuple(draw(st.integers(0, 3)) for _ in range(rank))
    return dict(
        rank=rank,
        groups=groups,
        cin=groups * draw(st.integers(1, 2)),
        kg=draw(st.integers(1, 3)),
        in_sizes=draw(st.tuples(*[st.integers(1, 6)] * rank)),
        k_sizes=draw(st.tuples(*[st.integers(1, 3)] * rank)),
        stride=s,
        dilation=d,
        output_padding=op,
        padding=draw(padding_st(rank, 0, 2, strings=False)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@SETTINGS
@given(transpose_problems())
def test_conv_transpose_valid_or_value_error(p):
    rng = np.random.default_rng(p["seed"])
    x = rng.uniform(-1, 1, (2, p["cin"]) + p["in_sizes"])
    w = rng.uniform(-1, 1, (p["cin"], p["kg"]) + p["k_sizes"])
    kw = dict(
        stride=p["stride"],
        padding=p["padding"],
        output_padding=p["output_padding"],
        dilation=p["dilation"],
        groups=p["groups"],
    )
    pads = ref.explicit_pairs(p["padding"], p["rank"])
    op_ok = all(o < max(s, d) for o, s, d in zip(p["output_padding"], p["stride"], p["dilation"]))
    outs = [
        ref.transpose_out_size(n, k, s, d, lo, hi, o)
        for n, k, s, d, (lo, hi), o in zip(
            p["in_sizes"], p["k_sizes"], p["stride"], p["dilation"], pads, p["output_padding"]
        )
    ]
    if not op_ok or min(outs) < 1:
        try:
            fastconv.conv_transpose(x, w, **kw)
        except ValueError:
            return
        raise AssertionError(f"no ValueError for {p}")
    y = fastconv.conv_transpose(x, w, **kw)
    assert_close(y, ref.conv_transpose(x, w, None, **kw), reduction=w.shape[0] * w[0, 0].size)
