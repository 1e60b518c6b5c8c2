"""Problems: one normalising function per op family turns a call's public arguments into the
compiled problem (fastconv._C.ConvProblem / PoolProblem, csrc/include/fastconv/problem.h),
and `cached` keeps what a call signature resolved to (problem, algorithm, plan) so a repeated
call goes straight to its kernel.

Python checks what only Python can see (ints vs bools vs floats, tuple lengths, names of the
arguments); the compiled geometry resolves "same"/"full" padding, validates the values and
computes every shape (its output_extent() is the one output-size formula).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import _C, autotune
from ._arguments import (
    check_bool,
    check_groups,
    check_mode,
    explicit_padding,
    lp_norm,
    padding_spec,
    per_dim,
    positive,
    spatial_rank,
)


def weight_rank(w_shape: Sequence[int], name: str = "w") -> int:
    """Spatial rank of a weight shape (K, C/groups, *kernel): 1, 2 or 3."""
    if not 3 <= len(w_shape) <= 5:
        raise ValueError(
            f"{name} must have 3, 4 or 5 dims (out, in/groups, *kernel) for 1-3 spatial dims, "
            f"got shape {tuple(w_shape)}"
        )
    return len(w_shape) - 2


def same_rank(shape: Sequence[int], w_shape: Sequence[int], name: str, w_name: str = "w") -> None:
    if len(shape) != len(w_shape):
        raise ValueError(
            f"{name} must have {len(w_shape)} dims to match {w_name} of shape {tuple(w_shape)}, "
            f"got shape {tuple(shape)}"
        )


def conv_problem(
    op: str,
    pass_: str,
    shape: Sequence[int],
    w_shape: Sequence[int],
    dtype: str,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    mode: Any = "cross",
    output_padding: Any = 0,
) -> Any:
    """The problem of one conv or transposed-conv pass. `shape` is x's shape, except for conv
    backward_data (the x_shape argument) and transposed-conv backward_data (grad_y's shape)."""
    w_name = "w_shape" if pass_ == "backward_weight" else "w"
    rank = weight_rank(w_shape, w_name)
    s = positive(per_dim(stride, rank, "stride"), "stride")
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    groups = check_groups(groups)
    if op == "conv":
        mode = check_mode(mode)
        rule, lo, hi = padding_spec(padding, rank)
        opad: list[int] = []
    else:
        rule, lo, hi = padding_spec(padding, rank, ("valid",))
        opad = per_dim(output_padding, rank, "output_padding")
        if any(v < 0 for v in opad):
            raise ValueError(f"output_padding must be non-negative, got {output_padding!r}")
    return _C.conv_problem(
        op, pass_, list(shape), list(w_shape), s, rule, lo, hi, d, groups, mode, opad, dtype
    )


def pool_problem(
    kind: str,
    pass_: str,
    x_shape: Sequence[int],
    dtype: str,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: Any = False,
    count_include_pad: Any = True,
    p: Any = 2.0,
    output_size: Any = None,
    x_name: str = "x",
) -> Any:
    """The problem of one pooling pass (kind: max_pool, avg_pool, lp_pool, max_unpool)."""
    rank = spatial_rank(len(x_shape), x_name)
    k = positive(per_dim(kernel_size, rank, "kernel_size"), "kernel_size")
    s = [] if stride is None else positive(per_dim(stride, rank, "stride"), "stride")
    lo, hi = explicit_padding(padding, rank)
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    p = lp_norm(p)
    size: list[int] = []
    if output_size is not None:
        given = list(output_size) if isinstance(output_size, (tuple, list)) else output_size
        if not isinstance(given, list) or len(given) not in (rank, rank + 2):
            raise ValueError(
                f"output_size must have {rank} (spatial) or {rank + 2} entries, got {output_size!r}"
            )
        size = per_dim(given[-rank:], rank, "output_size")
        if len(given) == rank + 2 and list(given[:2]) != list(x_shape[:2]):
            raise ValueError(
                f"output_size {tuple(given)} disagrees with x's N and C {tuple(x_shape[:2])}"
            )
    return _C.pool_problem(
        kind, pass_, list(x_shape), k, s, lo, hi, d, ceil_mode, count_include_pad, p, size, dtype
    )


# ---- caches: what a call signature resolved to
#
# PROBLEMS maps a problem's arguments (op, pass, data and weight shapes, dtype, backend, algo,
# parameters) to its entry: the compiled problem, the selection and the plan, shared by every
# call with those arguments and by explain(). CALLS maps a call's signature (its operands'
# shapes as given) to the same entry once the operands were checked against it, so a repeated
# call does one dictionary lookup before its kernel.

PROBLEMS: dict[Any, Any] = {}
CALLS: dict[Any, Any] = {}
# The host fast path: a call on C-contiguous NumPy arrays / CPU tensors whose signature (operand
# kinds, shapes, dtypes; parameters) ran before goes straight to the runner its backend made
# for it (fastconv/backends/cpu.py, conv_runner / pool_runner): no preparation, no checks.
RUNNERS: dict[Any, Any] = {}
_LIMIT = 4096


class _Uncacheable(Exception):
    pass


_TRUE, _FALSE = object(), object()  # bools must not share entries with 1 and 0
_SIMPLE_TYPES = frozenset((int, str, type(None), bool, float))
_SIMPLE_SIGNATURES: dict[tuple, bool] = {}  # parameter types -> all simple (a set test, cached)


def tiled_conv_problem(
    op: str,
    pass_: str,
    shape: Sequence[int],
    w_shape: Sequence[int],
    dtype: str,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> Any:
    """The problem (fastconv._C.TiledConvProblem) of one tiled_conv / locally_connected pass;
    `shape` is x's shape (backward_data: the x_shape argument), w_shape (K, *tiles, C, *kernel)."""
    w_name = "w_shape" if pass_ == "backward_weight" else "w"
    if len(w_shape) not in (4, 6, 8):
        what = "out_spatial" if op == "locally_connected" else "tiles"
        raise ValueError(
            f"{w_name} must have 4, 6 or 8 dims (K, *{what}, C, *kernel) for 1-3 spatial dims, "
            f"got shape {tuple(w_shape)}"
        )
    rank = (len(w_shape) - 2) // 2
    s = positive(per_dim(stride, rank, "stride"), "stride")
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    if isinstance(padding, str):
        if padding.lower() != "valid":
            raise ValueError(
                f"padding of {op} must be an int, a tuple, (low, high) pairs or 'valid', "
                f"got {padding!r}"
            )
        lo, hi = [0] * rank, [0] * rank
    else:
        lo, hi = explicit_padding(padding, rank)
    local = op == "locally_connected"
    return _C.tiled_conv_problem(pass_, list(shape), list(w_shape), s, lo, hi, d, local, dtype)


def _freeze(v: Any) -> Any:
    """A hashable key that keeps argument kinds apart (True vs 1 vs 1.0 are distinct calls:
    two of them are errors). Raises _Uncacheable for anything unusual."""
    t = type(v)
    if t is int or t is str or v is None:
        return v
    if t is tuple or t is list:
        return (t is list, tuple(_freeze(e) for e in v))
    if t is bool or t is np.bool_:
        return _TRUE if v else _FALSE
    if t is float:
        return ("float", v)
    if isinstance(v, np.integer):
        return int(v)
    raise _Uncacheable


def call_key(fixed: tuple, params: tuple) -> Optional[tuple]:
    """The cache key of `fixed` (hashable as it is) plus the caller's parameters, kept apart by
    kind; None when a parameter is of an unusual kind (the call is then not cached)."""
    types = tuple(map(type, params))
    simple = _SIMPLE_SIGNATURES.get(types)
    if simple is None:
        simple = _SIMPLE_TYPES.issuperset(types)
        remember(_SIMPLE_SIGNATURES, types, simple)
    if simple:  # the common case: no tuples to look into
        return (fixed, params, types)
    try:
        return (fixed, _freeze(params))
    except _Uncacheable:
        return None


def cached(cache: dict, key: Optional[tuple], make: Callable[[], Any]) -> Any:
    """What `key` resolved to before in `cache`, or make() (stored unless key is None)."""
    if key is None:
        return make()
    entry = cache.get(key)
    if entry is None:
        entry = make()
        remember(cache, key, entry)
    return entry


def remember(cache: dict, key: Optional[tuple], value: Any) -> None:
    """Stores value under key (not None); past _LIMIT entries the oldest goes first."""
    if key is not None:
        if len(cache) >= _LIMIT:
            # The oldest first (dicts keep insertion order). Other Python threads may evict the
            # same entry or change the dict between these steps (the kernels release the GIL):
            # then there is nothing to do here.
            try:
                cache.pop(next(iter(cache)), None)
            except (StopIteration, RuntimeError):
                pass
        cache[key] = value


def clear_caches() -> None:
    """Forgets every cached problem, call and runner (tests; frees the problems' plans) and
    the autotune winners read into memory (the cache file stays)."""
    autotune.forget()
    PROBLEMS.clear()
    CALLS.clear()
    RUNNERS.clear()
