"""fastconv as a PyTorch backend: `import fastconv.torch as fct`.

- fct.conv2d, fct.max_pool2d, ...: torch.nn.functional's names, arguments and results on
  fastconv's kernels, as custom ops (torch.ops.fastconv.*) with autograd, fake kernels for
  torch.compile, CPU and CUDA.
- fct.nn.Conv2d, ...: subclasses of the torch.nn modules that compute with fastconv.
- fct.replace_modules(model): swaps a model's torch.nn convolution and pooling modules for
  those, in place (same parameters, state_dict and hooks); run it before DDP or torch.compile.

torch stays an optional dependency of fastconv: only this package imports it. Importing it
also runs fastconv's CPU kernels on PyTorch's own OpenMP threads (fastconv.share_torch_threads;
FASTCONV_OPENMP=0 keeps fastconv's own pool), so the two libraries never fight for the cores.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("fastconv.torch needs PyTorch: pip install torch (or fastconv[torch])") from e

from .._runtime import share_torch_threads
from . import functional, nn
from .functional import *  # noqa: F403 - the torch.nn.functional names

share_torch_threads()


def replace_modules(model: torch.nn.Module) -> int:
    """Swap, in place, every module of `model` (itself included) whose type is exactly one of
    torch.nn's Conv1d/2d/3d, ConvTranspose1d/2d/3d, MaxPool1d/2d/3d, AvgPool1d/2d/3d,
    LPPool1d/2d/3d or MaxUnpool1d/2d/3d for its fastconv.torch.nn namesake; returns how many.

    Only the class changes (`module.__class__`): the modules, their Parameter objects (so an
    optimizer built on them and its state), buffers, state_dict keys and hooks stay as they
    are. Subclasses of those torch classes are left alone, since their own forward may compute
    differently. Run it before wrapping the model in DistributedDataParallel or torch.compile,
    which capture the modules' code as they find it.
    """
    count = 0
    for module in model.modules():
        replacement = nn.REPLACES.get(type(module))
        if replacement is not None:
            module.__class__ = replacement
            count += 1
    return count


__all__ = ["functional", "nn", "replace_modules", *functional.__all__]
