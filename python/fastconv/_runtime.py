"""Process-wide settings and build facts: thread count, ISA level, CUDA presence."""

from __future__ import annotations

import os
import platform
import warnings
from typing import Any

from . import _C
from .selection import OPS, algorithms

_ISA_LEVELS = ("avx512", "avx2", "scalar")

_isa_env = os.environ.get("FASTCONV_ISA")
if _isa_env is not None and _isa_env not in _ISA_LEVELS:
    warnings.warn(
        f"FASTCONV_ISA={_isa_env!r} is not one of {_ISA_LEVELS}; using the detected level",
        RuntimeWarning,
        stacklevel=2,
    )


def set_num_threads(n: int) -> None:
    """Sets how many threads fastconv's kernels use (the calling thread included)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """Threads fastconv's kernels use: FASTCONV_NUM_THREADS, set_num_threads, or the cores."""
    return int(_C.get_num_threads())


def peak_gflops(dtype: str = "float32", threads: int | None = None) -> float:
    """Measured peak of this machine for fastconv's active ISA: one core's FMA throughput
    (probed once, ~50 ms) times `threads` (default: get_num_threads())."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    n = get_num_threads() if threads is None else int(threads)
    return float(_C.peak_gflops(dtype)) * n


def _cuda_state() -> dict[str, Any]:
    try:
        from . import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return {
            "built": False,
            "devices": [],
            "status": "not built (no CUDA compiler at build time)",
        }
    devices, error = _cuda.devices()
    status = f"{len(devices)} GPU(s) visible" if devices else f"no GPU visible ({error or 'none'})"
    return {
        "built": True,
        "runtime": _cuda.runtime_version(),
        "architectures": getattr(_cuda, "architectures", "unknown"),  # CUDA hook: SASS/PTX built
        "devices": devices,
        "status": status,
        "algorithms": _cuda_algorithms(),  # CUDA hook: what runs on the GPU here ({} if none)
    }


def _cuda_algorithms() -> dict[str, list[str]]:
    from . import _gpu

    if _gpu.unavailable_reason():
        return {}
    return {op: _gpu.algorithms(op) for op in OPS}


def info() -> dict[str, Any]:
    """Version, compiler, CPU features, ISA level, threads, algorithms per op, CUDA state."""
    cpu = _C.cpu_info()
    return {
        "version": _C.__version__,
        "compiler": _C.compiler,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu["brand"] or cpu["vendor"] or platform.processor(),
        "cpu_features": list(cpu["features"]),
        "isa_detected": cpu["detected_isa"],
        "isa_active": cpu["active_isa"],
        "threads": get_num_threads(),
        "gemm_kernels": _C.gemm_kernels(),
        "algorithms": {op: algorithms(op) for op in OPS},
        "cuda": _cuda_state(),
    }
