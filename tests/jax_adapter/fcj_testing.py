"""Shared helpers of the fastconv.jax tests: arrays, lax references (conv, pooling, Hessian-vector
products), tolerances. Imported after
pytest.importorskip("jax"); skips the module when this build has no XLA FFI handlers."""

from __future__ import annotations

import pytest
from fastconv import _C

if not hasattr(_C, "jax_ffi_targets"):
    pytest.skip(
        "this build of fastconv has no XLA FFI handlers (built without jaxlib's headers: "
        "FASTCONV_JAX_INCLUDE_DIR / FASTCONV_JAX=ON)",
        allow_module_level=True,
    )


import fastconv.jax as fcj  # noqa: E402, F401 - the tests' handle, imported after the skip
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def array(rng, shape, dtype) -> jax.Array:
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def assert_close(got, want, dtype, scale: float = 1.0) -> None:
    """Close in the dtype's tolerance, relative to the reference's magnitude."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    tol = TOL[dtype]
    bound = max(1.0, float(np.max(np.abs(want), initial=0.0))) * scale
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * bound)


def output_and_vjp(f, args, cotangent):
    """f(*args) and its VJP of `cotangent` w.r.t. every argument, from one jitted call: one XLA
    compile where a jitted forward, a jitted gradient and an eager reference took four or more
    (the compiles are what the random-geometry tests spend their time on). The output is f's
    own call, not the VJP's forward (max_pool's runs the with-indices kernel instead)."""

    def run(*args):
        _, vjp = jax.vjp(f, *args)
        return (f(*args), *vjp(cotangent))

    return jax.jit(run)(*args)


def per_dim(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


def pairs(padding, rank):
    """fastconv's int / per-dim / (low, high) padding as lax's per-dim (low, high) pairs."""
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    return [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding]


def lax_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """The reference: XLA's own convolution, channel-first."""
    rank = w.ndim - 2
    pad = padding.upper() if isinstance(padding, str) else pairs(padding, rank)
    y = lax.conv_general_dilated(
        x,
        w,
        window_strides=per_dim(stride, rank),
        padding=pad,
        rhs_dilation=per_dim(dilation, rank),
        feature_group_count=groups,
        precision=lax.Precision.HIGHEST,
    )
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * rank)
    return y


def lax_conv_transpose(
    x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1
):
    """The reference transposed conv: the adjoint of lax's conv with weight w (C_in, K/g, *k),
    i.e. the VJP of z -> lax_conv(z, w) at x, z of the transposed conv's output shape."""
    rank = w.ndim - 2
    s, d, op = per_dim(stride, rank), per_dim(dilation, rank), per_dim(output_padding, rank)
    lohi = pairs(padding, rank)
    spatial = [
        (n - 1) * s[i] - lohi[i][0] - lohi[i][1] + d[i] * (w.shape[2 + i] - 1) + 1 + op[i]
        for i, n in enumerate(x.shape[2:])
    ]
    z_shape = (x.shape[0], w.shape[1] * groups, *spatial)

    def forward(z):  # the windows of z -> x are the same whatever z's output_padding tail
        return lax_conv(z, w, stride=s, padding=lohi, dilation=d, groups=groups)

    _, vjp = jax.vjp(forward, jnp.zeros(z_shape, x.dtype))
    (y,) = vjp(x)
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * rank)
    return y


def lax_pool(kind, x, kernel_size, *, stride=None, padding=0, dilation=1, count_include_pad=True,
             ceil_mode=False, extra_hi=0):  # fmt: skip
    """The reference: lax.reduce_window, channel-first; extra_hi pads the high end more (the
    windows ceil_mode adds: PyTorch's rule, computed here when ceil_mode is given)."""
    rank = x.ndim - 2
    k = per_dim(kernel_size, rank)
    s = k if stride is None else per_dim(stride, rank)
    dil = (1, 1) + per_dim(dilation, rank)
    lohi = pairs(padding, rank)
    extra = [extra_hi] * rank
    if ceil_mode:
        extra = [_ceil_extra(x.shape[2 + i], k[i], s[i], *lohi[i], dil[2 + i]) for i in range(rank)]
    pad = [(0, 0), (0, 0)] + [(lo, hi + e) for (lo, hi), e in zip(lohi, extra)]
    dims, strides = (1, 1) + k, (1, 1) + s
    if kind == "max_pool" and any(v != 1 for v in dil):
        return _dilated_max_pool(x, k, s, pad, dil)  # lax has no VJP for a dilated max window
    if kind == "max_pool":
        return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pad)
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pad)
    if count_include_pad:  # the window's part inside the padded input (not the ceil extension)
        ones = jnp.pad(jnp.ones_like(x), [(0, 0), (0, 0)] + lohi, constant_values=1.0)
        extended = [(0, 0), (0, 0)] + [(0, e) for e in extra]
        count = lax.reduce_window(ones, 0.0, lax.add, dims, strides, extended)
    else:
        count = lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, dims, strides, pad)
    return total / count


def _ceil_extra(n, k, s, lo, hi, d):
    """High padding ceil_mode adds: one more window if it starts inside the input or the low
    padding (PyTorch's rule)."""
    span = n + lo + hi - d * (k - 1) - 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + lo:
        out -= 1
    return max(0, (out - 1) * s - span)


def _dilated_max_pool(x, k, s, pad, dil):
    """Max over the window's elements as strided slices of the -inf-padded x (2-D)."""
    xp = jnp.pad(x, pad, constant_values=-jnp.inf)
    out = [(xp.shape[2 + i] - dil[2 + i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
    taps = [
        xp[:, :, i * dil[2] :: s[0], j * dil[3] :: s[1]][:, :, : out[0], : out[1]]
        for i in range(k[0])
        for j in range(k[1])
    ]
    return jnp.max(jnp.stack(taps), axis=0)


def hvp(pool, x, v, r):
    """H v of sum(sin(pool(x)) * r), reverse over reverse."""

    def loss(x):
        return jnp.sum(jnp.sin(pool(x)) * r)

    return jax.grad(lambda x: jnp.vdot(jax.grad(loss)(x), v))(x)
