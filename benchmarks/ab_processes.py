"""A/B of two fastconv builds or settings on a layer suite: two live worker processes take turns,
block by block, so a shared machine's slow spells touch both sides alike.

On the 2-vCPU VMs this project is measured on, the speed of the whole machine drifts by 30-70%
over seconds to minutes (an FMA loop's rate moved between 100 and 160 GFLOP/s on one core), so
timing build A, then build B, in separate runs compares the drift, not the builds. Two builds
cannot share one process either (pybind11 registers each type once per interpreter). Here each
side is a process that stays alive with its inputs ready; the parent asks each in turn for one
timed block (after a pause that lets the other side's pool threads go idle), so every block of
A has a block of B beside it in time.

    python benchmarks/ab_processes.py --suite reference --filter 'res4|dcgan' \\
        --a-env FASTCONV_WINOGRAD_TILE=2 --b-env FASTCONV_WINOGRAD_TILE=4
    python benchmarks/ab_processes.py --suite reference --a-so /tmp/_C_old.so   # vs this build
    python benchmarks/ab_processes.py --suite reference                           # null run

A side is the installed fastconv with its environment plus --a-env / --b-env, or, with --a-so /
--b-so, a temporary copy of the installed package whose _C is that shared object (only _C
differs then: both sides run the same Python code, so a change to the Python layer is compared
through --a-env / --b-env switches or two installs, not here). The
sides take turns in alternating order (A then B, then B then A). Prints each layer and pass's
median block time per side and the ratio A/B (> 1: B is faster), then the geometric mean and
how many rows moved by more than 5%. Run it once with no difference between the sides (the null
run) to see this machine's noise floor: on the 2026-12-06 Xeon VM, 104 reference rows (pools
included) gave a geometric mean of 0.988, 7 rows faster by >5% and 14 slower (A first in every
round, 96 rows: 1.007, 13 and 3).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Worker = subprocess.Popen  # a side: a live worker process

# One side: reads "index pass calls" lines, answers each with the seconds per call of a block.
WORKER = r"""
import os, sys, time
if os.environ.get("FASTCONV_AB_PATH"):
    # this side's copy of the package: an editable install's import hook (a meta path finder)
    # would otherwise redirect `import fastconv` to the checkout whatever sys.path says
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, os.environ["FASTCONV_AB_PATH"])
import fastconv
import fastconv.benchmark.candidates as cand
import fastconv.benchmark.suite as suite
fastconv.set_num_threads(int(sys.argv[2]))
layers = [x for s in sys.argv[1].split(",") for x in suite.load_suite(suite.resolve_suite(s))]
print(fastconv.__file__, flush=True)
current = None
for line in sys.stdin:
    index, pass_, calls = line.split()
    if current is None or current[0] != (index, pass_):
        problem = cand.make_problem(layers[int(index)], pass_, "float32", "cpu")
        call = cand._fastconv_call(problem, None if problem.layer.is_pool else sys.argv[3])
        call()
        current = ((index, pass_), call)
    call = current[1]
    time.sleep(0.012)  # the other side's pool threads stop spinning
    call()  # threads that slept through the pause wake up untimed
    t0 = time.perf_counter()
    for _ in range(int(calls)):
        call()
    print((time.perf_counter() - t0) / int(calls), flush=True)
"""


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"ab_processes: --a-env / --b-env take NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def package_with(so: str, work: Path, side: str) -> str:
    """A copy of the installed fastconv package with _C replaced by `so`; returns the PYTHONPATH
    entry (FASTCONV_AB_PATH) that imports it."""
    import fastconv
    import fastconv._C as built  # this build's module: its file name is the one Python imports

    if not Path(so).is_file():
        raise SystemExit(f"ab_processes: no such shared object: {so}")
    dest = work / side / "fastconv"
    shutil.copytree(Path(fastconv.__file__).parent, dest, ignore=shutil.ignore_patterns("*.so"))
    shutil.copy(so, dest / Path(built.__file__).name)
    if not (dest / "suites").is_dir():  # an editable install's package: the suites of the checkout
        (dest / "suites").mkdir()
        for suite in sorted((ROOT / "benchmarks" / "suites").glob("*.json")):
            shutil.copy(suite, dest / "suites" / suite.name)
    return str(work / side)


def start(
    args: argparse.Namespace, env_extra: dict[str, str], path: str | None
) -> subprocess.Popen:
    env = dict(os.environ, **env_extra)
    if path:
        env["FASTCONV_AB_PATH"] = path
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, args.suite, str(args.threads), args.algo],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    print(f"  side from {proc.stdout.readline().strip()} with {env_extra or 'no extra env'}")
    return proc


def ask(proc: Worker, index: int, pass_: str, calls: int) -> float:
    proc.stdin.write(f"{index} {pass_} {calls}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"ab_processes: a worker died on layer {index} {pass_}")
    return float(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="reference", help="suite names or paths, comma-separated")
    ap.add_argument("--filter", help="only layers whose name matches this regex")
    ap.add_argument("--passes", default="forward,backward_data,backward_weight")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--algo", default="auto", help="the convolutions' algorithm on both sides")
    ap.add_argument("--rounds", type=int, default=7, help="blocks per side and row")
    ap.add_argument("--block-s", type=float, default=0.03, help="seconds per block, about")
    ap.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--a-so", help="side A's _C shared object (default: this build's)")
    ap.add_argument("--b-so", help="side B's _C shared object (default: this build)")
    args = ap.parse_args()

    import fastconv.benchmark.suite as suite  # the installed package, as the workers import it

    layers = [x for s in args.suite.split(",") for x in suite.load_suite(suite.resolve_suite(s))]
    regex = re.compile(args.filter) if args.filter else None
    passes = args.passes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a = start(args, parse_env(args.a_env), args.a_so and package_with(args.a_so, work, "a"))
        b = start(args, parse_env(args.b_env), args.b_so and package_with(args.b_so, work, "b"))
        ratios = []
        for index, layer in enumerate(layers):
            if regex and not regex.search(layer.name):
                continue
            for pass_ in passes:
                if layer.is_pool and pass_ == "backward_weight":
                    continue
                first = ask(a, index, pass_, 1)
                ask(b, index, pass_, 1)
                calls = max(1, int(args.block_s / max(first, 1e-6)))
                ta, tb = [], []
                for r in range(args.rounds):  # A first in even rounds, B first in odd ones
                    if r % 2:
                        tb.append(ask(b, index, pass_, calls))
                    ta.append(ask(a, index, pass_, calls))
                    if not r % 2:
                        tb.append(ask(b, index, pass_, calls))
                ma, mb = statistics.median(ta), statistics.median(tb)
                ratios.append(ma / mb)
                print(
                    f"{layer.name:42s} {pass_:16s} A {ma * 1e3:9.3f} ms  B {mb * 1e3:9.3f} ms"
                    f"  A/B {ma / mb:.3f}",
                    flush=True,
                )
        for proc in (a, b):
            proc.stdin.close()
            proc.wait()
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        slower = sum(r < 0.95 for r in ratios)
        faster = sum(r > 1.05 for r in ratios)
        print(
            f"geometric mean A/B {geo:.3f} over {len(ratios)} rows; B faster by >5% on {faster},"
            f" slower by >5% on {slower} (compare with a null run's counts)"
        )


if __name__ == "__main__":
    main()
