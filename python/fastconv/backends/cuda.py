"""The CUDA backend: arrays on a CUDA device run fastconv._cuda's kernels.

Operands are torch CUDA tensors, CuPy arrays, or anything exposing `__cuda_array_interface__`
or a CUDA DLPack device (wrapped as torch tensors, or CuPy arrays when torch is missing). The
kernels see device pointers and run on the library's current stream (torch's
`torch.cuda.current_stream(device)`, CuPy's current stream), so they order with the caller's
own work without any synchronisation; outputs and the kernels' workspaces are allocated by that
library on that device (PyTorch's caching allocator, CuPy's memory pool), never by the kernels.
The geometry comes from the problem (csrc/common/problem.cc): a transposed conv arrives here as
the conv pass that runs it (problem.conv_pass, problem.swap_operands, problem.conv_geometry).
torch and CuPy are optional: each is imported where a call needs it (the caller's arrays come
from it, so it is loaded already).
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from .base import Backend, Call
from .cuda_plan import (
    ConvPlan,
    in_place_order,
    kernel_math,
    result_channels_last,
    stored_channels_last,
)

# Algorithms with CUDA kernels, per op, in the order `auto` considers them. implicit_gemm uses
# tensor cores for float16/bfloat16 (and TF32 for float32 when allowed); implicit_gemm_simt is
# the same kernel with exact SIMT math for every dtype.
_CONV_ALGORITHMS = ("implicit_gemm", "implicit_gemm_simt", "depthwise")
GPU_ALGORITHMS = {
    "conv": _CONV_ALGORITHMS,
    "conv_transpose": _CONV_ALGORITHMS,
    "max_pool": ("direct",),
    "avg_pool": ("direct",),
    "lp_pool": ("direct",),
}
_ITEMSIZE = {"float64": 8, "int64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "uint8": 1}


@functools.lru_cache(maxsize=1)
def cuda_module() -> Any:
    """fastconv._cuda, or None when this build has none (the one optional import)."""
    try:
        from .. import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


@functools.lru_cache(maxsize=1)
def devices() -> tuple[list[dict], str]:
    mod = cuda_module()
    if mod is None:
        return [], ""
    found, error = mod.devices()
    return list(found), str(error)


def _is_torch(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "data_ptr")


def _is_cupy(obj: Any) -> bool:
    return type(obj).__module__.startswith("cupy")


def _wrap_foreign(obj: Any, device: int) -> Any:
    """Arrays of other producers (Numba, JAX, ...) without a copy, on their own device."""
    try:
        import torch
    except ImportError:
        import cupy

        if hasattr(obj, "__cuda_array_interface__"):
            return cupy.asarray(obj)
        return cupy.from_dlpack(obj)
    if hasattr(obj, "__cuda_array_interface__"):
        return torch.as_tensor(obj, device="cuda" if device < 0 else f"cuda:{device}")
    return torch.from_dlpack(obj)


def _operand(
    obj: Any, name: str, index_array: bool = False, keep_channels_last: bool = False
) -> tuple[Any, str, int, tuple, str, bool, bool]:
    """(device array, library, pointer, shape, dtype, kept channels_last, stored
    channels_last) of one argument: a contiguous array, or with keep_channels_last a
    channels_last tensor as it is."""
    if _is_torch(obj):
        import torch

        t = obj.detach()
        if index_array:
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
            t = t.to(torch.int64)
        else:
            if t.is_complex() or not t.is_floating_point():
                raise TypeError(
                    f"{name} must be a float32, float64, float16 or bfloat16 tensor, got {t.dtype}"
                )
            t = t.resolve_conj().resolve_neg()
        stored = keep_channels_last and not index_array and stored_channels_last(t)
        keep = stored  # run_conv copies it where its kernel cannot read it in place
        if not keep:
            t = t.contiguous()
        return t, "torch", int(t.data_ptr()), tuple(t.shape), str(t.dtype)[6:], keep, stored
    import cupy

    a = obj
    if index_array:
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
        a = a.astype(np.int64, copy=False)
    elif a.dtype.kind != "f":
        raise TypeError(f"{name} must be a float32, float64 or float16 array, got {a.dtype}")
    a = cupy.ascontiguousarray(a)
    return a, "cupy", int(a.data.ptr), tuple(a.shape), a.dtype.name, False, False


def _library() -> str:
    """The array library whose TF32 setting a call on shapes follows (explain())."""
    return "torch" if "torch" in sys.modules else ""


def _current_device() -> int:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return int(torch.cuda.current_device())
    cupy = sys.modules.get("cupy")
    return int(cupy.cuda.Device().id) if cupy is not None else 0


class CudaBackend(Backend):
    device = "cuda"
    reads_channels_last = True  # prepare() takes channels_last=True (conv calls)
    dtypes = ("float32", "float64", "float16", "bfloat16")

    def __init__(self) -> None:
        self._pool_workspaces: dict[tuple, int] = {}  # (kind, dtype, geometry) -> bytes

    # The compiled module and the devices it sees (tests serve an emulated module instead).
    def module(self) -> Any:
        return cuda_module()

    def devices(self) -> tuple[list[dict], str]:
        return devices()

    def unavailable_reason(self) -> str:
        if self.module() is None:
            return (
                "this fastconv build has no CUDA module (fastconv._cuda was not built: no CUDA "
                "compiler at build time, or FASTCONV_CUDA=OFF)"
            )
        found, error = self.devices()
        if not found:
            return f"no CUDA device is visible ({error or 'the driver reports none'})"
        if not any(tuple(d["capability"]) >= (8, 0) for d in found):
            names = ", ".join(
                f"{d['name']} (sm_{d['capability'][0]}{d['capability'][1]})" for d in found
            )
            return f"the kernels need compute capability 8.0 or newer, the visible GPUs are {names}"
        return ""

    def check_errors(self, synchronize: bool) -> None:
        mod = self.module()
        if mod is not None:  # only devices where max_unpool ran are looked at
            mod.check_errors(bool(synchronize))

    # ---- algorithms and plans

    def algorithms(self, op: str) -> list[str]:
        reason = self.unavailable_reason()
        if reason:
            raise ValueError(f"device 'cuda' is not available: {reason}")
        return list(GPU_ALGORITHMS[op])

    def conv_unsupported_reason(self, problem: Any, algo: str, forced: bool = False) -> str:
        conv_w = problem.conv_geometry[1]
        if algo == "depthwise" and conv_w[1] != 1:
            return (
                "it needs one input channel per group (w.shape[1] == 1), got w shape "
                f"{tuple(problem.w_shape)}"
            )
        return ""

    def conv_plan(self, problem: Any, algo: str) -> Any:
        return ConvPlan(algo)  # the kernels plan inside their launchers; TF32 is decided per call

    def plan_details(self, problem: Any, algo: str) -> tuple[int, str]:
        if self.unavailable_reason():
            return 0, ""
        device, dtype, mod = _current_device(), str(problem.dtype), self.module()
        library = _library()
        nbytes = ConvPlan(algo).workspace(mod, problem, dtype, device, library)
        name, math_ = kernel_math(algo, dtype, library)
        geometry = problem.conv_geometry
        kernel = mod.conv_tensor_op_kernel(problem.conv_pass, name, math_, dtype, device, *geometry)
        if kernel:
            return nbytes, (
                f"tensor-op path: {kernel} over the operands moved to channels-last order in "
                f"{nbytes} bytes of workspace on cuda:{device} from the caller's allocator "
                "(PyTorch's caching allocator / CuPy's pool)"
            )
        note = (
            f"{nbytes} bytes of workspace on cuda:{device} from the caller's allocator "
            "(PyTorch's caching allocator / CuPy's pool) for the split reduction"
            if nbytes
            else ""
        )
        return nbytes, note

    def _in_place(self, problem: Any, algo: str, stored: tuple) -> tuple:
        """in_place_order for explain(): a call of `algo` with these operands stored
        channels_last (public order), its workspace had."""
        if self.unavailable_reason():
            return (False, False), False
        wanted = result_channels_last(problem.pass_, stored, str(problem.dtype))
        dtype, mod = str(problem.dtype), self.module()
        return in_place_order(ConvPlan(algo), mod, problem, dtype, _library(), stored, wanted)

    def reads_in_place(self, problem: Any, algo: str, channels_last: tuple) -> tuple:
        if not any(channels_last):
            return (False, False)
        return self._in_place(problem, algo, channels_last)[0]

    def result_note(self, problem: Any, algo: str, pass_: str, stored: tuple) -> str:
        if not result_channels_last(pass_, stored, str(problem.dtype)):
            return super().result_note(problem, algo, pass_, stored)
        if self._in_place(problem, algo, stored)[1]:
            kernel = (
                "depthwise's channels-last kernels"
                if algo == "depthwise"
                else ("the GPU's tensor-op path")
            )
            return f"the result is channels_last, written so by {kernel}"
        nbytes = math.prod(problem.result_shape) * _ITEMSIZE[str(problem.dtype)]
        return (
            "the result is channels_last (as PyTorch's): the kernel's channel-first result is "
            f"copied into it ({nbytes} bytes read and written)"
        )

    # ---- operands and outputs

    def prepare(
        self,
        names: Sequence[str],
        values: Sequence[Any],
        device: int,
        index: Any = None,
        channels_last: bool = False,
    ) -> Call:
        for name, v in zip(names, values):
            if v is None and name != "bias":
                raise TypeError(f"{name} must be an array or a tensor, got None")
        items = [(n, v) for n, v in zip(names, values)]
        converted = {
            n: _operand(
                v if _is_torch(v) or _is_cupy(v) else _wrap_foreign(v, device),
                n,
                keep_channels_last=channels_last and n != "bias",
            )
            for n, v in items
            if v is not None
        }
        if index is not None:
            idx = index[1]
            idx = idx if _is_torch(idx) or _is_cupy(idx) else _wrap_foreign(idx, device)
            converted[index[0]] = _operand(idx, index[0], index_array=True)
        first_name, first = next(iter(converted.items()))
        for name, op in converted.items():
            if name != "indices" and op[4] != first[4]:
                raise TypeError(
                    f"{first_name} and {name} must have the same dtype, got {first[4]} and {op[4]}"
                )
        dtype, library = first[4], first[1]
        if dtype not in self.dtypes:
            raise TypeError(
                f"{first_name} must have dtype float32, float64, float16 or bfloat16 on the GPU, "
                f"got {dtype}"
            )
        if device < 0:  # arrays known only by pointer: ask their library
            obj = first[0]
            device = int(obj.device.index or 0) if library == "torch" else int(obj.device.id)
        order = [n for n in names] + ([index[0]] if index is not None else [])
        shapes = tuple(converted[n][3] if n in converted else None for n in order)
        handles = tuple(converted[n][2] if n in converted else 0 for n in order)
        keep = [converted[n][0] for n in converted]
        layouts = tuple(
            converted[n][0] if n in converted and converted[n][5] else None for n in order
        )
        stored = tuple(n in converted and converted[n][6] for n in order)
        return Call(
            self, library, dtype, device, tuple(names), shapes, handles, keep,
            layouts if any(t is not None for t in layouts) else None,
            stored if any(stored) else (),
        )  # fmt: skip

    def check_allocation(self, call: Call, shape: Sequence[int], dtype: Optional[str]) -> None:
        dtype = dtype or call.dtype
        nbytes = _ITEMSIZE[dtype] * math.prod(int(s) for s in shape)
        found, _ = self.devices()
        total = next((d["total_memory"] for d in found if d["index"] == call.device), None)
        if total is not None and nbytes > total:
            raise MemoryError(
                f"fastconv: output of shape {tuple(shape)} ({dtype}) needs "
                f"{nbytes / 2**30:.1f} GiB, more than cuda:{call.device} has "
                f"({total / 2**30:.1f} GiB)"
            )

    def empty(
        self,
        call: Call,
        shape: Sequence[int],
        dtype: Optional[str] = None,
        channels_last: bool = False,
    ) -> tuple:
        """channels_last: a 4-D torch tensor stored channels_last (conv_result's)."""
        dtype = dtype or call.dtype
        shape = tuple(int(s) for s in shape)
        try:
            if call.library == "torch":
                import torch

                fmt = torch.channels_last if channels_last else torch.contiguous_format
                t = torch.empty(
                    shape, dtype=getattr(torch, dtype), device=f"cuda:{call.device}",
                    memory_format=fmt,
                )  # fmt: skip
                return t, int(t.data_ptr())
            import cupy

            with cupy.cuda.Device(call.device):
                a = cupy.empty(shape, dtype=dtype)
            return a, int(a.data.ptr)
        except Exception as e:  # noqa: BLE001 -- the libraries' out-of-memory errors differ
            if "out of memory" in str(e).lower() or "OutOfMemory" in type(e).__name__:
                raise MemoryError(f"fastconv: cannot allocate {shape} ({dtype}) on the GPU: {e}")
            raise

    def workspace(self, call: Call, nbytes: int, optional: bool = False) -> tuple[Any, int, int]:
        """(buffer object, pointer, bytes) of `nbytes` of scratch memory from the call's own
        library, so the memory is the caller's (its cache, its limits, its stream order). An
        optional workspace (a split reduction) that cannot be had runs the kernel without it:
        slower, with a warning, never an error."""
        if nbytes <= 0:
            return None, 0, 0
        try:
            obj, ptr = self.empty(call, (nbytes,), "uint8")
        except MemoryError as e:
            if not optional:
                raise
            warnings.warn(
                f"fastconv: no memory for a {nbytes}-byte GPU workspace ({e}); running the "
                "pass without it (no split reduction, no tensor-op path: slower)",
                ResourceWarning,
                stacklevel=4,
            )
            return None, 0, 0
        return obj, ptr, nbytes

    def stream(self, call: Call) -> int:
        if call.library == "torch":
            import torch

            return int(torch.cuda.current_stream(call.device).cuda_stream)
        import cupy

        with cupy.cuda.Device(call.device):
            return int(cupy.cuda.get_current_stream().ptr)

    # ---- runs

    def conv_result(
        self, call: Call, problem: Any, plan: Any, pass_: str, shape: Sequence[int]
    ) -> Any:
        stored = call.stored_channels_last
        if call.library != "torch" or not result_channels_last(pass_, stored, call.dtype):
            return super().conv_result(call, problem, plan, pass_, shape)
        out, handle = self.empty(call, shape, channels_last=True)
        self.run_conv(call, problem, plan, handle, result=out)
        return out

    def run_conv(self, call: Call, problem: Any, plan: Any, out: Any, result: Any = None) -> None:
        """result: the channels_last tensor `out` points into (conv_result), written in place
        by a kernel that can, else filled from a channel-first result (one copy)."""
        name, math_ = kernel_math(plan.algo, call.dtype, call.library)
        h = list(call.handles)
        mod = self.module()
        requested = plan.workspace(mod, problem, call.dtype, call.device, call.library)
        keep, ws, nbytes = self.workspace(call, requested, optional=True)
        layouts = call.layouts or (None,) * len(h)
        tensor_op = name == "implicit_gemm"
        # channels_last operands (public order) the kernel may read in place: the tensor-op
        # path's cp.async loads need them 16-byte aligned (others are copied below)
        stored = tuple(
            t is not None and (not tensor_op or int(t.data_ptr()) % 16 == 0) for t in layouts[:2]
        )
        kept, writes = (False, False), False  # read / written channels-last in place
        # the tensor-op path needs its workspace (the operands' moves); depthwise's
        # channels-last kernels run without theirs (an unsplit weight gradient)
        if (any(stored) or result is not None) and (ws or not requested or not tensor_op):
            kept, writes = in_place_order(
                plan, mod, problem, call.dtype, call.library, stored, result is not None
            )
        staged = None  # the kernel's channel-first result, copied into `result` after it
        if result is not None and not writes:
            staged, out = self.empty(call, tuple(result.shape))
        flags = kept[::-1] if problem.swap_operands else kept  # the module's (a, b)
        # channels_last operands the kernel does not read in place: copied here, as prepare()
        # copies every other layout (explain() says which)
        copies = []
        for i, t in enumerate(layouts[:2]):
            if t is not None and not kept[i]:
                copies.append(t.contiguous())
                h[i] = int(copies[-1].data_ptr())
        a, b = (h[1], h[0]) if problem.swap_operands else (h[0], h[1])
        bias = h[2] if len(h) > 2 else 0
        mod.conv(
            problem.conv_pass,
            name,
            math_,
            call.dtype,
            call.device,
            self.stream(call),
            *problem.conv_geometry,
            a,
            b,
            bias or 0,
            out,
            ws,
            nbytes,
            *flags,
            writes,
        )
        if staged is not None:
            result.copy_(staged)  # on the call's stream, after the kernel
        del keep  # back to the caller's allocator, ordered after the kernel on its stream

    def run_conv_backward_bias(self, call: Call, out: Any) -> None:
        self.module().conv_backward_bias(
            call.dtype, call.device, self.stream(call), list(call.shapes[0]), call.handles[0], out
        )

    def run_pool(self, call: Call, problem: Any, a: Any, b: Any, indices: Any, out: Any) -> None:
        mod, stream = self.module(), self.stream(call)
        if problem.kind == "max_unpool":
            x_shape, y_shape = problem.x_shape, problem.y_shape
            out_count = math.prod(y_shape[2:])
            keep, ws, nbytes = self.workspace(
                call, mod.max_unpool_workspace(problem.planes, out_count)
            )
            mod.max_unpool(
                call.dtype,
                call.device,
                stream,
                problem.planes,
                math.prod(x_shape[2:]),
                out_count,
                a,
                indices,
                out,
                ws,
                nbytes,
            )
            return
        geometry = problem.pool_geometry
        keep, ws, nbytes = None, 0, 0
        if problem.pass_ == "backward":
            key = (problem.kind, call.dtype, geometry)
            nbytes = self._pool_workspaces.get(key)
            if nbytes is None:  # asked once per geometry: the answer is a product of sizes
                nbytes = int(mod.pool_workspace(problem.kind, problem.pass_, call.dtype, *geometry))
                if len(self._pool_workspaces) >= 256:
                    self._pool_workspaces.clear()
                self._pool_workspaces[key] = nbytes
            keep, ws, nbytes = self.workspace(call, nbytes)
        # The GPU max-pool backward recomputes each window's argmax from x; saved indices
        # (shape-checked) name the same positions.
        mod.pool(
            problem.kind,
            problem.pass_,
            call.dtype,
            call.device,
            stream,
            *geometry,
            problem.count_include_pad,
            float(problem.p),
            a,
            b or 0,
            indices or 0,
            out,
            ws,
            nbytes,
        )
        del keep
