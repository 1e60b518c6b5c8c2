"""Concurrency: Python threads calling fastconv at once (the kernels release the GIL) get the
results of the same calls made one after another; the thread pool survives fork(),
set_num_threads during other calls, and interpreter shutdown with work in flight.

Every scenario that could hang runs in a subprocess with a timeout (a hang fails the test), or
joins its threads with one.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import fastconv
import numpy as np
import pytest
from conftest import rand, run_python
from fastconv import _problem

WORKERS = 6
JOIN_TIMEOUT_S = 120


def _jobs(rng):
    """(name, call) pairs over different ops, algorithms and passes, with fixed operands."""
    f32 = np.float32
    x = rand(rng, (2, 16, 18, 18), f32)
    w = rand(rng, (16, 16, 3, 3), f32)
    gy = rand(rng, (2, 16, 18, 18), f32)
    xd = rand(rng, (2, 16, 18, 18), np.float64)
    wd = rand(rng, (24, 16, 3, 3), np.float64)
    gyd = rand(rng, (2, 24, 9, 9), np.float64)
    wdw = rand(rng, (16, 1, 5, 5), f32)
    x1 = rand(rng, (2, 4, 300), f32)
    w1 = rand(rng, (6, 4, 31), f32)
    wt = rand(rng, (16, 8, 4, 4), f32)
    f0, f1 = rand(rng, (8, 16, 5), f32), rand(rng, (8, 16, 3), f32)
    xb = rand(rng, (1, 24, 300, 150), f32)  # 4.3 MiB of stride phases: split band by band
    wb = rand(rng, (6, 24, 3, 3), f32)
    xp = rand(rng, (3, 8, 21, 21), f32)
    gp = rand(rng, fastconv.max_pool(xp, 3, stride=2).shape, f32)
    jobs = []
    for algo in ("direct", "im2col", "implicit_gemm", "winograd", "fft", "auto"):
        jobs.append((f"conv {algo}", lambda a=algo: fastconv.conv(x, w, padding=1, algo=a)))
        jobs.append(
            (
                f"backward_data {algo}",
                lambda a=algo: fastconv.conv_backward_data(gy, w, x.shape, padding=1, algo=a),
            )
        )
        jobs.append(
            (
                f"backward_weight {algo}",
                lambda a=algo: fastconv.conv_backward_weight(x, gy, w.shape, padding=1, algo=a),
            )
        )
    kw = dict(stride=2, padding=1)
    jobs += [
        ("conv f64 strided", lambda: fastconv.conv(xd, wd, **kw)),
        ("conv phase bands", lambda: fastconv.conv(xb, wb, algo="implicit_gemm", **kw)),
        ("backward_data f64", lambda: fastconv.conv_backward_data(gyd, wd, xd.shape, **kw)),
        ("backward_weight f64", lambda: fastconv.conv_backward_weight(xd, gyd, wd.shape, **kw)),
        ("depthwise", lambda: fastconv.conv(x, wdw, padding=2, groups=16, algo="depthwise")),
        ("conv1d fft", lambda: fastconv.conv1d(x1, w1, padding="same", algo="fft")),
        ("conv_transpose", lambda: fastconv.conv_transpose(x, wt, stride=2, padding=1)),
        ("separable_conv", lambda: fastconv.separable_conv(x, [f0, f1], padding=(2, 1))),
        ("max_pool", lambda: fastconv.max_pool(xp, 3, stride=2, return_indices=True)),
        ("max_pool_backward", lambda: fastconv.max_pool_backward(gp, xp, 3, stride=2)),
        ("avg_pool", lambda: fastconv.avg_pool(xp, 3, stride=2, padding=1)),
        ("avg_pool_backward", lambda: fastconv.avg_pool_backward(gp, xp.shape, 3, stride=2)),
        ("upsample_linear", lambda: fastconv.upsample_linear(xp, 2)),
        ("pixel_shuffle", lambda: fastconv.pixel_shuffle(xp[:, :8], 2)),
        ("global_avg_pool", lambda: fastconv.global_avg_pool(xp)),
    ]
    return jobs


def _as_tuple(result):
    return tuple(np.array(r) for r in (result if isinstance(result, tuple) else (result,)))


def _same(a, b):
    return len(a) == len(b) and all(u.tobytes() == v.tobytes() for u, v in zip(a, b))


def _run_concurrently(jobs, rounds, extra=None):
    """Each job `rounds` times, spread over WORKERS threads in an interleaved order; returns
    [(name, result)]. `extra` runs alongside on a thread of its own until the jobs finish."""
    order = [jobs[(i * 7) % len(jobs)] for i in range(rounds * len(jobs))]
    stop = threading.Event()
    side = None
    if extra is not None:
        side = threading.Thread(target=extra, args=(stop,), daemon=True)
        side.start()
    try:
        with ThreadPoolExecutor(WORKERS) as ex:
            futures = [(name, ex.submit(call)) for name, call in order]
            results = [(name, f.result(timeout=JOIN_TIMEOUT_S)) for name, f in futures]
    finally:
        stop.set()
        if side is not None:
            side.join(JOIN_TIMEOUT_S)
            assert not side.is_alive(), "the side thread hung"
    return results


def test_threads_calling_different_ops_match_serial(rng, restore_threads):
    fastconv.set_num_threads(2)
    jobs = _jobs(rng)
    serial = {name: _as_tuple(call()) for name, call in jobs}
    for name, result in _run_concurrently(jobs, rounds=4):
        assert _same(_as_tuple(result), serial[name]), f"{name}: concurrent != serial"


def test_set_num_threads_during_calls(rng, restore_threads):
    """One thread changes the thread count over and over while others run kernels: no crash,
    no hang, and (every algorithm being bitwise the same for any thread count) the serial
    results."""
    fastconv.set_num_threads(2)
    jobs = _jobs(rng)
    serial = {name: _as_tuple(call()) for name, call in jobs}
    changes = []

    def churn(stop):
        n = 0
        while not stop.is_set():
            fastconv.set_num_threads(1 + n % 4)
            n += 1
        changes.append(n)

    for name, result in _run_concurrently(jobs, rounds=3, extra=churn):
        assert _same(_as_tuple(result), serial[name]), f"{name}: != serial"
    assert changes and changes[0] > 1
    fastconv.set_num_threads(3)  # the pool is rebuilt at the new size and still works
    for name, call in jobs[:6]:
        assert _same(_as_tuple(call()), serial[name]), name


def test_call_caches_evicting_under_threads(rng, monkeypatch):
    """Many distinct call signatures from several threads with a tiny cache: the eviction of
    the oldest entry raced (KeyError from `del cache[next(iter(cache))]` when two threads
    evicted the same entry)."""
    monkeypatch.setattr(_problem, "_LIMIT", 4)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        w = np.ones((1, 1, 1))

        def work(i):
            for j in range(150):
                n = 1 + (i * 150 + j) % 37
                y = fastconv.conv(np.full((1, 1, n), float(j)), w)
                assert y.shape == (1, 1, n) and y[0, 0, 0] == j

        with ThreadPoolExecutor(WORKERS) as ex:
            for f in [ex.submit(work, i) for i in range(WORKERS)]:
                f.result(timeout=JOIN_TIMEOUT_S)
    finally:
        sys.setswitchinterval(interval)
        _problem.clear_caches()


def test_concurrent_autotune_keeps_one_choice(rng, tmp_path, monkeypatch, restore_threads):
    """Threads autotuning the same new problem at once measure it once and all run the one
    winner (bitwise the same results); the call signature keeps that choice."""
    from fastconv import autotune

    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    _problem.clear_caches()
    measured = []
    real = autotune.measure

    def counting(problem, backend, candidates):
        measured.append(problem.pass_)
        return real(problem, backend, candidates)

    monkeypatch.setattr(autotune, "measure", counting)
    fastconv.set_num_threads(1)
    x, w = rand(rng, (1, 8, 14, 14), np.float32), rand(rng, (8, 8, 3, 3), np.float32)
    barrier = threading.Barrier(4)

    def call(_):
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        return fastconv.conv(x, w, padding=1, algo="autotune")

    try:
        with ThreadPoolExecutor(4) as ex:
            results = [
                f.result(timeout=JOIN_TIMEOUT_S) for f in [ex.submit(call, i) for i in range(4)]
            ]
        assert measured == ["forward"], measured
        chosen = fastconv.explain(x, w, padding=1, algo="autotune").algo
        again = fastconv.conv(x, w, padding=1, algo=chosen)
        for r in results:
            assert r.tobytes() == again.tobytes()
    finally:
        _problem.clear_caches()


# ---- fork

FORK_CODE = textwrap.dedent(
    """
    import multiprocessing as mp, os, sys, threading
    import numpy as np
    import fastconv

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 24, 24))
    w = rng.standard_normal((16, 16, 3, 3))
    ALGOS = ("direct", "im2col", "implicit_gemm", "winograd", "fft")
    fastconv.set_num_threads(2)
    want = {a: fastconv.conv(x, w, padding=1, algo=a) for a in ALGOS}  # the pool runs

    def child_checks():
        ok = fastconv.get_num_threads() == 2
        for a in ALGOS:
            ok = ok and np.array_equal(fastconv.conv(x, w, padding=1, algo=a), want[a])
        fastconv.set_num_threads(3)  # a new pool in the child
        ok = ok and np.array_equal(fastconv.conv(x, w, padding=1, algo="fft"), want["fft"])
        return ok

    def fork_and_check(label):
        pid = os.fork()
        if pid == 0:
            try:
                code = 0 if child_checks() else 3
            except BaseException as e:
                print(label, "child:", repr(e), file=sys.stderr, flush=True)
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code == 0, f"{label}: child exited with {code}"

    fork_and_check("after threaded calls")

    # fork while other threads are inside kernels (holding the pool, its lock, plan caches)
    stop = threading.Event()
    def busy(a):
        while not stop.is_set():
            fastconv.conv(x, w, padding=1, algo=a)
    threads = [threading.Thread(target=busy, args=(a,)) for a in ("implicit_gemm", "winograd")]
    for t in threads:
        t.start()
    for i in range(10):
        fork_and_check(f"fork {i} during calls")
    stop.set()
    for t in threads:
        t.join()

    def mp_child(q):
        q.put(bool(child_checks()))

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=mp_child, args=(q,)) for _ in range(3)]
    for p in procs:
        p.start()
    answers = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(120)
    assert answers == [True] * 3 and all(p.exitcode == 0 for p in procs), (answers, procs)
    with ctx.Pool(2) as pool:
        got = pool.starmap(fastconv.conv, [(x, w)] * 4)
    assert all(np.array_equal(g, fastconv.conv(x, w)) for g in got)
    print("fork ok")
    """
)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no os.fork on this platform")
def test_fork_after_threaded_use():
    proc = run_python(FORK_CODE, timeout=240)
    assert proc.returncode == 0 and "fork ok" in proc.stdout, proc.stdout + proc.stderr


# ---- interpreter shutdown with work in flight

SHUTDOWN_CODE = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    import fastconv

    x = np.random.default_rng(0).random((4, 32, 48, 48), dtype=np.float32)
    w = np.random.default_rng(1).random((32, 32, 3, 3), dtype=np.float32)
    started = threading.Semaphore(0)

    def loop(call):
        started.release()
        while True:
            call()

    calls = [
        lambda a=a: fastconv.conv(x, w, padding=1, algo=a)
        for a in ("direct", "im2col", "implicit_gemm", "winograd", "fft")
    ] + [
        lambda: fastconv.conv_backward_weight(x, x, w.shape, padding=1),
        lambda: fastconv.max_pool(x, 3, return_indices=True),
        lambda: fastconv.upsample_linear(x, 2),
    ]
    for c in calls:
        threading.Thread(target=loop, args=(c,), daemon=True).start()
    for _ in calls:
        started.acquire()
    time.sleep(float(sys.argv[1]))
    print("main exits", flush=True)
    """
)


