"""Reuse of large host output buffers: the memory of an output the caller has dropped serves the
next call's output of about the same size.

Why: glibc's malloc (NumPy's and PyTorch's allocator on Linux) hands out every block above 32 MiB
as fresh pages from mmap, and the kernel zeroes each page on first touch. For a large output
that costs as much as a fast kernel itself: a (8, 64, 128, 128) float32 output (32 MiB) took
~4.4 ms of page clearing per call beside ~5 ms of 31x31 separable filtering on one core. A
block whose pages are already mapped is written at memory speed.

How: the pool keeps up to `limit` bytes of uint8 blocks. An output of at least `min_bytes` is a
view of a pooled block nobody else references (the block's reference count says so: every
NumPy view, and every torch tensor made by torch.from_numpy, holds its base block), so a block
returns to the pool when the last view of it dies, with no hook in the array. Outputs are 64-byte
aligned. `FASTCONV_OUTPUT_CACHE` sets the limit in bytes (K/M/G suffixes; 0 turns reuse off);
`fastconv.empty_cache()` frees the idle blocks.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Sequence

import numpy as np

_ALIGN = 64
_GRAIN = 2 << 20  # block sizes are multiples of this: nearby output sizes share blocks
_MIN_BYTES = 16 << 20  # below this glibc keeps freed memory mapped (its dynamic mmap threshold)
_DEFAULT_LIMIT = 1 << 30
_MAX_BLOCKS = 16


def _parse_bytes(text: str) -> int:
    """'512M' -> 536870912; ValueError for anything else."""
    t = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in ("K", "M", "G") else t
    value = int(digits)
    if value < 0:
        raise ValueError(text)
    return value * scale


def _default_limit() -> int:
    text = os.environ.get("FASTCONV_OUTPUT_CACHE")
    if text:
        try:
            return _parse_bytes(text)
        except ValueError:
            print(
                f"fastconv: ignoring FASTCONV_OUTPUT_CACHE={text!r} (want bytes, e.g. 512M or 0)",
                file=sys.stderr,
            )
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 << 30
    return min(_DEFAULT_LIMIT, memory // 8)


class OutputPool:
    """Pooled host blocks for large outputs (see the module's docstring)."""

    def __init__(self, limit: int, min_bytes: int = _MIN_BYTES):
        self.limit = limit
        self.min_bytes = min_bytes
        self._blocks: list[np.ndarray] = []  # least recently used first
        self._lock = threading.Lock()
        # A block referenced by the list alone: what sys.getrefcount(self._blocks[i]) says.
        probe = [np.empty(1, np.uint8)]
        self._idle_refs = sys.getrefcount(probe[0])

    def _idle(self, i: int) -> bool:
        return sys.getrefcount(self._blocks[i]) <= self._idle_refs

    def empty(self, shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
        # Every host call passes here: small outputs go straight to np.empty.
        if not isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < self.min_bytes or nbytes + _ALIGN > self.limit:
            return np.empty(shape, dtype)
        size = -(-nbytes // _GRAIN) * _GRAIN
        with self._lock:
            block = self._take(size)
        if block is None:
            return np.empty(shape, dtype)
        start = -block.ctypes.data % _ALIGN
        return block[start : start + nbytes].view(dtype).reshape(shape)

    def _take(self, size: int):
        """An idle block of `size` usable bytes (moved to the most recent end), a new one when
        the limit allows after freeing idle blocks, oldest first; None when busy blocks fill it."""
        for i in range(len(self._blocks)):
            if self._blocks[i].nbytes - _ALIGN == size and self._idle(i):
                block = self._blocks.pop(i)
                self._blocks.append(block)
                return block
        held = sum(b.nbytes for b in self._blocks)
        i = 0
        while i < len(self._blocks) and (
            held + size + _ALIGN > self.limit or len(self._blocks) >= _MAX_BLOCKS
        ):
            if self._idle(i):
                held -= self._blocks.pop(i).nbytes
            else:
                i += 1
        if held + size + _ALIGN > self.limit or len(self._blocks) >= _MAX_BLOCKS:
            return None
        block = np.empty(size + _ALIGN, np.uint8)
        self._blocks.append(block)
        return block

    def release(self) -> int:
        """Frees the idle blocks; returns the bytes freed."""
        with self._lock:
            freed = 0
            i = 0
            while i < len(self._blocks):
                if self._idle(i):
                    freed += self._blocks.pop(i).nbytes
                else:
                    i += 1
            return freed

    def held(self) -> tuple[int, int]:
        """(bytes held, bytes of them idle)."""
        with self._lock:
            total = sum(b.nbytes for b in self._blocks)
            idle = sum(self._blocks[i].nbytes for i in range(len(self._blocks)) if self._idle(i))
            return total, idle


POOL = OutputPool(_default_limit())


def _after_fork_in_child() -> None:
    # Another thread may have held the lock when the process forked: the child's copy would
    # never be released. The child starts with a fresh lock (its blocks stay valid).
    POOL._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def empty_cache() -> int:
    """Frees the memory fastconv keeps for reuse by large host outputs whose arrays are gone
    (see FASTCONV_OUTPUT_CACHE); returns the number of bytes freed."""
    return POOL.release()
