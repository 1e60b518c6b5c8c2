"""The call path of the resampling ops (fastconv/resampling.py): public arguments -> the compiled
problem (fastconv._C.ResampleProblem, csrc/include/fastconv/resample.h) -> the backend's
run_resample; and the depthwise-convolution weights of blur and weighted average pooling.

One normaliser (resample_problem) checks what only Python sees (ints vs bools, tuple lengths,
argument names); the compiled problem validates values and computes every shape. Checked call
signatures are cached in _problem.CALLS like the other ops' (cleared by clear_caches()).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from typing import Any, NamedTuple, Sequence

import numpy as np

from . import _C
from ._arguments import check_bool, explicit_padding, full_shape, per_dim, positive, spatial_rank
from ._arrays import prepare_call
from ._problem import CALLS, cached, call_key, remember

INDICES_OUT = object()  # stochastic_pool's indices are an output, not an operand


def check_factor(r: Any, name: str = "r") -> int:
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(r).__name__}")
    if r < 1:
        raise ValueError(f"{name} must be >= 1, got {r}")
    if r > 2**20:
        raise ValueError(f"{name} must be an integer in [1, 2**20], got {r}")
    return int(r)


def check_seed(seed: Any) -> int:
    """A stochastic_pool seed: None draws a fresh one from the OS's entropy."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def resample_problem(
    kind: str, pass_: str, x_shape: Sequence[int], dtype: str, params: tuple, x_name: str = "x"
) -> Any:
    """The problem of one resampling pass. params: (scale, align_corners) for upsampling, (r,)
    for pixel (un)shuffle, (kernel_size, stride, padding, training) for stochastic pooling."""
    rank = spatial_rank(len(x_shape), x_name)
    scale: list[int] = []
    align = False
    kernel: list[int] = []
    stride: list[int] = []
    lo: list[int] = []
    hi: list[int] = []
    training = True
    if kind.startswith("upsample"):
        scale = positive(per_dim(params[0], rank, "scale"), "scale")
        align = check_bool(params[1], "align_corners")
    elif kind.startswith("pixel"):
        scale = [check_factor(params[0])]
    else:
        kernel_size, stride_arg, padding, training = params
        kernel = positive(per_dim(kernel_size, rank, "kernel_size"), "kernel_size")
        if stride_arg is not None:
            stride = positive(per_dim(stride_arg, rank, "stride"), "stride")
        lo, hi = explicit_padding(padding, rank)
        training = check_bool(training, "training")
    return _C.resample_problem(
        kind, pass_, list(x_shape), scale, align, kernel, stride, lo, hi, training, dtype
    )


class _Entry(NamedTuple):
    problem: Any
    x_shape: tuple
    y_shape: tuple
    result_shape: tuple


def _checked_entry(kind, pass_, call, x_shape_arg, params) -> _Entry:
    shapes, names = call.shapes, call.names
    if "x" in names:
        x_shape, x_name = tuple(shapes[names.index("x")]), "x"
    else:
        x_shape, x_name = tuple(full_shape(x_shape_arg, "x_shape", len(shapes[0]))), "x_shape"
    p = resample_problem(kind, pass_, x_shape, call.dtype, params, x_name)
    entry = _Entry(p, tuple(p.x_shape), tuple(p.y_shape), tuple(p.result_shape))
    if pass_ == "backward" and tuple(shapes[0]) != entry.y_shape:
        raise ValueError(f"grad_y must have shape {entry.y_shape}, got {tuple(shapes[0])}")
    if len(shapes) > len(names) and tuple(shapes[-1]) != entry.y_shape:
        raise ValueError(
            f"indices must have grad_y's shape {entry.y_shape}, got {tuple(shapes[-1])}"
        )
    call.backend.check_allocation(call, entry.result_shape, None)
    return entry


