"""The public functional API of convolution and transposed convolution, every pass, and explain()
(pooling: fastconv/pooling.py). Thin names over fastconv/_calls.py's run_conv, where every
call takes the same path; see docs/api-contract.md for the exact semantics and
docs/architecture.md for the layers.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from ._arguments import array_shape, spatial_rank
from ._arrays import copy_note, device_of, is_torch_tensor, prepare_call
from ._autograd import recording, records_grad
from ._calls import problem_entry, run_conv
from ._problem import same_rank, weight_rank
from .backends import Backend, backend_for_device
from .selection import PASSES, Explanation, explanation
from .separable import conv_as_separable, explain_separable

_NDARRAY = np.ndarray

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]


def _conv(op: str, pass_: str, a, b, bias, shape_arg, algo, params: tuple):
    """run_conv (fastconv/_calls.py), or its autograd-recording twin for torch tensors that
    require grad (fastconv/_autograd.py); algo="separable" runs fastconv/separable.py."""
    if algo == "separable":
        return conv_as_separable(op, pass_, a, b, bias, shape_arg, params)
    if type(a) is _NDARRAY and type(b) is _NDARRAY and (bias is None or type(bias) is _NDARRAY):
        return run_conv(op, pass_, a, b, bias, shape_arg, algo, params)  # no tensor to record
    if records_grad(a, b, bias):
        return recording().conv(op, pass_, a, b, bias, shape_arg, algo, params)
    return run_conv(op, pass_, a, b, bias, shape_arg, algo, params)


def conv(
    x,
    w,
    bias=None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
):
    """N-d convolution (1-3 spatial dims) of x (N, C, *in) with w (K, C/groups, *kernel)."""
    params = (stride, padding, dilation, groups, mode, 0)
    return _conv("conv", "forward", x, w, bias, None, algo, params)


def _conv_of_rank(rank: int):
    def fn(
        x,
        w,
        bias=None,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        mode: str = "cross",
        algo: str = "auto",
    ):
        ndim = len(array_shape(w, "w"))  # (TypeError naming w for what is no array)
        if ndim != rank + 2:
            raise ValueError(
                f"conv{rank}d expects w with {rank + 2} dims (K, C/groups, *{rank} kernel dims), "
                f"got {ndim} dims"
            )
        params = (stride, padding, dilation, groups, mode, 0)
        return _conv("conv", "forward", x, w, bias, None, algo, params)

    fn.__name__ = fn.__qualname__ = f"conv{rank}d"
    fn.__doc__ = f"{rank}-D convolution: `conv` with the weight's rank checked."
    return fn


conv1d = _conv_of_rank(1)
conv2d = _conv_of_rank(2)
conv3d = _conv_of_rank(3)


def conv_backward_data(
    grad_y,
    w,
    x_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
):
    """Gradient of `conv` with respect to its input x (shape `x_shape`)."""
    params = (stride, padding, dilation, groups, mode, 0)
    return _conv("conv", "backward_data", grad_y, w, None, x_shape, algo, params)


def conv_backward_weight(
    x,
    grad_y,
    w_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
):
    """Gradient of `conv` with respect to its weight (shape `w_shape`)."""
    params = (stride, padding, dilation, groups, mode, 0)
    return _conv("conv", "backward_weight", x, grad_y, None, w_shape, algo, params)


def conv_backward_bias(grad_y):
    """Gradient of `conv` with respect to its bias: grad_y summed over N and spatial dims."""
    if records_grad(grad_y):
        spatial_rank(grad_y.dim(), "grad_y")
        return recording().conv_backward_bias(grad_y)
    call = prepare_call(("grad_y",), (grad_y,))
    shape = call.shapes[0]
    spatial_rank(len(shape), "grad_y")
    out, handle = call.backend.empty(call, (shape[1],))
    call.backend.run_conv_backward_bias(call, handle)
    return out


# ---- transposed convolution (runs the conv passes; csrc/common/problem.cc maps them)


def conv_transpose(
    x,
    w,
    bias=None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
):
    """Transposed convolution of x (N, C_in, *in) with w (C_in, K/groups, *kernel)."""
    params = (stride, padding, dilation, groups, "cross", output_padding)
    return _conv("conv_transpose", "forward", x, w, bias, None, algo, params)


def conv_transpose_backward_data(
    grad_y,
    w,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
):
    """Gradient of `conv_transpose` with respect to its input (a conv forward pass)."""
    params = (stride, padding, dilation, groups, "cross", output_padding)
    return _conv("conv_transpose", "backward_data", grad_y, w, None, None, algo, params)


def conv_transpose_backward_weight(
    x,
    grad_y,
    w_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
):
    """Gradient of `conv_transpose` with respect to its weight (C_in, K/groups, *kernel)."""
    params = (stride, padding, dilation, groups, "cross", output_padding)
    return _conv("conv_transpose", "backward_weight", x, grad_y, None, w_shape, algo, params)


# ---- introspection


def _shape_of(obj: Any, name: str) -> tuple[int, ...]:
    if isinstance(obj, (tuple, list)) and all(isinstance(v, (int, np.integer)) for v in obj):
        return tuple(int(v) for v in obj)
    shape = getattr(obj, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array or a shape tuple, got {type(obj).__name__}")
    return tuple(int(v) for v in shape)


def _dtype_name(obj: Any, default: Any) -> str:
    """The element type of an array (NumPy, torch, ...) or of the `dtype` argument, by name."""
    dtype = getattr(obj, "dtype", None)
    if dtype is None:
        dtype = default
    if is_torch_tensor(obj) or type(dtype).__module__ == "torch":
        return str(dtype).replace("torch.", "")
    try:
        return np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
        if name in ("bfloat16",):
            return name
        raise TypeError(f"dtype must be a dtype or its name, got {dtype!r}") from None


def _explain_backend(*objs: Any) -> Backend:
    """The backend a call on these arrays would run on; shapes and data-less (meta) tensors
    are explained for the CPU."""
    for obj in objs:
        dev = device_of(obj) if not isinstance(obj, (tuple, list)) else None
        if dev is not None and dev[0] not in ("cpu", "meta"):
            backend = backend_for_device(dev[0])
            if backend is not None and not backend.unavailable_reason():
                return backend
    return backend_for_device("cpu")


def explain(
    x,
    w,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
    op: str = "conv",
    pass_: str = "forward",
    output_padding: IntOrTuple = 0,
    dtype: Any = "float32",
) -> Explanation:
    """What `algo` would run for this problem and why. x and w may be arrays or shapes;
    for op="conv_transpose", x is the transposed convolution's input. The explanation reads the
    selection and plan a call with these arguments uses (the same cached entry)."""
    x_shape, w_shape = _shape_of(x, "x"), _shape_of(w, "w")
    dtype_name = _dtype_name(x, dtype)
    weight_rank(w_shape)
    same_rank(x_shape, w_shape, "x")
    if pass_ not in PASSES:
        raise ValueError(f"pass_ must be one of {PASSES}, got {pass_!r}")
    if op not in ("conv", "conv_transpose"):
        raise ValueError(f"op must be 'conv' or 'conv_transpose' for explain(), got {op!r}")
    backend = _explain_backend(x, w)
    if algo == "separable":  # decided by w's values, not its shape (fastconv/separable.py)
        reason, workspace = explain_separable(w, op, pass_)
        return Explanation(op, pass_, algo, reason, ["separable"], workspace)
    if op == "conv":
        params = (stride, padding, dilation, groups, mode, 0)
    else:
        params = (stride, padding, dilation, groups, "cross", output_padding)
    data = x_shape
    if op == "conv_transpose" and pass_ == "backward_data":
        forward = problem_entry(op, "forward", x_shape, w_shape, dtype_name, backend, algo, params)
        data = forward.problem.y_shape  # this pass's data argument is grad_y
    entry = problem_entry(op, pass_, data, w_shape, dtype_name, backend, algo, params)
    result = explanation(entry.problem, backend, entry.selection)
    notes = {name: copy_note(obj, name) for obj, name in ((x, "x"), (w, "w"))}
    # the pass's first two operands in public order: x (or grad_y) and w; backward_weight's
    # second is grad_y, which explain() does not see
    flags = tuple(notes[n].startswith(f"{n} is channels_last:") for n in ("x", "w"))
    if pass_ == "backward_weight":
        flags = (flags[0], False)
    elif pass_ == "backward_data":  # its operands are grad_y (not seen here) and w
        flags = (False, flags[1])
    algo_run = entry.selection.algo
    in_place = backend.reads_in_place(entry.problem, algo_run, flags)
    kernel = (
        "depthwise's channels-last kernels"
        if algo_run == "depthwise"
        else ("the GPU's tensor-op path")
    )
    for name, flag in zip(("x", "w"), in_place):
        if flag:
            notes[name] = f"{name} is channels_last: read in place by {kernel} (no copy)"
    result.copies.extend(n for n in notes.values() if n)
    if result.copies:
        note = backend.result_note(entry.problem, entry.selection.algo, pass_, flags)
        result.copies.append(note or "the result is contiguous channel-first")
    return result
