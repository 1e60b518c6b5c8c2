"""fastconv's own functions on torch tensors that require grad: such calls run through the
PyTorch adapter's custom ops (fastconv/torch/_recording.py), which record autograd, instead of
returning a detached result that would silently stop a user's training.

The adapter is imported on the first such call: it needs torch, an optional dependency (the
caller's tensors mean it is installed and loaded).
"""

from __future__ import annotations

import sys
from typing import Any


def records_grad(*values: Any) -> bool:
    """Whether autograd must record a call on these operands: a torch tensor among them
    requires grad while grad mode is on."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    tensor = torch.Tensor
    for v in values:
        if isinstance(v, tensor) and v.requires_grad:
            return torch.is_grad_enabled()  # asked only when it matters (~0.2 us a call)
    return False


def recording() -> Any:
    """fastconv/torch/_recording.py (the one optional import of this package's core)."""
    from .torch import _recording

    return _recording
