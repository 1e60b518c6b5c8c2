"""Tiled / locally connected / separable convolution against their peers (issue 12).

`fastconv bench` times conv and pooling problems only, so these ops are timed here, in one
process, interleaved, median of --repeats runs after a warm-up, at --threads threads:

- locally connected (DeepFace-style: 3x3, 32 -> 32 channels over 32x32, padding 1): fastconv's
  per-position GEMM engine vs the PyTorch unfold + einsum formulation (autograd for the training
  step) and JAX's lax.conv_general_dilated_local (jit; vjp for the training step). Forward, and
  a training step = forward + gradients of x and w.
- tiled (same layer, 2x2 tiles): fastconv vs the same unfold + einsum with the tile gather.
- separable depthwise 31x31 (32 channels, 64x64, "same"): fastconv.separable_conv (a chain of
  two 1-D depthwise passes) vs fastconv's best dense algorithm on the outer-product kernel.

    PYTHONPATH=python python benchmarks/variants_conv_bench.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def timed(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, the callables interleaved run by run."""
    for f in fns.values():
        f()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def report(title: str, result: dict, ours: str) -> None:
    print(f"\n{title}")
    base = result[ours]
    for name, t in result.items():
        ratio = "" if name == ours else f"  ({t / base:.2f}x fastconv's time)"
        print(f"  {name:34s} {t * 1e3:9.2f} ms{ratio}")


def local_layer(args, tiles=None) -> None:
    import fastconv
    import torch

    n, c, size, k, ks = args.batch, 32, 32, 32, 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    t = (size, size) if tiles is None else tiles
    w = (rng.standard_normal((k, *t, c, ks, ks)) * 0.05).astype(np.float32)
    g = rng.standard_normal((n, k, size, size)).astype(np.float32)
    fn = fastconv.locally_connected if tiles is None else fastconv.tiled_conv
    op = "locally_connected" if tiles is None else "tiled_conv"
    bd = getattr(fastconv, f"{op}_backward_data")
    bw = getattr(fastconv, f"{op}_backward_weight")

    def fc_fwd():
        return fn(x, w, padding=1)

    def fc_step():
        fn(x, w, padding=1)
        bd(g, w, x.shape, padding=1)
        bw(x, g, w.shape, padding=1)

    xt, wt, gt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(g)
    rows = torch.arange(size) % t[0]
    cols = torch.arange(size) % t[1]

    def torch_forward(xv, wv):
        unf = torch.nn.functional.unfold(xv, ks, padding=1)  # (N, C*9, L)
        per_pos = wv if tiles is None else wv[:, rows][:, :, cols]
        return torch.einsum("nql,klq->nkl", unf, per_pos.reshape(k, size * size, c * ks * ks))

    def torch_fwd():
        with torch.no_grad():
            return torch_forward(xt, wt)

    def torch_step():
        xv = xt.clone().requires_grad_()
        wv = wt.clone().requires_grad_()
        torch_forward(xv, wv).backward(gt.reshape(n, k, -1))

    fns = {f"fastconv {op} forward": fc_fwd, "torch unfold+einsum forward": torch_fwd}
    steps = {
        f"fastconv {op} training step": fc_step,
        "torch unfold+einsum training step": torch_step,
    }
    if tiles is None and not args.no_jax:
        import jax
        import jax.numpy as jnp

        xj = jnp.asarray(x)
        # JAX's own layout: (K, C * 9, *out_spatial), I ordered (c, kh, kw)
        wj = jnp.asarray(
            np.ascontiguousarray(w.reshape(k, size * size, c * ks * ks).transpose(0, 2, 1)).reshape(
                k, c * ks * ks, size, size
            )
        )
        gj = jnp.asarray(g)

        def jf(xv, wv):
            return jax.lax.conv_general_dilated_local(xv, wv, (1, 1), [(1, 1), (1, 1)], (ks, ks))

        jfwd = jax.jit(jf)

        @jax.jit
        def jstep(xv, wv, gv):
            y, vjp = jax.vjp(jf, xv, wv)
            return y, vjp(gv)

        fns["jax conv_general_dilated_local forward"] = lambda: jfwd(xj, wj).block_until_ready()
        steps["jax conv_general_dilated_local training step"] = lambda: jax.block_until_ready(
            jstep(xj, wj, gj)
        )
        np.testing.assert_allclose(np.asarray(jfwd(xj, wj)), fc_fwd(), rtol=1e-3, atol=1e-3)
    what = "locally connected" if tiles is None else f"tiled {t}"
    title = f"{what}: x ({n}, {c}, {size}, {size}), 3x3, K={k}, padding 1"
    report(title + " - forward", timed(fns, args.repeats), f"fastconv {op} forward")
    report(title + " - training step", timed(steps, args.repeats), f"fastconv {op} training step")


def separable_layer(args) -> None:
    import fastconv

    n, c, size, ks = args.batch, 32, 64, 31
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    f = [rng.standard_normal((c, 1, ks)).astype(np.float32) for _ in range(2)]
    w = np.ascontiguousarray(f[0][:, :, :, None] * f[1][:, :, None, :])
    kw = dict(padding="same", groups=c)
    fns = {"fastconv separable_conv": lambda: fastconv.separable_conv(x, f, **kw)}
    for algo in fastconv.algorithms("conv"):
        if algo == "reference":  # minutes, and never the best
            continue
        try:
            fastconv.conv(x[:1], w, algo=algo, **kw)
        except NotImplementedError:
            continue
        fns[f"fastconv conv algo={algo}"] = lambda a=algo: fastconv.conv(x, w, algo=a, **kw)
    result = timed(fns, args.repeats)
    report(
        f"separable depthwise {ks}x{ks}: x ({n}, {c}, {size}, {size}), 'same' - forward",
        result,
        "fastconv separable_conv",
    )
    dense = {name: t for name, t in result.items() if name.startswith("fastconv conv")}
    best = min(dense, key=dense.get)
    ratio = dense[best] / result["fastconv separable_conv"]
    print(f"  best dense: {best}; separable is {ratio:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX peer")
    parser.add_argument("--only", choices=["local", "tiled", "separable"], default=None)
    args = parser.parse_args()
    import fastconv
    import torch

    torch.set_num_threads(args.threads)
    fastconv.set_num_threads(args.threads)
    print(f"threads {args.threads}, repeats {args.repeats}, batch {args.batch}")
    if args.only in (None, "local"):
        local_layer(args)
    if args.only in (None, "tiled"):
        local_layer(args, tiles=(2, 2))
    if args.only in (None, "separable"):
        separable_layer(args)


if __name__ == "__main__":
    main()
