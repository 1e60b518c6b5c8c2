"""fastconv.jax.conv / conv_transpose against XLA's own convolution (lax), under jax.jit:
forward in float32 and float64, gradients, check_grads, vmap, the custom call in the HLO, a few
SGD steps of a small conv net, argument errors."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'fastconv[jax]')")

import jax.numpy as jnp  # noqa: E402
from fcj_testing import (  # noqa: E402
    array,
    assert_close,
    fcj,
    lax_conv,
    lax_conv_transpose,
    output_and_vjp,
)
from jax.test_util import check_grads  # noqa: E402

jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay so

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])

# (x shape, w shape, keyword arguments): real-layer-like and awkward sizes, every option.
CONV_CASES = [
    ((2, 3, 11), (4, 3, 3), dict()),
    ((2, 3, 13), (6, 1, 5), dict(stride=2, padding=2, groups=3)),
    ((1, 5, 9, 10), (7, 5, 3, 3), dict(padding=1)),
    ((2, 4, 12, 9), (6, 2, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)), groups=2)),
    ((1, 3, 13, 11), (4, 3, 3, 3), dict(dilation=2, padding="same")),
    ((1, 8, 17, 15), (8, 1, 7, 7), dict(padding=3, groups=8)),  # depthwise, large kernel
    ((1, 6, 23, 19), (6, 1, 11, 11), dict(padding=5, groups=6)),
    ((2, 3, 5, 6, 7), (2, 3, 3, 2, 3), dict(stride=(1, 2, 1), padding=(1, 0, 1))),
]
CONV_IDS = [f"{len(x) - 2}d-{i}" for i, (x, _, _) in enumerate(CONV_CASES)]

# (x shape, w shape (C_in, K/groups, *k), keyword arguments)
CONVT_CASES = [
    ((2, 3, 7), (3, 4, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 5, 6), (4, 3, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 5, 4), (4, 1, 3, 2), dict(stride=(2, 3), output_padding=(1, 2), groups=2)),
    ((1, 2, 3, 4, 3), (2, 3, 2, 3, 2), dict(stride=2, dilation=(1, 2, 1))),
]
CONVT_IDS = [f"{len(x) - 2}d-{i}" for i, (x, _, _) in enumerate(CONVT_CASES)]


def _bias(rng, w_shape, kw, dtype, transposed=False):
    k = w_shape[1] * kw.get("groups", 1) if transposed else w_shape[0]
    return array(rng, (k,), dtype)


# ---- forward and gradients under jit: one jitted call per side returns the output with and
# without a bias and their VJP (one XLA compile each side; they were five per case)


def _check_output_and_vjp(rng, dtype, ours, ref, x, w, b):
    """ours / ref(x, w, b) with and without the bias, and the VJP of random cotangents of both
    outputs w.r.t. x, w and b, in one jitted call per side."""
    y_shape = jax.eval_shape(lambda x, w: ref(x, w), x, w).shape
    cotangent = (array(rng, y_shape, dtype), array(rng, y_shape, dtype))
    got = output_and_vjp(lambda x, w, b: (ours(x, w, b), ours(x, w)), (x, w, b), cotangent)
    want = output_and_vjp(lambda x, w, b: (ref(x, w, b), ref(x, w)), (x, w, b), cotangent)
    for got_y, want_y in zip(got[0], want[0]):
        assert_close(got_y, want_y, dtype)
    for got_g, want_g in zip(got[1:], want[1:]):
        assert_close(got_g, want_g, dtype, scale=10.0)


@DTYPES
@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES, ids=CONV_IDS)
def test_conv_and_gradients_match_lax(rng, dtype, x_shape, w_shape, kw):
    x, w = array(rng, x_shape, dtype), array(rng, w_shape, dtype)
    b = _bias(rng, w_shape, kw, dtype)
    ours = lambda x, w, b=None: fcj.conv(x, w, b, **kw)  # noqa: E731
    ref = lambda x, w, b=None: lax_conv(x, w, b, **kw)  # noqa: E731
    _check_output_and_vjp(rng, dtype, ours, ref, x, w, b)


@DTYPES
@pytest.mark.parametrize("x_shape, w_shape, kw", CONVT_CASES, ids=CONVT_IDS)
def test_conv_transpose_and_gradients_match_lax(rng, dtype, x_shape, w_shape, kw):
    x, w = array(rng, x_shape, dtype), array(rng, w_shape, dtype)
    b = _bias(rng, w_shape, kw, dtype, transposed=True)
    ours = lambda x, w, b=None: fcj.conv_transpose(x, w, b, **kw)  # noqa: E731
    ref = lambda x, w, b=None: lax_conv_transpose(x, w, b, **kw)  # noqa: E731
    _check_output_and_vjp(rng, dtype, ours, ref, x, w, b)


@pytest.mark.parametrize("algo", ["direct", "im2col", "implicit_gemm", "fft", "reference"])
def test_forced_algorithms_match_lax(rng, algo):
    x, w = array(rng, (2, 4, 10, 9), np.float32), array(rng, (5, 4, 3, 3), np.float32)
    if algo not in fcj_algorithms():
        pytest.skip(f"{algo} is not built here")
    f = jax.jit(lambda x, w: fcj.conv(x, w, padding=1, algo=algo))
    assert_close(f(x, w), lax_conv(x, w, padding=1), np.float32)
    g = jax.jit(jax.grad(lambda x, w: jnp.sum(fcj.conv(x, w, padding=1, algo=algo) ** 2), (0, 1)))
    want = jax.grad(lambda x, w: jnp.sum(lax_conv(x, w, padding=1) ** 2), (0, 1))(x, w)
    for got_i, want_i in zip(g(x, w), want):
        assert_close(got_i, want_i, np.float32, scale=10.0)


def fcj_algorithms():
    import fastconv

    return fastconv.algorithms("conv")


# ---- gradients


@pytest.mark.parametrize(
    "fn, x_shape, w_shape, kw",
    [
        (fcj.conv, (2, 4, 6, 5), (4, 2, 3, 2), dict(stride=(2, 1), padding=1, groups=2)),
        (fcj.conv, (1, 2, 7), (3, 2, 3), dict(dilation=2, padding="same")),
        (fcj.conv_transpose, (1, 3, 4, 3), (3, 2, 3, 3), dict(stride=2, output_padding=1)),
    ],
    ids=["conv2d", "conv1d-same", "conv_transpose2d"],
)
def test_check_grads(rng, fn, x_shape, w_shape, kw):
    x, w = array(rng, x_shape, np.float64), array(rng, w_shape, np.float64)
    k = w_shape[1] * kw.get("groups", 1) if fn is fcj.conv_transpose else w_shape[0]
    b = array(rng, (k,), np.float64)
    check_grads(jax.jit(lambda x, w, b: fn(x, w, b, **kw)), (x, w, b), order=1, modes=["rev"])


def test_second_order_check_grads(rng):
    # grad of grad runs the passes' own VJPs (forward and the other backward pass)
    x, w = array(rng, (1, 2, 5, 4), np.float64), array(rng, (4, 1, 3, 2), np.float64)
    b = array(rng, (4,), np.float64)
    check_grads(lambda x, w, b: fcj.conv(x, w, b, stride=(2, 1), padding=1, groups=2),
                (x, w, b), order=2, modes=["rev"])  # fmt: skip
    wt = array(rng, (2, 3, 2, 3), np.float64)
    check_grads(lambda x, w: fcj.conv_transpose(x, w, stride=2, output_padding=1),
                (x, wt), order=2, modes=["rev"])  # fmt: skip


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_gradient_penalty_matches_lax(rng, op):
    # d/dw of |d loss / dx|^2: differentiates through backward_data
    x = array(rng, (2, 3, 7, 6), np.float64)
    w = array(rng, (4, 3, 3, 3) if op == "conv" else (3, 4, 3, 3), np.float64)
    fns = {"conv": (fcj.conv, lax_conv), "conv_transpose": (fcj.conv_transpose, lax_conv_transpose)}
    kw = dict(stride=2, padding=1)

    def penalty(conv):
        def inner(x, w):
            return jnp.sum(jnp.tanh(conv(x, w, **kw)))

        return lambda x, w: jnp.sum(jax.grad(inner)(x, w) ** 2)

    got = jax.jit(jax.grad(penalty(fns[op][0]), (0, 1)))(x, w)
    want = jax.grad(penalty(fns[op][1]), (0, 1))(x, w)
    for got_i, want_i in zip(got, want):
        assert_close(got_i, want_i, np.float64, scale=10.0)


# ---- vmap


@pytest.mark.parametrize("batched", ["x", "w", "xw"])
def test_vmap_equals_loop(rng, batched):
    kw = dict(stride=2, padding=1, groups=2)
    xs = array(rng, (3, 2, 4, 9, 8), np.float64)
    ws = array(rng, (3, 6, 2, 3, 3), np.float64)
    b = array(rng, (6,), np.float64)
    in_axes = (0 if "x" in batched else None, 0 if "w" in batched else None)
    x_of = (lambda i: xs[i]) if "x" in batched else (lambda i: xs[0])
    w_of = (lambda i: ws[i]) if "w" in batched else (lambda i: ws[0])
    f = jax.jit(jax.vmap(lambda x, w: fcj.conv(x, w, b, **kw), in_axes=in_axes))
    got = f(xs if "x" in batched else xs[0], ws if "w" in batched else ws[0])
    want = jnp.stack([fcj.conv(x_of(i), w_of(i), b, **kw) for i in range(3)])
    assert_close(got, want, np.float64)
    assert_close(
        got, jnp.stack([lax_conv(x_of(i), w_of(i), b, **kw) for i in range(3)]), np.float64
    )


def test_nested_vmap_and_grad_under_vmap(rng):
    xs = array(rng, (2, 3, 1, 2, 7), np.float64)
    ws = array(rng, (3, 4, 2, 3), np.float64)
    # outer axis batches x only, inner axis batches x and w: broadcast size-1 axes per dim
    f = jax.vmap(jax.vmap(lambda x, w: fcj.conv(x, w, padding=1)), in_axes=(0, None))
    got = jax.jit(f)(xs, ws)
    want = jnp.stack(
        [jnp.stack([lax_conv(xs[i, j], ws[j], padding=1) for j in range(3)]) for i in range(2)]
    )
    assert_close(got, want, np.float64)

    def loss(x, w, conv):
        return jnp.sum(conv(x, w, padding=1) ** 2)

    per_example = jax.jit(jax.vmap(jax.grad(lambda x, w: loss(x, w, fcj.conv), 1), (0, None)))
    want = jnp.stack(
        [jax.grad(lambda x, w: loss(x, w, lax_conv), 1)(xs[0, j], ws[0]) for j in range(3)]
    )
    assert_close(per_example(xs[0], ws[0]), want, np.float64)


# ---- the custom call is what runs


def test_lowered_hlo_contains_the_custom_call(rng):
    x, w = array(rng, (1, 3, 8, 8), np.float32), array(rng, (4, 3, 3, 3), np.float32)
    text = jax.jit(lambda x, w: fcj.conv(x, w, padding=1)).lower(x, w).as_text()
    assert "fastconv_conv" in text
    assert "convolution" not in text  # XLA's own conv is not what computes it
    grad_text = jax.jit(jax.grad(lambda x, w: jnp.sum(fcj.conv(x, w)), 1)).lower(x, w).as_text()
    assert '"backward_weight"' in grad_text  # the forward's output is unused: XLA drops it


# ---- training


def _net(params, x, conv, conv_transpose):
    w1, b1, w2, b2, wt = params
    y = jax.nn.relu(conv(x, w1, b1, padding=1))
    y = jax.nn.relu(conv(y, w2, b2, stride=2, padding=1, groups=2))
    y = conv_transpose(y, wt, stride=2, padding=1, output_padding=1)
    return jnp.mean((y - x) ** 2)


def test_sgd_steps_reduce_the_loss_like_lax(rng):
    x = array(rng, (4, 2, 12, 12), np.float32)
    params0 = [
        0.3 * array(rng, (4, 2, 3, 3), np.float32),
        jnp.zeros((4,), np.float32),
        0.3 * array(rng, (6, 2, 3, 3), np.float32),
        jnp.zeros((6,), np.float32),
        0.3 * array(rng, (6, 2, 3, 3), np.float32),
    ]

    def train(conv, conv_transpose):
        step = jax.jit(jax.value_and_grad(lambda p: _net(p, x, conv, conv_transpose)))
        params, losses = list(params0), []
        for _ in range(6):
            loss, grads = step(params)
            losses.append(float(loss))
            params = [p - 0.2 * g for p, g in zip(params, grads)]
        return losses

    got = train(fcj.conv, fcj.conv_transpose)
    want = train(lax_conv, lax_conv_transpose)
    assert got[-1] < 0.9 * got[0]
    np.testing.assert_allclose(got, want, rtol=1e-4)


# ---- errors, raised at trace time with the argument named


def test_errors_name_the_argument(rng):
    x, w = array(rng, (1, 3, 8, 8), np.float32), array(rng, (4, 3, 3, 3), np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        fcj.conv(x.astype(jnp.int32), w)
    with pytest.raises(TypeError, match="w must have x's dtype"):
        fcj.conv(x, w.astype(jnp.float64))
    with pytest.raises(ValueError, match="bias must have shape"):
        fcj.conv(x, w, jnp.zeros((3,), jnp.float32))
    with pytest.raises(ValueError, match="stride"):
        jax.jit(lambda x, w: fcj.conv(x, w, stride=0))(x, w)
    with pytest.raises(ValueError, match="groups"):
        fcj.conv(x, w, groups=2)
    with pytest.raises(ValueError, match="x must have 4 dims"):
        fcj.conv(x[0], w)
    with pytest.raises(ValueError, match="padding"):
        fcj.conv_transpose(x, jnp.zeros((3, 4, 3, 3), jnp.float32), padding="same")
    with pytest.raises(NotImplementedError, match="winograd"):
        fcj.conv(x, w, stride=3, algo="winograd")
    with pytest.raises(ValueError, match="algo must be"):
        fcj.conv(x, w, algo="fastest")


# ---- random geometries


def _random_geometry(rng, transposed):
    rank = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2, 3]))
    c, k = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel = tuple(int(v) for v in rng.integers(1, 4, rank))
    stride = tuple(int(v) for v in rng.integers(1, 4, rank))
    dilation = tuple(int(v) for v in rng.integers(1, 3, rank))
    padding = tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 3, (rank, 2)))
    extent = [d * (q - 1) + 1 for d, q in zip(dilation, kernel)]
    spatial = tuple(int(e + rng.integers(0, 6)) for e in extent)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if transposed:  # output_padding < max(stride, dilation), PyTorch's rule
        kw["output_padding"] = opad = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)
        )
        out = [
            (n - 1) * s - lo - hi + e + o
            for n, s, (lo, hi), e, o in zip(spatial, stride, padding, extent, opad)
        ]
        if min(out) < 1:  # padding that crops the whole output: draw again
            return _random_geometry(rng, transposed)
        return (2, c) + spatial, (c, k // groups) + kernel, kw
    return (2, c) + spatial, (k, c // groups) + kernel, kw


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_random_geometries_match_lax(rng, transposed):
    fn, ref = (fcj.conv_transpose, lax_conv_transpose) if transposed else (fcj.conv, lax_conv)
    for _ in range(10):
        x_shape, w_shape, kw = _random_geometry(rng, transposed)
        x, w = array(rng, x_shape, np.float64), array(rng, w_shape, np.float64)
        ours, lax_ref = (lambda x, w: fn(x, w, **kw)), (lambda x, w: ref(x, w, **kw))
        r = array(rng, jax.eval_shape(lax_ref, x, w).shape, np.float64)
        got, want = output_and_vjp(ours, (x, w), r), output_and_vjp(lax_ref, (x, w), r)
        assert_close(got[0], want[0], np.float64)
        for got_i, want_i in zip(got[1:], want[1:]):
            assert_close(got_i, want_i, np.float64, scale=10.0)
