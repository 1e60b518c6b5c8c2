"""fastconv.jax against XLA's own CPU convolution: jitted fastconv.jax.conv vs jitted
lax.conv_general_dilated on a few layers, forward and forward+backward (grad w.r.t. x and w),
float32, block_until_ready, interleaved rounds, medians. Threads: fastconv's pool runs
FASTCONV_NUM_THREADS; XLA's CPU runtime its own (set XLA_FLAGS / taskset to match).
Usage: python benchmarks/jax_vs_xla.py [ROUNDS]"""

from __future__ import annotations

import statistics
import sys
import time

import fastconv.jax as fcj
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# name: (x shape, w shape, padding, groups)
LAYERS = {
    "1x64x56x56 3x3 (64->64)": ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1),
    "1x32x64x64 depthwise 31x31": ((1, 32, 64, 64), (32, 1, 31, 31), 15, 32),
    "1x32x56x56 depthwise 7x7": ((1, 32, 56, 56), (32, 1, 7, 7), 3, 32),
}


def xla_conv(x, w, padding, groups):
    rank = w.ndim - 2
    return lax.conv_general_dilated(
        x, w, (1,) * rank, [(padding, padding)] * rank, feature_group_count=groups
    )


def timed(f, *args) -> float:
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    return time.perf_counter() - t


def main(rounds: int) -> None:
    rng = np.random.default_rng(0)
    print(f"{'layer':32} {'pass':9} {'fastconv ms':>12} {'XLA ms':>9} {'XLA/fastconv':>13}")
    for name, (xs, ws, pad, groups) in LAYERS.items():
        x = jnp.asarray(rng.standard_normal(xs, dtype=np.float32))
        w = jnp.asarray(rng.standard_normal(ws, dtype=np.float32))
        fns = {
            "forward": (
                jax.jit(lambda x, w: fcj.conv(x, w, padding=pad, groups=groups)),
                jax.jit(lambda x, w: xla_conv(x, w, pad, groups)),
            ),
            "fwd+bwd": (
                jax.jit(jax.grad(lambda x, w: jnp.sum(fcj.conv(x, w, padding=pad, groups=groups)),
                                 (0, 1))),
                jax.jit(jax.grad(lambda x, w: jnp.sum(xla_conv(x, w, pad, groups)), (0, 1))),
            ),
        }  # fmt: skip
        for pass_, (ours, theirs) in fns.items():
            for f in (ours, theirs):  # compile and warm
                timed(f, x, w)
                timed(f, x, w)
            a, b = [], []
            for _ in range(rounds):
                a.append(timed(ours, x, w))
                b.append(timed(theirs, x, w))
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"{name:32} {pass_:9} {ma * 1e3:12.2f} {mb * 1e3:9.2f} {mb / ma:12.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
