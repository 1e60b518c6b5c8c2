"""The packed GEMM engine (_C.gemm, _C.gemm_batched) vs a float64 NumPy matmul: awkward sizes,
strided and transposed operands, alpha/beta, NaN in C, batches, thread counts, every ISA level."""

from __future__ import annotations

import itertools
import math
import textwrap

import numpy as np
import pytest
from conftest import DTYPES, run_with_isa

_C = pytest.importorskip("fastconv._C")

# Sizes around the tiles (mr 4..12, nr 4..32), primes, and k past one k block (kc = 256).
DIMS = (1, 7, 12, 17, 31, 33, 64, 257)
K_DIMS = (0, 1, 7, 17, 31, 257, 601)
ALPHA_BETA = ((1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 2.0), (0.0, 1.5), (0.0, 0.0))

# Tolerance: a length-k dot product in floating point is off by at most about k * eps * (|a| @ |b|)
# (the classic bound); the factor 2 covers the beta * c term and the oracle's own float64 rounding.
TOL_FACTOR = 2.0


def oracle(a, b, c0, alpha, beta):
    """alpha * a @ b + beta * c0 in float64, and the per-element error bound for a's dtype."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = alpha * (a64 @ b64)
    if beta != 0:
        want += beta * c0.astype(np.float64)
    k = a.shape[-1]
    eps = float(np.finfo(a.dtype).eps)
    mag = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        mag += abs(beta) * np.abs(c0.astype(np.float64))
    bound = TOL_FACTOR * (k + 2) * eps * mag + np.finfo(a.dtype).tiny
    return want, bound


def check(got, want, bound, what=""):
    err = np.abs(got.astype(np.float64) - want)
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} elements off; worst error {err.max():.3g} "
        f"vs bound {bound[np.unravel_index(np.argmax(err - bound), err.shape)]:.3g}"
    )


def run(a, b, c, alpha=1.0, beta=0.0):
    c0 = c.copy()
    want, bound = oracle(a, b, c0, alpha, beta)
    _C.gemm(a, b, c, alpha, beta)
    return want, bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", DIMS)
def test_sizes(rng, dtype, m):
    """Every (m, n, k) from the awkward lists, including k = 0 and shapes smaller than a tile."""
    for n, k in itertools.product(DIMS, K_DIMS):
        a = rng.uniform(-1, 1, (m, k)).astype(dtype)
        b = rng.uniform(-1, 1, (k, n)).astype(dtype)
        c = np.full((m, n), np.nan, dtype)  # beta == 0 must never read C
        want, bound = run(a, b, c)
        check(c, want, bound, f"m={m} n={n} k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
def test_alpha_beta(rng, dtype, alpha, beta):
    for m, n, k in ((1, 1, 1), (13, 37, 5), (31, 65, 300), (100, 45, 17)):
        a = rng.uniform(-1, 1, (m, k)).astype(dtype)
        b = rng.uniform(-1, 1, (k, n)).astype(dtype)
        c = rng.uniform(-1, 1, (m, n)).astype(dtype)
        want, bound = run(a, b, c, alpha, beta)
        check(c, want, bound, f"alpha={alpha} beta={beta} m={m} n={n} k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_zero_ignores_nan_and_inf_in_c(rng, dtype):
    for k in (0, 3, 300):
        a = rng.uniform(-1, 1, (29, k)).astype(dtype)
        b = rng.uniform(-1, 1, (k, 41)).astype(dtype)
        c = np.full((29, 41), np.nan, dtype)
        c[::2] = np.inf
        want, bound = run(a, b, c, 1.5, 0.0)
        assert np.isfinite(c).all()
        check(c, want, bound, f"k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_zero_reads_neither_a_nor_b(dtype):
    """As in BLAS: alpha == 0 gives beta * c even when a or b hold NaN."""
    a = np.full((5, 7), np.nan, dtype)
    b = np.full((7, 3), np.inf, dtype)
    c = np.arange(15, dtype=dtype).reshape(5, 3)
    _C.gemm(a, b, c, 0.0, 2.0)
    np.testing.assert_array_equal(c, 2 * np.arange(15, dtype=dtype).reshape(5, 3))


def strided_cases(rng, dtype, m, n, k):
    """(name, a, b) pairs of views with every stride pattern the engine distinguishes."""

    def u(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype)

    return [
        ("a.T", u(k, m).T, u(k, n)),
        ("b.T", u(m, k), u(n, k).T),
        ("a.T b.T", u(k, m).T, u(n, k).T),
        ("b[::2]", u(m, k), u(2 * k, n)[::2]),
        ("a[:, ::3]", u(m, 3 * k)[:, ::3], u(k, n)),
        ("sliced columns", u(m, k + 5)[:, 2:-3], u(k, n + 7)[:, 3:-4]),
        ("b[:, ::2]", u(m, k), u(k, 2 * n)[:, ::2]),
        ("negative strides", u(m, k)[::-1, ::-1], u(k, n)[::-1]),
        ("zero stride (broadcast row)", np.broadcast_to(u(1, k), (m, k)), u(k, n)),
        ("fortran", np.asfortranarray(u(m, k)), np.asfortranarray(u(k, n))),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 17, 31), (33, 40, 257), (64, 100, 13), (301, 40, 1100)])
def test_strided_operands(rng, dtype, shape):
    """Every stride pattern; the last shape takes several A blocks and k blocks (on any cache
    size), so a column-major A (a.T, fortran: packed a column across all panels at a time) is
    packed from row and column offsets, with a row tail."""
    m, n, k = shape
    for name, a, b in strided_cases(rng, dtype, m, n, k):
        c = np.full((m, n), np.nan, dtype)
        want, bound = run(a, b, c, 1.25)
        check(c, want, bound, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape",
    # (m, n, k): few columns (one to eight B panels), edge rows, k past one k block and past the
    # packed-B stretch that stays in L2 (512 x 49 x 4608: the 3x3 conv on a 7x7 image).
    [
        (1, 1, 1),
        (12, 32, 256),
        (13, 17, 300),
        (25, 49, 2048),
        (512, 49, 4608),
        (37, 129, 70),
        (100, 256, 257),
        (11, 3, 5),
    ],
)
def test_row_major_a_read_in_place(rng, dtype, shape, restore_threads):
    """Small N with a row-major A: the micro-kernel reads A in place (no packed A; tiles whose
    rows alias in L1 are packed). The same product with A in column-major order (packed as
    usual) must give the same bits, for row strides past k, negative row strides, row strides a
    multiple of 4 KiB and any thread count."""
    import fastconv

    m, n, k = shape
    wide = rng.uniform(-1, 1, (m, k + 5)).astype(dtype)
    b = rng.uniform(-1, 1, (k, n)).astype(dtype)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    # rows a multiple of 4 KiB apart fall into the same L1 sets: such tiles are packed first
    step = 4096 // np.dtype(dtype).itemsize
    aliased = rng.uniform(-1, 1, (m, (k // step + 1) * step)).astype(dtype)
    for a in (wide[:, :k], wide[::-1, 2 : 2 + k], aliased[:, :k], aliased[::-1, 1 : 1 + k]):
        packed = np.full((m, n), np.nan, dtype)
        _C.gemm(np.asfortranarray(a), b, packed, 1.0, 0.0)
        want, bound = oracle(a, b, c0, 1.0, 0.0)
        check(packed, want, bound, "packed A")
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            c = np.full((m, n), np.nan, dtype)
            _C.gemm(a, b, c, 1.0, 0.0)
            np.testing.assert_array_equal(c, packed, err_msg=f"{threads} threads, {shape}")
            c = c0.copy()
            _C.gemm(a, b, c, -0.5, 2.0)
            want, bound = oracle(a, b, c0, -0.5, 2.0)
            check(c, want, bound, f"beta 2, {threads} threads, {shape}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_view_with_row_stride_leaves_rest_untouched(rng, dtype):
    m, n, k = 37, 45, 70
    big = rng.uniform(-1, 1, (m + 5, n + 9)).astype(dtype)
    before = big.copy()
    c = big[2 : 2 + m, 3 : 3 + n]
    a = rng.uniform(-1, 1, (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (k, n)).astype(dtype)
    want, bound = run(a, b, c, 1.0, -1.0)
    check(c, want, bound, "c view")
    mask = np.ones(big.shape, bool)
    mask[2 : 2 + m, 3 : 3 + n] = False
    np.testing.assert_array_equal(big[mask], before[mask])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_batched(rng, dtype, batch):
    for (m, n, k), (alpha, beta) in zip(
        ((17, 33, 31), (1, 7, 600), (64, 70, 12)), ((1.0, 0.0), (0.5, 1.0), (-2.0, 0.5))
    ):
        a = rng.uniform(-1, 1, (batch, k, m)).astype(dtype).transpose(0, 2, 1)  # a.T per item
        b = rng.uniform(-1, 1, (batch, k, 2 * n)).astype(dtype)[:, :, ::2]
        c = rng.uniform(-1, 1, (batch, m, n)).astype(dtype)
        if beta == 0:
            c[:] = np.nan
        c0 = c.copy()
        _C.gemm_batched(a, b, c, alpha, beta)
        for i in range(batch):
            want, bound = oracle(a[i], b[i], c0[i], alpha, beta)
            check(c[i], want, bound, f"item {i} of {batch}, m={m} n={n} k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m, n, k", [(1, 5, 3), (13, 40, 31), (50, 33, 700), (25, 64, 257), (7, 9, 0), (600, 300, 40)]
)
def test_batched_with_a_packed_ahead(rng, dtype, m, n, k, restore_threads):
    """gemm_batched_packed_a (Winograd's transformed kernels, packed once) matches the oracle and
    the plain batched GEMM bit for bit: the same k blocks, so the same summation order. Shapes
    cover rows past a tile edge, k past one k block, k = 0 (C scaled by beta) and rows past
    one A block (m > mc) split over threads."""
    import fastconv

    fastconv.set_num_threads(2)
    batch = 3
    a = rng.uniform(-1, 1, (batch, m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (batch, k, n)).astype(dtype)
    c0 = rng.uniform(-1, 1, (batch, m, n)).astype(dtype)
    for alpha, beta in ((1.0, 0.0), (0.5, -1.0)):
        packed, plain = c0.copy(), c0.copy()
        if beta == 0:
            packed[:] = np.nan
        _C.gemm_batched(a, b, packed, alpha, beta, packed_a=True)
        _C.gemm_batched(a, b, plain, alpha, beta)
        np.testing.assert_array_equal(packed, plain)
        for i in range(batch):
            want, bound = oracle(a[i], b[i], c0[i], alpha, beta)
            check(packed[i], want, bound, f"item {i}, m={m} n={n} k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("packed_a", [False, True])
def test_batched_items_split_into_column_parts(rng, dtype, packed_a, restore_threads):
    """Items that do not divide over the threads (Winograd F(2x2, 2x2)'s 9 GEMMs on 2 or 4
    threads) run as parts of whole column panels: every column written once, with the same sums
    as one thread (bit for bit), and the oracle's value; beta accumulates, a strided B and C."""
    import fastconv

    batch, m, k, n = 9, 40, 70, 200
    a = rng.uniform(-1, 1, (batch, m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (batch, k, 2 * n)).astype(dtype)[:, :, ::2]
    c0 = rng.uniform(-1, 1, (batch, m, n)).astype(dtype)
    results = []
    for threads in (1, 2, 3, 4):
        fastconv.set_num_threads(threads)
        c = c0.copy()
        _C.gemm_batched(a, b, c, 0.5, 1.0, packed_a=packed_a)
        results.append(c)
    for c in results[1:]:
        np.testing.assert_array_equal(c, results[0])
    for i in range(batch):
        want, bound = oracle(a[i], b[i], c0[i], 0.5, 1.0)
        check(results[1][i], want, bound, f"item {i}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_interleaved_c(rng, dtype):
    """Items of c interleaved row by row (batch axis inside the row axis) do not overlap."""
    batch, m, n, k = 3, 5, 8, 9
    c_store = np.zeros((m, batch, n), dtype)
    c = c_store.transpose(1, 0, 2)
    a = rng.uniform(-1, 1, (batch, m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (batch, k, n)).astype(dtype)
    _C.gemm_batched(a, b, c)
    for i in range(batch):
        want, bound = oracle(a[i], b[i], c[i], 1.0, 0.0)
        check(c[i], want, bound, f"item {i}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_do_not_depend_on_thread_count(rng, dtype, restore_threads):
    import fastconv

    # Shapes that split over M, over N, into extra parts per thread, and k past one k block.
    shapes = [(300, 40, 600), (40, 900, 300), (128, 3000, 64), (257, 257, 257)]
    for m, n, k in shapes:
        a = rng.uniform(-1, 1, (m, k)).astype(dtype)
        b = rng.uniform(-1, 1, (k, n)).astype(dtype)
        c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
        results = []
        for threads in (1, 2, 3, 5, 16):
            fastconv.set_num_threads(threads)
            c = c0.copy()
            _C.gemm(a, b, c, 0.75, 0.5)
            results.append(c)
        for threads, c in zip((2, 3, 5, 16), results[1:]):
            np.testing.assert_array_equal(c, results[0], err_msg=f"{threads} threads, {m, n, k}")
        ab = np.stack([a, a[::-1]]), np.stack([b, b[:, ::-1]])
        batched = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            c = np.zeros((2, m, n), dtype)
            _C.gemm_batched(*ab, c)
            batched.append(c)
        single = np.zeros((m, n), dtype)
        _C.gemm(ab[0][1], ab[1][1], single)  # an item alone gives the same bits
        np.testing.assert_array_equal(batched[0][1], single)
        for c in batched[1:]:
            np.testing.assert_array_equal(c, batched[0])


def test_errors():
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="dtype"):
        _C.gemm(f32, np.ones((4, 2), np.float64), np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.gemm(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64), np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="shapes"):
        _C.gemm(f32, np.ones((5, 2), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="shapes"):
        _C.gemm(f32, np.ones((4, 2), np.float32), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        _C.gemm(f32[None], np.ones((4, 2), np.float32), np.zeros((3, 2), np.float32))
    readonly = np.zeros((3, 2), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _C.gemm(f32, np.ones((4, 2), np.float32), readonly)
    with pytest.raises(ValueError, match="unit column stride"):
        _C.gemm(f32, np.ones((4, 2), np.float32), np.zeros((2, 3), np.float32).T)
    shared = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="share memory"):
        _C.gemm(shared[:, :3], np.ones((3, 4), np.float32), shared)
    with pytest.raises(ValueError, match="3-D"):
        _C.gemm_batched(f32, np.ones((4, 2), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="shapes"):
        _C.gemm_batched(
            np.ones((2, 3, 4), np.float32),
            np.ones((3, 4, 2), np.float32),
            np.zeros((2, 3, 2), np.float32),
        )
    with pytest.raises(ValueError, match="overlap"):
        c = np.lib.stride_tricks.as_strided(np.zeros(12, np.float32), (2, 3, 2), (8, 8, 4))
        _C.gemm_batched(np.ones((2, 3, 4), np.float32), np.ones((2, 4, 2), np.float32), c)
    with pytest.raises(TypeError, match="dtype"):
        _C.peak_gflops("float16")


def test_info():
    names = _C.gemm_kernels()
    assert names.startswith("f32_gemm_") and ", f64_gemm_" in names
    for dtype in ("float32", "float64"):
        blk = _C.gemm_blocking(dtype)
        assert blk["kernel"] in names
        assert blk["kc"] >= 8 and blk["mc"] % blk["mr"] == 0 and blk["nc"] % blk["nr"] == 0
        peak = _C.peak_gflops(dtype)
        assert math.isfinite(peak) and peak > 0
    assert _C.peak_gflops("float32") >= _C.peak_gflops("float64") * 0.8  # twice the lanes
    assert _C.core_clock_ghz() >= 0


# ---- every ISA level, in a subprocess (FASTCONV_ISA is read once, at import)

ISA_SNIPPET = textwrap.dedent(
    """
    import numpy as np
    import fastconv._C as C
    from test_gemm import oracle, check, strided_cases

    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        # n = 24 and 49: an edge panel of one vector or less (its narrower tile at AVX2)
        for m, n, k in ((1, 1, 1), (7, 17, 31), (31, 33, 300), (65, 129, 70), (13, 24, 40),
                        (50, 49, 320)):
            for alpha, beta in ((1.0, 0.0), (-0.5, 2.0)):
                for name, a, b in strided_cases(rng, dtype, m, n, k)[:4]:
                    c = rng.uniform(-1, 1, (m, n)).astype(dtype)
                    if beta == 0:
                        c[:] = np.nan
                    want, bound = oracle(a, b, c.copy(), alpha, beta)
                    C.gemm(a, b, c, alpha, beta)
                    check(c, want, bound, f"{name} {m, n, k}")
        # an edge panel of one vector or less (AVX2's one-vector tile) rounds as a full one:
        # the first 49 columns of a 64-column product, bit for bit
        a = rng.uniform(-1, 1, (30, 70)).astype(dtype)
        b = rng.uniform(-1, 1, (70, 64)).astype(dtype)
        full, edge = np.empty((30, 64), dtype), np.empty((30, 49), dtype)
        C.gemm(a, b, full)
        C.gemm(a, np.ascontiguousarray(b[:, :49]), edge)
        assert np.array_equal(edge, full[:, :49])
        # rows just past mc (one A block, grown by up to an eighth) and past that (two blocks),
        # columns past the row-major-A path (8 panels per thread)
        blk = C.gemm_blocking(np.dtype(dtype).name)
        for m in (blk["mc"] + blk["mr"] + 1, blk["mc"] * 9 // 8 + blk["mr"]):
            a = rng.uniform(-1, 1, (m, 90)).astype(dtype)
            b = rng.uniform(-1, 1, (90, 600)).astype(dtype)
            c = np.empty((m, 600), dtype)
            C.gemm(a, b, c)
            check(c, *oracle(a, b, c, 1.0, 0.0), f"rows past mc {m}")
        a = rng.uniform(-1, 1, (3, 20, 30)).astype(dtype)
        b = rng.uniform(-1, 1, (3, 30, 40)).astype(dtype)
        c = np.empty((3, 20, 40), dtype)
        C.gemm_batched(a, b, c)
        for i in range(3):
            check(c[i], *oracle(a[i], b[i], c[i], 1.0, 0.0), f"batched {i}")
    assert C.peak_gflops() > 0
    print(C.gemm_kernels())
    """
)

ISA_RANK = {"scalar": 0, "avx2": 1, "avx512": 2}


def test_every_isa_level(isa):
    proc = run_with_isa(ISA_SNIPPET, isa, timeout=120)  # (levels that would fall back skip)
    kernels = proc.stdout.strip().splitlines()[-1]
    assert kernels.endswith(f"_{isa}") and f"_{isa}," in kernels, kernels