@pytest.mark.parametrize("delay", ["0.05", "0.3", "0.7"])
def test_interpreter_exit_with_daemon_threads_in_kernels(delay, tmp_path):
    """The main thread exits while daemon threads are inside kernels: the process exits 0 (it
    aborted: 'terminate called without an active exception', see csrc/bindings/without_gil.h)."""
    script = tmp_path / "shutdown.py"
    script.write_text(SHUTDOWN_CODE)
    import subprocess

    for attempt in range(3):
        proc = subprocess.run(
            [sys.executable, str(script), delay], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, (
            f"attempt {attempt}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        assert "main exits" in proc.stdout


def test_interpreter_exit_with_non_daemon_threads_finishing():
    """Non-daemon threads are joined at exit: their calls complete and the process exits 0."""
    code = textwrap.dedent(
        """
        import threading
        import numpy as np
        import fastconv

        x = np.ones((2, 16, 40, 40), np.float32)
        w = np.ones((16, 16, 3, 3), np.float32)
        out = []
        def work():
            for _ in range(5):
                out.append(float(fastconv.conv(x, w, padding=1).sum()))
        for _ in range(3):
            threading.Thread(target=work).start()
        print("main exits", flush=True)
        """
    )
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the pool's workers bound to CPUs (FASTCONV_PIN_THREADS, csrc/common/thread_pool.cc)

PIN_CODE = textwrap.dedent(
    """
    import json, os
    import numpy as np
    import fastconv

    allowed = sorted(os.sched_getaffinity(0))
    cpus = [allowed[i] for i in json.loads(os.environ["CPUS"])]
    os.sched_setaffinity(0, cpus)  # the process may run on these; threads made later inherit
    fastconv.set_num_threads(int(os.environ["THREADS"]))
    before = set(os.listdir("/proc/self/task"))
    x = np.ones((1, 8, 64, 64), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    assert float(fastconv.conv(x, w, padding=1, algo="direct")[0, 0, 10, 10]) == 72.0
    new = sorted(set(os.listdir("/proc/self/task")) - before)
    workers = [sorted(os.sched_getaffinity(int(t))) for t in new]
    print(json.dumps([cpus, sorted(os.sched_getaffinity(0)), workers]))
    """
)


def _worker_affinity(threads, pin=None):
    """(the process's CPUs, the caller's after the call, each new worker's) on the first two
    CPUs this process may run on."""
    env = {"THREADS": str(threads), "CPUS": "[0, 1]", "FASTCONV_PIN_THREADS": pin or "auto"}
    proc = run_python(PIN_CODE, env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="CPU affinity needs Linux and 2+ CPUs this process may run on",
)
def test_pool_workers_bound_to_cpus():
    """A pool with as many threads as allowed CPUs binds worker i to the (i + 1)-th CPU and
    leaves the caller free (the worker moves to the other CPU where the call found the caller on
    its own: below); other sizes stay unbound unless FASTCONV_PIN_THREADS=1 (round-robin over the
    allowed CPUs); FASTCONV_PIN_THREADS=0 never binds."""
    cpus, main, workers = _worker_affinity(2)
    assert workers in ([[cpus[1]]], [[cpus[0]]]) and main == cpus, (cpus, main, workers)
    cpus, _, workers = _worker_affinity(2, pin="0")
    assert workers == [cpus], workers
    cpus, _, workers = _worker_affinity(3)  # 3 threads on 2 CPUs: not bound
    assert workers == [cpus, cpus], workers
    cpus, _, workers = _worker_affinity(3, pin="1")
    assert workers == [[cpus[1]], [cpus[0]]], workers


FOLLOW_CODE = textwrap.dedent(
    """
    import json, os
    import numpy as np
    import fastconv

    cpus = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cpus)
    fastconv.set_num_threads(2)
    x = np.ones((1, 8, 64, 64), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    before = set(os.listdir("/proc/self/task"))
    fastconv.conv(x, w, padding=1, algo="direct")
    (worker,) = [int(t) for t in set(os.listdir("/proc/self/task")) - before]
    seen = []
    for cpu in cpus + cpus:  # the caller on each CPU in turn (bound for the check, then freed)
        os.sched_setaffinity(0, [cpu])
        y = fastconv.conv(x, w, padding=1, algo="direct")
        assert float(y[0, 0, 10, 10]) == 72.0
        seen.append([cpu, sorted(os.sched_getaffinity(worker))])
        os.sched_setaffinity(0, cpus)
    print(json.dumps(seen))
    """
)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="CPU affinity needs Linux and 2+ CPUs this process may run on",
)
def test_pool_worker_leaves_the_callers_cpu():
    """The caller's thread is not bound, so the scheduler may run it on the bound worker's CPU,
    where the two would share one CPU while the other idles: each job first moves a worker found
    on the caller's CPU to the one left free (csrc/common/thread_pool.cc, follow_caller)."""
    proc = run_python(FOLLOW_CODE, {"FASTCONV_PIN_THREADS": "auto"}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    for cpu, worker in seen:
        assert len(worker) == 1 and worker != [cpu], seen
    assert {w[0] for _, w in seen} == {c for c, _ in seen}, seen  # it went both ways
