"""Per-call overhead of fastconv.jax on tiny inputs (CPU, 1 thread): jitted conv / max_pool /
avg_pool forward, jitted gradients, and eager calls; median and minimum microseconds per call
over interleaved rounds (on a busy machine the minimum is the stable figure).
Usage: python benchmarks/jax_call_overhead.py [ROUNDS]"""

from __future__ import annotations

import statistics
import sys
import time

import fastconv
import fastconv.jax as fcj
import jax
import jax.numpy as jnp
import numpy as np


def main(rounds: int) -> None:
    fastconv.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 2, 6, 6), dtype=np.float32))
    w = jnp.asarray(rng.standard_normal((2, 2, 3, 3), dtype=np.float32))
    conv = jax.jit(lambda x, w: fcj.conv(x, w, padding=1))
    max_pool = jax.jit(lambda x: fcj.max_pool(x, 2))
    avg_pool = jax.jit(lambda x: fcj.avg_pool(x, 2))
    conv_grad = jax.jit(jax.grad(lambda x, w: jnp.sum(fcj.conv(x, w, padding=1)), (0, 1)))
    pool_grad = jax.jit(jax.grad(lambda x: jnp.sum(fcj.max_pool(x, 2))))
    cases = {
        "conv jit": lambda: conv(x, w),
        "max_pool jit": lambda: max_pool(x),
        "avg_pool jit": lambda: avg_pool(x),
        "conv grad jit": lambda: conv_grad(x, w),
        "max_pool grad jit": lambda: pool_grad(x),
        "conv eager": lambda: fcj.conv(x, w, padding=1),
        "max_pool eager": lambda: fcj.max_pool(x, 2),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for f in cases.values():  # compile and warm
        for _ in range(20):
            jax.block_until_ready(f())
    for _ in range(rounds):
        for name, f in cases.items():
            n = 50 if "eager" in name else 200
            t = time.perf_counter()
            for _ in range(n):
                jax.block_until_ready(f())
            times[name].append((time.perf_counter() - t) / n * 1e6)
    for name, v in times.items():
        print(f"{name:18s} median {statistics.median(v):8.1f} us   min {min(v):8.1f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
