"""Convolution and transposed convolution in JAX: the public functions, their custom_vjp and the
ffi_call of each pass.

Everything about a call is decided in Python at trace time, through fastconv's own path: the
arguments are normalised and the output shapes computed by the compiled problem
(fastconv/_problem.py via _calls.problem_entry, the cache explain() reads), and the algorithm
is selected per pass by fastconv/selection.py, once for each platform with handlers (the CPU's
rule, and the GPU's where the CUDA handlers are built: the platform is known only when XLA
compiles). The handlers (csrc/bindings/jax_ffi.cc, cuda/jax_ffi.cc) receive the resolved
geometry (explicit padding) and both algorithms' names, and only run.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from .._calls import problem_entry
from .._problem import same_rank, weight_rank
from ._targets import CONV_TARGET, VMAP_METHOD, gpu_algo, platforms, selection_backends

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]

_DTYPES = ("float32", "float64")
_GPU_DTYPES = ("float16", "bfloat16")  # where the CUDA handlers are built


class _Geometry(NamedTuple):
    """One conv or transposed conv, resolved (hashable: custom_vjp's non-differentiable
    argument). padding is explicit per dim, as (low, high) pairs."""

    op: str
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    output_padding: tuple
    algo: str  # as the caller gave it ("auto" or a name); each pass selects its own

    def params(self) -> tuple:
        """(stride, padding, dilation, groups, mode, output_padding) as _calls takes them."""
        opad = self.output_padding if self.op == "conv_transpose" else 0
        return (self.stride, self.padding, self.dilation, self.groups, "cross", opad)


def _array(v: Any, name: str) -> jax.Array:
    if isinstance(v, (jax.Array, np.ndarray, np.generic)) or hasattr(v, "aval"):
        a = v
    else:
        try:
            a = jnp.asarray(v)
        except TypeError as e:
            raise TypeError(f"{name} must be an array, got {type(v).__name__}") from e
    dtype = np.dtype(a.dtype).name
    cuda = "cuda" in platforms()
    if dtype not in _DTYPES and not (dtype in _GPU_DTYPES and cuda):
        gpu = " (float16 or bfloat16 on a GPU)" if cuda else ""
        raise TypeError(f"{name} must have dtype float32 or float64{gpu}, got {dtype}")
    return a


def _selected(op: str, pass_: str, data_shape, w_shape, dtype: str, algo: str, params: tuple):
    """(problem, CPU algorithm, GPU algorithm attribute) of one pass: the problem and each
    platform's selection (fastconv/selection.py through that platform's backend, cached by
    fastconv/_calls.problem_entry). A forced algorithm that one platform cannot run is passed
    on by name, and that platform's handler fails with the reason if the call runs there; when
    no platform can run it, the CPU's error is raised here."""
    problem, algos, errors = None, {}, []
    for platform, backend in selection_backends():
        try:
            entry = problem_entry(
                op, pass_, tuple(data_shape), tuple(w_shape), dtype, backend, algo, params
            )
        except (NotImplementedError, TypeError) as e:  # this platform's kernels cannot run it
            errors.append(e)
            algos[platform] = algo
            continue
        problem, chosen = entry.problem, entry.selection.algo
        algos[platform] = gpu_algo(chosen, dtype) if platform == "cuda" else chosen
    if problem is None:
        raise errors[0]
    return problem, algos["cpu"], algos.get("cuda", "")


def _run(geom: _Geometry, pass_: str, a, b, bias, data_shape, w_shape) -> jax.Array:
    """One pass as a custom call: operands in the pass's public order (forward (x, w),
    backward_data (grad_y, w), backward_weight (x, grad_y))."""
    dtype = np.dtype(a.dtype).name
    p, algo, gpu_algo = _selected(
        geom.op, pass_, data_shape, w_shape, dtype, geom.algo, geom.params()
    )
    rank = len(p.stride)
    opad = p.output_padding if geom.op == "conv_transpose" else (0,) * rank
    call = jax.ffi.ffi_call(
        CONV_TARGET,
        jax.ShapeDtypeStruct(tuple(p.result_shape), a.dtype),
        vmap_method=VMAP_METHOD,
    )
    operands = (a, b) if bias is None else (a, b, bias)
    return call(
        *operands,
        op=geom.op,
        pass_=pass_,
        algo=algo,
        gpu_algo=gpu_algo,
        stride=np.asarray(p.stride, np.int64),
        pad_lo=np.asarray(p.pad_lo, np.int64),
        pad_hi=np.asarray(p.pad_hi, np.int64),
        dilation=np.asarray(p.dilation, np.int64),
        output_padding=np.asarray(opad, np.int64),
        groups=np.int64(p.groups),
    )


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv_op(x, w, bias, geom: _Geometry):
    return _run(geom, "forward", x, w, bias, x.shape, w.shape)


