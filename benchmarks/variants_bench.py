"""Times the resampling ops of benchmarks/suites/variants.json (section "resample") against
their PyTorch peers, interleaved in one process: forward, and a training step (forward +
backward: fastconv's *_backward functions, torch's autograd). Prints the median times and the
ratio torch / fastconv (> 1: fastconv is faster).

    python benchmarks/variants_bench.py [--threads 2] [--repeats 15] [--filter REGEX] [--json OUT]

(`fastconv bench --suite` times conv / conv_transpose / pool layers only; the resample section
is read here.)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import time
from pathlib import Path

import fastconv as fc
import numpy as np
import torch
import torch.nn.functional as F

SUITE = Path(__file__).resolve().parent / "suites" / "variants.json"
_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def candidates(e: dict, x: torch.Tensor):
    """(fastconv forward, fastconv step, torch forward, torch step) closures of entry e."""
    op, rank = e["op"], x.dim() - 2
    xr = x.clone().requires_grad_(True)

    def step(forward_t):
        def run():
            xr.grad = None
            y = forward_t(xr)
            y.backward(torch.ones_like(y))

        return run

    if op.startswith("upsample"):
        s, ac = e["scale"], e.get("align_corners", False)
        if op == "upsample_nearest":
            f = lambda: fc.upsample_nearest(x, s)  # noqa: E731
            b = lambda g: fc.upsample_nearest_backward(g, tuple(x.shape), s)  # noqa: E731
            t = lambda v: F.interpolate(v, scale_factor=s, mode="nearest")  # noqa: E731
        else:
            f = lambda: fc.upsample_linear(x, s, align_corners=ac)  # noqa: E731
            b = lambda g: fc.upsample_linear_backward(g, tuple(x.shape), s, align_corners=ac)  # noqa: E731
            t = lambda v: F.interpolate(v, scale_factor=s, mode=_LINEAR[rank], align_corners=ac)  # noqa: E731
    elif op.startswith("pixel"):
        r = e["r"]
        fwd, bwd = (fc.pixel_shuffle, fc.pixel_unshuffle)
        peer = F.pixel_shuffle
        if op == "pixel_unshuffle":
            fwd, bwd, peer = fc.pixel_unshuffle, fc.pixel_shuffle, F.pixel_unshuffle
        f = lambda: fwd(x, r)  # noqa: E731
        b = lambda g: bwd(g, r)  # noqa: E731
        t = lambda v: peer(v, r)  # noqa: E731
    elif op == "stochastic_pool":
        k, s, p = e["kernel"], e["stride"], e["padding"]
        f = lambda: fc.stochastic_pool(x, k, stride=s, padding=p, seed=1, return_indices=True)  # noqa: E731
        saved = f()
        b = lambda g: fc.stochastic_pool_backward(g, x, k, stride=s, padding=p, indices=saved[1])  # noqa: E731

        def t(v):  # torch's formulation: unfold, normalise, multinomial, gather
            n, c = v.shape[:2]
            cols = F.unfold(v, k, padding=p, stride=s).view(n, c, k * k, -1)
            probs = cols.detach().permute(0, 1, 3, 2).reshape(-1, k * k)
            pick = torch.multinomial(probs, 1).view(n, c, 1, -1)
            out = cols.gather(2, pick).view(n, c, -1)
            size = [(d + 2 * p - k) // s + 1 for d in v.shape[2:]]
            return out.view(n, c, *size)

        def fstep():
            y, idx = fc.stochastic_pool(x, k, stride=s, padding=p, seed=1, return_indices=True)
            fc.stochastic_pool_backward(y, x, k, stride=s, padding=p, indices=idx)

        return (lambda: f(), fstep, lambda: t(x), step(t))
    elif op == "stochastic_pool_eval":
        k, s, p = e["kernel"], e["stride"], e["padding"]
        f = lambda: fc.stochastic_pool(x, k, stride=s, padding=p, training=False)  # noqa: E731
        b = lambda g: fc.stochastic_pool_backward(g, x, k, stride=s, padding=p, training=False)  # noqa: E731
        t = lambda v: F.avg_pool2d(v * v, k, s, p) / F.avg_pool2d(v, k, s, p)  # noqa: E731
    elif op == "blur_pool":
        k, s = e["kernel"], e["stride"]
        f = lambda: fc.blur_pool(x, kernel_size=k, stride=s)  # noqa: E731
        b = lambda g: fc.blur_pool_backward(g, tuple(x.shape), kernel_size=k, stride=s)  # noqa: E731
        row = torch.tensor([math.comb(k - 1, i) for i in range(k)], dtype=x.dtype)
        w = (torch.outer(row, row) / row.sum() ** 2).expand(x.shape[1], 1, k, k).contiguous()
        pads = [v for n in reversed(x.shape[2:]) for v in _same_pads(n, k, s)]
        t = lambda v: F.conv2d(F.pad(v, pads), w, stride=s, groups=v.shape[1])  # noqa: E731
    else:
        raise ValueError(f"unknown op {op!r}")
    y = f()
    g = y if isinstance(y, torch.Tensor) else y[0]

    def fstep():
        out = f()
        b(g if isinstance(out, torch.Tensor) else out[0])

    return f, fstep, (lambda: t(x)), step(t)


def _median(fns, repeats: int) -> list[float]:
    times = [[] for _ in fns]
    for fn in fns:
        fn()  # warm-up
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--filter", default="")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fc.set_num_threads(args.threads)
    entries = json.loads(SUITE.read_text())["resample"]
    rows = []
    print(
        f"{'name':34s} {'fwd fc ms':>9s} {'torch ms':>9s} {'ratio':>6s}  "
        f"{'step fc ms':>10s} {'torch ms':>9s} {'ratio':>6s}"
    )
    for e in entries:
        if args.filter and not re.search(args.filter, e["name"]):
            continue
        gen = np.random.default_rng(0)
        x = torch.from_numpy(gen.uniform(0.01, 1.0, e["x"]).astype(args.dtype))
        ff, fs, tf, ts = candidates(e, x)
        a, b, c, d = _median([ff, tf, fs, ts], args.repeats)
        rows.append(
            {
                "name": e["name"],
                "fastconv_forward_s": a,
                "torch_forward_s": b,
                "fastconv_step_s": c,
                "torch_step_s": d,
                "peer": e.get("peer", ""),
            }
        )
        print(
            f"{e['name']:34s} {a * 1e3:9.2f} {b * 1e3:9.2f} {b / a:6.2f}  "
            f"{c * 1e3:10.2f} {d * 1e3:9.2f} {d / c:6.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
