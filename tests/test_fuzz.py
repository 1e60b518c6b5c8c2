"""Fuzzing the public API (docs/reliability-fuzzing.md): hypothesis draws calls from the whole
argument space, valid and invalid (tests/fuzz_cases.py), and each must return the oracle's
result or raise a documented error naming the argument; never crash, hang or modify an input.

The CI portion is small and deterministic. FASTCONV_FUZZ_EXAMPLES=N runs N random examples per
family instead (a long campaign: tests/fuzz_campaign.py runs it in child processes)."""

from __future__ import annotations

import os

import fastconv
import numpy as np
import pytest
from conftest import raises_naming
from fuzz_cases import FAMILIES, run_case
from hypothesis import HealthCheck, given, settings

LONG = int(os.environ.get("FASTCONV_FUZZ_EXAMPLES", "0"))
CI_EXAMPLES = {"conv": 120, "pool": 80, "resample": 80, "tiled": 40, "separable": 40}


def _settings(family):
    return settings(
        max_examples=LONG or CI_EXAMPLES[family],
        derandomize=not LONG,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


def _test(family):
    @_settings(family)
    @given(FAMILIES[family]())
    def test(case):
        run_case(case)

    test.__name__ = f"test_fuzz_{family}"
    return test


test_fuzz_conv = _test("conv")
test_fuzz_pool = _test("pool")
test_fuzz_resample = _test("resample")
test_fuzz_tiled = _test("tiled")
test_fuzz_separable = _test("separable")


# ---- regressions: the defects the campaigns found (docs/reliability-fuzzing.md)

ONE = np.ones((1, 2, 5, 5))
W = np.ones((3, 2, 3, 3))
IDX = np.zeros((1, 1, 2), np.int64)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda v: fastconv.conv(ONE, W, stride=v), "stride"),
        (lambda v: fastconv.conv(ONE, W, padding=((0, v), (0, 0))), "padding"),
        (lambda v: fastconv.conv(ONE, W, groups=v), "groups"),
        (
            lambda v: fastconv.conv_transpose(ONE, W.transpose(1, 0, 2, 3), output_padding=v),
            "output_padding",
        ),
        (lambda v: fastconv.max_pool(ONE, v), "kernel_size"),
        (lambda v: fastconv.lp_pool(ONE, 2, 2, stride=v), "stride"),
        (
            lambda v: fastconv.max_unpool(np.ones((1, 1, 2)), IDX, 2, output_size=(v,)),
            "output_size",
        ),
        (lambda v: fastconv.upsample_nearest(ONE, v), "scale"),
        (lambda v: fastconv.pixel_shuffle(ONE, v), "r"),
        (lambda v: fastconv.stochastic_pool(ONE, 2, stride=(1, v)), "stride"),
        (lambda v: fastconv.tiled_conv(ONE, np.ones((1, 1, 1, 2, 3, 3)), dilation=v), "dilation"),
        (lambda v: fastconv.separable_conv(ONE, [np.ones((1, 2, 3))] * 2, stride=v), "stride"),
        (lambda v: fastconv.blur_pool(ONE, stride=v), "stride"),
        (lambda v: fastconv.weighted_avg_pool(ONE, np.ones((2, 2)), padding=v), "padding"),
        (lambda v: fastconv.conv_backward_data(np.ones((1, 3, 3, 3)), W, (1, 2, 5, v)), "x_shape"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1], ids=str)
def test_ints_beyond_int64_name_the_argument(call, name, value):
    # were: pybind11's TypeError "incompatible function arguments" with the signature
    with raises_naming((ValueError, TypeError), name):
        call(value)


@pytest.mark.parametrize("n", [4097, 2**31, 2**63])
def test_set_num_threads_refuses_absurd_counts(n):
    # 2**31 - 1 threads would have been started by the next call; 2**63 was pybind's TypeError
    before = fastconv.get_num_threads()
    with raises_naming(ValueError, "n"):
        fastconv.set_num_threads(n)
    assert fastconv.get_num_threads() == before


