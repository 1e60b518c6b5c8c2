"""A long fuzz campaign over the public API (docs/reliability-fuzzing.md), crash- and hang-safe.

    python tests/fuzz_campaign.py [--examples N] [--families conv,pool,...] [--seed S]
                                  [--timeout SECONDS] [--out DIR]

Runs tests/fuzz_cases.py's families in child processes, N examples per child and family, each
child with its own seed; a child that dies (signal, faulthandler's per-call timeout, a hang
past --timeout) is reported with the case it was running (the child logs each case before
calling it) and a fresh child carries on. Failing cases (wrong result, undocumented exception,
modified input, missing error) are collected, grouped by message, with one example each.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CHILD = r"""
import json, os, sys, traceback, warnings
sys.path.insert(0, {tests!r})
warnings.simplefilter("ignore")
from hypothesis import HealthCheck, given, settings, seed
from fuzz_cases import FAMILIES, run_case
log = open({log!r}, "a", buffering=1)
family, n, s = {family!r}, {n}, {seed}
counts = dict(ok=0, error=0, fail=0)

@seed(s)
@settings(max_examples=n, database=None, deadline=None, derandomize=False,
          suppress_health_check=list(HealthCheck))
@given(FAMILIES[family]())
def run(case):
    log.write(json.dumps(dict(start=repr(case))) + "\n")
    try:
        outcome = run_case(case)
        counts["ok" if outcome.startswith("ok") else "error"] += 1
        log.write(json.dumps(dict(done=outcome)) + "\n")
    except Exception as e:
        counts["fail"] += 1
        msg = str(e).split("; fastconv.")[0][:300]
        log.write(json.dumps(dict(fail=msg, case=repr(case),
                                  tb=traceback.format_exc()[-1500:])) + "\n")

run()
log.write(json.dumps(dict(summary=counts)) + "\n")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--families", default="conv,pool,resample,tiled,separable")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default="/tmp/fastconv-fuzz")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FASTCONV_NUM_THREADS=os.environ.get("FASTCONV_NUM_THREADS", "2"))
    totals = collections.Counter()
    failures: dict = {}
    crashes = []
    for r in range(args.rounds):
        for family in args.families.split(","):
            s = args.seed * 1000 + r
            log = out / f"{family}-{s}.jsonl"
            log.unlink(missing_ok=True)
            code = CHILD.format(
                tests=str(TESTS), log=str(log), family=family, n=args.examples, seed=s
            )
            t0 = time.time()
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    timeout=args.timeout,
                    capture_output=True,
                    text=True,
                )
                rc, err = proc.returncode, proc.stderr
            except subprocess.TimeoutExpired as e:
                rc, err = "timeout", (e.stderr or b"").decode(errors="replace")
            lines = []
            for x in log.read_text().splitlines() if log.exists() else []:
                try:
                    lines.append(json.loads(x))
                except ValueError:
                    pass  # a line cut short by the crash
            started = [x["start"] for x in lines if "start" in x]
            summary = next((x["summary"] for x in lines if "summary" in x), None)
            for x in lines:
                if "fail" in x:
                    key = (family, x["fail"][:160])
                    failures.setdefault(key, [0, x["case"], x["tb"]])[0] += 1
            totals[family] += len(started)
            if rc != 0 or summary is None:
                crashes.append((family, s, rc, started[-1] if started else None, err[-2000:]))
            print(
                f"{family} seed {s}: {len(started)} cases in {time.time() - t0:.0f}s, "
                f"rc {rc}, {summary}",
                flush=True,
            )
    print(f"\nexamples run: {dict(totals)}, total {sum(totals.values())}")
    print(f"crashes/hangs: {len(crashes)}")
    for family, s, rc, case, err in crashes:
        print(f"--- {family} seed {s} rc {rc}\n    last case: {case}\n{err}")
    print(f"distinct failures: {len(failures)}")
    for (family, msg), (count, case, tb) in sorted(failures.items()):
        print(f"--- [{family}] x{count}: {msg}\n    {case}\n{tb}")


if __name__ == "__main__":
    main()
