"""fastconv.jax.max_pool / avg_pool against lax.reduce_window under jax.jit: forward in float32
and float64, gradients, second-order gradients (check_grads order 2, Hessian-vector products),
vmap, the custom call in the HLO, argument errors."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'fastconv[jax]')")

import jax.numpy as jnp  # noqa: E402
from fcj_testing import array, assert_close, fcj, hvp, lax_pool, output_and_vjp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

jax.config.update("jax_enable_x64", True)

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


# (kind, x shape, kernel_size, keyword arguments)
CASES = [
    ("max_pool", (2, 3, 11), 3, dict(stride=2, padding=1)),
    ("max_pool", (1, 4, 9, 10), 2, dict()),
    ("max_pool", (2, 3, 12, 9), (3, 2), dict(stride=(2, 1), padding=(1, 1), dilation=(2, 1))),
    ("max_pool", (1, 2, 5, 6, 7), 2, dict(stride=(1, 2, 2))),
    ("avg_pool", (2, 3, 11), 3, dict(stride=2, padding=1)),
    ("avg_pool", (1, 4, 9, 10), (3, 3), dict(stride=2, padding=1, count_include_pad=False)),
    ("avg_pool", (1, 2, 6, 5, 7), (2, 3, 2), dict(padding=(1, 1, 0))),
]
IDS = [f"{k}-{len(x) - 2}d-{i}" for i, (k, x, _, _) in enumerate(CASES)]
FN = {"max_pool": fcj.max_pool, "avg_pool": fcj.avg_pool}


@DTYPES
@pytest.mark.parametrize("kind, x_shape, kernel, kw", CASES, ids=IDS)
def test_pool_and_gradients_match_lax(rng, dtype, kind, x_shape, kernel, kw):
    x = array(rng, x_shape, dtype)
    ours, ref = (
        partial(FN[kind], kernel_size=kernel, **kw),
        partial(lax_pool, kind, kernel_size=kernel, **kw),
    )
    r = array(rng, jax.eval_shape(ref, x).shape, dtype)
    (got, grad), (want, want_grad) = output_and_vjp(ours, (x,), r), output_and_vjp(ref, (x,), r)
    assert_close(got, want, dtype)
    assert_close(grad, want_grad, dtype)


def test_max_pool_ceil_mode_matches_lax(rng):
    x = array(rng, (1, 2, 7, 9), np.float64)
    got = jax.jit(lambda x: fcj.max_pool(x, 2, ceil_mode=True))(x)
    assert got.shape == (1, 2, 4, 5)  # the last window starts inside x
    assert_close(got, lax_pool("max_pool", x, 2, extra_hi=1), np.float64)


@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
def test_check_grads(rng, kind):
    x = array(rng, (2, 2, 5, 6), np.float64)
    check_grads(jax.jit(lambda x: FN[kind](x, 3, stride=2, padding=1)), (x,), 1, modes=["rev"])


@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
def test_vmap_equals_loop(rng, kind):
    xs = array(rng, (3, 2, 4, 7, 6), np.float64)
    f = jax.jit(jax.vmap(lambda x: FN[kind](x, 2, padding=1)))
    assert_close(f(xs), jnp.stack([FN[kind](x, 2, padding=1) for x in xs]), np.float64)
    # a batched output gradient with an unbatched x: the handler runs item by item
    g = jax.vjp(lambda x: FN[kind](x, 2, padding=1), xs[0])[1]
    gys = array(rng, (3,) + f(xs).shape[1:], np.float64)
    got = jax.jit(jax.vmap(lambda gy: g(gy)[0]))(gys)
    want_vjp = jax.vjp(lambda x: lax_pool(kind, x, 2, padding=1), xs[0])[1]
    assert_close(got, jnp.stack([want_vjp(gy)[0] for gy in gys]), np.float64)


# ---- grad of grad: max pooling's backward and its gather at the forward's indices are each
# other's VJP; average pooling's backward has the forward as its VJP.

SECOND_ORDER = [
    ("max_pool", (2, 2, 9), 3, dict(stride=2, padding=1)),
    ("max_pool", (1, 2, 7, 8), 2, dict(ceil_mode=True)),
    ("max_pool", (1, 2, 9, 8), (3, 2), dict(stride=(2, 1), padding=(1, 1), dilation=(2, 1))),
    ("max_pool", (1, 2, 5, 4, 6), 2, dict(stride=(1, 2, 2), padding=(1, 0, 1), ceil_mode=True)),
    ("avg_pool", (2, 2, 9), 3, dict(stride=2, padding=1)),
    ("avg_pool", (1, 2, 7, 8), 3, dict(stride=2, padding=1, count_include_pad=False)),
    ("avg_pool", (1, 2, 8, 7), 3, dict(stride=2, padding=1, ceil_mode=True)),
    ("avg_pool", (1, 2, 8, 7), 3, dict(stride=2, padding=1, ceil_mode=True,
                                       count_include_pad=False)),
    ("avg_pool", (1, 2, 5, 4, 6), (2, 3, 2), dict(padding=(1, 1, 0), ceil_mode=True)),
]  # fmt: skip
SECOND_IDS = [f"{k}-{len(x) - 2}d-{i}" for i, (k, x, _, _) in enumerate(SECOND_ORDER)]


@pytest.mark.parametrize("kind, x_shape, kernel, kw", SECOND_ORDER, ids=SECOND_IDS)
def test_second_order_matches_lax(rng, kind, x_shape, kernel, kw):
    x = array(rng, x_shape, np.float64)
    ours = partial(FN[kind], kernel_size=kernel, **kw)
    ref = partial(lax_pool, kind, kernel_size=kernel, **kw)
    y_shape = jax.eval_shape(ref, x).shape
    v, r, g = (array(rng, shape, np.float64) for shape in (x_shape, y_shape, y_shape))

    def second_order(pool):
        """The output, a Hessian-vector product, and the VJP of the backward w.r.t. its
        cotangent on its own (the gather / the forward), in one jitted call (lax's op by op took
        seconds of compiles per case)."""

        def run(x, v, g):
            backward = jax.vjp(pool, x)[1]
            return pool(x), hvp(pool, x, v, r), jax.vjp(lambda g: backward(g)[0], g)[1](v)[0]

        return jax.jit(run)(x, v, g)

    got, want = second_order(ours), second_order(ref)
    assert_close(got[0], want[0], np.float64)  # the ceil_mode windows agree first
    check_grads(jax.jit(ours), (x,), order=2, modes=["rev"])
    assert_close(got[1], want[1], np.float64)
    assert_close(got[2], want[2], np.float64)


@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
def test_second_order_in_float32_and_under_vmap(rng, kind):
    xs = array(rng, (3, 2, 3, 6, 7), np.float32)
    vs = array(rng, xs.shape, np.float32)
    r = array(rng, (2, 3, 3, 4), np.float32)
    ours = partial(FN[kind], kernel_size=3, stride=2, padding=1)
    ref = partial(lax_pool, kind, kernel_size=3, stride=2, padding=1)
    got = jax.jit(jax.vmap(lambda x, v: hvp(ours, x, v, r)))(xs, vs)
    ref_hvp = jax.jit(lambda x, v: hvp(ref, x, v, r))
    want = jnp.stack([ref_hvp(x, v) for x, v in zip(xs, vs)])
    assert_close(got, want, np.float32)


def test_third_order_max_pool_matches_lax(rng):
    x = array(rng, (1, 2, 6, 6), np.float64)

    def third(pool):
        inner = jax.grad(lambda x: jnp.sum(pool(x) ** 4))
        return jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(inner(x) ** 2))(x)))

    got = jax.jit(third(partial(fcj.max_pool, kernel_size=2)))(x)
    want = jax.jit(third(partial(lax_pool, "max_pool", kernel_size=2)))(x)
    assert_close(got, want, np.float64)


def test_lowered_hlo_contains_the_custom_call(rng):
    x = array(rng, (1, 3, 8, 8), np.float32)
    text = jax.jit(jax.grad(lambda x: jnp.sum(fcj.max_pool(x, 2)))).lower(x).as_text()
    assert "fastconv_pool" in text and '"backward"' in text
    assert "reduce_window" not in text and "select_and_scatter" not in text
    second = jax.jit(lambda x, v: hvp(partial(fcj.max_pool, kernel_size=2), x, v, 1.0))
    text = second.lower(x, x).as_text()
    assert '"gather"' in text and '"backward"' in text
    assert "reduce_window" not in text and "select_and_scatter" not in text


def test_errors_name_the_argument(rng):
    x = array(rng, (1, 3, 8, 8), np.float32)
    with pytest.raises(TypeError, match="x must have dtype"):
        fcj.max_pool(x.astype(jnp.int32), 2)
    with pytest.raises(ValueError, match="kernel_size"):
        fcj.max_pool(x, 0)
    with pytest.raises(ValueError, match="padding"):
        fcj.avg_pool(x, 2, padding=2)
    with pytest.raises(ValueError, match="kernel_size"):
        fcj.avg_pool(x, (2, 2, 2))


def test_dims_with_one_window_and_windows_of_padding_only(rng):
    """The FFI rebuilds each problem from the geometry the Python side reports: dims with one
    window (3x3 / kernel 2) keep their shape, and a window of padding only is -inf with no
    gradient, in the forward, the gradient and the second order."""
    x = array(rng, (1, 2, 3, 3), np.float64)
    for kind in ("max_pool", "avg_pool"):
        got, grad = output_and_vjp(partial(FN[kind], kernel_size=2), (x,), jnp.ones((1, 2, 1, 1)))
        want, want_grad = output_and_vjp(
            partial(lax_pool, kind, kernel_size=2), (x,), jnp.ones((1, 2, 1, 1))
        )
        assert got.shape == (1, 2, 1, 1)
        assert_close(got, want, np.float64)
        assert_close(grad, want_grad, np.float64)
    v = array(rng, (1, 2, 1), np.float64)
    pool = partial(fcj.max_pool, kernel_size=3, stride=3, padding=1, dilation=2, ceil_mode=True)
    assert np.isneginf(np.asarray(jax.jit(pool)(v))).all()
    np.testing.assert_array_equal(jax.grad(lambda u: pool(u).sum())(v), 0)
    second = jax.grad(lambda u: jnp.vdot(jax.grad(lambda w: pool(w).sum())(u), v))(v)
    np.testing.assert_array_equal(second, 0)  # through the gather at index -1
