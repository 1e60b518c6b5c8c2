"""Which threads run fastconv's CPU kernels next to PyTorch: its own pool, or PyTorch's OpenMP
team (decided once per process; see share_torch_threads). Imports nothing of fastconv but _C,
so that the CPU backend can ask for it on the first torch tensor it sees."""

from __future__ import annotations

import os
import sys
from typing import Any

from . import _C

# Whether the team was chosen: by share_torch_threads (fastconv.torch's import, the first CPU
# torch tensor a call receives, or the user), by FASTCONV_OPENMP=0, or by a fork: libgomp's team
# does not survive fork(), so a child stays on fastconv's own pool (the C++ fork handler moves
# it back there; a switch in the child would wait in GOMP_parallel for threads that do not exist).
_decided = False


def _after_fork_in_child() -> None:
    global _decided
    _decided = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _torch_openmp_runtime(torch: Any) -> str:
    """The file of the OpenMP runtime PyTorch's CPU library calls (Linux), or "": the library
    that omp_get_max_threads resolves to from libtorch_cpu, found in /proc/self/maps. (Not any
    libgomp in the process: scikit-learn and others bring their own, a second team.)"""
    lib = os.path.join(os.path.dirname(os.path.abspath(torch.__file__)), "lib", "libtorch_cpu.so")
    try:
        import ctypes

        handle = ctypes.CDLL(lib, mode=os.RTLD_NOW | getattr(os, "RTLD_NOLOAD", 0))
        address = ctypes.cast(handle.omp_get_max_threads, ctypes.c_void_p).value or 0
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6 or not fields[5].startswith("/"):
                    continue
                start, end = (int(v, 16) for v in fields[0].split("-"))
                if start <= address < end:
                    return fields[5]
    except (OSError, AttributeError, ValueError):
        pass
    return ""


def share_torch_threads() -> str:
    """Runs fastconv's CPU kernels on PyTorch's OpenMP threads instead of fastconv's own pool
    (fastconv.torch does this on import, the CPU backend on the first CPU torch tensor a call
    receives; FASTCONV_OPENMP=0 keeps the own pool). After each of
    PyTorch's operators its OpenMP workers spin for a while; a second pool next to them fights
    them for the cores (on 2 cores a ResNet-50 with fastconv's convolutions ran at 0.55x of
    PyTorch's speed, 0.93x on PyTorch's threads). A forked child goes back to the own pool.
    Returns the runtime's path, or "" (own pool): no torch, no OpenMP runtime in torch, not
    Linux."""
    global _decided
    _decided = True
    if os.environ.get("FASTCONV_OPENMP", "1") == "0":
        return ""
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    path = _torch_openmp_runtime(torch)
    if path and not _C.use_openmp_runtime(path):
        return path
    return ""


def share_on_first_tensor() -> None:
    """Called by the CPU backend for each new operand signature holding a CPU torch tensor:
    the first one moves the kernels onto PyTorch's OpenMP team (unless FASTCONV_OPENMP=0 or
    the team was already decided). A caller mixing PyTorch operators with fastconv calls on
    tensors otherwise runs two thread teams on the same cores: on 2 cores, a 4x4/2 transposed
    convolution's weight gradient called between PyTorch calls took 13.3 ms on fastconv's pool
    and 6.3 ms on PyTorch's threads (6.1 ms alone)."""
    if not _decided:
        share_torch_threads()
