"""What a CUDA conv plan runs and how: the kernel and its math for a selected algorithm (TF32
for float32 where allowed), its workspace per device, which channels_last operands its kernel
reads in place and whether it writes a channels_last result itself (implicit_gemm's tensor-op
path, cuda/tensor_op_conv.h; depthwise's channels-last kernels, cuda/depthwise.cu), and the
rule that decides a result's layout. The CUDA backend
(fastconv/backends/cuda.py) runs the plans; fastconv.torch's fake kernels ask the layout rule.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

# ---- TF32

_allow_tf32: Optional[bool] = None


def set_allow_tf32(allow: Optional[bool]) -> None:
    """Lets float32 convolutions on the GPU use TF32 tensor cores (about 10 mantissa bits per
    product) instead of exact FP32.

    True or False decides for every call; None (the default) does what PyTorch's own
    convolutions do for torch tensors: follow `torch.backends.cudnn.allow_tf32` (True unless
    changed), and stays exact FP32 for CuPy and other arrays."""
    global _allow_tf32
    if allow is not None and not isinstance(allow, (bool, np.bool_)):
        raise TypeError(f"allow must be a bool or None, got {type(allow).__name__}")
    _allow_tf32 = None if allow is None else bool(allow)


def get_allow_tf32(library: str = "torch") -> bool:
    if _allow_tf32 is not None:
        return _allow_tf32
    if library == "torch":
        import torch

        return _torch_conv_tf32(torch)
    return False


def _torch_conv_tf32(torch: Any) -> bool:
    """Whether PyTorch's own float32 convolutions may use TF32: the per-operator setting of
    the new API (torch.backends.cudnn.conv.fp32_precision, "none" deferring to cudnn's, then
    the global one), else the legacy torch.backends.cudnn.allow_tf32 (which raises once the
    two APIs are mixed)."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        for level in (conv, getattr(torch.backends.cudnn, "fp32_precision", "none"),
                      getattr(torch.backends, "fp32_precision", "none")):  # fmt: skip
            if level != "none":
                return level == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


def kernel_math(algo: str, dtype: str, library: str) -> tuple[str, str]:
    """(kernel algorithm, math) the compiled module takes for a selected algorithm."""
    if algo == "implicit_gemm_simt":
        return "implicit_gemm", "simt"
    if algo == "implicit_gemm":
        tensor_cores = dtype in ("float16", "bfloat16") or (
            dtype == "float32" and get_allow_tf32(library)
        )
        return algo, "tensor_core" if tensor_cores else "simt"
    return algo, "simt"


# ---- layouts


def stored_channels_last(t: Any) -> bool:
    """A 4-D torch tensor stored channels_last (and not also plain contiguous)."""
    import torch

    return (
        t.dim() == 4
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    )


def result_channels_last(pass_: str, stored: Sequence[bool], dtype: str) -> bool:
    """Whether a conv pass's result on the GPU is a channels_last torch tensor: a forward or
    backward data (public pass) whose two operands - (x, w), (grad_y, w) - include one stored
    channels_last (`stored`: per operand, a dense 4-D channels_last tensor, not also
    contiguous), not float64 - PyTorch's rule for its cuDNN convolutions. The weight gradient
    stays channel-first (fastconv.torch hands it to autograd in the parameter's own layout).
    The tensor-op path and depthwise's channels-last kernels write such a result in place;
    other kernels' channel-first results are copied into it."""
    return pass_ != "backward_weight" and dtype != "float64" and any(stored[:2])


# ---- plans


class ConvPlan:
    """The algorithm a cached problem runs and, per device, the workspace its kernels ask for
    (asked once: it depends on the device's multiprocessor count)."""

    __slots__ = ("algo", "_bytes", "_orders")

    def __init__(self, algo: str) -> None:
        self.algo = algo
        self._bytes: dict[tuple[int, str, str], int] = {}
        self._orders: dict[tuple, bool] = {}

    def takes_order(self, mod: Any, problem: Any, dtype: str, library: str, order: tuple) -> bool:
        """Whether the kernel reads operands (a, b) (the module's order) stored channels-last
        and writes its result so, as `order` (three flags) says: implicit_gemm's tensor-op path
        (cuda/tensor_op_conv.h) and depthwise's channels-last kernels do."""
        name, math_ = kernel_math(self.algo, dtype, library)
        key = (dtype, math_, order)
        takes = self._orders.get(key)
        if takes is None:
            geometry = problem.conv_geometry
            takes = bool(
                mod.conv_takes_order(problem.conv_pass, name, math_, dtype, *geometry, *order)
            )
            self._orders[key] = takes
        return takes

    def workspace(self, mod: Any, problem: Any, dtype: str, device: int, library: str) -> int:
        name, math_ = kernel_math(self.algo, dtype, library)
        key = (device, dtype, math_)
        nbytes = self._bytes.get(key)
        if nbytes is None:
            geometry = problem.conv_geometry
            nbytes = int(
                mod.conv_workspace(problem.conv_pass, name, math_, dtype, device, *geometry)
            )
            self._bytes[key] = nbytes
        return nbytes


def in_place_order(
    plan: ConvPlan, mod: Any, problem: Any, dtype: str, library: str, stored: tuple, result: bool
) -> tuple[tuple[bool, bool], bool]:
    """((a, b) read in place, result written in place) for a conv pass whose first two operands
    (public order) are stored channels_last as `stored` says and whose result is wanted
    channels_last (`result`): the order the kernel takes that keeps the most in place - the
    result and both operands, else fewer operands, then without the result."""
    have = stored[::-1] if problem.swap_operands else tuple(stored)
    for out in (True, False) if result else (False,):
        for ab in (have, (have[0], False), (False, have[1])):
            if (any(ab) or out) and plan.takes_order(mod, problem, dtype, library, ab + (out,)):
                return (ab[::-1] if problem.swap_operands else ab), out
        if out and plan.takes_order(mod, problem, dtype, library, (False, False, True)):
            return (False, False), True
    return (False, False), False
