"""The one check of a NumPy-side operand's dtype that every entry point shares: the CPU backend's
operands and the separable factors (checked before any convolution sees them)."""

from __future__ import annotations

from typing import Any

import numpy as np


def require_float32_or_64(dtype: Any, name: str) -> None:
    """TypeError naming `name` unless `dtype` is a 4- or 8-byte float (either byte order)."""
    dt = np.dtype(dtype)
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise TypeError(f"{name} must have dtype float32 or float64, got {dtype}")
