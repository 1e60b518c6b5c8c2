"""Per-call overhead of fastconv's Python layer: a tiny convolution and max pool (where the
kernels take about a microsecond) through fastconv with NumPy arrays and torch tensors, against
torch.nn.functional, in one process, interleaved; medians of several rounds.
Usage: python benchmarks/overhead.py [ROUNDS]"""

from __future__ import annotations

import statistics
import sys
import timeit

import fastconv as fc
import numpy as np
import torch
import torch.nn.functional as F


def cases() -> dict:
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 8, 8), dtype=np.float32)
    w = rng.random((1, 1, 3, 3), dtype=np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    return {
        "fastconv.conv, NumPy": lambda: fc.conv(x, w),
        "fastconv.conv, torch": lambda: fc.conv(xt, wt),
        "F.conv2d": lambda: F.conv2d(xt, wt),
        "fastconv.max_pool, NumPy": lambda: fc.max_pool(x, 2),
        "fastconv.max_pool, torch": lambda: fc.max_pool(xt, 2),
        "F.max_pool2d": lambda: F.max_pool2d(xt, 2),
        "fastconv.conv2d stride 2 'same', NumPy": lambda: fc.conv2d(x, w, stride=2, padding="same"),
        "fastconv.conv2d stride 2 'same', torch": lambda: fc.conv2d(
            xt, wt, stride=2, padding="same"
        ),
        "F.conv2d stride 2 padding 1": lambda: F.conv2d(xt, wt, stride=2, padding=1),
    }


def main(rounds: int = 7, calls: int = 2000) -> None:
    torch.set_num_threads(fc.get_num_threads())
    timed = cases()
    results: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, fn in timed.items():
            for _ in range(calls // 10):  # warm: caches, allocator
                fn()
            results[name].append(timeit.timeit(fn, number=calls) / calls)
    for name, times in results.items():
        print(f"{name:42s} {statistics.median(times) * 1e6:8.1f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
