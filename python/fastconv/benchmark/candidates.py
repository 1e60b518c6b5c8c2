"""What `fastconv bench` times: fastconv's algorithms and the peers (PyTorch, SciPy)."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import fastconv

from .suite import Layer


@dataclass
class Problem:
    """Inputs of one (layer, pass): numpy arrays on the CPU, torch tensors on a GPU."""

    layer: Layer
    pass_: str
    x: Any  # (N, C, *in)
    w: Any  # weight; None for pools
    gy: Any  # gradient of the output, (N, K, *out)


def make_problem(
    layer: Layer, pass_: str, dtype: str, device: str, memory_format: str = "contiguous"
) -> Problem:
    """memory_format "channels_last": a GPU problem's 4-D tensors stored so (both libraries
    then see the layout a channels_last model hands them)."""
    rng = np.random.default_rng(0)
    np_dtype = np.float64 if dtype == "float64" else np.float32
    shapes = [
        layer.input_shape(),
        None if layer.is_pool else layer.weight_shape(),
        layer.output_shape(),
    ]
    arrays = [None if s is None else rng.standard_normal(s, dtype=np_dtype) for s in shapes]
    if device != "cpu":
        torch = importlib.import_module("torch")
        arrays = [
            None if a is None else torch.from_numpy(a).to(device, getattr(torch, dtype))
            for a in arrays
        ]
        if memory_format == "channels_last":
            arrays = [
                a if a is None or a.dim() != 4 else a.contiguous(memory_format=torch.channels_last)
                for a in arrays
            ]
    return Problem(layer, pass_, *arrays)


@dataclass(frozen=True)
class Candidate:
    """Something to time: a fastconv algorithm or a peer library."""

    name: str
    kind: str  # "fastconv" | "peer"
    bind: Callable[[Problem], Callable[[], Any]]  # returns the zero-argument call to time


def _accepts_algo(function: Callable[..., Any] | None) -> bool:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):  # compiled functions may hide their signature
        return True
    return "algo" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _fastconv_call(p: Problem, algo: str | None) -> Callable[[], Any]:
    layer, fc = p.layer, fastconv
    kw: dict[str, Any] = {} if algo is None else {"algo": algo}
    geo: dict[str, Any] = {"stride": layer.stride, "padding": layer.padding}
    if layer.op != "avg_pool":
        geo["dilation"] = layer.dilation
    if not layer.is_pool:
        geo["groups"] = layer.groups
    x_shape, w_shape = tuple(p.x.shape), () if p.w is None else tuple(p.w.shape)
    if layer.op == "conv":
        calls = {
            "forward": lambda: fc.conv(p.x, p.w, **geo, **kw),
            "backward_data": lambda: fc.conv_backward_data(p.gy, p.w, x_shape, **geo, **kw),
            "backward_weight": lambda: fc.conv_backward_weight(p.x, p.gy, w_shape, **geo, **kw),
        }
    elif layer.op == "conv_transpose":
        geo["output_padding"] = layer.output_padding
        calls = {
            "forward": lambda: fc.conv_transpose(p.x, p.w, **geo, **kw),
            "backward_data": lambda: fc.conv_transpose_backward_data(p.gy, p.w, **geo, **kw),
            "backward_weight": lambda: fc.conv_transpose_backward_weight(
                p.x, p.gy, w_shape, **geo, **kw
            ),
        }
    elif layer.op == "max_pool":
        if p.pass_ == "forward":
            return lambda: fc.max_pool(p.x, layer.kernel, **geo, **kw)
        # Backward from the indices the forward saved (what PyTorch's backward uses too).
        _, idx = fc.max_pool(p.x, layer.kernel, **geo, return_indices=True)
        return lambda: fc.max_pool_backward(p.gy, p.x, layer.kernel, **geo, **kw, indices=idx)
    else:
        calls = {
            "forward": lambda: fc.avg_pool(p.x, layer.kernel, **geo, **kw),
            "backward_data": lambda: fc.avg_pool_backward(p.gy, x_shape, layer.kernel, **geo, **kw),
        }
    return calls[p.pass_]


_POOL_FUNCTIONS = {
    "max_pool": ("max_pool", "max_pool_backward"),
    "avg_pool": ("avg_pool", "avg_pool_backward"),
}


def fastconv_algorithms(op: str, device: str) -> list[str]:
    try:
        return list(fastconv.algorithms(op, device=device))
    except ValueError:  # an op this build does not list
        return []


def fastconv_candidates(op: str, device: str, wanted: Sequence[str] | None) -> list[Candidate]:
    """fastconv.algorithms(op) in its order; one "auto" row where pool functions take no algo."""
    names = fastconv_algorithms(op, device)
    forced = all(_accepts_algo(getattr(fastconv, f, None)) for f in _POOL_FUNCTIONS.get(op, ()))
    if not forced:  # this build's pool functions pick their own algorithm
        names = ["auto"] if wanted is None or set(wanted) & {*names, "auto", "autotune"} else []
    elif wanted is not None:
        names = [n for n in names if n in wanted] + [a for a in ("auto", "autotune") if a in wanted]
    return [
        Candidate(
            name, "fastconv", functools.partial(_fastconv_call, algo=name if forced else None)
        )
        for name in names
    ]


def _torch_conv_call(p: Problem, torch: Any, x: Any, w: Any, gy: Any) -> Callable[[], Any]:
    layer, f = p.layer, torch.nn.functional
    stride, padding, dilation = list(layer.stride), list(layer.padding), list(layer.dilation)
    transposed = layer.op == "conv_transpose"
    if p.pass_ == "forward" and transposed:
        fn = getattr(f, f"conv_transpose{layer.rank}d")
        return lambda: fn(
            x, w, None, stride, padding, list(layer.output_padding), layer.groups, dilation
        )
    if p.pass_ == "forward":
        fn = getattr(f, f"conv{layer.rank}d")
        return lambda: fn(x, w, None, stride, padding, dilation, layer.groups)
    # aten's backward computes only the gradient asked for, as a training step would
    mask = [p.pass_ == "backward_data", p.pass_ == "backward_weight", False]
    index = 0 if mask[0] else 1
    output_padding = list(layer.output_padding) if transposed else [0] * layer.rank
    backward = torch.ops.aten.convolution_backward
    return lambda: backward(
        gy, x, w, None, stride, padding, dilation, transposed, output_padding, layer.groups, mask
    )[index]


def _torch_call(p: Problem) -> Callable[[], Any]:
    torch = importlib.import_module("torch")
    x, w, gy = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in (p.x, p.w, p.gy))
    layer = p.layer
    if not layer.is_pool:
        return _torch_conv_call(p, torch, x, w, gy)
    pool = getattr(torch.nn.functional, f"{layer.op.split('_')[0]}_pool{layer.rank}d")
    args: tuple[Any, ...] = (layer.kernel, layer.stride, layer.padding)
    if layer.op == "max_pool":
        args += (layer.dilation,)
    if p.pass_ == "forward":
        return lambda: pool(x, *args)
    # keep the graph so each timed call runs only the pool's backward kernel
    x_leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = pool(x_leaf, *args)
    return lambda: torch.autograd.grad(y, x_leaf, gy, retain_graph=True)[0]


def _scipy_applies(layer: Layer, device: str) -> bool:
    return (
        device == "cpu"
        and layer.op == "conv"
        and layer.c == layer.k == 1
        and layer.rank <= 2
        and set(layer.stride) == {1}
        and set(layer.dilation) == {1}
    )


def _scipy_call(p: Problem, convolve: Callable[..., Any]) -> Callable[[], Any]:
    layer = p.layer
    axes = tuple(range(1, layer.rank + 1))
    flip = (slice(None),) + (slice(None, None, -1),) * layer.rank
    x, w, gy = p.x[:, 0], p.w[0], p.gy[:, 0]  # (N, *in), (1, *kernel), (N, *out)
    pad_width = ((0, 0), *((q, q) for q in layer.padding))
    has_padding = any(layer.padding)

    def padded() -> Any:  # a SciPy user pads explicitly, so padding is part of the timed call
        return np.pad(x, pad_width) if has_padding else x

    if p.pass_ == "forward":  # cross-correlation is convolution with the flipped kernel
        w_flipped = w[flip]
        return lambda: convolve(padded(), w_flipped, mode="valid", axes=axes)[:, None]
    if p.pass_ == "backward_data":  # full convolution of grad_y with w, cropped to the input
        crop = (slice(None), None, *(slice(q, q + i) for q, i in zip(layer.padding, layer.spatial)))
        return lambda: convolve(gy, w, mode="full", axes=axes)[crop]
    gy_flipped = gy[flip]
    return lambda: convolve(padded(), gy_flipped, mode="valid", axes=axes).sum(
        axis=0, keepdims=True
    )[None]


def peer_candidates(layer: Layer, device: str, peers: dict[str, Any]) -> list[Candidate]:
    found = []
    if "torch" in peers:
        found.append(Candidate("torch", "peer", _torch_call))
    if "scipy" in peers and _scipy_applies(layer, device):
        signal = peers["scipy"].signal
        for fn in ("fftconvolve", "oaconvolve"):
            bind = functools.partial(_scipy_call, convolve=getattr(signal, fn))
            found.append(Candidate(f"scipy.{fn}", "peer", bind))
    return found
