"""Process-wide settings and build facts: thread count, ISA level, CUDA presence."""

from __future__ import annotations

import os
import platform
import warnings
from typing import Any

import numpy as np

from . import _C
from ._cpu_shape import _avx512_on_256bit_units
from ._torch_threads import share_torch_threads  # noqa: F401 -- re-exported
from .backends import backend_for_device
from .selection import OPS

DEVICES = ("cpu", "cuda")

_ISA_LEVELS = ("avx512", "avx2", "scalar")

_isa_env = os.environ.get("FASTCONV_ISA")
if _isa_env is not None and _isa_env not in _ISA_LEVELS:
    warnings.warn(
        f"FASTCONV_ISA={_isa_env!r} is not one of {_ISA_LEVELS}; using the default level "
        "(the detected one, capped by the build)",
        RuntimeWarning,
        stacklevel=2,
    )


def algorithms(op: str = "conv", device: str = "cpu") -> list[str]:
    """Names of the algorithms this build can run for `op` on `device` ("cpu" or "cuda";
    ValueError saying why when the device cannot run here)."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    backend = backend_for_device(device) if isinstance(device, str) else None
    if device not in DEVICES or backend is None:
        raise ValueError(f"device must be one of {DEVICES} in this build, got {device!r}")
    return backend.algorithms(op)


# Whether the user chose fastconv's thread count (FASTCONV_NUM_THREADS or set_num_threads):
# otherwise the PyTorch adapter follows torch.get_num_threads(), so fastconv inside a framework
# (e.g. one DDP process per core pair) never runs more threads than the framework.
_threads_chosen = "FASTCONV_NUM_THREADS" in os.environ


MAX_THREADS = 4096


def set_num_threads(n: int) -> None:
    """Sets how many threads fastconv's kernels use (the calling thread included)."""
    global _threads_chosen
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > MAX_THREADS:  # the pool would try to start that many threads
        raise ValueError(f"n must be at most {MAX_THREADS} threads, got {n}")
    _C.set_num_threads(n)
    _threads_chosen = True


def follow_threads(n: int) -> None:
    """Uses n threads unless the user chose a count (the framework adapters pass theirs)."""
    if not _threads_chosen and n != _C.get_num_threads():
        _C.set_num_threads(max(1, int(n)))


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


def check_gpu_errors(synchronize: bool = True) -> None:
    """Raises what fastconv's GPU kernels recorded without synchronising the host: max_unpool
    on the GPU skips an index outside its output plane and records it on the device instead of
    stalling the stream to check, and the next max_unpool call on that device, or this
    function, raises it as ValueError. With `synchronize` (the default) this first waits for
    every visible device, so every call made so far has reported. Does nothing without GPUs."""
    if not isinstance(synchronize, (bool, np.bool_)):
        raise TypeError(f"synchronize must be a bool, got {type(synchronize).__name__}")
    backend = backend_for_device("cuda")
    if backend is not None and not backend.unavailable_reason():
        backend.check_errors(bool(synchronize))


def _cuda_state() -> dict[str, Any]:
    cuda = backend_for_device("cuda")
    mod = cuda.module() if cuda is not None else None
    if mod is None:
        return {
            "built": False,
            "devices": [],
            "status": "not built (no CUDA compiler at build time)",
        }
    devices, error = cuda.devices()
    status = f"{len(devices)} GPU(s) visible" if devices else f"no GPU visible ({error or 'none'})"
    usable = not cuda.unavailable_reason()
    return {
        "built": True,
        "runtime": mod.runtime_version(),
        "architectures": getattr(mod, "architectures", "unknown"),  # SASS/PTX this build has
        # float16 / bfloat16 tensor-op path (cuda/tensor_op_conv.h); "" when built without it
        "tensor_op_core": getattr(mod, "tensor_op_core", ""),
        "devices": devices,
        "status": status,
        "algorithms": {op: cuda.algorithms(op) for op in OPS} if usable else {},
    }


def _avx512_units(cpu: dict[str, Any]) -> int | None:
    """The library's reading (cpu_info); through the rule's helper, so a bad
    FASTCONV_AVX512_UNITS warns here too."""
    _avx512_on_256bit_units()
    return cpu.get("avx512_units")


def info() -> dict[str, Any]:
    """Version, compiler, CPU features, ISA levels (detected: the CPU's; built: the highest this
    build has micro-kernels for; active: the one in use), cache sizes (bytes: as detected, the L2 as
    FASTCONV_L2_BYTES sets it; the kernels' blocking and `auto` use them), the width of the
    units that run AVX-512 (256 on AMD's Zen 4; FASTCONV_AVX512_UNITS sets it), threads,
    algorithms per op, CUDA state, and
    the jaxlib the XLA FFI handlers of fastconv.jax were built for (None: not built)."""
    cpu = _C.cpu_info()
    return {
        "version": _C.__version__,
        "compiler": _C.compiler,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu["brand"] or cpu["vendor"] or platform.processor(),
        "cpu_features": list(cpu["features"]),
        "isa_detected": cpu["detected_isa"],
        "isa_built": cpu["built_isa"],
        "isa_active": cpu["active_isa"],
        # the width of the units that run AVX-512 (`auto` reads it), None without AVX-512
        "avx512_units": _avx512_units(cpu),
        "caches": {"l1d": cpu["l1d"], "l2": cpu["l2"], "l3_per_core": cpu["l3_per_core"]},
        "threads": get_num_threads(),
        "thread_pool": _C.openmp_runtime() or "fastconv's own",
        "gemm_kernels": _C.gemm_kernels(),
        "algorithms": {op: algorithms(op) for op in OPS},
        "cuda": _cuda_state(),
        "jax_ffi": _jax_ffi_state(),
    }


def _jax_ffi_state() -> Any:
    built = getattr(_C, "jax_ffi_built_for", None)
    if built is None:
        return None
    version, (major, minor) = built
    return f"jaxlib {version} (XLA FFI API {major}.{minor})"
