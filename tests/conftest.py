"""Shared test helpers: seeded rng, dtype casts, oracle tolerances, torch marker, ISA runs."""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # `import reference` must work under any pytest import mode
    sys.path.insert(0, str(TESTS_DIR))

try:
    import torch
except ImportError:  # torch is an optional extra
    torch = None
if torch is not None and getattr(torch, "__file__", None) is None:
    # Without torch installed, `import torch` would find a tests/torch/ folder (tests/ is on
    # sys.path) as a namespace package: that is no torch. (The adapter's tests live in
    # tests/torch_adapter/ for this reason.)
    del sys.modules["torch"]
    torch = None

# algo="autotune" stores its winners in the user's cache directory: never the real one in tests
# (subprocesses inherit it; tests/test_autotune.py gives each test its own).
# Removed when the session ends (each run used to leave one behind in the temp dir).
_TEST_CACHE_DIR = tempfile.mkdtemp(prefix="fastconv-test-cache-")
os.environ["FASTCONV_CACHE_DIR"] = str(Path(_TEST_CACHE_DIR))
atexit.register(shutil.rmtree, _TEST_CACHE_DIR, ignore_errors=True)

requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

DTYPES = (np.float32, np.float64)
ISA_LEVELS = ("avx512", "avx2", "scalar")
_ISA_RANK = {"scalar": 0, "avx2": 1, "avx512": 2}


@functools.lru_cache(maxsize=None)
def _isa_levels():
    from fastconv import _C

    cpu = _C.cpu_info()
    return cpu["detected_isa"], cpu["built_isa"]


def isa_top():
    """The highest level that runs its own micro-kernels here: the CPU has it and this build
    compiled it (FASTCONV_AVX512=OFF builds stop at avx2)."""
    return min(_isa_levels(), key=_ISA_RANK.__getitem__)


def skip_unless_isa_runs(isa):
    """Skip a per-level case whose level would only fall back to a lower one here (that level's
    own case runs those kernels; test_isa.py's fallback test checks the fallback itself)."""
    if _ISA_RANK[isa] > _ISA_RANK[isa_top()]:
        detected, built = _isa_levels()
        pytest.skip(
            f"FASTCONV_ISA={isa} falls back to {isa_top()} here (CPU: {detected}, "
            f"build: up to {built})"
        )


def pytest_configure(config):
    # pyproject registers it too; registering twice is harmless and keeps --strict-markers happy.
    config.addinivalue_line("markers", "slow: long-running test")
    config.addinivalue_line("markers", "large: needs several GiB of memory (tests/test_large.py)")


# ---- memory


def available_memory_bytes():
    """MemAvailable + SwapFree from /proc/meminfo, or None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
    except OSError:
        return None
    kib = int(fields["MemAvailable"].split()[0]) + int(fields.get("SwapFree", "0 kB").split()[0])
    return kib * 1024


def require_memory(nbytes, what=""):
    """Skips the calling test, saying why, unless `nbytes` of memory are available now."""
    available = available_memory_bytes()
    if available is None:
        pytest.skip("no /proc/meminfo: cannot tell whether the memory is there")
    if available < nbytes:
        pytest.skip(
            f"{what or 'this test'} needs {nbytes / 2**30:.1f} GiB of memory, "
            f"{available / 2**30:.1f} GiB available"
        )


# ---- data


@pytest.fixture
def rng(request):
    """A generator seeded from the test id: reproducible per test, different across tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def to_dtype(a, dtype):
    """C-contiguous copy of `a` in `dtype` (the values the library sees)."""
    return np.ascontiguousarray(np.asarray(a), dtype=dtype)


def rand(rng, shape, dtype=np.float64, low=-1.0, high=1.0):
    """Uniform values in [low, high) rounded to `dtype`; the oracle then sees the rounded values."""
    return to_dtype(rng.uniform(low, high, size=shape), dtype)


