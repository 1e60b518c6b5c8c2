"""fastconv as a PyTorch backend: `import fastconv.torch as fct`.

- fct.conv2d, fct.max_pool2d, ...: torch.nn.functional's names, arguments and results on
  fastconv's kernels, as custom ops (torch.ops.fastconv.*) with autograd, fake kernels for
  torch.compile, CPU and CUDA.
- fct.nn.Conv2d, ...: subclasses of the torch.nn modules that compute with fastconv.
- fct.replace_modules(model): swaps a model's torch.nn convolution and pooling modules for
  those, in place (same parameters, state_dict and hooks); run it before DDP or torch.compile.

torch stays an optional dependency of fastconv: only this package imports it.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("fastconv.torch needs PyTorch: pip install torch (or fastconv[torch])") from e

from . import functional
from .functional import *  # noqa: F403 - the torch.nn.functional names

__all__ = ["functional", *functional.__all__]
