"""`fastconv bench --peer jax`: XLA's own CPU convolution and pooling as a peer, each pass jitted
(lax.conv_general_dilated, its VJPs for the backward passes and transposed convolution,
lax.reduce_window for pooling) and timed with block_until_ready. XLA runs on its own thread
pool (all the cores it may use; --threads does not reach it)."""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from .candidates import Candidate, Problem


def _conv(lax: Any, layer: Any) -> Callable[[Any, Any], Any]:
    """z -> y of the layer's convolution (for a transposed layer: the conv it is the adjoint
    of, from its output to its input) with weight w."""

    def conv(z: Any, w: Any) -> Any:
        return lax.conv_general_dilated(
            z,
            w,
            window_strides=tuple(layer.stride),
            padding=[(q, q) for q in layer.padding],
            rhs_dilation=tuple(layer.dilation),
            feature_group_count=layer.groups,
            precision=lax.Precision.HIGHEST,
        )

    return conv


def _conv_pass(jax: Any, lax: Any, p: Problem) -> Callable[..., Any]:
    """The jitted function of one conv pass and its arguments' order: (a, b)."""
    layer, conv = p.layer, _conv(lax, p.layer)
    x_shape, w_shape, y_shape = layer.input_shape(), layer.weight_shape(), layer.output_shape()
    dtype = p.x.dtype

    def vjp_input(shape: tuple, w: Any, g: Any) -> Any:
        zeros = jax.numpy.zeros(shape, dtype)
        return jax.vjp(lambda z: conv(z, w), zeros)[1](g)[0]

    def vjp_weight(z: Any, g: Any) -> Any:
        zeros = jax.numpy.zeros(w_shape, dtype)
        return jax.vjp(lambda w: conv(z, w), zeros)[1](g)[0]

    if layer.op == "conv":
        passes = {
            "forward": conv,
            "backward_data": lambda gy, w: vjp_input(x_shape, w, gy),
            "backward_weight": vjp_weight,
        }
    else:  # y = F_w^T x with F the conv from y's shape to x's
        passes = {
            "forward": lambda x, w: vjp_input(y_shape, w, x),
            "backward_data": lambda gy, w: conv(gy, w),
            "backward_weight": lambda x, gy: vjp_weight(gy, x),
        }
    return jax.jit(passes[p.pass_])


def _pool_pass(jax: Any, lax: Any, p: Problem) -> Callable[..., Any]:
    layer = p.layer
    ones = (1, 1)
    dims, strides = ones + tuple(layer.kernel), ones + tuple(layer.stride)
    pad = [(0, 0), (0, 0)] + [(q, q) for q in layer.padding]

    if layer.op == "max_pool":
        dil = ones + tuple(layer.dilation)

        def pool(x: Any) -> Any:
            return lax.reduce_window(x, -np.inf, lax.max, dims, strides, pad, window_dilation=dil)
    else:
        divisor = float(np.prod(layer.kernel))  # count_include_pad=True, fastconv's default

        def pool(x: Any) -> Any:
            return lax.reduce_window(x, 0.0, lax.add, dims, strides, pad) / divisor

    if p.pass_ == "forward":
        return jax.jit(pool)
    return jax.jit(lambda gy, x: jax.vjp(pool, x)[1](gy)[0])


def _jax_call(p: Problem) -> Callable[[], Any]:
    jax = importlib.import_module("jax")
    lax = importlib.import_module("jax.lax")
    if p.x.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    layer = p.layer
    if layer.is_pool:
        fn = _pool_pass(jax, lax, p)
        args = (p.x,) if p.pass_ == "forward" else (p.gy, p.x)
    else:
        fn = _conv_pass(jax, lax, p)
        args = {
            "forward": (p.x, p.w),
            "backward_data": (p.gy, p.w),
            "backward_weight": (p.x, p.gy),
        }[p.pass_]
    args = tuple(jax.device_put(a) for a in args)
    jax.block_until_ready(fn(*args))  # compile outside the timed calls
    return lambda: jax.block_until_ready(fn(*args))


def jax_candidates(layer: Any, device: str) -> list[Candidate]:
    """XLA's CPU peer for layers fastconv.bench times on the CPU."""
    if device != "cpu" or (layer.is_pool and layer.op not in ("max_pool", "avg_pool")):
        return []
    if layer.op == "max_pool" and any(d != 1 for d in layer.dilation):
        return []  # lax has no VJP for a dilated max window; the forward alone would mislead
    return [Candidate("jax", "peer", _jax_call)]
