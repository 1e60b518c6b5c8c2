"""fastconv's CPU kernels in JAX: `import fastconv.jax as fcj`.

fcj.conv, fcj.conv_transpose (and fcj.max_pool, fcj.avg_pool) are XLA FFI custom calls
(jax.ffi) on fastconv's own plans and thread pool, with jax.custom_vjp gradients; they work
under jax.jit, jax.grad and jax.vmap, in float32 and (with jax_enable_x64) float64. Arguments
are fastconv's own, channel-first: x (N, C, *spatial), w (K, C/groups, *kernel).

jax stays an optional dependency of fastconv: only this package imports it. The handlers are
compiled into fastconv._C when jaxlib's headers are found at build time; importing this
package checks that the installed jaxlib is the one they were built against.
"""

from __future__ import annotations

try:
    import jax  # noqa: F401
    import jaxlib  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without jax
    raise ImportError(
        "fastconv.jax needs JAX: pip install 'fastconv[jax]' (jax and jaxlib 0.10.2)"
    ) from e

from . import _targets

_targets.check_jaxlib()
_targets.register()

from ._conv import conv, conv_transpose  # noqa: E402 - after the targets are registered
from ._pool import avg_pool, max_pool  # noqa: E402

__all__ = ["avg_pool", "conv", "conv_transpose", "max_pool"]