@pytest.mark.parametrize(
    "call",
    [
        lambda bad: fastconv.global_avg_pool(bad),
        lambda bad: fastconv.global_max_pool(bad),
        lambda bad: fastconv.blur_pool(bad),
        lambda bad: fastconv.blur_pool_backward(bad, (1, 1, 8)),
        lambda bad: fastconv.weighted_avg_pool(bad, np.ones(2)),
        # campaign of 2026-12-06 (seeds 4747-4949): these raised ValueError "... dims, got 0"
        lambda bad: fastconv.conv1d(np.ones((1, 3, 2)), bad),
        lambda bad: fastconv.separable_conv(bad, [np.ones((2, 1, 3))] * 2, groups=2),
        lambda bad: fastconv.separable_conv_backward_data(bad, [np.ones((2, 1, 3))], (1, 2, 5)),
    ],
)
@pytest.mark.parametrize("bad", [None, "abc", {"a": 1}, object()], ids=lambda b: type(b).__name__)
def test_non_arrays_are_type_errors(call, bad):
    # were: ValueError "x must have 3, 4 or 5 dims ..., got 0" (np.shape of a non-array)
    with pytest.raises(TypeError):
        call(bad)


def test_separable_factors_as_nested_lists():
    # was: AttributeError ('list' object has no attribute 'reshape')
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 2, 6, 7))
    f = [rng.uniform(-1, 1, (2, 1, 3)), rng.uniform(-1, 1, (2, 1, 2))]
    kw = dict(groups=2, padding=1)
    want = fastconv.separable_conv(x, f, **kw)
    got = fastconv.separable_conv(x, [f[0].tolist(), f[1]], **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    gy = np.ones(want.shape)
    grads = fastconv.separable_conv_backward_factors(x, gy, [f[0], f[1].tolist()], **kw)
    assert [g.shape for g in grads] == [(2, 1, 3), (2, 1, 2)]
    with raises_naming(TypeError, r"factors\[1\]"):
        fastconv.separable_conv(x, [f[0], None], **kw)


@pytest.mark.parametrize(
    "x,w,kw",
    [
        # dilation * (kernel - 1) overflowed int64: explained as valid with a 17 TB workspace
        ((1, 1, 2**40), (1, 1, 2**40), dict(dilation=2**40)),
        ((1, 1, 2**40), (1, 1, 2**40), dict(dilation=2**40, pass_="backward_weight")),
        # (in - 1) * stride overflowed: "padding removes the whole output"
        ((1, 1, 2**40), (1, 1, 1), dict(stride=2**40, op="conv_transpose")),
        # w.shape[1] * groups overflowed
        ((1, 2**40, 1), (2**40, 2**40, 1), dict(groups=2**40, op="conv_transpose")),
    ],
    ids=str,
)
def test_explain_of_overflowing_geometry(x, w, kw):
    with raises_naming(ValueError, "w|x|stride|dilation|groups|output|kernel|padding"):
        fastconv.explain(x, w, **kw)


def test_max_unpool_default_size_overflow():
    # an empty x may have a 2**40 extent; (in - 1) * stride overflowed to a negative size
    x = np.ones((0, 1, 2**40))
    with raises_naming(ValueError, "output size|output_size"):
        fastconv.max_unpool(x, np.zeros(x.shape, np.int64), 2, stride=2**40)


@pytest.mark.parametrize(
    "call",
    [
        lambda: fastconv.upsample_nearest(np.ones((0, 1, 2**40)), 2**20),
        lambda: fastconv.upsample_nearest(np.ones((0, 1, 2**62)), 4),
        lambda: fastconv.pixel_shuffle(np.ones((0, 4, 2**62)), 2),
    ],
)
def test_empty_inputs_with_huge_extents(call):
    # were: NumPy's "array is too big" (no argument named) or an int64 overflow in the shape
    with pytest.raises((MemoryError, ValueError)) as info:
        call()
    assert (
        isinstance(info.value, MemoryError) or "scale" in str(info.value) or "x" in str(info.value)
    )
