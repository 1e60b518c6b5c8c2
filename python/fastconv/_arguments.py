"""Argument normalisation: ints and tuples to per-dimension lists, padding specs to a rule or
(low, high) lists, with errors that name the argument. Nothing here computes a size: padding
rules and output sizes are resolved by the compiled geometry (csrc/common/problem.cc)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

PAD_STRINGS = ("valid", "same", "full")


def _is_int(v: Any) -> bool:
    if type(v) is int:  # the common case, without the abstract-class checks below
        return True
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def in_int64(values: list[int], name: str, given: Any = None) -> list[int]:
    """values, unless one does not fit the compiled layer's int64 (ValueError naming `name`)."""
    for v in values:
        if not INT64_MIN <= v <= INT64_MAX:
            shown = values if given is None else given
            raise ValueError(f"{name} entries must fit in int64 (|v| < 2**63), got {shown!r}")
    return values


def per_dim(value: Any, rank: int, name: str) -> list[int]:
    """An int or a sequence with one int per spatial dim -> list of `rank` ints."""
    if type(value) is int:
        return in_int64([value] * rank, name, value)
    if type(value) is tuple and len(value) == rank and all(type(v) is int for v in value):
        return in_int64(list(value), name, value)
    if _is_int(value):
        return in_int64([int(value)] * rank, name, value)
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(
                f"{name} must be an int or a sequence of {rank} ints (one per spatial dim), "
                f"got {value!r}"
            )
        for v in value:
            if not _is_int(v):
                raise TypeError(f"{name} entries must be ints, got {value!r}")
        return in_int64([int(v) for v in value], name, value)
    raise TypeError(f"{name} must be an int or a tuple of ints, got {type(value).__name__}")


def positive(values: list[int], name: str) -> list[int]:
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be >= 1 in every dim, got {tuple(values)}")
    return values


def _is_pair(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v)


def explicit_padding(padding: Any, rank: int, name: str = "padding") -> tuple[list[int], list[int]]:
    """int, per-dim ints or per-dim (low, high) pairs -> (low list, high list), all >= 0."""
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == rank
        and any(isinstance(p, (tuple, list)) for p in padding)
    ):
        if not all(_is_pair(p) or _is_int(p) for p in padding):
            raise ValueError(
                f"{name} must be an int, {rank} ints, or {rank} (low, high) pairs, got {padding!r}"
            )
        lo = in_int64([int(p[0]) if _is_pair(p) else int(p) for p in padding], name, padding)
        hi = in_int64([int(p[1]) if _is_pair(p) else int(p) for p in padding], name, padding)
    else:
        lo = per_dim(padding, rank, name)
        hi = list(lo)
    if any(v < 0 for v in lo + hi):
        raise ValueError(f"{name} must be non-negative, got {padding!r}")
    return lo, hi


def padding_spec(
    padding: Any, rank: int, rules: Sequence[str] = PAD_STRINGS
) -> tuple[str, list[int], list[int]]:
    """A padding argument -> (rule, low, high): rule "explicit" with per-dim (low, high) lists,
    or one of `rules` ("valid", "same", "full"), which the compiled geometry resolves
    (csrc/common/problem.cc) with empty lists."""
    if isinstance(padding, str):
        rule = padding.lower()
        if rule in rules:
            return rule, [], []
        if len(rules) == len(PAD_STRINGS):
            raise ValueError(
                f"padding must be an int, a tuple, or one of {PAD_STRINGS}, got {padding!r}"
            )
        raise ValueError(
            f"padding for a transposed convolution must be an int, a tuple, (low, high) pairs "
            f"or 'valid', got {padding!r}"
        )
    lo, hi = explicit_padding(padding, rank)
    return "explicit", lo, hi


def check_mode(mode: Any) -> str:
    if mode not in ("cross", "conv"):
        raise ValueError(
            f"mode must be 'cross' (cross-correlation) or 'conv' (true convolution), got {mode!r}"
        )
    return mode


def check_groups(groups: Any) -> int:
    if not _is_int(groups):
        raise TypeError(f"groups must be an int, got {type(groups).__name__}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return in_int64([int(groups)], "groups", groups)[0]


def array_shape(obj: Any, name: str) -> tuple:
    """The shape of an array argument (arrays, tensors, nested lists, numbers); TypeError naming
    `name` for anything else (None, strings, mappings, ...), as the operand checks would."""
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return tuple(shape)
    if isinstance(obj, (list, tuple, numbers.Number)) and not isinstance(obj, bool):
        return np.shape(obj)
    raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(obj).__name__}")


def spatial_rank(ndim: int, name: str) -> int:
    if not 3 <= ndim <= 5:
        raise ValueError(
            f"{name} must have 3, 4 or 5 dims (N, C, *spatial with 1-3 spatial dims), got {ndim}"
        )
    return ndim - 2


def full_shape(shape: Any, name: str, ndim: int) -> list[int]:
    """A shape argument (x_shape, w_shape): `ndim` non-negative ints."""
    if not isinstance(shape, (tuple, list)) or not all(_is_int(s) for s in shape):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}")
    if len(shape) != ndim:
        raise ValueError(f"{name} must have {ndim} entries, got {tuple(shape)}")
    if any(s < 0 for s in shape):
        raise ValueError(f"{name} must be non-negative, got {tuple(shape)}")
    if any(s > INT64_MAX for s in shape) or math.prod(int(s) for s in shape) >= 2**63:
        raise ValueError(f"{name} {tuple(shape)} has more elements than fit in int64")
    return [int(s) for s in shape]


def lp_norm(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"p must be a real number, got {type(p).__name__}")
    p = float(p)
    if not math.isfinite(p) or p <= 0:
        raise ValueError(f"p must be a finite number > 0, got {p}")
    return p


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)
