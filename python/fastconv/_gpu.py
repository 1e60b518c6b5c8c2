"""GPU routing: calls whose arrays live on a CUDA device run fastconv._cuda's kernels.

`routes` wraps the public functions of `functional`: when any array argument is on a CUDA
device (a PyTorch CUDA tensor, a CuPy array, anything exposing `__cuda_array_interface__` or a
CUDA DLPack device), the call runs the function of the same name here instead. Arguments are
normalised by the same helpers as on the CPU and shapes are validated by the same compiled
geometry; the kernels see device pointers only. Outputs are allocated by the input's own
library on the input's device, and kernels run on that library's current stream (torch's
`torch.cuda.current_stream(device)`, CuPy's current stream), so they order correctly with the
caller's own work without any synchronisation. Arrays from other producers are wrapped as
torch tensors (or CuPy arrays when torch is missing) and the result has that library's kind.

Errors are raised before any launch: a CPU array mixed with GPU arrays, or arrays on two GPUs,
is a ValueError naming both; a dtype the kernels lack is a TypeError.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import _C
from ._arguments import check_groups, check_mode, full_shape, lp_norm, spatial_rank

GPU_DTYPES = ("float32", "float64", "float16", "bfloat16")

# Algorithms with CUDA kernels, per op; the first applicable one is what "auto" runs.
# implicit_gemm uses tensor cores for float16/bfloat16 (and TF32 for float32 when allowed);
# implicit_gemm_simt is the same kernel with exact SIMT math for every dtype.
_CONV_ALGORITHMS = ("implicit_gemm", "implicit_gemm_simt", "depthwise")
GPU_ALGORITHMS = {
    "conv": _CONV_ALGORITHMS,
    "conv_transpose": _CONV_ALGORITHMS,
    "max_pool": ("direct",),
    "avg_pool": ("direct",),
    "lp_pool": ("direct",),
}

_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED = 1, 2, 3, 13

# ---- the compiled module and the devices it sees


@functools.lru_cache(maxsize=1)
def _cuda_module() -> Any:
    try:
        from . import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


@functools.lru_cache(maxsize=1)
def _devices() -> tuple[list[dict], str]:
    mod = _cuda_module()
    if mod is None:
        return [], ""
    devices, error = mod.devices()
    return list(devices), str(error)


def unavailable_reason() -> str:
    """Why this process cannot run fastconv's CUDA kernels ("" when it can)."""
    if _cuda_module() is None:
        return (
            "this fastconv build has no CUDA module (fastconv._cuda was not built: no CUDA "
            "compiler at build time, or FASTCONV_CUDA=OFF)"
        )
    devices, error = _devices()
    if not devices:
        return f"no CUDA device is visible ({error or 'the driver reports none'})"
    if not any(tuple(d["capability"]) >= (8, 0) for d in devices):
        names = ", ".join(
            f"{d['name']} (sm_{d['capability'][0]}{d['capability'][1]})" for d in devices
        )
        return f"the kernels need compute capability 8.0 or newer, the visible GPUs are {names}"
    return ""


def algorithms(op: str) -> list[str]:
    """Algorithms with CUDA kernels for `op`; ValueError saying why when none can run here."""
    reason = unavailable_reason()
    if reason:
        raise ValueError(f"device 'cuda' is not available: {reason}")
    return list(GPU_ALGORITHMS[op])


# ---- TF32

_allow_tf32: Optional[bool] = None


def set_allow_tf32(allow: Optional[bool]) -> None:
    """Lets float32 convolutions use TF32 tensor cores (about 10 mantissa bits per product).

    False (exact FP32 SIMT) unless allowed: True or False decides for every call; None (the
    default) follows `torch.backends.cuda.matmul.allow_tf32` for torch tensors and stays exact
    for other arrays."""
    global _allow_tf32
    if allow is not None and not isinstance(allow, (bool, np.bool_)):
        raise TypeError(f"allow must be a bool or None, got {type(allow).__name__}")
    _allow_tf32 = None if allow is None else bool(allow)


def get_allow_tf32(library: str = "torch") -> bool:
    if _allow_tf32 is not None:
        return _allow_tf32
    if library == "torch":
        import torch

        return bool(torch.backends.cuda.matmul.allow_tf32)
    return False


# ---- where an argument lives


