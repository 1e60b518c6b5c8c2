"""The backend interface and its registry: one backend per device type ("cpu", "cuda").

A backend turns a call's arrays into kernel operands (`prepare`), allocates outputs with the
caller's own library (`empty`), says which algorithms it has and whether one can run a problem,
and runs problems. The public functions (fastconv/functional.py) never look at the device:
they find the backend through `backend_for_device` (via fastconv/_arrays.py) and call it.
Tests register their own backend with `registered(...)` to exercise routing without hardware.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from .base import Backend, Call
from .cpu import CpuBackend
from .cuda import CudaBackend

__all__ = ["Backend", "Call", "backend_for_device", "register_backend", "registered"]


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Optional[Backend]:
    """Makes `backend` serve its device type; returns the one it replaces (or None)."""
    previous = _BACKENDS.get(backend.device)
    _BACKENDS[backend.device] = backend
    return previous


def backend_for_device(device: str) -> Optional[Backend]:
    return _BACKENDS.get(device)


@contextlib.contextmanager
def registered(backend: Backend) -> Iterator[Backend]:
    """Serves `backend.device` with `backend` inside the block (tests), restoring afterwards."""
    previous = register_backend(backend)
    try:
        yield backend
    finally:
        if previous is None:
            _BACKENDS.pop(backend.device, None)
        else:
            register_backend(previous)


register_backend(CpuBackend())
register_backend(CudaBackend())