def run_resample(kind, pass_, names, values, params, x_shape_arg=None, index=None, seed=0):
    """One resampling pass: operands (x) forward, (grad_y[, x]) backward; `index` an optional
    (name, integer array) operand, or ("indices", INDICES_OUT) to return (y, indices)."""
    indices_out = index is not None and index[1] is INDICES_OUT
    given = index if index is not None and not indices_out else None
    call = prepare_call(names, values, given)
    fixed = ("resample", kind, pass_, call.shapes, call.dtype, call.backend, call.device)
    key = call_key(fixed, (x_shape_arg,) + tuple(params))
    entry = CALLS.get(key) if key is not None else None
    if entry is None:
        entry = cached(CALLS, key, lambda: _checked_entry(kind, pass_, call, x_shape_arg, params))
    backend, h = call.backend, call.handles
    out, handle = backend.empty(call, entry.result_shape)
    b = h[1] if len(names) > 1 else None
    if indices_out:
        idx, idx_handle = backend.empty(call, entry.y_shape, "int64")
        backend.run_resample(call, entry.problem, h[0], b, idx_handle, handle, seed)
        return out, idx
    backend.run_resample(call, entry.problem, h[0], b, h[-1] if given else None, handle, seed)
    return out


# ---- depthwise weights of blur pooling and weighted average pooling


def binomial(k: int) -> np.ndarray:
    """Row k-1 of Pascal's triangle, normalised: [1, 2, 1] / 4 for k = 3."""
    row = np.array([math.comb(k - 1, i) for i in range(k)], dtype=np.float64)
    return row / row.sum()


def blur_kernel(kernel_size: Any, rank: int) -> np.ndarray:
    """The normalised binomial kernel of blur_pool: outer product of one row per dim."""
    ks = positive(per_dim(kernel_size, rank, "kernel_size"), "kernel_size")
    if any(k > 64 for k in ks):
        raise ValueError(f"kernel_size must be at most 64 in every dim, got {tuple(ks)}")
    kernel = np.ones((), np.float64)
    for k in ks:
        kernel = np.multiply.outer(kernel, binomial(k))
    return kernel


def pool_weights(weights: Any, rank: int) -> np.ndarray:
    """weighted_avg_pool's weights as float64, normalised to sum 1 (errors name `weights`)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().double().numpy()
    try:
        w = np.asarray(weights)
    except Exception as e:  # noqa: BLE001 - anything that is no array
        raise TypeError(f"weights must be an array, got {type(weights).__name__}") from e
    if w.dtype.kind not in "fiu" or w.dtype == np.bool_:
        raise TypeError(f"weights must be a real array, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.ndim != rank:
        raise ValueError(
            f"weights must have {rank} dims (the kernel, shared by all channels) for x with "
            f"{rank} spatial dims, got shape {w.shape}"
        )
    if w.size == 0:
        raise ValueError(f"weights must not be empty, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    total = float(w.sum())
    if not total > 0:
        raise ValueError("weights must have a positive sum, got 0")
    return w / total


_WEIGHTS: dict = {}  # (kernel bytes, shape, channels, dtype, library, device) -> depthwise w


def depthwise_weight(kernel: np.ndarray, like: Any, channels: int) -> Any:
    """(channels, 1, *kernel.shape) copies of `kernel` in `like`'s library, dtype and device."""
    torch = sys.modules.get("torch")
    is_torch = torch is not None and isinstance(like, torch.Tensor)
    dtype = str(like.dtype).replace("torch.", "") if is_torch else np.asarray(like).dtype.name
    if dtype not in ("float32", "float64", "float16", "bfloat16"):
        dtype = "float64"  # the conv reports the operand's own dtype error
    device = str(like.device) if is_torch else "cpu"
    key = (kernel.tobytes(), kernel.shape, channels, dtype, is_torch, device)
    w = _WEIGHTS.get(key)
    if w is None:
        full = np.broadcast_to(kernel, (channels, 1) + kernel.shape)
        if is_torch:
            w = torch.from_numpy(full.copy()).to(like.device, getattr(torch, dtype))  # writable
        else:
            w = np.ascontiguousarray(full, dtype=dtype)
        remember(_WEIGHTS, key, w)
    return w
