"""Array interop: turn NumPy arrays, torch tensors and DLPack arrays into contiguous NumPy
views for the kernels, and allocate outputs with the caller's own library."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class ArrayKind:
    """Where inputs came from, so outputs are made the same way."""

    library: str  # "numpy" or "torch"
    device: str = "cpu"

    def empty(self, shape: Sequence[int], dtype: np.dtype) -> tuple[Any, np.ndarray]:
        """Allocates an output; returns (object for the caller, writeable NumPy view)."""
        shape = tuple(int(s) for s in shape)
        check_allocation(shape, dtype)
        if self.library == "torch":
            import torch

            t = torch.empty(shape, dtype=_TORCH_DTYPES()[np.dtype(dtype)])
            return t, t.numpy()
        a = np.empty(shape, dtype=dtype)
        return a, a

    def zeros(self, shape: Sequence[int], dtype: np.dtype) -> tuple[Any, np.ndarray]:
        obj, view = self.empty(shape, dtype)
        view[...] = 0
        return obj, view


def _TORCH_DTYPES() -> dict:
    import torch

    return {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float64): torch.float64,
        np.dtype(np.int64): torch.int64,
    }


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_allocation(shape: Sequence[int], dtype: np.dtype) -> None:
    """Raises MemoryError for an output that cannot fit, before anything is touched."""
    nbytes = np.dtype(dtype).itemsize
    for s in shape:
        nbytes *= int(s)  # Python ints: no overflow
    if nbytes > _physical_memory():
        raise MemoryError(
            f"fastconv: output of shape {tuple(shape)} ({np.dtype(dtype).name}) needs "
            f"{nbytes / 2**30:.1f} GiB, more than this machine's memory"
        )


def _is_torch(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("torch") and type(obj).__name__ in ("Tensor", "Parameter")


def as_array(obj: Any, name: str) -> tuple[np.ndarray, ArrayKind]:
    """Converts one input to a C-contiguous, native-byte-order NumPy array (copied only if needed).

    Raises TypeError naming `name` for objects that are not float arrays.
    """
    if _is_torch(obj):
        if obj.device.type != "cpu":
            raise ValueError(
                f"{name} is on device {obj.device}, but this fastconv build has no GPU kernels "
                "for it; move it to the CPU or install a CUDA build"
            )
        if obj.is_complex() or not obj.is_floating_point():
            raise TypeError(f"{name} must be a float32 or float64 tensor, got {obj.dtype}")
        if obj.dtype not in (_TORCH_DTYPES()[_FLOAT_DTYPES[0]], _TORCH_DTYPES()[_FLOAT_DTYPES[1]]):
            raise TypeError(f"{name} must be float32 or float64 on the CPU, got {obj.dtype}")
        arr = obj.detach().resolve_conj().resolve_neg().numpy()
        kind = ArrayKind("torch")
    elif isinstance(obj, np.ndarray):
        arr, kind = obj, ArrayKind("numpy")
    elif hasattr(obj, "__dlpack__") and not isinstance(obj, (list, tuple)):
        try:
            arr = np.from_dlpack(obj)
        except (TypeError, RuntimeError, BufferError) as e:
            raise TypeError(f"{name}: cannot read this array through DLPack ({e})") from e
        kind = ArrayKind("numpy")
    elif isinstance(obj, (list, tuple)) or np.isscalar(obj) and not isinstance(obj, (str, bytes)):
        arr, kind = np.asarray(obj), ArrayKind("numpy")
    else:
        raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(obj).__name__}")
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")
    native = np.dtype(np.float32 if arr.dtype.itemsize == 4 else np.float64)
    if arr.dtype != native:  # non-native byte order: one converting copy
        arr = arr.astype(native)
    return np.ascontiguousarray(arr), kind


def as_index_array(obj: Any, name: str) -> np.ndarray:
    """Converts max-pool indices to a C-contiguous int64 NumPy array."""
    if _is_torch(obj):
        obj = obj.detach().cpu().numpy()
    arr = np.asarray(obj)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def common_dtype(arrays: Sequence[tuple[str, np.ndarray]]) -> np.dtype:
    """All float inputs of one call must share a dtype; raises TypeError naming them."""
    first_name, first = arrays[0]
    for name, arr in arrays[1:]:
        if arr.dtype != first.dtype:
            raise TypeError(
                f"{first_name} and {name} must have the same dtype, got {first.dtype} and "
                f"{arr.dtype}"
            )
    return first.dtype


def result_kind(*kinds: ArrayKind) -> ArrayKind:
    """Torch if any input was a torch tensor, else NumPy."""
    for k in kinds:
        if k.library == "torch":
            return k
    return kinds[0]


def wrap_indices(kind: ArrayKind, arr: np.ndarray) -> Any:
    if kind.library == "torch":
        import torch

        return torch.from_numpy(arr)
    return arr
