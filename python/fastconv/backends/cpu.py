"""The CPU backend: NumPy arrays and CPU torch tensors in, fastconv._C's kernels, results of the
caller's library out.

NumPy operands go to the kernels as arrays (checked again in C++); torch tensors as the address
of their contiguous buffer (a NumPy view of a tensor costs ~20x more than `.data_ptr()`), which
is safe because the problem's shapes are those of the tensors (the call cache keys on them) and
`prepare` has made each tensor contiguous, native float32/float64.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Optional, Sequence

import numpy as np

from .. import _C
from .._dtypes import require_float32_or_64
from .._host_memory import POOL
from .._torch_threads import share_on_first_tensor
from .base import Backend, Call

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NUMPY_DTYPES = {"float32": _F32, "float64": _F64, "int64": np.dtype(np.int64)}


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


_MEMORY = _physical_memory()


def _numpy_operand(obj: Any, name: str) -> np.ndarray:
    """Any other CPU array (NumPy of other dtypes or byte orders, DLPack, lists): a C-contiguous
    native float32/float64 array, copied only when needed; TypeError naming `name` otherwise."""
    if isinstance(obj, np.ndarray):
        arr = obj
    elif hasattr(obj, "__dlpack__") and not isinstance(obj, (list, tuple)):
        try:
            arr = np.from_dlpack(obj)
        except (TypeError, RuntimeError, BufferError) as e:
            raise TypeError(f"{name}: cannot read this array through DLPack ({e})") from e
    elif isinstance(obj, (list, tuple)) or np.isscalar(obj) and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
    else:
        raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(obj).__name__}")
    require_float32_or_64(arr.dtype, name)
    native = _F32 if arr.dtype.itemsize == 4 else _F64
    if arr.dtype != native:  # non-native byte order: one converting copy
        arr = arr.astype(native)
    return np.ascontiguousarray(arr)


def _address(v: Any) -> Any:
    """What the kernels take for an operand the signature admitted: NumPy arrays as they are,
    tensors by the address of their (contiguous) buffer."""
    return v if v is None or type(v) is np.ndarray else v.data_ptr()


def _torch_dtype_error(t: Any, name: str) -> None:
    if t.is_complex() or not t.is_floating_point():
        raise TypeError(f"{name} must be a float32 or float64 tensor, got {t.dtype}")
    raise TypeError(f"{name} must be float32 or float64 on the CPU, got {t.dtype}")


class CpuBackend(Backend):
    device = "cpu"
    dtypes = ("float32", "float64")

    # ---- algorithms and plans

    def algorithms(self, op: str) -> list[str]:
        return list(_C.algorithms(op))

    def conv_unsupported_reason(self, problem: Any, algo: str, forced: bool = False) -> str:
        return str(problem.unsupported_reason(algo, forced))

    def conv_plan(self, problem: Any, algo: str) -> Any:
        return problem.plan(algo)

    def plan_details(self, problem: Any, algo: str) -> tuple[int, str]:
        plan = problem.plan(algo)
        return int(plan.workspace_bytes), str(plan.note)

    # ---- operands and outputs

    def prepare(
        self,
        names: Sequence[str],
        values: Sequence[Any],
        device: int,
        index: Any = None,
        channels_last: bool = False,
    ) -> Call:
        return self._prepare(names, values, index, True)  # the host kernels take channel-first

    def prepare_local(self, names: Sequence[str], values: Sequence[Any], index: Any = None):
        # The host's fast path: classifies and prepares in one pass (fastconv/_arrays.py asks
        # here first); None when an operand is not a NumPy array or CPU tensor.
        return self._prepare(names, values, index, False)

    def _prepare(self, names, values, index, strict: bool) -> Optional[Call]:
        torch = sys.modules.get("torch")
        tensor = torch.Tensor if torch is not None else ()
        library, dtype, first = "numpy", None, ""
        shapes, handles, keep = [], [], []
        for name, v in zip(names, values):
            if type(v) is np.ndarray and (v.dtype is _F32 or v.dtype is _F64):
                if not v.flags.c_contiguous:
                    v = np.ascontiguousarray(v)
                vdtype, shape, handle = ("float32" if v.dtype is _F32 else "float64"), v.shape, v
            elif v is None:
                if name != "bias":
                    raise TypeError(f"{name} must be an array or a tensor, got None")
                shapes.append(None)
                handles.append(None)
                continue
            elif isinstance(v, tensor):
                if not v.is_cpu and not strict:
                    return None
                if v.layout is not torch.strided:
                    raise TypeError(f"{name} must be a dense (strided) tensor, got {v.layout}")
                dt = v.dtype
                if dt is not torch.float32 and dt is not torch.float64:
                    _torch_dtype_error(v, name)
                if not v.is_contiguous() or v.is_neg():
                    v = v.detach().resolve_neg().contiguous()
                vdtype = "float32" if dt is torch.float32 else "float64"
                library, shape, handle = "torch", v.shape, v.data_ptr()
                keep.append(v)
            elif not strict:
                return None  # anything else: classified by fastconv/_arrays.py first
            else:
                arr = _numpy_operand(v, name)
                vdtype, shape, handle = arr.dtype.name, arr.shape, arr
            if dtype is None:
                dtype, first = vdtype, name
            elif vdtype != dtype:
                raise TypeError(
                    f"{first} and {name} must have the same dtype, got {dtype} and {vdtype}"
                )
            shapes.append(shape)
            handles.append(handle)
        if index is not None:
            if (
                not strict
                and type(index[1]) is not np.ndarray
                and not (isinstance(index[1], tensor) and index[1].is_cpu)
            ):
                return None
            idx = self._index_operand(index[1], index[0])
            shapes.append(idx.shape)
            handles.append(idx)
        if library == "torch":  # a valid call on CPU tensors: one thread team with PyTorch
            share_on_first_tensor()
        return Call(self, library, dtype, 0, names, tuple(shapes), tuple(handles), keep)

    @staticmethod
    def _index_operand(obj: Any, name: str) -> np.ndarray:
        """Max-pool indices as a C-contiguous int64 NumPy array (read by the kernels)."""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor):
            obj = obj.detach().cpu().numpy()
        arr = np.asarray(obj)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def check_allocation(self, call: Call, shape: Sequence[int], dtype: Optional[str]) -> None:
        nbytes = extent = _NUMPY_DTYPES[dtype or call.dtype].itemsize
        for s in shape:
            nbytes *= int(s)  # Python ints: no overflow
            extent *= max(int(s), 1)
        if extent >= 2**63:  # NumPy cannot describe it, even when a zero extent makes it empty
            raise MemoryError(
                f"fastconv: output of shape {tuple(shape)} ({dtype or call.dtype}) spans more "
                f"than 2**63 bytes along its non-zero dims; NumPy cannot describe it"
            )
        if nbytes > _MEMORY:
            raise MemoryError(
                f"fastconv: output of shape {tuple(shape)} ({dtype or call.dtype}) needs "
                f"{nbytes / 2**30:.1f} GiB, more than this machine's memory"
            )

    def empty(self, call: Call, shape: Sequence[int], dtype: Optional[str] = None) -> tuple:
        a = POOL.empty(shape, _NUMPY_DTYPES[dtype or call.dtype])
        if call.library == "torch":
            # A tensor over NumPy memory: torch.from_numpy(np.empty()) costs ~60% of
            # torch.empty() here, and the kernels take the array itself.
            return sys.modules["torch"].from_numpy(a), a
        return a, a

    # ---- the host fast path (fastconv/_problem.py, RUNNERS)

    def signature(self, values: Sequence[Any]) -> Optional[tuple]:
        """What a runner depends on, per operand: (kind, shape, dtype); None unless every
        operand is None, a C-contiguous native float32/float64 NumPy array or a contiguous
        strided CPU tensor (what the kernels take as they are)."""
        sig = []
        for v in values:
            if type(v) is np.ndarray:
                if not v.flags.c_contiguous or (v.dtype is not _F32 and v.dtype is not _F64):
                    return None
                sig.append((False, v.shape, v.dtype))
            elif v is None:
                sig.append(None)
            else:
                torch = sys.modules.get("torch")
                if torch is None or not isinstance(v, torch.Tensor) or not v.is_cpu:
                    return None
                if v.layout is not torch.strided or not v.is_contiguous() or v.is_neg():
                    return None
                sig.append((True, v.shape, v.dtype))
        return tuple(sig)

    @staticmethod
    def _spec(call: Call) -> Call:
        # What a runner's allocations need of its first call: kind and dtype, not its operands
        # (a runner lives in a cache; it must not keep the first call's arrays alive).
        return Call(call.backend, call.library, call.dtype, 0, call.names, call.shapes, (), None)

    def conv_runner(self, call: Call, problem: Any, plan: Any, result_shape: tuple) -> Any:
        """run(a, b, bias=None) -> output for calls of `call`'s signature."""
        empty, conv, spec = self.empty, _C.conv, self._spec(call)
        tensors = {isinstance(h, int) for h in call.handles if h is not None}  # torch: an address
        if tensors == {False}:  # NumPy operands: the kernels take them as they are
            dtype = _NUMPY_DTYPES[call.dtype]
            nbytes = math.prod(result_shape) * dtype.itemsize

            def run(a, b, bias=None):
                if nbytes < POOL.min_bytes:  # a small output: np.empty, no pool lookup
                    out = handle = np.empty(result_shape, dtype)
                else:
                    out, handle = empty(spec, result_shape)
                conv(problem, plan, a, b, bias, handle)
                return out

            return run
        if tensors == {True}:

            def run_torch(a, b, bias=None):
                out, handle = empty(spec, result_shape)
                bias = None if bias is None else bias.data_ptr()
                conv(problem, plan, a.data_ptr(), b.data_ptr(), bias, handle)
                return out

            return run_torch

        def run_mixed(a, b, bias=None):
            out, handle = empty(spec, result_shape)
            conv(problem, plan, _address(a), _address(b), _address(bias), handle)
            return out

        return run_mixed

    def pool_runner(
        self, call: Call, problem: Any, result_shape: tuple, indices_shape: Optional[tuple] = None
    ) -> Any:
        """run(a, b=None) -> output for pooling calls of `call`'s signature without an indices
        operand; with indices_shape (max_pool's indices as an output) run(a) -> (y, indices)."""
        empty, pool, spec = self.empty, _C.pool, self._spec(call)
        if len(call.handles) > len(call.names):  # indices as an operand: the general path
            return None
        if indices_shape is not None:

            def run_indices(a):
                out, handle = empty(spec, result_shape)
                idx, idx_handle = empty(spec, indices_shape, "int64")
                pool(problem, _address(a), None, idx_handle, handle)
                return out, idx

            return run_indices
        if len(call.handles) == 1:  # a forward: one operand, NumPy or torch
            if isinstance(call.handles[0], int):

                def run_tensor(a):
                    out, handle = empty(spec, result_shape)
                    pool(problem, a.data_ptr(), None, None, handle)
                    return out

                return run_tensor

            dtype = _NUMPY_DTYPES[call.dtype]
            nbytes = math.prod(result_shape) * dtype.itemsize

            def run_array(a):
                if nbytes < POOL.min_bytes:  # a small output: np.empty, no pool lookup
                    out = handle = np.empty(result_shape, dtype)
                else:
                    out, handle = empty(spec, result_shape)
                pool(problem, a, None, None, handle)
                return out

            return run_array

        def run(a, b=None):
            out, handle = empty(spec, result_shape)
            pool(problem, _address(a), _address(b), None, handle)
            return out

        return run

    # ---- runs

    def run_conv(self, call: Call, problem: Any, plan: Any, out: Any) -> None:
        h = call.handles
        _C.conv(problem, plan, h[0], h[1], h[2] if len(h) > 2 else None, out)

    def run_conv_backward_bias(self, call: Call, out: Any) -> None:
        _C.conv_backward_bias(list(call.shapes[0]), call.dtype, call.handles[0], out)

    def run_pool(self, call: Call, problem: Any, a: Any, b: Any, indices: Any, out: Any) -> None:
        _C.pool(problem, a, b, indices, out)

    def run_resample(
        self, call: Call, problem: Any, a: Any, b: Any, indices: Any, out: Any, seed: int
    ) -> None:
        _C.resample(problem, a, b, indices, out, seed)

    def run_tiled_conv(self, call: Call, op: str, problem: Any, bias_per_phase: bool, out: Any):
        h = call.handles
        _C.tiled_conv(problem, h[0], h[1], h[2] if len(h) > 2 else None, bias_per_phase, out)
