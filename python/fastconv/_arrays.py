"""Where a call's arrays live: the device of each argument and the one backend that runs them.

NumPy arrays and CPU torch tensors are recognised by their type (the common case costs a type
check); other arrays by `__cuda_array_interface__` or `__dlpack_device__`. Mixing devices is a
ValueError naming both arguments, raised before any data is touched.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

import numpy as np

from .backends import Backend, Call, backend_for_device

# DLPack device types (dlpack.h): CPU, CUDA, CUDA host (pinned), CUDA managed.
_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED = 1, 2, 3, 13


def is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def device_of(obj: Any) -> Optional[tuple[str, int]]:
    """(device type, index) of an array argument: ("cpu", 0), ("cuda", i) (i = -1 when the
    array does not say), ("meta", 0), ...; None for None and for objects that are not arrays."""
    if obj is None:
        return None
    if isinstance(obj, (np.ndarray, np.generic)):
        return ("cpu", 0)
    if is_torch_tensor(obj):
        dev = obj.device
        return (str(dev.type), 0 if dev.index is None else int(dev.index))
    if hasattr(obj, "__cuda_array_interface__"):
        dev = getattr(obj, "device", None)
        index = getattr(dev, "id", None)  # CuPy
        return ("cuda", -1 if index is None else int(index))
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if callable(dlpack_device) and not isinstance(obj, type):
        try:
            kind, index = dlpack_device()
        except Exception:  # noqa: BLE001 -- not a usable DLPack producer: the CPU path judges it
            return ("cpu", 0)
        if int(kind) in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
            return ("cuda", int(index))
        if int(kind) in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
            return ("cpu", 0)
        return (f"DLPack device type {int(kind)}", int(index))
    if isinstance(obj, (list, tuple)) or np.isscalar(obj):
        return ("cpu", 0)
    return None


def _where(dev: Optional[tuple[str, int]]) -> str:
    if dev is None or dev[0] == "cpu":
        return "the CPU"
    if dev[0] == "cuda":
        return "cuda" if dev[1] < 0 else f"cuda:{dev[1]}"
    return f"{dev[0]}:{dev[1]}"


def backend_for(
    names: Sequence[str], values: Sequence[Any], index: Optional[tuple] = None
) -> tuple[Backend, int]:
    """The backend and device index that run a call on these arrays (None values skipped;
    `index`: an optional (name, integer array) pair)."""
    torch = sys.modules.get("torch")
    tensor = torch.Tensor if torch is not None else ()
    for v in values:  # the common case: NumPy arrays and CPU tensors, by type alone
        if v is None or type(v) is np.ndarray or (isinstance(v, tensor) and v.is_cpu):
            continue
        break
    else:
        if index is None or type(index[1]) is np.ndarray:
            return backend_for_device("cpu"), 0
    if index is not None:
        names, values = (*names, index[0]), (*values, index[1])
    devs = {n: device_of(v) for n, v in zip(names, values) if v is not None}
    placed = {n: d for n, d in devs.items() if d is not None}
    types = {d[0] for d in placed.values()}
    if len(types) > 1:
        # Name an accelerator argument first: "w is on cuda:0 but x is on the CPU".
        first = next((n for n, d in placed.items() if d[0] != "cpu"), next(iter(placed)))
        other = next(n for n, d in placed.items() if d[0] != placed[first][0])
        raise ValueError(
            f"{first} is on {_where(placed[first])} but {other} is on {_where(placed[other])}; "
            "all arrays of one call must be on the same device (move them with .to(device) / "
            ".cuda() / .cpu())"
        )
    device = next(iter(types)) if types else "cpu"
    known = {n: d[1] for n, d in placed.items() if d[1] >= 0}
    indices = sorted(set(known.values()))
    if device != "cpu" and len(indices) > 1:
        listing = ", ".join(f"{n} on {device}:{i}" for n, i in known.items())
        raise ValueError(
            f"arrays of one call must be on one {device.upper()} device, got {listing}"
        )
    backend = backend_for_device(device)
    first = next(iter(placed), names[0])
    if backend is None:
        if device == "meta":
            raise ValueError(
                f"{first} is a meta tensor: it has a shape but no data to compute with (fastconv "
                "runs on CPU and CUDA arrays)"
            )
        raise ValueError(
            f"{first} is on {_where(placed.get(first))}, which fastconv has no kernels for "
            "(it runs on CPU and CUDA arrays)"
        )
    reason = backend.unavailable_reason()
    if reason:
        raise ValueError(f"{first} is on a {device.upper()} device, but {reason}")
    return backend, (indices[0] if indices else -1) if device != "cpu" else 0


def prepare_call(names: tuple, values: tuple, index: Any = None, channels_last=False) -> Call:
    """A call's operands, prepared by the backend of their device (see backend_for); the host
    backend first tries them in one pass (NumPy arrays and CPU tensors, the common case).
    channels_last: a conv call, whose backend may keep channels_last tensors as they are."""
    call = backend_for_device("cpu").prepare_local(names, values, index)
    if call is not None:
        return call
    backend, device = backend_for(names, values, index)
    if channels_last and getattr(backend, "reads_channels_last", False):
        return backend.prepare(names, values, device, index, channels_last=True)
    return backend.prepare(names, values, device, index)


def host_signature(values: tuple) -> Optional[tuple]:
    """(host backend, its signature of these operands) for the fast path (fastconv/_problem.py,
    RUNNERS), or None when they are not all host arrays in the layout its runners take."""
    backend = backend_for_device("cpu")
    signature = backend.signature(values)
    return None if signature is None else (backend, signature)


def copy_note(obj: Any, name: str) -> str:
    """What a call does to an operand stored out of order ("" for a C-contiguous one or a
    shape): kernels take contiguous channel-first (N, C, ...) buffers, so e.g. a channels_last
    torch tensor is copied to one on every call (explain() says what the result is)."""
    if is_torch_tensor(obj):
        if obj.is_contiguous():
            return ""
        torch = sys.modules["torch"]
        if obj.dim() == 4 and obj.is_contiguous(memory_format=torch.channels_last):
            layout = "channels_last"
        elif obj.dim() == 5 and obj.is_contiguous(memory_format=torch.channels_last_3d):
            layout = "channels_last_3d"
        else:
            layout = f"strided {tuple(obj.stride())}"
        nbytes = obj.numel() * obj.element_size()
    else:
        flags = getattr(obj, "flags", None)
        if flags is None or flags["C_CONTIGUOUS"]:
            return ""
        layout = f"strided {tuple(getattr(obj, 'strides', ()))} (bytes)"
        nbytes = int(obj.nbytes)
    return (
        f"{name} is {layout}: every call copies it to a contiguous channel-first buffer first "
        f"({nbytes} bytes read and written)"
    )