def _is_torch(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("torch") and type(obj).__name__ in ("Tensor", "Parameter")


def _is_cupy(obj: Any) -> bool:
    return type(obj).__module__.startswith("cupy")


def array_device(obj: Any) -> Optional[tuple[str, int]]:
    """("cuda", index) for an array on a CUDA device (index -1 when unknown), ("cpu", 0) or
    (other device, index) for other arrays, None for objects that are not arrays."""
    if obj is None or isinstance(obj, (np.ndarray, np.generic)):
        return None if obj is None else ("cpu", 0)
    if _is_torch(obj):
        dev = obj.device
        index = 0 if dev.index is None else int(dev.index)
        return ("cuda", index) if dev.type == "cuda" else (str(dev.type), index)
    if hasattr(obj, "__cuda_array_interface__"):
        dev = getattr(obj, "device", None)
        index = getattr(dev, "id", None)  # CuPy
        if index is None:
            mod = _cuda_module()
            ptr = obj.__cuda_array_interface__.get("data", (0,))[0]
            index = mod.pointer_device(int(ptr)) if mod is not None and ptr else -1
        return ("cuda", int(index))
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if callable(dlpack_device) and not isinstance(obj, type):
        try:
            kind, index = dlpack_device()
        except Exception:  # noqa: BLE001 -- not a usable DLPack producer: let the CPU path judge
            return ("cpu", 0)
        if int(kind) in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
            return ("cuda", int(index))
        if int(kind) in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
            return ("cpu", 0)
        return (f"DLPack device type {int(kind)}", int(index))
    if isinstance(obj, (list, tuple)) or np.isscalar(obj):
        return ("cpu", 0)
    return None


def _on_cuda(obj: Any) -> bool:
    if type(obj) is np.ndarray or isinstance(obj, (int, float, str, bool, tuple, list)):
        return False  # the common CPU case stays cheap
    dev = array_device(obj)
    return dev is not None and dev[0] == "cuda"


def routes(fn: Callable) -> Callable:
    """Decorator for `functional`'s public functions: GPU arrays go to this module's twin."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(_on_cuda(a) for a in args) or any(_on_cuda(v) for v in kwargs.values()):
            return _TWINS[name](*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


def _where(dev: Optional[tuple[str, int]]) -> str:
    if dev is None or dev[0] == "cpu":
        return "the CPU"
    if dev[0] == "cuda":
        return "cuda" if dev[1] < 0 else f"cuda:{dev[1]}"
    return f"{dev[0]}:{dev[1]}"


def check_devices(named: dict[str, Any]) -> int:
    """The one CUDA device all named arrays are on; ValueError naming the arguments otherwise.
    Runs before anything touches the GPU (so it is testable without one)."""
    devs = {name: array_device(obj) for name, obj in named.items() if obj is not None}
    gpu = [n for n, d in devs.items() if d is not None and d[0] == "cuda"]
    other = [n for n in devs if n not in gpu]
    if not gpu:
        raise ValueError("no argument is on a CUDA device")  # routes() never lets this happen
    if other:
        g, o = gpu[0], other[0]
        raise ValueError(
            f"{g} is on {_where(devs[g])} but {o} is on {_where(devs[o])}; all arrays of one "
            "call must be on the same device (move them with .to(device) / .cuda() / .cpu())"
        )
    known = {n: devs[n][1] for n in gpu if devs[n][1] >= 0}
    indices = sorted(set(known.values()))
    if len(indices) > 1:
        listing = ", ".join(f"{n} on cuda:{i}" for n, i in known.items())
        raise ValueError(f"arrays of one call must be on one CUDA device, got {listing}")
    return indices[0] if indices else -1


# ---- operands


@dataclass
class _Operand:
    obj: Any  # C-contiguous array in its library
    library: str  # "torch" or "cupy"
    ptr: int
    shape: tuple[int, ...]
    dtype: str


def _torch_dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def _operand(obj: Any, name: str, device: int, index_array: bool = False) -> _Operand:
    """A contiguous device view of `obj` (one copy by its library when it is strided)."""
    if not _is_torch(obj) and not _is_cupy(obj):
        try:  # other producers (Numba, JAX, ...): wrap without copying, on their own device
            import torch

            if hasattr(obj, "__cuda_array_interface__"):
                obj = torch.as_tensor(obj, device="cuda" if device < 0 else f"cuda:{device}")
            else:
                obj = torch.from_dlpack(obj)
        except ImportError:
            import cupy

            obj = (
                cupy.asarray(obj)
                if hasattr(obj, "__cuda_array_interface__")
                else (cupy.from_dlpack(obj))
            )
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
        t = t.contiguous()
        return _Operand(t, "torch", int(t.data_ptr()), tuple(t.shape), _torch_dtype_name(t))
    import cupy

    a = obj
    if index_array:
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
        a = a.astype(np.int64, copy=False)
    elif a.dtype.kind != "f":
        raise TypeError(f"{name} must be a float32, float64 or float16 array, got {a.dtype}")
    a = cupy.ascontiguousarray(a)
    return _Operand(a, "cupy", int(a.data.ptr), tuple(a.shape), a.dtype.name)


@dataclass
class _Call:
    """One GPU call: operands, result library, device, dtype and stream."""

    ops: dict[str, _Operand]
    library: str
    device: int
    dtype: str

    def __getitem__(self, name: str) -> _Operand:
        return self.ops[name]

    def ptr(self, name: str) -> int:
        return self.ops[name].ptr if name in self.ops else 0

    @property
    def module(self) -> Any:
        return _cuda_module()

    def stream(self) -> int:
        if self.library == "torch":
            import torch

            return int(torch.cuda.current_stream(self.device).cuda_stream)
        import cupy

        with cupy.cuda.Device(self.device):
            return int(cupy.cuda.get_current_stream().ptr)

    def empty(self, shape: Sequence[int], dtype: Optional[str] = None) -> _Operand:
        """An output on this call's device, allocated by the inputs' library."""
        dtype = dtype or self.dtype
        shape = tuple(int(s) for s in shape)
        itemsize = 8 if dtype in ("float64", "int64") else 4 if dtype == "float32" else 2
        nbytes = itemsize * math.prod(shape)
        devices, _ = _devices()
        total = next((d["total_memory"] for d in devices if d["index"] == self.device), None)
        if total is not None and nbytes > total:
            raise MemoryError(
                f"fastconv: output of shape {shape} ({dtype}) needs {nbytes / 2**30:.1f} GiB, "
                f"more than cuda:{self.device} has ({total / 2**30:.1f} GiB)"
            )
        try:
            if self.library == "torch":
                import torch

                obj = torch.empty(shape, dtype=getattr(torch, dtype), device=f"cuda:{self.device}")
                ptr = obj.data_ptr()
            else:
                import cupy

                with cupy.cuda.Device(self.device):
                    obj = cupy.empty(shape, dtype=dtype)
                ptr = obj.data.ptr
        except Exception as e:  # noqa: BLE001 -- the libraries' out-of-memory errors differ
            if "out of memory" in str(e).lower() or "OutOfMemory" in type(e).__name__:
                raise MemoryError(f"fastconv: cannot allocate {shape} ({dtype}) on the GPU: {e}")
            raise
        return _Operand(obj, self.library, int(ptr), shape, dtype)


def _prepare(indices: Any = None, **named: Any) -> _Call:
    """Checks devices, converts the named float arrays (None skipped) and optional int64
    indices, and checks that the float arrays share a dtype the kernels support."""
    for name, obj in named.items():
        if obj is None and name != "bias":
            raise TypeError(f"{name} must be an array or a tensor, got None")
    on = {n: o for n, o in named.items() if o is not None}
    device = check_devices(dict(on, **({} if indices is None else {"indices": indices})))
    reason = unavailable_reason()
    if reason:
        first = next(iter(on))
        raise ValueError(f"{first} is on a CUDA device, but {reason}")
    ops = {name: _operand(obj, name, device) for name, obj in on.items()}
    if indices is not None:
        ops["indices"] = _operand(indices, "indices", device, index_array=True)
    first_name, first = next(iter(ops.items()))
    for name, op in ops.items():
        if name != "indices" and op.dtype != first.dtype:
            raise TypeError(
                f"{first_name} and {name} must have the same dtype, got {first.dtype} and "
                f"{op.dtype}"
            )
    if first.dtype not in GPU_DTYPES:
        raise TypeError(
            f"{first_name} must have dtype float32, float64, float16 or bfloat16 on the GPU, "
            f"got {first.dtype}"
        )
    if device < 0:  # arrays known only by pointer and no attribute: ask the library
        device = _device_of_library(first)
    return _Call(ops, first.library, device, first.dtype)


def _device_of_library(op: _Operand) -> int:
    if op.library == "torch":
        return int(op.obj.device.index or 0)
    return int(op.obj.device.id)


def _expect_shape(name: str, got: Sequence[int], want: Sequence[int]) -> None:
    if tuple(got) != tuple(int(s) for s in want):
        raise ValueError(f"{name} must have shape {tuple(int(s) for s in want)}, got {tuple(got)}")


# ---- algorithm choice


def select_conv(op: str, pass_: str, w_shape: Sequence[int], algo: Any) -> str:
    """The CUDA algorithm for one conv pass. Depthwise needs one input channel per group of
    the convolution that runs: w.shape[1] == 1 for conv and transposed conv alike."""
    if not isinstance(algo, str):
        raise TypeError(f"algo must be a string, got {type(algo).__name__}")
    depthwise_ok = int(w_shape[1]) == 1
    if algo == "auto":
        return "depthwise" if depthwise_ok else "implicit_gemm"
    if algo not in _CONV_ALGORITHMS:
        from .selection import KNOWN_ALGORITHMS

        if algo in KNOWN_ALGORITHMS:
            raise NotImplementedError(
                f"algorithm '{algo}' has no CUDA kernel in fastconv (available on cuda: "
                f"{', '.join(_CONV_ALGORITHMS)})"
            )
        raise ValueError(f"algo must be 'auto' or one of {_CONV_ALGORITHMS} on cuda, got {algo!r}")
    if algo == "depthwise" and not depthwise_ok:
        raise NotImplementedError(
            f"algo='depthwise' cannot run this {op} {pass_}: it needs one input channel per "
            f"group (w.shape[1] == 1), got w shape {tuple(w_shape)}"
        )
    return algo


def _kernel_args(call: _Call, algo: str) -> tuple[str, str]:
    """(algo, math) for the compiled module."""
    if algo == "implicit_gemm_simt":
        return "implicit_gemm", "simt"
    if algo == "implicit_gemm":
        tensor_cores = call.dtype in ("float16", "bfloat16") or (
            call.dtype == "float32" and get_allow_tf32(call.library)
        )
        return algo, "tensor_core" if tensor_cores else "simt"
    return algo, "simt"


def _functional() -> Any:
    from . import functional  # functional imports this module: import late

    return functional


# ---- convolution


def _run_conv(
    call: _Call,
    pass_: str,
    algo: str,
    x_shape,
    w_shape,
    win,
    groups,
    mode,
    a,
    b,
    out,
    bias: str = "",
) -> None:
    name, math_ = _kernel_args(call, algo)
    call.module.conv(
        pass_,
        name,
        math_,
        call.dtype,
        call.device,
        call.stream(),
        list(x_shape),
        list(w_shape),
        win.stride,
        win.pad_lo,
        win.pad_hi,
        win.dilation,
        groups,
        mode == "conv",
        call.ptr(a),
        call.ptr(b),
        call.ptr(bias),
        out.ptr,
    )


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, mode="cross", algo="auto"):
    F = _functional()
    call = _prepare(x=x, w=w, bias=bias)
    xs, ws = call["x"].shape, call["w"].shape
    F._weight_rank(ws)
    F._same_rank(xs, ws, "x")
    groups, mode = check_groups(groups), check_mode(mode)
    win = F._conv_window(xs, ws, stride, padding, dilation)
    y_shape = _C.conv_output_shape(list(xs), list(ws), *win.args(), win.dilation, groups)
    F._check_bias(call.ops, ws[0])
    name = select_conv("conv", "forward", ws, algo)
    out = call.empty(y_shape)
    _run_conv(call, "forward", name, xs, ws, win, groups, mode, "x", "w", out, "bias")
    return out.obj


def conv_backward_data(
    grad_y, w, x_shape, *, stride=1, padding=0, dilation=1, groups=1, mode="cross", algo="auto"
):
    F = _functional()
    call = _prepare(grad_y=grad_y, w=w)
    gs, ws = call["grad_y"].shape, call["w"].shape
    F._weight_rank(ws)
    x_shape = full_shape(x_shape, "x_shape", len(ws))
    F._same_rank(gs, ws, "grad_y")
    groups, mode = check_groups(groups), check_mode(mode)
    win = F._conv_window(x_shape, ws, stride, padding, dilation)
    y_shape = _C.conv_output_shape(x_shape, list(ws), *win.args(), win.dilation, groups)
    _expect_shape("grad_y", gs, y_shape)
    name = select_conv("conv", "backward_data", ws, algo)
    out = call.empty(x_shape)
    _run_conv(call, "backward_data", name, x_shape, ws, win, groups, mode, "grad_y", "w", out)
    return out.obj


def conv_backward_weight(
    x, grad_y, w_shape, *, stride=1, padding=0, dilation=1, groups=1, mode="cross", algo="auto"
):
    F = _functional()
    call = _prepare(x=x, grad_y=grad_y)
    xs, gs = call["x"].shape, call["grad_y"].shape
    ndim = len(w_shape) if isinstance(w_shape, (tuple, list)) else 0
    w_shape = full_shape(w_shape, "w_shape", ndim)
    F._weight_rank(w_shape, "w_shape")
    F._same_rank(xs, w_shape, "x", "w_shape")
    F._same_rank(gs, w_shape, "grad_y", "w_shape")
    groups, mode = check_groups(groups), check_mode(mode)
    win = F._conv_window(xs, w_shape, stride, padding, dilation)
    y_shape = _C.conv_output_shape(list(xs), w_shape, *win.args(), win.dilation, groups)
    _expect_shape("grad_y", gs, y_shape)
    name = select_conv("conv", "backward_weight", w_shape, algo)
    out = call.empty(w_shape)
    _run_conv(call, "backward_weight", name, xs, w_shape, win, groups, mode, "x", "grad_y", out)
    return out.obj


def conv_backward_bias(grad_y):
    call = _prepare(grad_y=grad_y)
    gs = call["grad_y"].shape
    spatial_rank(len(gs), "grad_y")
    out = call.empty((gs[1],))
    call.module.conv_backward_bias(
        call.dtype, call.device, call.stream(), list(gs), call.ptr("grad_y"), out.ptr
    )
    return out.obj


# ---- transposed convolution (the compiled module maps each pass to a conv pass)


def _run_transpose(call, pass_, algo, x_shape, ws, win, op_pad, groups, a, b, out, bias=""):
    name, math_ = _kernel_args(call, algo)
    call.module.conv_transpose(
        pass_,
        name,
        math_,
        call.dtype,
        call.device,
        call.stream(),
        list(x_shape),
        list(ws),
        win.stride,
        win.pad_lo,
        win.pad_hi,
        op_pad,
        win.dilation,
        groups,
        call.ptr(a),
        call.ptr(b),
        call.ptr(bias),
        out.ptr,
    )


def conv_transpose(
    x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1, algo="auto"
):
    F = _functional()
    call = _prepare(x=x, w=w, bias=bias)
    xs, ws = call["x"].shape, call["w"].shape
    F._weight_rank(ws)
    F._same_rank(xs, ws, "x")
    groups = check_groups(groups)
    win, op_pad = F._transpose_window(ws, stride, padding, output_padding, dilation)
    y_shape = _C.conv_transpose_output_shape(
        list(xs), list(ws), *win.args(), op_pad, win.dilation, groups
    )
    F._check_bias(call.ops, y_shape[1])
    name = select_conv("conv_transpose", "forward", ws, algo)
    out = call.empty(y_shape)
    _run_transpose(call, "forward", name, xs, ws, win, op_pad, groups, "x", "w", out, "bias")
    return out.obj


def conv_transpose_backward_data(
    grad_y, w, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1, algo="auto"
):
    F = _functional()
    call = _prepare(grad_y=grad_y, w=w)
    gs, ws = call["grad_y"].shape, call["w"].shape
    F._weight_rank(ws)
    F._same_rank(gs, ws, "grad_y")
    groups = check_groups(groups)
    win, op_pad = F._transpose_window(ws, stride, padding, output_padding, dilation)
    x_shape = _C.conv_transpose_input_shape(
        list(gs), list(ws), *win.args(), op_pad, win.dilation, groups
    )
    y_shape = _C.conv_transpose_output_shape(
        list(x_shape), list(ws), *win.args(), op_pad, win.dilation, groups
    )
    _expect_shape("grad_y", gs, y_shape)
    name = select_conv("conv_transpose", "backward_data", ws, algo)
    out = call.empty(x_shape)
    _run_transpose(
        call, "backward_data", name, x_shape, ws, win, op_pad, groups, "grad_y", "w", out
    )
    return out.obj


def conv_transpose_backward_weight(
    x, grad_y, w_shape, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1, algo="auto"
):
    F = _functional()
    call = _prepare(x=x, grad_y=grad_y)
    xs, gs = call["x"].shape, call["grad_y"].shape
    ndim = len(w_shape) if isinstance(w_shape, (tuple, list)) else 0
    w_shape = full_shape(w_shape, "w_shape", ndim)
    F._weight_rank(w_shape, "w_shape")
    F._same_rank(xs, w_shape, "x", "w_shape")
    F._same_rank(gs, w_shape, "grad_y", "w_shape")
    groups = check_groups(groups)
    win, op_pad = F._transpose_window(w_shape, stride, padding, output_padding, dilation)
    y_shape = _C.conv_transpose_output_shape(
        list(xs), w_shape, *win.args(), op_pad, win.dilation, groups
    )
    _expect_shape("grad_y", gs, y_shape)
    name = select_conv("conv_transpose", "backward_weight", w_shape, algo)
    out = call.empty(w_shape)
    _run_transpose(
        call, "backward_weight", name, xs, w_shape, win, op_pad, groups, "x", "grad_y", out
    )
    return out.obj


# ---- pooling


def _run_pool_forward(
    call, kind, xs, k, win, ceil_mode, count_include_pad=True, p=1.0, return_indices=False
):
    out_shape = _C.pool_output_shape(list(xs), k, *win.args(), win.dilation, ceil_mode)
    y = call.empty(out_shape)
    idx = call.empty(out_shape, "int64") if return_indices else None
    call.module.pool_forward(
        kind,
        call.dtype,
        call.device,
        call.stream(),
        list(xs),
        k,
        *win.args(),
        win.dilation,
        ceil_mode,
        count_include_pad,
        float(p),
        call.ptr("x"),
        y.ptr,
        idx.ptr if idx else 0,
    )
    return y, idx


def max_pool(
    x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    F = _functional()
    call = _prepare(x=x)
    xs = call["x"].shape
    k, win = F._pool_window(len(xs), kernel_size, stride, padding, dilation)
    ceil_mode = F._check_bool(ceil_mode, "ceil_mode")
    return_indices = F._check_bool(return_indices, "return_indices")
    y, idx = _run_pool_forward(call, "max", xs, k, win, ceil_mode, return_indices=return_indices)
    return (y.obj, idx.obj) if return_indices else y.obj


def avg_pool(x, kernel_size, *, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    F = _functional()
    call = _prepare(x=x)
    xs = call["x"].shape
    k, win = F._pool_window(len(xs), kernel_size, stride, padding, 1)
    ceil_mode = F._check_bool(ceil_mode, "ceil_mode")
    count_include_pad = F._check_bool(count_include_pad, "count_include_pad")
    return _run_pool_forward(call, "avg", xs, k, win, ceil_mode, count_include_pad)[0].obj


def lp_pool(x, p, kernel_size, *, stride=None, ceil_mode=False):
    F = _functional()
    p = lp_norm(p)
    call = _prepare(x=x)
    xs = call["x"].shape
    k, win = F._pool_window(len(xs), kernel_size, stride, 0, 1)
    ceil_mode = F._check_bool(ceil_mode, "ceil_mode")
    return _run_pool_forward(call, "lp", xs, k, win, ceil_mode, p=p)[0].obj


def _run_pool_backward(call, kind, x_shape, k, win, ceil_mode, count_include_pad=True, p=1.0):
    out_shape = _C.pool_output_shape(list(x_shape), k, *win.args(), win.dilation, ceil_mode)
    _expect_shape("grad_y", call["grad_y"].shape, out_shape)
    gx = call.empty(x_shape)
    call.module.pool_backward(
        kind,
        call.dtype,
        call.device,
        call.stream(),
        list(x_shape),
        k,
        *win.args(),
        win.dilation,
        ceil_mode,
        count_include_pad,
        float(p),
        call.ptr("grad_y"),
        call.ptr("x"),
        gx.ptr,
    )
    return gx.obj


def max_pool_backward(
    grad_y, x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False, indices=None
):
    # The GPU kernel gathers each input's gradient from the windows whose argmax it is, which
    # it recomputes from x; saved indices (checked for shape) give the same positions.
    F = _functional()
    call = _prepare(indices=indices, grad_y=grad_y, x=x)
    if indices is not None and call["indices"].shape != call["grad_y"].shape:
        raise ValueError(
            f"indices must have grad_y's shape {tuple(call['grad_y'].shape)}, "
            f"got {tuple(call['indices'].shape)}"
        )
    xs = call["x"].shape
    k, win = F._pool_window(len(xs), kernel_size, stride, padding, dilation)
    ceil_mode = F._check_bool(ceil_mode, "ceil_mode")
    return _run_pool_backward(call, "max", xs, k, win, ceil_mode)


def avg_pool_backward(
    grad_y, x_shape, kernel_size, *, stride=None, padding=0, ceil_mode=False, count_include_pad=True
):
    F = _functional()
    call = _prepare(grad_y=grad_y)
    x_shape = full_shape(x_shape, "x_shape", len(call["grad_y"].shape))
    k, win = F._pool_window(len(x_shape), kernel_size, stride, padding, 1, "x_shape")
    ceil_mode = F._check_bool(ceil_mode, "ceil_mode")
    count_include_pad = F._check_bool(count_include_pad, "count_include_pad")
    return _run_pool_backward(call, "avg", x_shape, k, win, ceil_mode, count_include_pad)


def lp_pool_backward(grad_y, x, p, kernel_size, *, stride=None, ceil_mode=False):
    F = _functional()
    p = lp_norm(p)
    call = _prepare(grad_y=grad_y, x=x)
    xs = call["x"].shape
    k, win = F._pool_window(len(xs), kernel_size, stride, 0, 1)
    ceil_mode = F._check_bool(ceil_mode, "ceil_mode")
    return _run_pool_backward(call, "lp", xs, k, win, ceil_mode, p=p)


def max_unpool(x, indices, kernel_size, *, stride=None, padding=0, output_size=None):
    F = _functional()
    call = _prepare(indices=indices, x=x)
    xs = call["x"].shape
    k, win = F._pool_window(len(xs), kernel_size, stride, padding, 1)
    if call["indices"].shape != xs:
        raise ValueError(f"indices must have x's shape {xs}, got {call['indices'].shape}")
    rank = len(k)
    if output_size is None:
        spatial = [
            _C.transposed_extent(i, kk, s, lo, hi, 1, 0)
            for i, kk, s, lo, hi in zip(xs[2:], k, win.stride, win.pad_lo, win.pad_hi)
        ]
    else:  # the same rules as functional.max_unpool
        size = list(output_size) if isinstance(output_size, (tuple, list)) else output_size
        if not isinstance(size, list) or len(size) not in (rank, rank + 2):
            raise ValueError(
                f"output_size must have {rank} (spatial) or {rank + 2} entries, got {output_size!r}"
            )
        from ._arguments import per_dim

        spatial = per_dim(size[-rank:], rank, "output_size")
        if len(size) == rank + 2 and list(size[:2]) != list(xs[:2]):
            raise ValueError(f"output_size {tuple(size)} disagrees with x's N and C {xs[:2]}")
    if any(s < 1 for s in spatial):
        raise ValueError(f"output_size must be positive, got {tuple(spatial)}")
    out_shape = full_shape([xs[0], xs[1], *spatial], "output_size", rank + 2)
    y = call.empty(out_shape)
    planes = xs[0] * xs[1]
    call.module.max_unpool(
        call.dtype,
        call.device,
        call.stream(),
        planes,
        math.prod(xs[2:]),
        math.prod(spatial),
        call.ptr("x"),
        call.ptr("indices"),
        y.ptr,
    )
    return y.obj


# Functions `routes` dispatches to, by the public name they serve.
_TWINS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        conv,
        conv_backward_data,
        conv_backward_weight,
        conv_backward_bias,
        conv_transpose,
        conv_transpose_backward_data,
        conv_transpose_backward_weight,
        max_pool,
        avg_pool,
        lp_pool,
        max_unpool,
        max_pool_backward,
        avg_pool_backward,
        lp_pool_backward,
    )
}
