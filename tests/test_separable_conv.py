"""separable_conv: == dense conv with the outer-product kernel (chain and dense paths, groups,
depthwise multipliers, stride, padding rules, dilation), the factor gradients by linearity,
the fused 2-D passes against the NumPy oracle at every ISA level, conv(..., algo="separable")
with its rank-1 check, explain, errors."""

from __future__ import annotations

import json
import textwrap

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, raises_naming, rand, run_with_isa
from fastconv import separable as sep


def dense(factors):
    k, cg = factors[0].shape[:2]
    w = None
    for d, f in enumerate(factors):
        shape = [1] * len(factors)
        shape[d] = f.shape[2]
        term = np.asarray(f, np.float64).reshape(k, cg, *shape)
        w = term if w is None else w * term
    return w


# (x shape, K, groups, kernel, stride, padding, dilation); chain: C/G == 1 or a large kernel
CASES = [
    ((2, 4, 9, 10), 8, 4, (3, 5), (1, 2), (1, 2), 1),  # depthwise, multiplier 2
    ((2, 3, 8, 8), 3, 3, (3, 3), 2, "same", 1),  # depthwise, stride, "same"
    ((1, 3, 5, 6, 7), 6, 3, (2, 3, 2), 1, "same", (1, 2, 1)),  # 3-D
    ((2, 6, 9, 10), 4, 2, (3, 2), 1, 1, (2, 1)),  # C/G > 1, small kernel: dense
    ((2, 4, 30, 30), 6, 2, (17, 17), 1, 3, 1),  # C/G > 1, large kernel: chain + channel sum
    ((2, 2, 12), 3, 1, (5,), 2, 2, 1),  # 1-D: dense
    ((1, 2, 7, 7), 2, 2, (7, 7), 1, "full", 1),
    ((2, 2, 9, 20), 4, 2, (3, 4), (1, 3), ((0, 1), (3, 2)), (1, 2)),  # last-dim stride, dilation
    ((1, 2, 3, 4200), 2, 2, (2, 5), 1, 2, 1),  # rows longer than the kernel's stack copy
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_separable_matches_dense_conv(rng, dtype, case):
    xs, k, groups, kernel, stride, padding, dilation = case
    cg = xs[1] // groups
    factors = [rand(rng, (k, cg, n), dtype) for n in kernel]
    x = rand(rng, xs, dtype)
    b = rand(rng, (k,), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    w = dense(factors).astype(dtype)
    reduction = cg * int(np.prod(kernel))
    y = fastconv.separable_conv(x, factors, b, **kw)
    assert y.dtype == dtype
    assert_close(y, fastconv.conv(x, w, b, **kw), reduction=reduction)
    g = rand(rng, y.shape, dtype)
    gx = fastconv.separable_conv_backward_data(g, factors, xs, **kw)
    assert_close(gx, fastconv.conv_backward_data(g, w, xs, **kw), reduction=reduction * k)
    gf = fastconv.separable_conv_backward_factors(x, g, factors, **kw)
    assert len(gf) == len(factors)
    y0 = fastconv.separable_conv(
        x.astype(np.float64), [f.astype(np.float64) for f in factors], **kw
    )
    for d in range(len(factors)):  # y is linear in each factor: <g, y(f + e) - y(f)> = <gf, e>
        assert gf[d].shape == factors[d].shape and gf[d].dtype == dtype
        e = rng.standard_normal(factors[d].shape)
        f2 = [f.astype(np.float64) for f in factors]
        f2[d] = f2[d] + e
        y2 = fastconv.separable_conv(x.astype(np.float64), f2, **kw)
        want = float((g * (y2 - y0)).sum())
        tol = (2e-3 if dtype == np.float32 else 1e-9) * (abs(want) + float(np.abs(g).sum()))
        assert abs(float((gf[d].astype(np.float64) * e).sum()) - want) <= tol


# The fused 2-D passes (csrc/algo/separable_conv.cc), shapes that reach each branch of its
# micro-kernels: rows of several 4-vector blocks plus vector and scalar tails, several bands
# per plane, the 4-row blocks and the leftover rows, kernels shorter than a row block (the
# checked head and tail), strides and dilations along each dim (the one-row vertical path, the
# subsampled horizontal one), padding on one side only, C/groups > 1 (the fused channel sum)
# with a channel multiplier, and rank 3 (one intermediate channel per (c, k) pair).
# (x shape, K, groups, kernel, stride, padding, dilation)
FUSED_CASES = [
    ((2, 3, 37, 83), 3, 3, (31, 31), 1, "same", 1),
    ((1, 2, 270, 19), 4, 2, (2, 7), 1, ((1, 0), (3, 3)), 1),
    ((1, 2, 23, 45), 2, 2, (5, 4), (2, 3), (2, 1), (2, 3)),
    ((2, 6, 33, 40), 4, 2, (17, 17), 1, "full", 1),
    ((1, 3, 41, 130), 3, 3, (9, 17), 1, ((0, 8), (16, 0)), (1, 2)),
    ((1, 4, 5, 9, 21), 8, 2, (3, 9, 9), (1, 2, 1), "same", 1),
]


def _oracle(x, factors, bias, kw):
    return ref.conv(x, dense(factors), bias, **kw)


def _factor_oracle(x, g, factors, kw):
    """Each factor's gradient of a 2-D separable conv: the dense weight gradient (oracle)
    summed against the other factor."""
    f0, f1 = (np.asarray(f, np.float64) for f in factors)
    gw = ref.conv_backward_weight(x, g, dense(factors).shape, **kw)
    return [np.einsum("kcab,kcb->kca", gw, f1), np.einsum("kcab,kca->kcb", gw, f0)]


@pytest.fixture
def poisoned_empty(monkeypatch):
    """np.empty gives NaN-filled arrays: an output element the fused kernel skips fails."""
    original = np.empty

    def empty(shape, dtype=float, order="C", **kwargs):
        out = original(shape, dtype, order, **kwargs)
        if np.dtype(dtype).kind == "f":
            out.fill(np.nan)
        elif np.dtype(dtype) == np.uint8:  # a pooled output's block (fastconv/_host_memory.py)
            out.fill(0xFF)  # all-ones bytes: NaN in float32 and float64
        return out

    monkeypatch.setattr(np, "empty", empty)


@pytest.mark.parametrize("pooled", [False, True], ids=["plain-output", "pooled-output"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_passes_match_oracle(rng, dtype, case, pooled, poisoned_empty, monkeypatch):
    """Pooled outputs are 64-byte aligned: the horizontal pass streams them (non-temporal
    stores); plain NumPy outputs mostly are not."""
    if pooled:
        monkeypatch.setattr(sep.POOL, "min_bytes", 0)
    xs, k, groups, kernel, stride, padding, dilation = case
    cg = xs[1] // groups
    factors = [rand(rng, (k, cg, n), dtype) for n in kernel]
    x, b = rand(rng, xs, dtype), rand(rng, (k,), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    calls = []
    fused = sep._C.separable_conv2d
    monkeypatch.setattr(sep._C, "separable_conv2d", lambda *a: calls.append(1) or fused(*a))
    want = _oracle(x, factors, b, kw)
    reduction = cg * int(np.prod(kernel))
    y = fastconv.separable_conv(x, factors, b, **kw)
    assert calls, "the fused passes did not run"
    assert type(y) is np.ndarray and y.dtype == dtype
    assert_close(y, want, reduction=reduction)
    g = rand(rng, want.shape, dtype)
    calls.clear()
    gx = fastconv.separable_conv_backward_data(g, factors, xs, **kw)
    assert bool(calls) == (len(kernel) == 2 and set(np.atleast_1d(stride)) == {1})
    want_gx = ref.conv_backward_data(g, dense(factors), xs, **kw)
    assert_close(gx, want_gx, reduction=reduction * k // groups)
    if len(kernel) == 2 and set(np.atleast_1d(stride)) == {1}:
        fused_factors = sep._C.separable_conv2d_backward_factors
        monkeypatch.setattr(
            sep._C,
            "separable_conv2d_backward_factors",
            lambda *a: calls.append(2) or fused_factors(*a),
        )
        calls.clear()
        gf = fastconv.separable_conv_backward_factors(x, g, factors, **kw)
        assert calls == [2], "the fused factor gradients did not run"
        for got, want in zip(gf, _factor_oracle(x, g, factors, kw)):
            assert got.dtype == dtype and got.shape == want.shape
            assert_close(got, want, reduction=xs[0] * int(np.prod(y.shape[2:])) * max(kernel))


def test_fused_passes_on_torch_tensors(rng):
    """CPU tensors without grad take the fused passes and come back as tensors; with grad the
    autograd chain runs, with the same values."""
    torch = pytest.importorskip("torch")
    xs, k, groups, kernel, stride, padding, dilation = FUSED_CASES[3]
    factors = [torch.from_numpy(rand(rng, (k, xs[1] // groups, n))) for n in kernel]
    x = torch.from_numpy(rand(rng, xs))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = fastconv.separable_conv(x, factors, **kw)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64
    xg = x.clone().requires_grad_(True)
    y2 = fastconv.separable_conv(xg, factors, **kw)
    assert y2.requires_grad
    reduction = 3 * 17 * 17
    assert_close(y.numpy(), y2.detach().numpy(), reduction=reduction)
    want = _oracle(x.numpy(), [f.numpy() for f in factors], None, kw)
    assert_close(y.numpy(), want, reduction=reduction)


_ISA_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    import fastconv
    fastconv.separable.POOL.min_bytes = 0  # aligned outputs: the streaming stores run too
    cases = json.loads(open(SPEC).read())
    data = np.load(INPUTS)
    out = {}
    for i, (xs, k, groups, kernel, stride, padding, dilation) in enumerate(cases):
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        for dt in ("float32", "float64"):
            factors = [data[f"{i}-{dt}-f{d}"] for d in range(len(kernel))]
            out[f"{i}-{dt}"] = fastconv.separable_conv(data[f"{i}-{dt}-x"], factors, **kw)
            if f"{i}-{dt}-g" in data.files:  # 2-D, stride 1: the fused factor gradients
                gf = fastconv.separable.separable_conv_backward_factors(
                    data[f"{i}-{dt}-x"], data[f"{i}-{dt}-g"], factors, **kw)
                out[f"{i}-{dt}-gf0"], out[f"{i}-{dt}-gf1"] = gf
    np.savez(OUTPUTS, **out)
""")


def test_fused_passes_at_every_isa_level(isa, rng, tmp_path):
    arrays, want = {}, {}
    for i, (xs, k, groups, kernel, stride, padding, dilation) in enumerate(FUSED_CASES):
        for dtype in DTYPES:
            dt = np.dtype(dtype).name
            factors = [rand(rng, (k, xs[1] // groups, n), dtype) for n in kernel]
            x = rand(rng, xs, dtype)
            arrays[f"{i}-{dt}-x"] = x
            arrays.update({f"{i}-{dt}-f{d}": f for d, f in enumerate(factors)})
            kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
            want[f"{i}-{dt}"] = (_oracle(x, factors, None, kw), xs[1] // groups * np.prod(kernel))
            if len(kernel) == 2 and set(np.atleast_1d(stride)) == {1}:
                g = rand(rng, want[f"{i}-{dt}"][0].shape, dtype)
                arrays[f"{i}-{dt}-g"] = g
                n_sum = xs[0] * int(np.prod(g.shape[2:])) * max(kernel)
                for d, gf in enumerate(_factor_oracle(x, g, factors, kw)):
                    want[f"{i}-{dt}-gf{d}"] = (gf, n_sum)
    np.savez(tmp_path / "inputs.npz", **arrays)
    (tmp_path / "spec.json").write_text(json.dumps(FUSED_CASES))  # tuples as lists
    names = dict(SPEC="spec.json", INPUTS="inputs.npz", OUTPUTS="out.npz")
    code = "\n".join(f"{k} = {str(tmp_path / v)!r}" for k, v in names.items()) + _ISA_CHILD
    run_with_isa(code, isa)
    got = np.load(tmp_path / "out.npz")
    assert sorted(got.files) == sorted(want)
    for key, (expected, reduction) in want.items():
        assert got[key].dtype == np.dtype(key.split("-")[1])
        assert_close(got[key], expected, reduction=int(reduction), err_msg=f"{isa} {key}")


def test_chain_is_used_where_documented():
    lay = sep._Layout((1, 4, 9, 9), [(4, 1, 3), (4, 1, 3)], 1, 0, 1, 4)
    assert lay.uses_chain()  # depthwise-like
    lay = sep._Layout((1, 4, 9, 9), [(4, 4, 3), (4, 4, 3)], 1, 0, 1, 1)
    assert not lay.uses_chain()  # 9 taps vs 6: dense
    lay = sep._Layout((1, 4, 40, 40), [(4, 4, 31), (4, 4, 31)], 1, 0, 1, 1)
    assert lay.uses_chain()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["cross", "conv"])
def test_conv_algo_separable(rng, dtype, mode):
    factors = [rand(rng, (6, 1, 5), dtype), rand(rng, (6, 1, 3), dtype)]
    w = dense(factors).astype(dtype)
    x = rand(rng, (2, 3, 11, 9), dtype)
    kw = dict(padding="same", groups=3, mode=mode)
    want = fastconv.conv(x, w, **kw)
    assert_close(fastconv.conv(x, w, algo="separable", **kw), want, reduction=15)
    g = rand(rng, want.shape, dtype)
    assert_close(
        fastconv.conv_backward_data(g, w, x.shape, algo="separable", **kw),
        fastconv.conv_backward_data(g, w, x.shape, **kw),
        reduction=30,
    )
    assert "rank-1" in str(fastconv.explain(x, w, algo="separable", groups=3))
    with raises_naming(NotImplementedError, "separable"):
        fastconv.conv_backward_weight(x, g, w.shape, algo="separable", **kw)


def test_conv_algo_separable_refuses_full_rank_kernels(rng):
    w = rand(rng, (4, 2, 3, 3))
    x = rand(rng, (1, 2, 6, 6))
    with raises_naming(NotImplementedError, "separable", "rank-1"):
        fastconv.conv(x, w, algo="separable")
    with raises_naming(NotImplementedError, "separable"):
        fastconv.explain(x, w, algo="separable")
    w[1, 1, 0, 0] += 1e-3  # nearly separable is not separable
    w2 = dense([rand(rng, (4, 2, 3)), rand(rng, (4, 2, 3))])
    w2[1, 1, 0, 0] += 1e-3
    with raises_naming(NotImplementedError, "separable"):
        fastconv.conv(x, w2, algo="separable")


def test_separable_errors(rng):
    x = rand(rng, (1, 4, 8, 8), np.float32)
    f = [rand(rng, (4, 1, 3), np.float32)] * 2
    with raises_naming(ValueError, "factors"):
        fastconv.separable_conv(x, f[:1], groups=4)
    with raises_naming(ValueError, r"factors\[1\]"):
        fastconv.separable_conv(x, [f[0], rand(rng, (4, 2, 3), np.float32)], groups=4)
    with raises_naming(ValueError, "groups"):
        fastconv.separable_conv(x, f, groups=3)
    with raises_naming(TypeError, "factors"):
        fastconv.separable_conv(x, f[0], groups=4)
    with raises_naming(ValueError, "bias"):
        fastconv.separable_conv(x, f, np.zeros(5, np.float32), groups=4)
    with raises_naming(ValueError, "stride"):
        fastconv.separable_conv(x, f, stride=0, groups=4)
    x0, f0 = x.copy(), [a.copy() for a in f]
    fastconv.separable_conv(x, f, groups=4, padding=1)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(f[0], f0[0])


def test_separable_operand_types(rng):
    """A factor of another dtype (int, bool, complex, half, or the other float) is a TypeError
    naming it in every pass, whichever path runs (the dense path had cast int and bool factors
    silently, and the chain blamed an internal `w`); operands that are no arrays are
    TypeErrors naming x / grad_y (they were "x must have 3, 4 or 5 dims")."""
    x = rand(rng, (1, 4, 8, 8), np.float64)
    gy = rand(rng, (1, 4, 6, 6), np.float64)
    for groups in (1, 4):  # the dense path and the depthwise chain
        f = [rand(rng, (4, 4 // groups, 3), np.float64) for _ in range(2)]
        for dt, what in [(np.int32, "float32 or float64"), (np.bool_, "float32 or float64"),
                         (np.complex128, "float32 or float64"), (np.float16, "float32 or float64"),
                         (np.float32, "dtype of")]:  # fmt: skip
            bad = [f[0], f[1].astype(dt)]
            with raises_naming(TypeError, r"factors\[1\]", what):
                fastconv.separable_conv(x, bad, groups=groups)
            with raises_naming(TypeError, r"factors\[1\]", what):
                fastconv.separable_conv_backward_data(gy, bad, x.shape, groups=groups)
            with raises_naming(TypeError, r"factors\[1\]", what):
                fastconv.separable_conv_backward_factors(x, gy, bad, groups=groups)
        big_endian = [f[0], f[1].astype(">f8")]  # the same dtype in another byte order is fine
        np.testing.assert_allclose(
            fastconv.separable_conv(x, big_endian, groups=groups),
            fastconv.separable_conv(x, f, groups=groups),
        )
        for junk in ({"a": 1}, b"x", None, object()):
            with raises_naming(TypeError, "x"):
                fastconv.separable_conv(junk, f, groups=groups)
            with raises_naming(TypeError, "grad_y"):
                fastconv.separable_conv_backward_data(junk, f, x.shape, groups=groups)
            with raises_naming(TypeError, "x"):
                fastconv.separable_conv_backward_factors(junk, gy, f, groups=groups)


def test_separable_bias_as_list(rng):
    """A bias given as a list works on the chain too (it reshaped it: AttributeError, fuzz
    seed 4848); a bias that is no array is a TypeError naming it."""
    x = rand(rng, (1, 2, 3, 4, 4), np.float64)
    f = [rand(rng, (4, 1, k), np.float64) for k in (1, 3, 2)]
    b = rand(rng, (4,), np.float64)
    kw = dict(stride=2, padding=[[0, 0], [1, 0], [1, 1]], groups=2)
    want = fastconv.separable_conv(x, f, b, **kw)
    # (a list x skips the fused host passes: another summation order, so not bit-identical)
    got = fastconv.separable_conv(x.tolist(), f, b.tolist(), **kw)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    with raises_naming(TypeError, "bias"):
        fastconv.separable_conv(x, f, "abc", **kw)
    x32, f32 = x.astype(np.float32), [a.astype(np.float32) for a in f]
    for bias in (b, b.tolist()):  # float64 (a list of floats is): as the dense path, no promotion
        with raises_naming(TypeError, "bias"):
            fastconv.separable_conv(x32, f32, bias, **kw)