@pytest.fixture
def poisoned_outputs(monkeypatch):
    """Outputs start as NaN, so an element an algorithm forgets to write fails the comparison."""
    from fastconv._problem import clear_caches
    from fastconv.backends.cpu import CpuBackend

    original = CpuBackend.empty

    def empty(self, call, shape, dtype=None):
        obj, handle = original(self, call, shape, dtype)
        if (dtype or call.dtype).startswith("float"):
            obj[...] = np.nan  # NumPy arrays and torch tensors alike
        return obj, handle

    monkeypatch.setattr(CpuBackend, "empty", empty)
    # Runners cached by earlier calls hold the real allocator: start afresh, and leave no
    # poisoned allocator in the caches behind.
    clear_caches()
    yield
    clear_caches()


# ---- tolerances
#
# The oracle always runs in float64 on the exact values the library received (float32 inputs are
# upcast losslessly). With scale = max|expected| and L = the number of products summed into one
# output (the reduction length):
#   float64: |got - want| <= 1e-10 * scale  (rtol ~1e-10: any summation order or transform
#            passes, any indexing bug fails).
#   float32: |got - want| <= eps32 * scale * (F32_SUM * sqrt(L) + F32_TRANSFORM), where
#     - F32_SUM * sqrt(L): rounding errors of a length-L sum grow like a random walk, so sqrt(L)
#       ulps of the output's magnitude; F32_SUM = 8 covers any summation order or blocking;
#     - F32_TRANSFORM = 512 ulps: the transform-domain algorithms `auto` may pick (winograd
#       F(6x6,3x3), fft) add an error set by their transforms' conditioning rather than by L; a
#       float32 F(6x6,3x3) measured ~250 ulps of scale against this oracle (single channel).
#     Any real bug (wrong tap, offset, channel or padding) is off by ~10% of scale or more.
F64_RTOL = 1e-10
F32_SUM = 8.0
F32_TRANSFORM = 512.0


