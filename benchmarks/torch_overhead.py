"""Per-call overhead of fastconv's PyTorch adapter on the CPU: fastconv.torch.conv2d (eager
without gradients the wrapper runs the kernel itself; with gradients the custom op
torch.ops.fastconv.conv with its dispatcher and autograd), the operator called directly, against
fastconv.conv on the same tensors (the kernels' own cost plus fastconv's Python layer) and
torch.nn.functional.conv2d. Shapes: 1x1x8x8 with a 3x3 kernel (the kernel takes about a
microsecond) and 1x16x32x32 with a 16x16x3x3 layer (padding 1); forward alone and
forward+backward (the direct path calls conv_backward_data and conv_backward_weight itself).
One process, interleaved, float32, medians of several rounds.
Usage: python benchmarks/torch_overhead.py [ROUNDS]"""

from __future__ import annotations

import statistics
import sys
import timeit

import fastconv as fc
import fastconv.torch as fct
import torch
import torch.nn.functional as F
from fastconv.torch._ops import pack_conv

SHAPES = {
    "1x1x8x8 * 1x1x3x3": ((1, 1, 8, 8), (1, 1, 3, 3), 0),
    "1x16x32x32 * 16x16x3x3": ((1, 16, 32, 32), (16, 16, 3, 3), 1),
}


def cases(x_shape, w_shape, padding) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=g)
    w = torch.randn(w_shape, generator=g)
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    gy = torch.randn(F.conv2d(x, w, padding=padding).shape, generator=g)
    op = torch.ops.fastconv.conv.default
    pads = [padding] * 2
    packed = pack_conv(
        "conv", "forward", [], [1, 1], pads, pads, [1, 1], 1, "cross", [0, 0], "auto"
    )

    def backward(fn):
        def run():
            fn(xg, wg, padding=padding).backward(gy)
            xg.grad = wg.grad = None

        return run

    def direct_backward():
        fc.conv(x, w, padding=padding)
        fc.conv_backward_data(gy, w, x_shape, padding=padding)
        fc.conv_backward_weight(x, gy, w_shape, padding=padding)

    return {
        "forward": {
            "fastconv.torch.conv2d": lambda: fct.conv2d(x, w, padding=padding),
            "fastconv.conv (direct)": lambda: fc.conv(x, w, padding=padding),
            "F.conv2d": lambda: F.conv2d(x, w, padding=padding),
            "torch.ops.fastconv.conv (the operator)": lambda: op(x, w, None, *packed),
        },
        "forward+backward": {
            "fastconv.torch.conv2d (custom op + autograd)": backward(fct.conv2d),
            "fastconv.conv + backward passes (direct)": direct_backward,
            "F.conv2d": backward(F.conv2d),
        },
    }


def main(rounds: int = 7, calls: int = 500) -> None:
    torch.set_num_threads(fc.get_num_threads())
    for title, shapes in SHAPES.items():
        for kind, timed in cases(*shapes).items():
            results: dict[str, list[float]] = {name: [] for name in timed}
            for _ in range(rounds):
                for name, fn in timed.items():
                    for _ in range(calls // 10):  # warm: caches, allocator
                        fn()
                    results[name].append(timeit.timeit(fn, number=calls) / calls)
            medians = {name: statistics.median(t) * 1e6 for name, t in results.items()}
            print(f"{title}, {kind} (median of {rounds} rounds of {calls} calls)")
            for name, us in medians.items():
                print(f"  {name:44s} {us:9.1f} us")
            adapter, direct = list(medians.values())[:2]
            print(
                f"  {'adapter overhead (fastconv.torch - direct)':44s} {adapter - direct:9.1f} us"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
