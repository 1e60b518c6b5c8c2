"""The XLA FFI targets of fastconv.jax: the handlers compiled into fastconv._C
(csrc/bindings/jax_ffi.cc), checked against the installed jaxlib and registered with XLA once."""

from __future__ import annotations

import jax
import jaxlib

from .. import _C

CONV_TARGET = "fastconv_conv"
POOL_TARGET = "fastconv_pool"
# How a vmapped call reaches the handlers: unbatched operands get size-1 leading axes and the
# handler folds the batch into N where the weight is shared, else runs item by item (jax_ffi.cc).
VMAP_METHOD = "expand_dims"


def built_for() -> tuple[str, tuple[int, int]]:
    """(jaxlib version, XLA FFI API (major, minor)) the handlers were compiled against."""
    built = getattr(_C, "jax_ffi_built_for", None)
    if built is None:
        raise ImportError(
            "fastconv.jax: this build of fastconv has no XLA FFI handlers (jaxlib's headers were "
            "not found when it was compiled); reinstall fastconv with jax installed, or with "
            "FASTCONV_JAX_INCLUDE_DIR set to jax.ffi.include_dir() (FASTCONV_JAX=ON makes a "
            "missing header a build error)"
        )
    version, (major, minor) = built
    return str(version), (int(major), int(minor))


def check_jaxlib() -> None:
    """ImportError naming both versions when the installed jaxlib is not the one the handlers
    were built against (the FFI's C structs and attribute encoding are versioned with it)."""
    version, (major, minor) = built_for()
    installed = getattr(jaxlib, "__version__", None) or jaxlib.version.__version__
    if installed != version:
        raise ImportError(
            f"fastconv.jax: fastconv's XLA FFI handlers were built against jaxlib {version} "
            f"(XLA FFI API {major}.{minor}), but jaxlib {installed} is installed; install "
            f"jax=={version} jaxlib=={version} (pip install 'fastconv[jax]') or rebuild fastconv "
            f"against jaxlib {installed}"
        )


def register() -> None:
    """Registers every handler as a CPU custom-call target (once per process)."""
    for name, capsule in _C.jax_ffi_targets.items():
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")