def tolerance(dtype, reduction, scale, factor=None):
    """Absolute tolerance for comparing a `dtype` result against the float64 oracle."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return F64_RTOL * scale
    f = F32_SUM if factor is None else factor
    eps = float(np.finfo(np.float32).eps)
    return eps * scale * (f * math.sqrt(max(reduction, 1)) + F32_TRANSFORM)


def error_ratios(x_shape, w_shape, seed, passes, **kw):
    """Per pass, winograd's max |error| over implicit_gemm's against the float64 oracle, on
    float32 operands uniform in [-1, 1] drawn in the order x, w, grad_y (grad_y shaped like the
    output). The transform algorithms' accuracy tests bound these ratios."""
    import fastconv
    import reference as ref

    r = np.random.default_rng(seed)
    x = r.uniform(-1, 1, x_shape).astype(np.float32)
    w = r.uniform(-1, 1, w_shape).astype(np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want_y = ref.conv(x64, w64, **kw)
    gy = r.uniform(-1, 1, want_y.shape).astype(np.float32)
    gy64 = gy.astype(np.float64)
    runs = {
        "forward": (lambda a: fastconv.conv(x, w, algo=a, **kw), want_y),
        "backward_data": (
            lambda a: fastconv.conv_backward_data(gy, w, x.shape, algo=a, **kw),
            lambda: ref.conv_backward_data(gy64, w64, x.shape, **kw),
        ),
        "backward_weight": (
            lambda a: fastconv.conv_backward_weight(x, gy, w.shape, algo=a, **kw),
            lambda: ref.conv_backward_weight(x64, gy64, w.shape, **kw),
        ),
    }
    ratios = {}
    for name in passes:
        run, want = runs[name]
        want = want() if callable(want) else want
        base = float(np.abs(run("implicit_gemm") - want).max())
        ratios[name] = float(np.abs(run("winograd") - want).max()) / base
    return ratios


def assert_close(got, want, dtype=None, reduction=1, factor=None, scale=None, err_msg=""):
    """Compare a library result with the oracle under the tolerance rule above (NaN == NaN)."""
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    dtype = got.dtype if dtype is None else np.dtype(dtype)
    if scale is None:
        finite = want[np.isfinite(want)]
        scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    atol = tolerance(dtype, reduction, max(scale, 1e-30), factor)
    np.testing.assert_allclose(
        got.astype(np.float64), want, rtol=0, atol=atol, equal_nan=True, err_msg=err_msg
    )


def assert_passes_match(lib, algo, x, w, b, kw, dtype, rng):
    """Forward, backward data and weight gradient of `lib` (fastconv, or a FastconvProcess) with
    algo against the oracle, each under the tolerance for its reduction (C/G x taps, K/G x taps,
    the output positions); returns the forward's oracle result."""
    import reference as ref  # the oracle, beside this file

    w_shape, taps = w.shape, int(np.prod(w.shape[2:]))
    groups = kw.get("groups", 1)
    want = ref.conv(x, w, b, **kw)
    assert_close(lib.conv(x, w, b, algo=algo, **kw), want, dtype, w_shape[1] * taps)
    gy = rand(rng, want.shape, dtype)
    gx = lib.conv_backward_data(gy, w, x.shape, algo=algo, **kw)
    want_gx = ref.conv_backward_data(gy, w, x.shape, **kw)
    assert_close(gx, want_gx, dtype, w_shape[0] // groups * taps)
    gw = lib.conv_backward_weight(x, gy, w_shape, algo=algo, **kw)
    positions = max(int(np.prod(want.shape)) // max(want.shape[1], 1), 1)
    assert_close(gw, ref.conv_backward_weight(x, gy, w_shape, **kw), dtype, positions)
    return want


def assert_result_type(y, dtype):
    """Library results are plain ndarrays of the input's dtype."""
    assert type(y) is np.ndarray, type(y)
    assert y.dtype == np.dtype(dtype), y.dtype


# ---- errors


@contextlib.contextmanager
def raises_naming(exc_type, *names):
    """pytest.raises(exc_type) whose message names every name (each a regex, `a|b` for either)."""
    with pytest.raises(exc_type) as info:
        yield info
    msg = str(info.value)
    for name in names:
        pattern = rf"(?<![A-Za-z0-9_])(?:{name})(?![A-Za-z0-9_])"
        assert re.search(pattern, msg), (
            f"{exc_type.__name__} message does not name {name!r}: {msg!r}"
        )


# ---- subprocesses (FASTCONV_ISA is read once, at import time)


def run_python(code, env=None, timeout=300):
    """Run `code` in a fresh interpreter with extra environment variables."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(TESTS_DIR),
    )


def run_with_isa(code, isa, timeout=300):
    """Run `code` in a subprocess with FASTCONV_ISA=isa; fails the test if it does not exit 0."""
    proc = run_python(code, {"FASTCONV_ISA": isa}, timeout)
    assert proc.returncode == 0, (
        f"FASTCONV_ISA={isa}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


# ---- fastconv in a process of its own, for knobs read once per process (common/tuning.h:
# FASTCONV_WINOGRAD_TILE, FASTCONV_WINOGRAD_BLOCK_BYTES, FASTCONV_WORKSPACE_LIMIT)

# The child: reads (name, args, kwargs) pickles from stdin, runs fastconv.<name>(*args, **kwargs)
# and answers (True, result) or (False, exception). Outputs start as NaN, as under
# `poisoned_outputs`. fd 1 goes to stderr so that nothing but answers reaches the pipe.
_FASTCONV_CHILD = """
import os, pickle, sys
import numpy as np
import fastconv
from fastconv.backends.cpu import CpuBackend

answers = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
original_empty = CpuBackend.empty

def poisoned_empty(self, call, shape, dtype=None):
    obj, handle = original_empty(self, call, shape, dtype)
    if (dtype or call.dtype).startswith("float"):
        obj[...] = np.nan
    return obj, handle

CpuBackend.empty = poisoned_empty
while True:
    try:
        name, args, kwargs = pickle.load(sys.stdin.buffer)
    except EOFError:
        break
    try:
        answer = (True, getattr(fastconv, name)(*args, **kwargs))
    except Exception as e:
        answer = (False, e)
    try:
        pickle.dump(answer, answers)
    except Exception as e:  # an unpicklable result or exception
        pickle.dump((False, RuntimeError(f"{name}: {e!r} ({answer!r})")), answers)
    answers.flush()
"""


def _canonical_dtype(value):
    """An unpickled array viewed with the canonical dtype object (see _FASTCONV_CHILD)."""
    return value.view(np.dtype(value.dtype.str)) if isinstance(value, np.ndarray) else value


class FastconvProcess:
    """fastconv in a fresh interpreter with extra environment variables, called like the module:
    `proc.conv(x, w, padding=1)` runs fastconv.conv there and returns its result or raises its
    exception here. Outputs start as NaN there (as under `poisoned_outputs`)."""

    def __init__(self, env):
        self.env = dict(env)
        full_env = dict(os.environ)
        full_env.update(self.env)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _FASTCONV_CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=full_env,
            cwd=str(TESTS_DIR),
        )

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def _call(self, name, args, kwargs):
        pickle.dump((name, args, kwargs), self._proc.stdin)
        self._proc.stdin.flush()
        try:
            ok, value = pickle.load(self._proc.stdout)
        except EOFError:
            raise RuntimeError(
                f"fastconv process with {self.env} exited with {self._proc.wait()} in {name}"
            ) from None
        if not ok:
            raise value
        if isinstance(value, tuple):
            return tuple(_canonical_dtype(v) for v in value)
        return _canonical_dtype(value)

    def close(self):
        self._proc.stdin.close()
        self._proc.wait(timeout=60)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture(scope="module")
def fastconv_with_env():
    """fastconv_with_env(NAME=value, ...): a FastconvProcess with those variables, one per
    distinct set, shared by the module's tests and closed after them."""
    processes = {}

    def get(**env):
        key = tuple(sorted(env.items()))
        if key not in processes:
            processes[key] = FastconvProcess(env)
        return processes[key]

    yield get
    for proc in processes.values():
        proc.close()


@pytest.fixture(params=ISA_LEVELS)
def isa(request):
    """Each FASTCONV_ISA level that runs its own micro-kernels here (the others skip)."""
    skip_unless_isa_runs(request.param)
    return request.param


def same_at_thread_counts(call, counts=(1, 2, 3)):
    """call() at each thread count (the library's count put back after): asserts every result is
    bit-identical to the first (work split over threads, sums in a fixed order) and returns it."""
    import fastconv

    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(counts[0])
        first = np.asarray(call())
        for threads in counts[1:]:
            fastconv.set_num_threads(threads)
            np.testing.assert_array_equal(first, call(), err_msg=f"{threads} threads")
    finally:
        fastconv.set_num_threads(before)
    return first


@pytest.fixture
def restore_threads():
    """Put the library's thread count back after a test changes it."""
    import fastconv

    before = fastconv.get_num_threads()
    yield before
    fastconv.set_num_threads(before)


# ---- which algorithm serves which problem
#
# Written independently of the library's own `unsupported_reason`: a test calls the algorithm
# where this says it applies (and compares against the oracle) and otherwise asserts the forced
# call raises NotImplementedError, so neither a silent refusal nor a silent wrong answer passes.


def _conv_padding(kw, w_shape, dilation, rank):
    """(low, high) padding per dim of the convolution a stride-1 call runs (the oracle's
    resolve_padding; at stride 1 "same" does not depend on the input's size), a transposed
    call's output_padding taken off the high side (its conv's geometry)."""
    from reference import per_dim, resolve_padding

    pairs = resolve_padding(kw.get("padding", 0), [1] * rank, w_shape[2:], 1, dilation)
    extra = per_dim(kw.get("output_padding", 0), rank)
    return [(lo, hi - e) for (lo, hi), e in zip(pairs, extra)]


def algorithm_applies(algo, conv_pass, w_shape, kw):
    """Whether `algo` serves `conv_pass` ("forward" | "backward_data" | "backward_weight" of the
    convolution that runs; a transposed conv's forward is its conv's backward_data) of a conv
    with weight shape `w_shape` and keyword arguments `kw` (stride, dilation, groups, ...)."""
    rank = len(w_shape) - 2
    from reference import per_dim  # the oracle's normalisation (tests/ is on sys.path)

    stride = per_dim(kw.get("stride", 1), rank)
    dilation = per_dim(kw.get("dilation", 1), rank)
    if algo == "winograd":
        # F(m,r) / F(mxm,rxr), r = 2 or 3: 1-D and 2-D, the same r = ceil(kernel / stride) taps
        # per dim (strided layers run on their stride phases); dilation 1, or stride 1 with every
        # padding a multiple of the dilation (dilated layers run on their dilation phases).
        taps = {-(-k // s) for k, s in zip(w_shape[2:], stride)}
        dilated = any(d != 1 for d in dilation)
        if dilated:
            pairs = _conv_padding(kw, w_shape, dilation, rank)
            splittable = all(s == 1 for s in stride) and all(
                lo % d == 0 and hi % d == 0 for (lo, hi), d in zip(pairs, dilation)
            )
        # F(m,3) along one axis (csrc/algo/winograd_axis.h): 3x1x1, 3x1 or 1x3 at stride and
        # dilation 1, one group, no padding along the dims with one tap.
        kernel = tuple(w_shape[2:])
        if kernel in ((3, 1, 1), (3, 1), (1, 3)):
            pairs = _conv_padding(kw, w_shape, dilation, rank)
            flat = all(lo == 0 and hi == 0 for (lo, hi), k in zip(pairs, kernel) if k == 1)
            dense = all(s == 1 for s in stride) and all(d == 1 for d in dilation)
            return flat and dense and kw.get("groups", 1) == 1
        # F(3,7) along a line (csrc/algo/winograd_line.h): 1x7 or 7x1 at stride and dilation 1,
        # one group, no padding across the axis and under 7 along it, 16+ summed channels (the
        # weight gradient: 16+ each side; under 96 tiles it runs implicit GEMM's).
        if kernel in ((1, 7), (7, 1)):
            pairs = _conv_padding(kw, w_shape, dilation, rank)
            flat = all(lo == 0 and hi == 0 for (lo, hi), k in zip(pairs, kernel) if k == 1)
            short = all(0 <= lo < 7 and 0 <= hi < 7 for (lo, hi), k in zip(pairs, kernel) if k == 7)
            dense = all(s == 1 for s in stride) and all(d == 1 for d in dilation)
            summed = {
                "forward": w_shape[1],
                "backward_data": w_shape[0],
                "backward_weight": min(w_shape[:2]),
            }[conv_pass]
            one_group = kw.get("groups", 1) == 1
            return flat and short and dense and one_group and summed >= 16
        if rank == 3:
            # 3-D: the 2-D Winograd over the depth taps (csrc/algo/winograd_depth.h): stride and
            # dilation 1 along H and W, the same 2, 3 or 5 taps along both; any depth kernel.
            plane = w_shape[3:]
            unit = tuple(stride[1:]) == (1, 1) and tuple(dilation[1:]) == (1, 1)
            return unit and plane[0] == plane[1] and plane[0] in (2, 3, 5)
        return rank in (1, 2) and (not dilated or splittable) and len(taps) == 1 and taps <= {2, 3}
    if algo == "fft":
        # Strided forward / weight gradient run as stride-1 correlations of stride^d polyphase
        # components, refused where a stride exceeds the dilated kernel extent (some phases would
        # meet no tap). Backward data reads zero-inserted grad_y: any stride. Dilation always.
        extent = [(k - 1) * d + 1 for k, d in zip(w_shape[2:], dilation)]
        return conv_pass == "backward_data" or all(s <= e for s, e in zip(stride, extent))
    if algo == "depthwise":
        return w_shape[1] == 1  # one input channel per group
    return True


def transposed_conv_pass(pass_):
    """The conv pass a transposed-convolution pass runs."""
    return {"forward": "backward_data", "backward_data": "forward"}.get(pass_, pass_)


def call_or_refused(algo, conv_pass, w_shape, kw, fn):
    """fn() where `algo` applies; else asserts fn raises NotImplementedError and returns None."""
    if algorithm_applies(algo, conv_pass, w_shape, kw):
        return fn()
    with pytest.raises(NotImplementedError, match=algo):
        fn()
    return None
