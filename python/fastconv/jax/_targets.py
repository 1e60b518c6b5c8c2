"""The XLA FFI targets of fastconv.jax: the CPU handlers compiled into fastconv._C
(csrc/bindings/jax_ffi.cc) and, where the CUDA module was built with them, the CUDA handlers in
fastconv._cuda (cuda/jax_ffi.cc), both under the same target names; checked against the
installed jaxlib and registered with XLA once. Also the backend each platform's algorithm is
selected with at trace time."""

from __future__ import annotations

from typing import Any, Optional

import jax
import jaxlib

from .. import _C
from ..backends import backend_for_device
from ..backends.cuda import GPU_ALGORITHMS, CudaBackend, cuda_module
from ..backends.cuda_plan import kernel_math

CONV_TARGET = "fastconv_conv"
POOL_TARGET = "fastconv_pool"
# How a vmapped call reaches the handlers: unbatched operands get size-1 leading axes and the
# handler folds the batch into N where the weight is shared, else runs item by item
# (csrc/bindings/jax_ffi_calls.h).
VMAP_METHOD = "expand_dims"
# The platforms with registered handlers, in lowering-platform spelling ("cpu", "cuda"):
# set by register().
PLATFORMS: tuple[str, ...] = ()


def built_for(module: Any = _C) -> tuple[str, tuple[int, int]]:
    """(jaxlib version, XLA FFI API (major, minor)) a module's handlers were compiled against."""
    built = getattr(module, "jax_ffi_built_for", None)
    if built is None:
        raise ImportError(
            "fastconv.jax: this build of fastconv has no XLA FFI handlers (jaxlib's headers were "
            "not found when it was compiled); reinstall fastconv with jax installed, or with "
            "FASTCONV_JAX_INCLUDE_DIR set to jax.ffi.include_dir() (FASTCONV_JAX=ON makes a "
            "missing header a build error)"
        )
    version, (major, minor) = built
    return str(version), (int(major), int(minor))


def check_jaxlib(module: Any = _C) -> None:
    """ImportError naming both versions when the installed jaxlib is not the one the handlers
    were built against (the FFI's C structs and attribute encoding are versioned with it)."""
    version, (major, minor) = built_for(module)
    installed = getattr(jaxlib, "__version__", None) or jaxlib.version.__version__
    if installed != version:
        raise ImportError(
            f"fastconv.jax: fastconv's XLA FFI handlers were built against jaxlib {version} "
            f"(XLA FFI API {major}.{minor}), but jaxlib {installed} is installed; install "
            f"jax=={version} jaxlib=={version} (pip install 'fastconv[jax]') or rebuild fastconv "
            f"against jaxlib {installed}"
        )


def cuda_targets() -> Optional[dict]:
    """The CUDA handlers (target name -> capsule), or None when fastconv._cuda is not built or
    was built without jaxlib's headers."""
    mod = cuda_module()
    return None if mod is None else getattr(mod, "jax_ffi_targets", None)


def register(register_target: Any = None) -> tuple[str, ...]:
    """Registers every handler with XLA (the CPU ones, and the CUDA ones for platform "CUDA"
    when built: XLA keeps those for the CUDA plugin, loaded or not) and returns the platforms.
    `register_target`: jax.ffi.register_ffi_target unless given (tests pass a recorder)."""
    global PLATFORMS
    register_target = register_target or jax.ffi.register_ffi_target
    for name, capsule in _C.jax_ffi_targets.items():
        register_target(name, capsule, platform="cpu")
    platforms = ("cpu",)
    cuda = cuda_targets()
    if cuda is not None:
        check_jaxlib(cuda_module())
        for name, capsule in cuda.items():
            register_target(name, capsule, platform="CUDA")
        platforms += ("cuda",)
    PLATFORMS = platforms
    return platforms


def platforms() -> tuple[str, ...]:
    """The platforms with registered handlers ("cpu", and "cuda" where built)."""
    return PLATFORMS


class _CudaHandlers(CudaBackend):
    """The CUDA backend as the CUDA handlers see it, for selection at trace time: the kernels
    they have, whether or not this process sees a GPU (a jitted function may be lowered for
    CUDA on a machine without one, and runs where XLA places it)."""

    def algorithms(self, op: str) -> list[str]:
        return list(GPU_ALGORITHMS[op])


_CUDA_HANDLERS = _CudaHandlers()


def selection_backends() -> list[tuple[str, Any]]:
    """(platform, backend) of every platform with handlers, the CPU first."""
    backends = [("cpu", backend_for_device("cpu"))]
    if "cuda" in PLATFORMS:
        backends.append(("cuda", _CUDA_HANDLERS))
    return backends


def gpu_algo(algo: str, dtype: str) -> str:
    """The CUDA handler's algorithm attribute for a selected algorithm: implicit_gemm with exact
    SIMT math is "implicit_gemm_simt" (the TF32 rule is backends/cuda.py's kernel_math: exact
    float32 unless fastconv.set_allow_tf32(True))."""
    name, math = kernel_math(algo, dtype, "jax")
    return "implicit_gemm_simt" if name == "implicit_gemm" and math == "simt" else name