def _conv_op_fwd(x, w, bias, geom: _Geometry):
    return _conv_op(x, w, bias, geom), (x, w, bias)


def _conv_op_bwd(geom: _Geometry, residuals, grad_y):
    x, w, bias = residuals
    grad_x = _backward_data(grad_y, w, geom, tuple(x.shape))
    grad_w = _backward_weight(x, grad_y, geom, tuple(w.shape))
    grad_bias = None
    if bias is not None:
        axes = (0,) + tuple(range(2, grad_y.ndim))
        grad_bias = jnp.sum(grad_y, axis=axes).astype(bias.dtype)
    return grad_x, grad_w, grad_bias


# The backward passes are differentiable too (grad of grad): with y = F(x, w) bilinear,
# backward_data(gy, w) = F_w^T gy and backward_weight(x, gy) = F_x^T gy, so their VJPs are the
# forward and the other backward pass, for a conv and a transposed conv alike.


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _backward_data(grad_y, w, geom: _Geometry, x_shape: tuple):
    # a transposed conv's backward_data takes grad_y's own shape as its data shape
    data = x_shape if geom.op == "conv" else grad_y.shape
    return _run(geom, "backward_data", grad_y, w, None, data, w.shape)


def _backward_data_fwd(grad_y, w, geom: _Geometry, x_shape: tuple):
    return _backward_data(grad_y, w, geom, x_shape), (grad_y, w)


def _backward_data_bwd(geom: _Geometry, x_shape: tuple, residuals, c):
    grad_y, w = residuals
    return _conv_op(c, w, None, geom), _backward_weight(c, grad_y, geom, tuple(w.shape))


_backward_data.defvjp(_backward_data_fwd, _backward_data_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _backward_weight(x, grad_y, geom: _Geometry, w_shape: tuple):
    return _run(geom, "backward_weight", x, grad_y, None, x.shape, w_shape)


def _backward_weight_fwd(x, grad_y, geom: _Geometry, w_shape: tuple):
    return _backward_weight(x, grad_y, geom, w_shape), (x, grad_y)


def _backward_weight_bwd(geom: _Geometry, w_shape: tuple, residuals, c):
    x, grad_y = residuals
    return _backward_data(grad_y, c, geom, tuple(x.shape)), _conv_op(x, c, None, geom)


_backward_weight.defvjp(_backward_weight_fwd, _backward_weight_bwd)
_conv_op.defvjp(_conv_op_fwd, _conv_op_bwd)


def _call(op: str, x, w, bias, stride, padding, output_padding, dilation, groups, algo):
    """Checks the arrays, resolves the geometry through the forward problem and calls the op."""
    x, w = _array(x, "x"), _array(w, "w")
    if bias is not None:
        bias = _array(bias, "bias")
    for name, v in (("w", w), ("bias", bias)):
        if v is not None and v.dtype != x.dtype:
            raise TypeError(
                f"{name} must have x's dtype {np.dtype(x.dtype).name}, got {np.dtype(v.dtype).name}"
            )
    weight_rank(w.shape)
    same_rank(x.shape, w.shape, "x")
    opad = output_padding if op == "conv_transpose" else 0
    params = (stride, padding, dilation, groups, "cross", opad)
    dtype = np.dtype(x.dtype).name
    p = _selected(op, "forward", x.shape, w.shape, dtype, algo, params)[0]
    if tuple(x.shape) != tuple(p.operand_shapes[0]):
        raise ValueError(f"x must have shape {tuple(p.operand_shapes[0])}, got {x.shape}")
    if bias is not None and tuple(bias.shape) != (p.bias_channels,):
        raise ValueError(
            f"bias must have shape {(p.bias_channels,)} (output channels), got {tuple(bias.shape)}"
        )
    geom = _Geometry(
        op,
        tuple(p.stride),
        tuple(zip(p.pad_lo, p.pad_hi)),
        tuple(p.dilation),
        int(p.groups),
        tuple(p.output_padding) if op == "conv_transpose" else (),
        algo,
    )
    return _conv_op(x, w, bias, geom)


def conv(
    x,
    w,
    bias: Optional[Any] = None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
) -> jax.Array:
    """N-d convolution (cross-correlation, 1-3 spatial dims) of x (N, C, *in) with
    w (K, C/groups, *kernel), plus bias (K) if given; fastconv.conv's arguments."""
    return _call("conv", x, w, bias, stride, padding, 0, dilation, groups, algo)


def conv_transpose(
    x,
    w,
    bias: Optional[Any] = None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
) -> jax.Array:
    """Transposed convolution of x (N, C_in, *in) with w (C_in, K/groups, *kernel);
    fastconv.conv_transpose's arguments."""
    return _call(
        "conv_transpose", x, w, bias, stride, padding, output_padding, dilation, groups, algo
    )
